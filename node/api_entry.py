"""What every request passes before FastAPI sees it, and the net under every route.

`EntryGuard` checks the bearer token from the headers alone, so a request without a
good token is answered 401 without one byte of its body being read (and its connection
closed); then it bounds the body, by its Content-Length (413 before reading) and while
it streams (413 as soon as it passes the limit; nothing more is read). `InternalErrors`
turns anything no handler claimed into one logged line and a 500 (or 502 when the chain
node is unreachable), in the shared error shape, without a traceback or a server path.
"""

import json
import logging
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import exception_chain
from node.api_errors import STATUS_CODES, error_json

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
"""Body limit of every request but a dataset upload (they carry JSON or nothing)."""
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
UPLOAD_ROUTES = frozenset({("POST", "/datasets"), ("POST", "/lookup/screens")})
UPLOAD_ROUTE_PATTERNS = (("POST", re.compile(r"/lookup/[^/]+/publish")),)
"""Routes whose path carries a name (a lookup list's publish file upload)."""


def is_upload(method: str, path: str) -> bool:
    """Whether a request may carry a file, and so gets the upload body limit."""
    return (method, path) in UPLOAD_ROUTES or any(
        method == m and pattern.fullmatch(path) for m, pattern in UPLOAD_ROUTE_PATTERNS
    )


_log = logging.getLogger(__name__)


class EntryGuard:
    """Refuse before reading: token from the headers, body bounded before and while read.

    A pure ASGI middleware, outside FastAPI's body parsing (which would otherwise spool
    a whole multipart upload to disk before any dependency runs). A refusal it answers
    itself closes the connection when a body may still be on its way, so the server
    does not go on draining it.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.app = app
        self._token = token.encode()
        self.max_upload_bytes = max_upload_bytes
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length_header = headers.get(b"content-length")
        body_expected = b"transfer-encoding" in headers or length_header not in (None, b"0")
        if scope["path"] not in PUBLIC_PATHS and not self._authorised(headers):
            await _refuse(
                send,
                401,
                "Authorization",
                "missing or bad bearer token",
                close=body_expected,
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        upload = is_upload(scope["method"], scope["path"])
        limit = self.max_upload_bytes if upload else self.max_request_bytes
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                await _refuse(send, 400, "Content-Length", "not a number", close=True)
                return
            if length > limit:
                await _refuse(send, 413, "body", _too_large(length, limit), close=True)
                return
        await self._bounded(scope, receive, send, limit)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(
            credentials.strip(), self._token
        )

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, answering 413 (and reading no further) once the body passes `limit`."""
        received = 0
        started = answered = False

        async def bounded_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _refuse(send, 413, "body", _too_large(received, limit), close=True)
                    answered = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered and not started:
                return  # refused above: whatever the app still answers is dropped
            started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not answered:
                raise  # the body was cut off: the app's complaint about it is moot


class InternalErrors:
    """The outermost net: any exception no handler claimed becomes one logged line on
    the server and `500 INTERNAL` (or `502 CHAIN_UNAVAILABLE` when the chain node did
    not answer) for the client, in the one error shape and without a traceback.

    A pure ASGI middleware rather than an `exception_handler(Exception)`: Starlette
    re-raises after running such a handler, which would print the traceback a second
    time and fail every in-process test client on purpose.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            where = f"{scope.get('method')} {scope.get('path')}"
            if _chain_unreachable(exc):
                _log.warning("%s: chain node unreachable (%s)", where, type(exc).__name__)
                status, field, message = 502, "chain", "the chain node does not answer"
            else:
                _log.exception("%s: unhandled error", where)
                status, field, message = 500, "server", "internal error (logged by the node)"
            if not started:  # otherwise the answer is already on its way: nothing to add
                await _refuse(send, status, field, message, close=True)


def _chain_unreachable(exc: BaseException) -> bool:
    """A connection failure to the chain's JSON-RPC endpoint (web3 speaks `requests`)."""
    return any(
        isinstance(e, ConnectionError | TimeoutError)
        or type(e).__module__.split(".")[0] in ("requests", "urllib3")
        for e in exception_chain(exc)
    )


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes or more exceeds the {limit}-byte limit"


async def _refuse(
    send: Send,
    status: int,
    field: str,
    message: str,
    *,
    close: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(error_json(STATUS_CODES[status], field, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
