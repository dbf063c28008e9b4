"""Room history over REST: the batch history, states at earlier seqs and named versions of
blends and mashups (docs/protocol.md, "History over REST"). Undo, redo, restore and naming
versions are room messages (``rooms.history_store``); these endpoints only read."""

from server.history.controller import BlendHistoryController, MashupHistoryController

__all__ = ["BlendHistoryController", "MashupHistoryController"]
