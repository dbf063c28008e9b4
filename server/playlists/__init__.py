"""Playlists (seeds 001, 003): public or private, optionally collaborative.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(who may do what, and the transactions), ``repository.py`` (the statements, typed rows),
``schemas.py`` (wire types). The tracks' order is kept by ``server/ordering.py``, shared with
releases.
"""
