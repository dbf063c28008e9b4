"""Mashups: co-edited timelines of clips from uploaded tracks, with live previews.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(rules and transactions, and the mashups' side of the shared share-code controller),
``repository.py`` (the statements, typed rows), ``schemas.py`` (wire types). Beside them,
what only mashups have: ``room.py`` (the room kind), ``live.py`` (server batches into the
room), ``previews.py`` (preview and export renders) and ``generation.py`` (the generation
job, with its ``SKIP LOCKED`` claim).
"""
