"""Room history over REST: the batch history, states at earlier seqs and named versions of
blends and mashups (docs/protocol.md, "History over REST"). Undo, redo, restore and naming
versions are room messages (``rooms.history_store``); these endpoints only read.

The domain template (docs/architecture.md), with two files it has no use for: no
``service.py`` (a read takes no rule but membership, which the room kind answers) and no
``repository.py`` (the history's statements are the rooms package's, ``rooms.history_store``,
shared with the room messages)."""

from server.history.controller import BlendHistoryController, MashupHistoryController

__all__ = ["BlendHistoryController", "MashupHistoryController"]
