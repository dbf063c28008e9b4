"""Strict decoding of JSON request bodies.

Litestar decodes a JSON body to plain Python and then converts it to the handler's ``data``
type with ``msgspec.convert(..., strict=False)``, because the same conversion also parses
path and query parameters, which arrive as strings. For a body that means ``"is_public": 1``
becomes ``True`` and ``"tempo": "120"`` becomes ``120.0``. The docs promise
``400 invalid_request`` for a wrong type, so every JSON body is first decoded here with
``strict=True`` against the handler's ``data`` type; Litestar's lenient pass then only sees
bodies that are already valid, which it converts to the same values.

The caller is authenticated first: an anonymous request is answered 401 whatever its body,
as it was before this check existed.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg

from server.auth import current_principal

# msgspec ends its messages with the location, e.g. "Expected `bool`, got `int` - at `$.x`".
_LOCATION = re.compile(r" - at `\$\.?(.*)`$")


def _decoder_for(handler: HTTPRouteHandler) -> msgspec.json.Decoder[Any] | None:
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    body = field.kwarg_definition
    if isinstance(body, BodyKwarg) and body.media_type != RequestEncodingType.JSON:
        return None  # multipart and url-encoded forms are not JSON
    return msgspec.json.Decoder(field.annotation, strict=True)


_decoders: dict[HTTPRouteHandler, msgspec.json.Decoder[Any] | None] = {}


def _error(message: str) -> dict[str, str]:
    match = _LOCATION.search(message)
    if match is None:
        return {"message": message, "source": "body"}
    return {"message": message[: match.start()], "key": match.group(1), "source": "body"}


async def decode_strictly(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: refuse a JSON body that does not match ``data`` exactly."""
    handler = request.route_handler
    if handler not in _decoders:
        _decoders[handler] = _decoder_for(handler)
    decoder = _decoders[handler]
    if decoder is None:
        return
    if "principal" in handler.parsed_fn_signature.parameters:
        await current_principal(request, request.app.state.services)
    body = await request.body()
    if not body:
        return  # a missing body is Litestar's to refuse (or to allow, for optional data)
    try:
        decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ValidationException(extra=[_error(str(exc))]) from None
    except msgspec.DecodeError as exc:
        raise ValidationException(
            extra=[{"message": f"malformed JSON: {exc}", "source": "body"}]
        ) from None
