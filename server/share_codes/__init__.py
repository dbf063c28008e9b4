"""Share codes, for blends and mashups alike.

The domain template (docs/architecture.md): ``controller.py`` (rotate, revoke and join, one
controller that blends and mashups mount with a ``Shareable`` of their own), ``repository.py``
(issuing, revoking and finding codes on a blend or mashup row), ``schemas.py`` (wire types).
No ``service.py``: the rules that differ (who may manage a code, how a user is admitted) are
the domains' ``Shareable``s, and the controller holds the one transaction around them. Beside
them: ``codes.py`` (the code format) and ``guard.py`` (the limit on guessing codes).
"""
