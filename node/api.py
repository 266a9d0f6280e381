"""The operator REST API (FastAPI): the same verbs as the CLI, behind a bearer token.

No `from __future__ import annotations` here: FastAPI resolves the route signatures at
runtime, including dependencies declared inside `create_app`.

Errors are answered in one shape, `{"error": {"field", "message"}}` for bad input
(422), `{"error": {"contractError", "arguments"}}` for a contract refusal (409), so a
client can always tell *what* was wrong; nothing is written when a request is refused.

Every request passes `EntryGuard` (a pure ASGI middleware) before FastAPI sees it: the
bearer token is checked from the headers alone, so a request without a good token is
answered 401 without one byte of its body being read (and its connection closed); then
the body is bounded, by its Content-Length (413 before reading) and while it streams
(413 as soon as it passes the limit; nothing more is read). Dataset uploads may be up to
`max_upload_bytes`, every other request up to `max_request_bytes`.
"""

import json
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import ChainError, ContractRevert
from ledger.ids import InvalidInput
from node.service import NodeService, UnknownTask

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
"""Body limit of every request but a dataset upload (they carry JSON or nothing)."""
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
UPLOAD_ROUTES = frozenset({("POST", "/datasets")})


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
        upload = (scope["method"], scope["path"]) in UPLOAD_ROUTES
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
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetId: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    granteeOrg: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    purpose: str = Field(min_length=1, max_length=64)
    validForSeconds: int = Field(gt=0, le=10 * 365 * 86_400)
    maxUses: int = Field(gt=0, lt=2**32)
    algorithmDigest: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{64}$")


class ProviderSlot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    datasetId: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    datasetVersion: int = Field(ge=1, lt=2**32)
    grantId: str = Field(default="0x" + "00" * 32, pattern=r"^0x[0-9a-fA-F]{64}$")


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requestId: str = Field(min_length=1, max_length=128)
    algorithm: str = Field(min_length=1, max_length=64)
    params: dict[str, Any]
    providers: list[ProviderSlot] = Field(min_length=1, max_length=15)
    validForSeconds: int = Field(ge=60, le=7 * 86_400)


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def create_app(
    service: NodeService,
    token: str,
    upload_dir: Path,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> FastAPI:
    app = FastAPI(
        title="provnet node API",
        version="1",
        description="Operator API of a provnet node: datasets, grants and tasks.",
    )
    app.add_middleware(
        EntryGuard,
        token=token,
        max_upload_bytes=max_upload_bytes,
        max_request_bytes=max_request_bytes,
    )
    # Checked again per route (and shown in the OpenAPI document); `EntryGuard` has
    # already refused a bad token before the body was read.
    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), token.encode()
        ):
            raise HTTPException(401, detail={"field": "Authorization", "message": "bad token"})

    @app.exception_handler(InvalidInput)
    def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownTask) else 422
        return JSONResponse({"error": {"field": exc.field, "message": exc.problem}}, status)

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "form"))
        return JSONResponse(
            {"error": {"field": field or "body", "message": str(first.get("msg"))}},
            status_code=422,
        )

    @app.exception_handler(ContractRevert)
    def _revert(_: Request, exc: ContractRevert) -> JSONResponse:
        args = {k: _json_safe(v) for k, v in exc.arguments.items()}
        body = {"contractError": exc.error_name, "arguments": args, "message": str(exc)}
        return JSONResponse({"error": body}, status_code=409)

    @app.exception_handler(ChainError)
    def _chain(_: Request, exc: ChainError) -> JSONResponse:
        return JSONResponse({"error": {"message": f"chain: {exc}"}}, status_code=502)

    guard = [Depends(authorised)]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/datasets", dependencies=guard, status_code=201)
    def register_dataset(
        name: Annotated[str, Form(min_length=1, max_length=128)],
        classification: Annotated[int, Form(ge=1, le=4)],
        file: Annotated[UploadFile, File()],
        identifierColumns: Annotated[str, Form(max_length=64 * 1024)] = "",
    ) -> dict[str, Any]:
        """`identifierColumns`: comma-separated names of the columns that identify
        people or accounts (spaces around names are ignored)."""
        identifiers = [c.strip() for c in identifierColumns.split(",") if c.strip()]
        filename = Path(file.filename or "upload").name
        if Path(filename).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise InvalidInput("file", "expected a .csv or .parquet upload")
        upload_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=upload_dir))
        try:
            staged = staging / filename  # errors then name the operator's own file
            with staged.open("wb") as out:  # EntryGuard bounded the body it came in
                shutil.copyfileobj(file.file, out, 1024 * 1024)
            return service.register_dataset(
                name, staged, classification, identifier_columns=identifiers
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @app.get("/datasets", dependencies=guard)
    def list_datasets() -> list[dict[str, Any]]:
        return service.list_datasets()

    @app.post("/grants", dependencies=guard, status_code=201)
    def grant(request: GrantRequest) -> dict[str, Any]:
        return service.grant(
            request.datasetId,
            request.granteeOrg,
            request.purpose,
            request.validForSeconds,
            request.maxUses,
            request.algorithmDigest,
        )

    @app.get("/grants", dependencies=guard)
    def list_grants() -> list[dict[str, Any]]:
        return service.list_grants()

    @app.delete("/grants/{grant_id}", dependencies=guard)
    def revoke_grant(grant_id: str) -> dict[str, Any]:
        return service.revoke_grant(grant_id)

    @app.post("/tasks", dependencies=guard, status_code=201)
    def create_task(request: TaskRequest) -> dict[str, Any]:
        return service.create_task(
            request.requestId,
            request.algorithm,
            request.params,
            [p.model_dump() for p in request.providers],
            request.validForSeconds,
        )

    @app.get("/tasks/{task_id}", dependencies=guard)
    def task_status(task_id: str) -> dict[str, Any]:
        return service.task_status(task_id)

    @app.get("/tasks/{task_id}/result", dependencies=guard)
    def task_result(task_id: str) -> dict[str, Any]:
        return service.task_result(task_id)

    return app
