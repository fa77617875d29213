"""Error and JSON responses in Amili's shape: `{"status", "error", "message"[, "parameter"]}`."""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.responses import Response

ERROR_NAMES: Final = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 415: "UnsupportedMediaType", 422: "UnprocessableEntity", 429: "TooManyRequests",
    500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout",
}  # fmt: skip


class ApiError(Exception):
    """Raised by a handler; the app's one exception handler turns it into `error_response`."""

    def __init__(
        self, status: int, message: str, parameter: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.headers = headers or {}


def error_body(status: int, message: str, parameter: str | None = None) -> bytes:
    body: dict[str, Any] = {"status": status, "error": ERROR_NAMES.get(status, "Error"), "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    return orjson.dumps(body)


def error_response(exc: ApiError) -> Response:
    return Response(
        error_body(exc.status, exc.message, exc.parameter),
        exc.status,
        exc.headers,
        media_type="application/json",
    )


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
