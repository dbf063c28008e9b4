"""REST endpoints of accounts: /auth/*, /me and /users/{id}/roles (see docs/accounts.md)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.background_tasks import BackgroundTask
from litestar.openapi.datastructures import ResponseSpec

from server.accounts import ratelimit, service
from server.accounts.schemas import (
    Accepted,
    Account,
    DeleteAccount,
    LoginRequest,
    LoginResponse,
    Me,
    PasswordChange,
    ProfilePatch,
    RegisterRequest,
    ResetConfirm,
    ResetRequest,
    Role,
    SessionInfo,
    UserRoles,
    Verified,
    VerifyRequest,
)
from server.auth import SESSION_COOKIE, Principal, client_address, require_role
from server.problems import PROBLEM_JSON, ProblemDetail
from server.services import Services

_log = logging.getLogger("blendtune.accounts")

RESET_ACCEPTED = (
    "If an account exists for this address, a reset link is on its way; it is valid for 1 hour."
)


def _problems(**descriptions: str) -> dict[int, ResponseSpec]:
    """OpenAPI error responses, e.g. ``_problems(e409="email taken")``."""
    return {
        int(key[1:]): ResponseSpec(
            data_container=ProblemDetail,
            description=text,
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for key, text in descriptions.items()
    }


BAD_BODY = "`invalid_request`: the body is malformed or a field breaks its constraints."
TOO_LARGE = "`too_large`: the body is larger than BLENDTUNE_MAX_REQUEST_BYTES."
LIMITED = "`rate_limited`: too many requests from this address or for this account (Retry-After)."
NO_REDIS = "`unavailable`: the rate limiter cannot reach Redis (Retry-After)."
UNAUTHENTICATED = "`unauthenticated`: no valid session token (Bearer header or cookie)."
BAD_TOKEN = "`invalid_token`, `token_used` or `token_expired`."


def _secure(request: Request[Any, Any, Any], services: Services) -> bool:
    return request.url.scheme == "https" or services.settings.public_url.startswith("https://")


class AuthController(Controller):
    path = "/auth"
    tags = ["accounts"]

    @post(
        "/register",
        status_code=201,
        responses=_problems(
            e400=BAD_BODY + " `weak_password`: the password breaks the password policy.",
            e409="`email_taken` or `username_taken` (both compared regardless of case).",
            e413=TOO_LARGE,
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def register(
        self, request: Request[Any, Any, Any], services: Services, data: RegisterRequest
    ) -> Account:
        """Create an account and email a verification link (valid 24 h, single use)."""
        await ratelimit.check(
            services, address=client_address(request), account=ratelimit.account_key(data.email)
        )
        return await service.register(services, data)

    @post(
        "/verify",
        status_code=200,
        responses=_problems(
            e400=BAD_TOKEN + " " + BAD_BODY, e413=TOO_LARGE, e429=LIMITED, e503=NO_REDIS
        ),
    )
    async def verify(
        self, request: Request[Any, Any, Any], services: Services, data: VerifyRequest
    ) -> Verified:
        """Confirm an email address with the token from the verification email."""
        await ratelimit.check(services, address=client_address(request))
        user_id = await service.verify_email(services, data.token)
        return Verified(user_id=user_id, email_verified=True)

    @post(
        "/verify/resend",
        status_code=202,
        responses=_problems(
            e401=UNAUTHENTICATED,
            e409="`already_verified`.",
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def resend(
        self, request: Request[Any, Any, Any], services: Services, principal: Principal
    ) -> Accepted:
        """Email a fresh verification link to the signed-in user."""
        address, account = client_address(request), str(principal.user_id)
        await ratelimit.check(services, address=address, account=account)
        await service.resend_verification(services, principal)
        return Accepted(detail="A new verification link is on its way.")

    @post(
        "/login",
        status_code=200,
        responses=_problems(
            e400=BAD_BODY,
            e401="`invalid_credentials`: the same answer for an unknown email, a wrong "
            "password and a locked account.",
            e413=TOO_LARGE,
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def login(
        self, request: Request[Any, Any, Any], services: Services, data: LoginRequest
    ) -> Response[LoginResponse]:
        """Sign in: returns a session token and sets it as the HttpOnly `bt_session` cookie.

        Use the token as `Authorization: Bearer <token>` or rely on the cookie. Sessions last
        7 days from their last use. After 5 failed passwords the account is locked 15 minutes.
        """
        address = client_address(request)
        await ratelimit.check(services, address=address, account=ratelimit.account_key(data.email))
        session = await service.login(
            services,
            data.email,
            data.password,
            ip_address=service.client_address(address),
            user_agent=request.headers.get("user-agent"),
        )
        response = Response(
            LoginResponse(
                token=session.token,
                session_id=session.session_id,
                user_id=session.user_id,
                expires_at=session.expires_at,
            )
        )
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=services.settings.session_ttl_hours * 3600,
            httponly=True,
            samesite="lax",
            secure=_secure(request, services),
            path="/",
        )
        return response

    @post("/logout", status_code=204, responses=_problems(e401=UNAUTHENTICATED))
    async def logout(self, services: Services, principal: Principal) -> Response[None]:
        """End the current session (its token stops working) and clear the cookie."""
        await service.logout(services, principal)
        response = Response(None, status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/sessions", responses=_problems(e401=UNAUTHENTICATED))
    async def sessions(self, services: Services, principal: Principal) -> list[SessionInfo]:
        """The caller's live sessions, most recently used first."""
        return await service.list_sessions(services, principal)

    @delete(
        "/sessions/{session_id:uuid}",
        status_code=204,
        responses=_problems(
            e400=BAD_BODY,
            e401=UNAUTHENTICATED,
            e404="`session_not_found`: not one of your sessions.",
        ),
    )
    async def revoke_session(
        self, services: Services, principal: Principal, session_id: uuid.UUID
    ) -> None:
        """Revoke one of the caller's sessions (its token stops working at once)."""
        await service.revoke_session(services, principal, session_id)

    @delete("/sessions", status_code=204, responses=_problems(e401=UNAUTHENTICATED))
    async def revoke_others(self, services: Services, principal: Principal) -> None:
        """Revoke every session of the caller except the current one."""
        await service.revoke_other_sessions(services, principal)

    @post(
        "/password-reset",
        status_code=202,
        responses=_problems(e400=BAD_BODY, e413=TOO_LARGE, e429=LIMITED, e503=NO_REDIS),
    )
    async def request_reset(
        self, request: Request[Any, Any, Any], services: Services, data: ResetRequest
    ) -> Response[Accepted]:
        """Ask for a password reset email (token valid 1 h, single use).

        The answer is the same whether or not the address has an account: the lookup and the
        email happen after the response is sent.
        """
        await ratelimit.check(
            services, address=client_address(request), account=ratelimit.account_key(data.email)
        )
        return Response(
            Accepted(detail=RESET_ACCEPTED),
            status_code=202,
            background=BackgroundTask(_request_reset, services, data.email),
        )

    @post(
        "/password-reset/confirm",
        status_code=204,
        responses=_problems(
            e400=BAD_TOKEN + " `weak_password`. " + BAD_BODY,
            e413=TOO_LARGE,
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def confirm_reset(
        self, request: Request[Any, Any, Any], services: Services, data: ResetConfirm
    ) -> None:
        """Set a new password with an emailed reset token; signs the user out everywhere."""
        await ratelimit.check(services, address=client_address(request))
        await service.confirm_reset(services, data.token, data.password)


async def _request_reset(services: Services, email: str) -> None:
    try:
        await service.request_reset(services, email)
    except Exception:
        _log.exception("password reset request failed")


class MeController(Controller):
    path = "/me"
    tags = ["accounts"]

    @get("/", responses=_problems(e401=UNAUTHENTICATED))
    async def get_me(self, services: Services, principal: Principal) -> Me:
        """The caller's account, roles and profile."""
        return await service.get_me(services, principal.user_id)

    @patch(
        "/",
        responses=_problems(
            e400=BAD_BODY + " `invalid_timezone`: not an IANA time zone name.",
            e401=UNAUTHENTICATED,
            e413=TOO_LARGE,
        ),
    )
    async def patch_me(self, services: Services, principal: Principal, data: ProfilePatch) -> Me:
        """Change profile fields: only those present change; `null` clears one."""
        return await service.update_profile(services, principal.user_id, data)

    @put(
        "/password",
        status_code=204,
        responses=_problems(
            e400=BAD_BODY + " `weak_password`: the new password breaks the password policy.",
            e401=UNAUTHENTICATED,
            e403="`wrong_password`: the current password is wrong.",
            e413=TOO_LARGE,
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        data: PasswordChange,
    ) -> None:
        """Change the password; every other session of the caller is signed out."""
        address, account = client_address(request), str(principal.user_id)
        await ratelimit.check(services, address=address, account=account)
        await service.change_password(services, principal, data.current_password, data.new_password)

    @delete(
        "/",
        status_code=204,
        responses=_problems(
            e400=BAD_BODY,
            e401=UNAUTHENTICATED,
            e403="`wrong_password`: the password re-entered is wrong.",
            e413=TOO_LARGE,
            e429=LIMITED,
            e503=NO_REDIS,
        ),
    )
    async def delete_me(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        principal: Principal,
        data: DeleteAccount,
    ) -> Response[None]:
        """Delete the caller's account and everything it owns; needs the password again."""
        address, account = client_address(request), str(principal.user_id)
        await ratelimit.check(services, address=address, account=account)
        await service.delete_account(services, principal, data.password)
        response = Response(None, status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


ADMIN_ONLY = "`forbidden`: the caller is not an admin."
ROLE_ERRORS = _problems(
    e400=BAD_BODY + " `role_implicit`: every account has the `user` role.",
    e401=UNAUTHENTICATED,
    e403=ADMIN_ONLY,
    e404="`user_not_found`.",
)


class RolesController(Controller):
    path = "/users"
    tags = ["accounts"]
    guards = [require_role("admin")]

    @get(
        "/{user_id:uuid}/roles",
        responses=_problems(
            e400="`invalid_request`: the user id is not a UUID.",
            e401=UNAUTHENTICATED,
            e403=ADMIN_ONLY,
            e404="`user_not_found`.",
        ),
    )
    async def get_roles(self, services: Services, user_id: uuid.UUID) -> UserRoles:
        """A user's roles (admins only)."""
        return await service.get_roles(services, user_id)

    @put("/{user_id:uuid}/roles/{role:str}", responses=ROLE_ERRORS)
    async def grant(
        self, services: Services, principal: Principal, user_id: uuid.UUID, role: Role
    ) -> UserRoles:
        """Grant a role (admins only); granting a role the user has changes nothing."""
        return await service.grant_role(services, principal, user_id, role)

    @delete(
        "/{user_id:uuid}/roles/{role:str}",
        status_code=200,
        responses={
            **ROLE_ERRORS,
            **_problems(e409="`last_admin`: the last admin cannot lose the admin role."),
        },
    )
    async def revoke(self, services: Services, user_id: uuid.UUID, role: Role) -> UserRoles:
        """Revoke a role (admins only); revoking a role the user lacks changes nothing."""
        return await service.revoke_role(services, user_id, role)


route_handlers = [AuthController, MeController, RolesController]
