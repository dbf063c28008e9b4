"""Releases (seed 004): draft -> (processing) -> pending_review -> published / rejected.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(rules and transactions), ``repository.py`` (the statements, typed rows), ``schemas.py``
(wire types); and ``lifecycle.py``, the statuses and actions as data. The tracks' order is
kept by ``server/ordering.py``, shared with playlists.
"""
