"""The one error type of sign-in and authorisation, in the API's error shape.

``AuthError`` is a Starlette ``HTTPException`` so that any app-wide handler of HTTP
errors already answers it with the right status; ``auditor.auth.fastapi.install``
adds a handler that keeps its precise ``code`` and ``field`` in
``{"error": {"code", "field", "message"}}``.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    422: "INVALID_INPUT",
    429: "TOO_MANY_REQUESTS",
}


class AuthError(HTTPException):
    """A refused sign-in or request: the status, a stable code, the field, a message."""

    def __init__(self, status: int, field: str, message: str, code: str | None = None) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code or _CODES.get(status, "BAD_REQUEST")
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "field": self.field, "message": self.message}}


def unauthorized(message: str, field: str = "Authorization") -> AuthError:
    return AuthError(401, field, message)


def invalid(field: str, message: str) -> AuthError:
    return AuthError(422, field, message)
