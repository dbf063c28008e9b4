"""Audio uploads (seeds 000, 003, 004): streamed in, moved to storage by a worker, analysed.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only: the multipart
body, ETags), ``service.py`` (rules and transactions), ``repository.py`` (the REST API's
statements, typed rows), ``schemas.py`` (wire types). Beside them: ``receive.py`` (streaming a
multipart body to disk) and ``worker.py`` (the move and analysis jobs, with their
``SKIP LOCKED`` claims; storage itself is ``server/storage.py``).
"""
