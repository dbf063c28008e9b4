"""The music catalog (seed 001): tracks with sections, creators, instruments and samples.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(who may change what, and the transactions), ``repository.py`` (the statements: all SQL, for
the keyset search over expression indexes and the ``tsvector``), ``schemas.py`` (wire types).
``common.py`` holds what other domains' pages and bodies use too (keyset cursors, text
limits).
"""
