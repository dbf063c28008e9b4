"""Accounts: registration, email verification, sessions, lockout, resets, profile and roles.

``route_handlers`` and ``lifespan`` (the email outbox sender) are registered in
``server.app.create_app``. See docs/accounts.md.
"""

from server.accounts.controller import route_handlers
from server.accounts.outbox import lifespan

__all__ = ["lifespan", "route_handlers"]
