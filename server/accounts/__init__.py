"""Accounts: registration, email verification, sessions, lockout, resets, profile and roles.

``route_handlers`` and ``lifespan`` (the email sender and housekeeping) are registered in
``server.app.create_app``. See docs/accounts.md.
"""

from server.accounts.background import lifespan
from server.accounts.controller import route_handlers

__all__ = ["lifespan", "route_handlers"]
