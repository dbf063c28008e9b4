"""Accounts: registration, email verification, sessions, lockout, resets, profile and roles.

``route_handlers`` and ``lifespan`` (the email sender and housekeeping) are registered in
``server.app.create_app``. See docs/accounts.md.

The domain template (docs/architecture.md): ``controller.py`` (HTTP only), ``service.py``
(rules and transactions), ``repository.py`` (the statements, typed rows), ``schemas.py``
(wire types). Beside them: ``passwords.py`` (hashing and the password policy), ``outbox.py``
(stored emails and their sender), ``background.py`` (the lifespan's tasks), ``ratelimit.py``
(the accounts' limit on ``server/ratelimit.py``), ``metrics.py`` and ``cli.py``.
"""

from server.accounts.background import lifespan
from server.accounts.controller import route_handlers

__all__ = ["lifespan", "route_handlers"]
