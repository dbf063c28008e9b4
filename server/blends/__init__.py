"""Blends (seed 002): share-code joins, fair woven playlists and the live blend room.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(rules and transactions, and the blends' side of the shared share-code controller),
``repository.py`` (the blends' statements, typed rows), ``schemas.py`` (wire types). Beside
them, what only blends have: ``taste.py`` (the taste sources' statements: provider
connections, top tracks, catalog plays), ``weave.py`` (the pure weaving algorithm),
``room.py`` (the room kind), ``live.py`` (server batches into the room), ``generation.py``
(the weave job) and ``crypto.py`` (provider tokens at rest).
"""
