"""The OpenAPI document: every error response is documented as a problem detail.

Litestar adds a 400 response to any handler with validated input, in its own error shape
(``status_code``, ``detail``, ``extra``); this app answers with ``ProblemDetail``
(``server/problems.py``) instead, so the document is corrected to say so.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Reference

from server.problems import PROBLEM_JSON

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document_problem_details(app: Litestar) -> None:
    openapi = app.openapi_schema
    problem = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ProblemDetail"))
    for path_item in (openapi.paths or {}).values():
        for method in _METHODS:
            operation: Operation | None = getattr(path_item, method)
            if operation is None or not operation.responses:
                continue
            for status, response in operation.responses.items():
                if (
                    int(status) >= 400
                    and isinstance(response, OpenAPIResponse)
                    and response.content is not None
                    and PROBLEM_JSON not in response.content
                ):
                    response.content = {PROBLEM_JSON: problem}
