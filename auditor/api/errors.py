"""The one shape of every error answer of the auditor API, and the net under every route.

Every error, whoever answers it (a route, FastAPI's validation, Starlette's router for
an unknown path or method, sign-in, or the catch-all for a bug), has one shape:

    {"error": {"code": "INVALID_INPUT", "field": "limit", "message": "..."}}

The node's operator API uses the same shape: both build it with ``ledger.error_shape``;
the handlers and OpenAPI descriptions here are the auditor's own (``auditor`` never
imports ``node``, and FastAPI code does not belong in ``ledger``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.error_shape import error_json, validation_field
from ledger.errors import exception_chain
from ledger.ids import InvalidInput

#: The stable code of each status when nothing more specific applies.
STATUS_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_INPUT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    502: "CHAIN_UNAVAILABLE",
    503: "DATABASE_UNAVAILABLE",
}
MAX_REQUEST_BYTES = 1024 * 1024
"""Body limit of every request (the API takes small JSON bodies or none)."""

_log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code for programs, a field and a message for people."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable machine name, e.g. INVALID_INPUT, NOT_FOUND.")
    field: str = Field(
        description="The request field at fault, or the part of the exchange: path, "
        "method, body, Authorization, database, chain, server."
    )
    message: str = Field(description="Why, for a person; never a server path or traceback.")


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


_DESCRIPTIONS: Mapping[int, str] = {
    400: "BAD_REQUEST: the request is malformed below the level of its fields.",
    401: "UNAUTHORIZED: sign in first (POST /v1/auth/challenge, then /v1/auth/token).",
    403: "FORBIDDEN: signed in, but this answer is for regulators or another member.",
    404: "NOT_FOUND: no such task, organisation or route, or not one you took part in.",
    405: "METHOD_NOT_ALLOWED: the path exists, the method does not.",
    413: "PAYLOAD_TOO_LARGE: the body passes the limit; nothing more was read.",
    422: "INVALID_INPUT: a parameter is missing, malformed or out of range; `field` names it.",
    500: "INTERNAL: a fault of the auditor (logged there); nothing is revealed.",
    503: "DATABASE_UNAVAILABLE: the index database does not answer.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these statuses, all with the shared error model."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


class ApiError(HTTPException):
    """An answer other than 2xx that a route decides on: status, code, field, message."""

    def __init__(self, status: int, field: str, message: str, code: str | None = None) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code or STATUS_CODES.get(status, "BAD_REQUEST")
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return error_json(self.code, self.field, self.message)


def not_found(field: str, message: str) -> ApiError:
    return ApiError(404, field, message)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, field, message)


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal the framework or a route raises, answered in the one shape."""

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = validation_field(first.get("loc", ())) or "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return JSONResponse(error_json("INVALID_INPUT", field, message), 422)

    @app.exception_handler(InvalidInput)
    def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(error_json("INVALID_INPUT", exc.field, exc.problem), 422)

    @app.exception_handler(HTTPException)
    def _http(_: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        status = exc.status_code
        to_json = getattr(exc, "to_json", None)
        if callable(to_json):  # ApiError, auditor.auth's AuthError: they know their shape
            body = to_json()
        else:
            field = {401: "Authorization", 404: "path", 405: "method"}.get(status, "body")
            code = STATUS_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL")
            message = str(exc.detail) if exc.detail else code.lower().replace("_", " ")
            if status == 404 and message == "Not Found":
                message = "no such route; the API is under /v1 (see /docs)"
            body = error_json(code, field, message)
        if status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return JSONResponse(body, status, headers=headers)


class Entry:
    """The outermost net: bounds the request body by its Content-Length (413 before
    reading), and turns any exception no handler claimed into one logged line and a
    500 (503 when the index database does not answer, 502 when the chain does not) in
    the one shape, without a traceback.

    A pure ASGI middleware rather than an ``exception_handler(Exception)``: Starlette
    re-raises after such a handler, printing the traceback twice and failing in-process
    test clients on purpose.
    """

    def __init__(self, app: ASGIApp, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await refuse(send, 400, "Content-Length", "not a number")
                return
            if int(length) > self.max_request_bytes:
                limit = self.max_request_bytes
                await refuse(send, 413, "body", f"a body of {int(length)} bytes exceeds {limit}")
                return
        started = cut_off = False
        received = 0

        async def bounded_receive() -> Message:
            """The body as it streams (chunked uploads have no Content-Length): past the
            limit, answer 413 and read no further."""
            nonlocal received, cut_off
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    cut_off = True
                    if not started:
                        limit = self.max_request_bytes
                        await refuse(send, 413, "body", f"the body exceeds {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if cut_off and not started:
                return  # refused above: whatever the app still answers is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except Exception as exc:
            if cut_off:
                return  # the body was cut off: the app's complaint about it is moot
            where = f"{scope.get('method')} {scope.get('path')}"
            causes = list(exception_chain(exc))
            if any(isinstance(e, OperationalError) for e in causes):
                _log.warning("%s: index database unavailable (%s)", where, exc)
                status, field, message = 503, "database", "the index database does not answer"
            elif any(isinstance(e, ConnectionError | TimeoutError) for e in causes):
                _log.warning("%s: chain node unreachable (%s)", where, type(exc).__name__)
                status, field, message = 502, "chain", "the chain node does not answer"
            else:
                _log.exception("%s: unhandled error", where)
                status, field, message = 500, "server", "internal error (logged by the auditor)"
            if not started:
                await refuse(send, status, field, message)


async def refuse(send: Send, status: int, field: str, message: str) -> None:
    """Answer an error from a middleware (no FastAPI response object there)."""
    body = json.dumps(error_json(STATUS_CODES[status], field, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
