"""The OpenAPI document: what a client written only from ``/schema/openapi.json`` needs.

Litestar generates the document from the handlers; this module completes it at start-up:

- **Errors.** Every problem code is described once (``CODES``). Each operation gets the
  error responses its shape implies (a parameter or body: 400; a session: 401; a role guard:
  403; a path parameter: 404; a body: 413; PostgreSQL or Redis behind it: 503) plus the
  codes listed for it in ``ANSWERS``, one line per operation, grouped by status. All are
  ``application/problem+json``. Responses a handler declares itself (accounts) are kept.
  A new endpoint needs a line in ``ANSWERS`` only for codes beyond the implied ones.
- **Security.** A Bearer token and the ``bt_session`` cookie are declared as security schemes
  and required by every operation that needs a session.
- **Schemas.** Struct schemas say ``additionalProperties: false`` where unknown fields are
  refused and carry every msgspec constraint, also on optional fields
  (``StrictStructSchemaPlugin``); ``oneOf: [X, {}]`` (Litestar's rendering of
  ``tuple[X, ...]``) becomes ``X``; 204 responses have no body; the preview window's maximum
  is the configured one.

``tests/foundation/test_openapi_contract.py`` sends real requests (errors included) to every
operation and validates each answer against the served document, so it cannot drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from server.auth import SESSION_COOKIE
from server.problems import PROBLEM_JSON

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

# Every problem code a client can meet: its status and what it means.
CODES: dict[str, tuple[int, str]] = {
    # 400
    "invalid_request": (
        400,
        "the body is malformed JSON, has a missing, unknown or mistyped field, or a body, "
        "path or query value breaks its constraints (`errors` names it)",
    ),
    "invalid_cursor": (400, "the cursor is not one this listing gave out (or for another sort)"),
    "invalid_upload": (400, "malformed multipart body, or no `file` part"),
    "window_too_long": (400, "the preview window is longer than the configured maximum"),
    "weak_password": (400, "the password breaks the password policy"),
    "invalid_token": (400, "the emailed token is unknown"),
    "token_used": (400, "the emailed token was used already"),
    "token_expired": (400, "the emailed token has expired"),
    "invalid_timezone": (400, "not an IANA time zone name"),
    "role_implicit": (400, "every account has the `user` role"),
    # 401, 403
    "unauthenticated": (401, "no valid session (Bearer token or the `bt_session` cookie)"),
    "invalid_credentials": (401, "unknown email, wrong password or locked account (one answer)"),
    "forbidden": (403, "signed in, but not allowed to do this (role, ownership or editor)"),
    "not_owner": (403, "only the owner may do this"),
    "wrong_password": (403, "the current password is wrong"),
    # 404
    "not_found": (404, "no such resource, or one the caller may not see"),
    "user_not_found": (404, "no such user"),
    "session_not_found": (404, "not one of the caller's sessions"),
    "member_not_found": (404, "that user is not a member"),
    "no_invitation": (404, "the caller has no pending invitation"),
    "invalid_share_code": (404, "mistyped, unknown, expired or revoked share code"),
    "unknown_provider": (404, "providers are `spotify` and `apple`"),
    "unknown_time_range": (404, "time ranges are `short_term`, `medium_term`, `long_term`"),
    "not_connected": (404, "the caller has not connected this provider"),
    "track_not_found": (404, "no such upload of the caller's"),
    "input_not_found": (404, "that track is not an input of the mashup"),
    "preview_not_found": (404, "not rendered yet, failed, or dropped"),
    "export_not_found": (404, "the mashup has not been exported yet"),
    "unknown_version": (404, "no such named version in this room"),
    # 409
    "audio_filename_taken": (409, "another track uses this `audio_filename`"),
    "split_total_exceeded": (409, "the creators' splits would add up to more than 100 %"),
    "not_failed": (409, "only a failed upload can be retried"),
    "email_taken": (409, "an account with this email address exists"),
    "username_taken": (409, "this username is taken"),
    "already_verified": (409, "the address is verified already"),
    "last_admin": (409, "the last admin cannot lose the admin role"),
    "in_release": (409, "a release has the upload as a track; remove it there first"),
    "upload_busy": (409, "the upload is being moved into storage; retry in a moment"),
    "not_analysed": (409, "no peaks yet: the upload's analysis is pending, running or failed"),
    "release_locked": (409, "the release is not a draft (or, to delete, not draft/rejected)"),
    "too_many_tracks": (409, "the release has its maximum number of tracks"),
    "track_order_taken": (409, "the release already has a track with this number"),
    "invalid_order": (409, "the order must list every track of the release exactly once"),
    "invalid_transition": (409, "the release's status does not allow this action"),
    "release_incomplete": (409, "a release needs a track and cover art before review"),
    "upload_failed": (409, "a track's upload failed; retry or replace it"),
    "not_collaborative": (409, "make the playlist collaborative first"),
    "already_owner": (409, "the owner edits the playlist anyway"),
    "already_collaborator": (409, "that user already collaborates"),
    "too_many_collaborators": (409, "the playlist has its maximum number of collaborators"),
    "playlist_full": (409, "the playlist has its maximum number of tracks"),
    "track_already_in_playlist": (409, "the playlist already has this track"),
    "member_limit_too_low": (409, "the blend already has more members than the new limit"),
    "blend_full": (409, "the blend has its `member_limit` of members"),
    "already_member": (409, "that user is already a member"),
    "owner_cannot_leave": (409, "the owner cannot leave; delete it instead"),
    "mashup_full": (409, "the mashup has its maximum of 50 members"),
    "owner_role": (409, "the owner's role cannot change"),
    "track_not_ready": (409, "the upload is not stored and analysed yet, or failed"),
    "already_input": (409, "that track is already an input"),
    "too_many_inputs": (409, "the mashup has its maximum of 50 input tracks"),
    "empty_timeline": (409, "there is nothing on the timeline to export"),
    "no_inputs": (409, "the mashup has no input tracks to generate from"),
    "inputs_not_analysed": (409, "an input has no bars and sections yet (`detail` names it)"),
    "target_too_long": (409, "a generated mashup lasts at most 1200 s; lower the target"),
    "generation_in_progress": (409, "a generation of this mashup is already queued or running"),
    # 410
    "history_unavailable": (410, "that point is older than the history the room keeps"),
    # 413, 415, 422
    "too_large": (413, "the body is larger than BLENDTUNE_MAX_REQUEST_BYTES"),
    "upload_too_large": (413, "the file is larger than BLENDTUNE_MAX_UPLOAD_BYTES"),
    "audio_too_long": (413, "the audio lasts longer than 30 minutes"),
    "unsupported_media_type": (415, "send `multipart/form-data`"),
    "unsupported_format": (415, "not audio, or a format the server does not decode"),
    "invalid_audio": (422, "empty, truncated or undecodable audio"),
    # 429, 503
    "rate_limited": (429, "too many attempts; `Retry-After` says when to retry"),
    "unavailable": (503, "PostgreSQL or Redis is unavailable; retry (`Retry-After`)"),
    "not_ready": (503, "PostgreSQL or Redis does not answer; `detail` names which"),
    "busy": (503, "too many renders in flight on this process; retry (`Retry-After`)"),
}

# The codes each operation answers beyond those its shape implies (see ``_implied``).
ANSWERS: dict[str, str] = {
    "GET /readyz": "not_ready",
    "GET /tracks": "invalid_cursor",
    "POST /tracks": "forbidden audio_filename_taken split_total_exceeded",
    "PATCH /tracks/{track_id}": "forbidden audio_filename_taken split_total_exceeded",
    "DELETE /tracks/{track_id}": "forbidden",
    "POST /tracks/{track_id}/sections": "forbidden",
    "POST /tracks/{track_id}/creators": "forbidden split_total_exceeded",
    "POST /tracks/{track_id}/instruments": "forbidden",
    "POST /tracks/{track_id}/samples": "forbidden",
    "DELETE /tracks/{track_id}/sections/{child_id}": "forbidden",
    "DELETE /tracks/{track_id}/creators/{child_id}": "forbidden",
    "DELETE /tracks/{track_id}/instruments/{child_id}": "forbidden",
    "DELETE /tracks/{track_id}/samples/{child_id}": "forbidden",
    "POST /uploads": "invalid_upload upload_too_large audio_too_long unsupported_media_type "
    "unsupported_format invalid_audio",
    "GET /uploads": "invalid_cursor",
    "POST /uploads/{upload_id}/retry": "not_failed",
    "DELETE /uploads/{upload_id}": "in_release upload_busy",
    "GET /uploads/{upload_id}/peaks": "not_analysed",
    "POST /releases": "forbidden",
    "GET /releases": "forbidden invalid_cursor",
    "PATCH /releases/{release_id}": "forbidden release_locked",
    "DELETE /releases/{release_id}": "forbidden release_locked",
    "POST /releases/{release_id}/tracks": "forbidden release_locked too_many_tracks "
    "track_order_taken",
    "DELETE /releases/{release_id}/tracks/{track_id}": "forbidden release_locked",
    "PUT /releases/{release_id}/tracks/order": "forbidden release_locked invalid_order",
    "POST /releases/{release_id}/submit": "forbidden invalid_transition "
    "release_incomplete upload_failed",
    "POST /releases/{release_id}/withdraw": "forbidden invalid_transition",
    "POST /releases/{release_id}/approve": "forbidden invalid_transition "
    "release_incomplete upload_failed",
    "POST /releases/{release_id}/reject": "forbidden invalid_transition",
    "POST /releases/{release_id}/reopen": "forbidden invalid_transition",
    "GET /playlists": "invalid_cursor",
    "PATCH /playlists/{playlist_id}": "forbidden",
    "DELETE /playlists/{playlist_id}": "forbidden",
    "POST /playlists/{playlist_id}/collaborators": "forbidden not_collaborative "
    "already_owner already_collaborator too_many_collaborators",
    "DELETE /playlists/{playlist_id}/collaborators/{user_id}": "forbidden",
    "POST /playlists/{playlist_id}/tracks": "forbidden playlist_full track_already_in_playlist",
    "PATCH /playlists/{playlist_id}/tracks/{track_id}": "forbidden",
    "DELETE /playlists/{playlist_id}/tracks/{track_id}": "forbidden",
    "PATCH /blends/{blend_id}": "not_owner member_limit_too_low",
    "DELETE /blends/{blend_id}": "not_owner",
    "POST /blends/{blend_id}/share-code": "not_owner",
    "DELETE /blends/{blend_id}/share-code": "not_owner",
    "POST /blends/join": "invalid_share_code blend_full rate_limited",
    "POST /blends/{blend_id}/invites": "not_owner user_not_found already_member blend_full",
    "POST /blends/{blend_id}/accept": "blend_full",
    "POST /blends/{blend_id}/decline": "no_invitation",
    "POST /blends/{blend_id}/leave": "owner_cannot_leave",
    "DELETE /blends/{blend_id}/members/{user_id}": "not_owner member_not_found owner_cannot_leave",
    "PUT /taste/connections/{provider}": "unknown_provider",
    "DELETE /taste/connections/{provider}": "unknown_provider not_connected",
    "PUT /taste/connections/{provider}/top-tracks/{time_range}": "unknown_provider "
    "unknown_time_range not_connected",
    "GET /taste/connections/{provider}/top-tracks/{time_range}": "unknown_provider "
    "unknown_time_range not_connected",
    "PATCH /mashups/{mashup_id}": "not_owner",
    "DELETE /mashups/{mashup_id}": "not_owner",
    "POST /mashups/{mashup_id}/share-code": "not_owner",
    "DELETE /mashups/{mashup_id}/share-code": "not_owner",
    "POST /mashups/join": "invalid_share_code mashup_full rate_limited",
    "PUT /mashups/{mashup_id}/members/{user_id}": "not_owner member_not_found owner_role",
    "DELETE /mashups/{mashup_id}/members/{user_id}": "not_owner member_not_found "
    "owner_cannot_leave",
    "POST /mashups/{mashup_id}/inputs": "forbidden track_not_found track_not_ready "
    "already_input too_many_inputs",
    "DELETE /mashups/{mashup_id}/inputs/{track_id}": "forbidden input_not_found",
    "POST /mashups/{mashup_id}/previews": "window_too_long busy",
    "GET /mashups/{mashup_id}/previews/{preview_id}": "preview_not_found",
    "POST /mashups/{mashup_id}/export": "forbidden empty_timeline busy",
    "GET /mashups/{mashup_id}/export": "export_not_found",
    "POST /mashups/{mashup_id}/generate": "forbidden no_inputs inputs_not_analysed "
    "target_too_long generation_in_progress",
    # Room history (server/history), the same for blends and mashups.
    **{
        f"GET /{kind}/{{room_id}}/{path}": codes
        for kind in ("blends", "mashups")
        for path, codes in (
            ("history/{seq}", "history_unavailable"),
            ("versions/{version_id}", "unknown_version"),
        )
    },
}

# Operations that touch neither PostgreSQL nor Redis, or say so in their own way.
_NO_BACKEND = {"GET /healthz", "GET /metrics", "GET /readyz"}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session_cookie": []}]
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's Struct schemas, plus what it leaves out: ``additionalProperties: false``
    for ``forbid_unknown_fields`` Structs, and the numeric bounds of optional fields (it
    drops a bound of 0 and, on ``X | None``, keeps only some)."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        # A Struct's own docstring states the rules its fields alone cannot (e.g. a section
        # ends after it starts); an inherited one says nothing about it.
        own_doc = vars(field_definition.type_).get("__doc__")
        if own_doc and not schema.description:
            schema.description = inspect.cleandoc(own_doc)
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _copy_bounds(field.type, prop)
        return schema


def _copy_bounds(field_type: msgspec.inspect.Type, prop: Schema) -> None:
    if isinstance(field_type, msgspec.inspect.UnionType):
        inner = [t for t in field_type.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(inner) != 1:
            return
        field_type = inner[0]
    if isinstance(field_type, msgspec.inspect.Metadata):
        field_type = field_type.type
    if isinstance(field_type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        bounds = {
            "minimum": field_type.ge,
            "exclusive_minimum": field_type.gt,
            "maximum": field_type.le,
            "exclusive_maximum": field_type.lt,
        }
    elif isinstance(field_type, msgspec.inspect.StrType):
        bounds = {"min_length": field_type.min_length, "max_length": field_type.max_length}
    else:
        return
    for name, value in bounds.items():
        if value is not None and getattr(prop, name) is None:
            setattr(prop, name, value)


def document(app: Litestar) -> None:
    """``on_startup``: complete the generated document (see the module docstring)."""
    openapi = app.openapi_schema
    components = openapi.components
    if isinstance(components, list):  # Litestar allows a list; this app never passes one
        raise TypeError("expected one Components object")
    components = components or Components()
    openapi.components = components
    components.security_schemes = {
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            description="The `token` from `POST /auth/login`: `Authorization: Bearer <token>`.",
        ),
        "session_cookie": SecurityScheme(
            type="apiKey",
            name=SESSION_COOKIE,
            security_scheme_in="cookie",
            description="The HttpOnly cookie `POST /auth/login` sets (browsers send it).",
        ),
    }
    for path, method, handler, operation in _operations(app):
        key = f"{method.upper()} {path}"
        if _needs_session(handler):
            operation.security = list(SECURITY)
        _document_errors(operation, key, handler)
        for status, response in (operation.responses or {}).items():
            if status == "204" and isinstance(response, OpenAPIResponse):
                response.content = None
    for schema in (components.schemas or {}).values():
        _drop_empty_alternatives(schema)
    services = app.state.get("services")
    preview = (components.schemas or {}).get("PreviewWindow")
    if services is not None and preview is not None and preview.properties:
        duration = preview.properties.get("duration_seconds")
        if isinstance(duration, Schema):
            duration.maximum = services.settings.mashup_preview_max_seconds


def _operations(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler, Operation]]:
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        item = paths[route.path_format]
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if isinstance(operation, Operation):
                    yield route.path_format, method, handler, operation


def _needs_session(handler: HTTPRouteHandler) -> bool:
    return "principal" in handler.parsed_fn_signature.parameters or bool(handler.resolve_guards())


def implied_codes(key: str, handler: HTTPRouteHandler, operation: Operation) -> list[str]:
    """The codes an operation answers because of its shape alone."""
    has_body = "data" in handler.parsed_fn_signature.parameters
    codes = []
    if has_body or operation.parameters:
        codes.append("invalid_request")
    if _needs_session(handler):
        codes.append("unauthenticated")
    if handler.resolve_guards():
        codes.append("forbidden")
    if "{" in key:  # what the path names may not exist (or not be visible to the caller)
        codes.append("not_found")
    if has_body:
        codes.append("too_large")
    if key not in _NO_BACKEND:
        codes.append("unavailable")
    return codes


def codes_of(key: str, handler: HTTPRouteHandler, operation: Operation) -> dict[int, list[str]]:
    """Every problem code of an operation, by status."""
    by_status: dict[int, list[str]] = {}
    for code in [*implied_codes(key, handler, operation), *ANSWERS.get(key, "").split()]:
        status = CODES[code][0]
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return by_status


def _document_errors(operation: Operation, key: str, handler: HTTPRouteHandler) -> None:
    problem = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ProblemDetail"))
    responses = operation.responses = operation.responses or {}
    # Litestar documents a 400 in its own error shape with a generic text: ours replaces it.
    generic = responses.get("400")
    if isinstance(generic, OpenAPIResponse) and generic.description.startswith("Bad request"):
        del responses["400"]
    for code_status, codes in sorted(codes_of(key, handler, operation).items()):
        if str(code_status) in responses:
            continue  # the handler documents it itself
        responses[str(code_status)] = OpenAPIResponse(
            description="; ".join(f"`{code}`: {CODES[code][1]}" for code in codes) + ".",
            content={PROBLEM_JSON: problem},
        )
    for status, response in responses.items():
        if int(status) >= 400 and isinstance(response, OpenAPIResponse):
            response.content = {PROBLEM_JSON: problem}


def _drop_empty_alternatives(schema: Schema | Reference) -> None:
    """``oneOf: [X, {}]`` accepts anything; Litestar writes it for ``tuple[X, ...]``."""
    if not isinstance(schema, Schema):
        return
    for item in fields(schema):
        value = getattr(schema, item.name)
        if isinstance(value, Schema | Reference):
            _drop_empty_alternatives(value)
            if isinstance(value, Schema) and value.one_of:
                kept = [v for v in value.one_of if not _is_empty(v)]
                if len(kept) == 1 and len(value.one_of) == 2 and _is_bare_one_of(value):
                    setattr(schema, item.name, kept[0])
                    _drop_empty_alternatives(kept[0])
        elif isinstance(value, list | tuple):
            for element in value:
                if isinstance(element, Schema | Reference):
                    _drop_empty_alternatives(element)
        elif isinstance(value, dict):
            for element in value.values():
                if isinstance(element, Schema | Reference):
                    _drop_empty_alternatives(element)


def _is_empty(schema: Schema | Reference) -> bool:
    return isinstance(schema, Schema) and all(
        getattr(schema, f.name) is None for f in fields(schema)
    )


def _is_bare_one_of(schema: Schema) -> bool:
    return all(f.name == "one_of" or getattr(schema, f.name) is None for f in fields(schema))
