"""The operator REST API (FastAPI): the same verbs as the CLI, behind a bearer token.

No `from __future__ import annotations` here: FastAPI resolves the route signatures at
runtime, including dependencies declared inside `create_app`.

Every error has the one shape of `node.api_errors`; each route's OpenAPI entry lists
every status it can answer with that model, so a client generated from `/openapi.json`
knows every answer it can get. Nothing is written when a request is refused. Every
request first passes `node.api_entry.EntryGuard` (token before body, bounded body) and
`InternalErrors` (no traceback or server path ever reaches a client). Dataset uploads may
be up to `max_upload_bytes`, every other request up to `max_request_bytes`.
"""

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.error_shape import validation_field
from ledger.errors import ChainError, ContractRevert, TransactionReverted
from ledger.ids import InvalidInput, as_address
from node.api_entry import (
    MAX_REQUEST_BYTES,
    MAX_UPLOAD_BYTES,
    EntryGuard,
    InternalErrors,
)
from node.api_errors import STATUS_CODES, error_json, error_responses
from node.lookup.node.errors import LookupRequestError, UnknownLookupList
from node.lookup.node.roles import LookupNode
from node.peer.trust import ChainTrust, TrustUnavailable
from node.service import NodeService
from node.service_errors import Conflict, UnknownDataset, UnknownTask
from node.tee.status import TeeStatus

MAX_FILENAME_CHARS = 200

# "Not found" errors of the service.
_NOT_FOUND: tuple[type[InvalidInput], ...] = (UnknownTask, UnknownDataset)


# --- request models ----------------------------------------------------------------------

_ID32 = r"^0x[0-9a-fA-F]{64}$"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasetId: str = Field(
        min_length=1, max_length=128, description="A dataset id (0x + 64 hex) or its name."
    )
    granteeOrg: str = Field(
        min_length=1,
        max_length=128,
        description="An organisation id (0x + 64 hex) or its name as registered on chain.",
    )
    purpose: str = Field(min_length=1, max_length=64)
    validForSeconds: int = Field(gt=0, le=10 * 365 * 86_400)
    maxUses: int = Field(gt=0, lt=2**32)
    algorithmDigest: str | None = Field(default=None, pattern=_ID32)


class ProviderSlot(BaseModel):
    """One provider, in the full form (`node`, `datasetId`, `datasetVersion`, optional
    `grantId`) or the short form (`org`, `dataset`, each a name or an id; optional
    `datasetVersion` (latest), `grantId` (the newest usable grant to this node's org),
    `node` (the org's only active node)). The node resolves the short form."""

    model_config = ConfigDict(extra="forbid")

    org: str | None = Field(default=None, min_length=1, max_length=128)
    dataset: str | None = Field(default=None, min_length=1, max_length=128)
    node: str | None = Field(default=None, pattern=_ADDRESS)
    datasetId: str | None = Field(default=None, pattern=_ID32)
    datasetVersion: int | None = Field(default=None, ge=1, lt=2**32)
    grantId: str | None = Field(default=None, pattern=_ID32)

    @model_validator(mode="after")
    def _one_form(self) -> "ProviderSlot":
        if self.org is not None or self.dataset is not None:
            if self.org is None or self.dataset is None:
                raise ValueError("the short form needs both 'org' and 'dataset'")
            if self.datasetId is not None:
                raise ValueError("give either 'dataset' (short form) or 'datasetId', not both")
            return self
        missing = [n for n in ("node", "datasetId", "datasetVersion") if getattr(self, n) is None]
        if missing:
            raise ValueError(
                f"missing {', '.join(repr(m) for m in missing)}: give the full form "
                "(node, datasetId, datasetVersion, grantId) or the short form (org, dataset)"
            )
        return self


class OwnDataset(BaseModel):
    """This organisation's own dataset, matched by a requester algorithm (psi): its name
    or id, and optionally a version (default: the latest)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=128)
    datasetVersion: int | None = Field(default=None, ge=1, lt=2**32)


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requestId: str = Field(min_length=1, max_length=128)
    algorithm: str = Field(min_length=1, max_length=64)
    params: dict[str, Any]
    providers: list[ProviderSlot] = Field(min_length=1, max_length=15)
    validForSeconds: int = Field(ge=60, le=7 * 86_400)
    dataset: OwnDataset | None = None


class LookupQueryRequest(BaseModel):
    """One anonymous lookup (`provnet lookup query`). The identifier is never echoed."""

    model_config = ConfigDict(extra="forbid")

    listName: str = Field(min_length=1, max_length=64, description="The roster's list name.")
    identifier: str = Field(min_length=1, max_length=512)
    type: str = Field(
        default="phone", min_length=1, max_length=32, description="The identifier's kind."
    )
    kind: str = Field(default="blacklist", pattern=r"^(blacklist|verify|multihead)$")
    purpose: str = Field(min_length=1, max_length=64)
    grantId: str = Field(pattern=_ID32, description="The relay's grant to this organisation.")
    elements: dict[str, str] | None = Field(
        default=None, description="verify: element name -> value (name, phone, card, ...)."
    )
    ownEventTime: int | None = Field(
        default=None, ge=0, description="multihead: this bank's own latest listing time."
    )
    windows: list[int] | None = Field(default=None, min_length=1, max_length=8)
    epoch: int | None = Field(
        default=None, ge=1, description="Pin an epoch (default: the chain's current one)."
    )


def _grant_bytes(grant_id: str) -> bytes:
    return bytes.fromhex(grant_id[2:])


def _staged_upload(upload_dir: Path, file: UploadFile) -> tuple[Path, Path]:
    """Copy an upload into a fresh staging directory; (directory, file)."""
    filename = Path(file.filename or "upload").name
    if Path(filename).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InvalidInput("file", "expected a .csv or .parquet upload")
    if len(filename) > MAX_FILENAME_CHARS or not filename.isprintable():
        raise InvalidInput(
            "file", f"the file name must be 1-{MAX_FILENAME_CHARS} printable characters"
        )
    upload_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=upload_dir))
    staged = staging / filename
    with staged.open("wb") as out:  # EntryGuard bounded the body it came in
        shutil.copyfileobj(file.file, out, 1024 * 1024)
    return staging, staged


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _scrubbed(exc: InvalidInput, *hidden: Path) -> InvalidInput:
    """`exc` with every mention of the server-side staging paths removed (in place), so
    an import error names the operator's own file, never where the node put it."""

    def scrub(text: str) -> str:
        for path in hidden:
            text = text.replace(f"{path}/", "").replace(str(path), "")
        return text

    exc.field, exc.problem = scrub(exc.field), scrub(exc.problem)
    exc.args = (f"{exc.field}: {exc.problem}",)
    return exc


# --- the app -----------------------------------------------------------------------------


def create_app(
    service: NodeService,
    token: str,
    upload_dir: Path,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    lookup: LookupNode | None = None,
    trust: ChainTrust | None = None,
    tee: TeeStatus | None = None,
) -> FastAPI:
    app = FastAPI(
        title="provnet node API",
        version="1",
        description=(
            "Operator API of a provnet node: datasets, grants and tasks. Every error "
            'answers `{"error": {"code", "field", "message"}}`.'
        ),
    )
    app.add_middleware(
        EntryGuard,
        token=token,
        max_upload_bytes=max_upload_bytes,
        max_request_bytes=max_request_bytes,
    )
    app.add_middleware(InternalErrors)  # added last: the outermost
    # Checked again per route (and shown in the OpenAPI document); `EntryGuard` has
    # already refused a bad token before the body was read.
    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), token.encode()
        ):
            raise StarletteHTTPException(401, "missing or bad bearer token")

    @app.exception_handler(InvalidInput)
    def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        if isinstance(exc, LookupRequestError):
            status, code = exc.status, exc.code
        elif isinstance(exc, _NOT_FOUND):
            status, code = 404, "NOT_FOUND"
        elif isinstance(exc, Conflict):
            status, code = 409, "CONFLICT"
        else:
            status, code = 422, "INVALID_INPUT"
        return JSONResponse(error_json(code, exc.field, exc.problem), status)

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = validation_field(first.get("loc", ())) or "body"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return JSONResponse(error_json("INVALID_INPUT", field, message), 422)

    @app.exception_handler(StarletteHTTPException)
    def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        field = {401: "Authorization", 404: "path", 405: "method"}.get(status, "body")
        code = STATUS_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL")
        headers = dict(exc.headers or {})
        if status == 401:
            headers["www-authenticate"] = "Bearer"
        return JSONResponse(error_json(code, field, str(exc.detail)), status, headers=headers)

    @app.exception_handler(ContractRevert)
    def _revert(_: Request, exc: ContractRevert) -> JSONResponse:
        args = {k: _json_safe(v) for k, v in exc.arguments.items()}
        body = error_json(
            "CONTRACT_REVERT",
            "contract",
            f"refused by the chain: {exc}",
            contractError=exc.error_name,
            arguments=args,
        )
        return JSONResponse(body, status_code=409)

    @app.exception_handler(ChainError)
    def _chain(_: Request, exc: ChainError) -> JSONResponse:
        code = getattr(type(exc), "code", None)
        if not isinstance(code, str):
            code = (
                "TRANSACTION_FAILED"
                if isinstance(exc, TransactionReverted)
                else "CHAIN_UNAVAILABLE"
            )
        return JSONResponse(error_json(code, "chain", str(exc)), status_code=502)

    guard = [Depends(authorised)]
    # Shared by every guarded route: the guard's and the catch-all's answers.
    entry = (400, 401, 413, 500)

    @app.get("/health", responses=error_responses(400, 413, 500))
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/datasets",
        dependencies=guard,
        status_code=201,
        responses=error_responses(*entry, 409, 422, 502),
    )
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
        if len(filename) > MAX_FILENAME_CHARS or not filename.isprintable():
            raise InvalidInput(
                "file", f"the file name must be 1-{MAX_FILENAME_CHARS} printable characters"
            )
        upload_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=upload_dir))
        try:
            staged = staging / filename  # errors then name the operator's own file
            with staged.open("wb") as out:  # EntryGuard bounded the body it came in
                shutil.copyfileobj(file.file, out, 1024 * 1024)
            try:
                return service.register_dataset(
                    name, staged, classification, identifier_columns=identifiers
                )
            except InvalidInput as exc:
                raise _scrubbed(exc, staging, upload_dir.resolve(), upload_dir) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @app.get("/datasets", dependencies=guard, responses=error_responses(*entry, 502))
    def list_datasets() -> list[dict[str, Any]]:
        return service.list_datasets()

    @app.get(
        "/datasets/{dataset}",
        dependencies=guard,
        responses=error_responses(*entry, 404, 422, 502),
    )
    def show_dataset(dataset: str) -> dict[str, Any]:
        """One dataset of this node, by id (0x + 64 hex) or name: its latest version's
        commitment, columns and their types."""
        return service.dataset(dataset)

    @app.post(
        "/grants",
        dependencies=guard,
        status_code=201,
        responses=error_responses(*entry, 404, 409, 422, 502),
    )
    def grant(request: GrantRequest) -> dict[str, Any]:
        return service.grant(
            request.datasetId,
            request.granteeOrg,
            request.purpose,
            request.validForSeconds,
            request.maxUses,
            request.algorithmDigest,
        )

    @app.get("/grants", dependencies=guard, responses=error_responses(*entry, 502))
    def list_grants() -> list[dict[str, Any]]:
        return service.list_grants()

    @app.delete(
        "/grants/{grant_id}",
        dependencies=guard,
        responses=error_responses(*entry, 409, 422, 502),
    )
    def revoke_grant(grant_id: str) -> dict[str, Any]:
        return service.revoke_grant(grant_id)

    @app.post(
        "/tasks",
        dependencies=guard,
        status_code=201,
        responses={
            200: {"description": "An identical retry of an earlier request: that task."},
            **error_responses(*entry, 404, 409, 422, 502),
        },
    )
    def create_task(request: TaskRequest) -> Any:
        """201 for a new task; 200 for an identical retry (same requestId and
        parameters); 409 for a requestId used before with other parameters or a
        pre-check that fails on chain state; 422 for input that cannot be used."""
        outcome = service.submit_task(
            request.requestId,
            request.algorithm,
            request.params,
            [p.model_dump(exclude_none=True) for p in request.providers],
            request.validForSeconds,
            None if request.dataset is None else request.dataset.model_dump(exclude_none=True),
        )
        body, created = outcome.status, outcome.created
        return JSONResponse(body, status_code=201 if created else 200)

    @app.get(
        "/tasks/{task}",
        dependencies=guard,
        responses=error_responses(*entry, 404, 422, 502),
    )
    def task_status(task: str) -> dict[str, Any]:
        """`task`: a task id (0x + 64 hex) or the request id it was created with."""
        return service.task_status(task)

    @app.get(
        "/tasks/{task}/result",
        dependencies=guard,
        responses=error_responses(*entry, 404, 422, 502),
    )
    def task_result(task: str) -> dict[str, Any]:
        """`task`: a task id (0x + 64 hex) or the request id it was created with."""
        return service.task_result(task)

    # --- peers: which nodes this one can talk to (both ways) -----------------------------

    @app.get("/peers", dependencies=guard, responses=error_responses(*entry, 502))
    def peers() -> dict[str, Any]:
        """Every node on chain, and whether its TLS certificate is verified yet.

        Calls between two nodes pass TLS only once each has verified the other's
        certificate (fetched from its registered endpoint, checked against the chain),
        so after starting nodes, wait until every peer shows `verified`.
        """
        if trust is None:
            raise ChainError("this API serves no peer view")
        try:
            states = trust.peer_states()
        except TrustUnavailable as exc:
            raise ChainError(str(exc)) from None
        waiting = [s.address for s in states if s.certificate in ("pending", "unavailable")]
        return {
            "peers": [
                {
                    "node": s.address,
                    "org": "0x" + s.org_id.hex(),
                    "endpoint": s.endpoint,
                    "certificate": s.certificate,
                    **({"problem": s.problem, "retryInSeconds": s.retry_in} if s.problem else {}),
                }
                for s in states
            ],
            "next": (
                "every active peer is verified: calls to and from them pass TLS"
                if not waiting
                else f"{len(waiting)} active peer(s) not verified yet: start them, or check "
                "that their registered endpoint is reachable from here; this retries by itself"
            ),
        }

    # --- attested jobs: what this node hosts and trusts (node/tee/status.py) -------------

    @app.get("/tee", dependencies=guard, responses=error_responses(*entry, 502))
    def tee_status() -> dict[str, Any]:
        """Whether this node hosts enclaves (and its platform key), which enclaves its
        data may be provisioned to, and whether this build's enclave measurement is
        trusted on chain. The only backend is `simulated`: no hardware isolation."""
        if tee is None:
            raise ChainError("this API serves no attested-job view")
        return tee.to_json()

    # --- anonymous lookups (node/lookup/node/; 404 on a node without a lookup config) ---

    def lookups() -> LookupNode:
        if lookup is None:
            raise UnknownLookupList(
                "path", "this node serves no anonymous lookups: add a `lookup` section to node.json"
            )
        return lookup

    @app.get("/lookup", dependencies=guard, responses=error_responses(*entry, 404))
    def lookup_status() -> dict[str, Any]:
        """The lists this node takes part in and its role in each."""
        return lookups().status()

    @app.post(
        "/lookup/{list_name}/publish",
        dependencies=guard,
        responses=error_responses(*entry, 404, 409, 422),
    )
    def lookup_publish(
        list_name: str,
        file: Annotated[UploadFile, File()],
        verify: Annotated[bool, Form()] = False,
        type: Annotated[str, Form(max_length=32)] = "",
    ) -> dict[str, Any]:
        """A provider's list (or, with `verify`, element-verification records) for the
        next epoch: replaces the previous upload of the same part; nothing is kept if a
        row is bad."""
        node = lookups()
        staging, staged = _staged_upload(upload_dir, file)
        try:
            return node.publish(list_name, staged, verify=verify, default_type=type or None)
        except InvalidInput as exc:
            raise _scrubbed(exc, staging, upload_dir.resolve(), upload_dir) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @app.post(
        "/lookup/{list_name}/epochs",
        dependencies=guard,
        status_code=201,
        responses=error_responses(*entry, 404, 409, 422, 502),
    )
    def lookup_epoch(list_name: str) -> dict[str, Any]:
        """The relay runs the list's next epoch: DKG, publication, build, anchor,
        acceptance. Answers when it is done, naming who took part."""
        return lookups().run_epoch(list_name)

    @app.post("/lookup/query", dependencies=guard, responses=error_responses(*entry, 404, 409, 422))
    def lookup_query(request: LookupQueryRequest) -> dict[str, Any]:
        """One anonymous lookup against the chain's current epoch, through the relay."""
        return lookups().querier.query(
            list_name=request.listName,
            kind=request.kind,
            id_type=request.type,
            identifier=request.identifier,
            purpose=request.purpose,
            grant_id=_grant_bytes(request.grantId),
            elements=request.elements,
            own_event_time=request.ownEventTime,
            windows=tuple(request.windows) if request.windows else (7, 30, 90),
            epoch=request.epoch,
        )

    @app.post(
        "/lookup/screens",
        dependencies=guard,
        status_code=202,
        responses=error_responses(*entry, 404, 409, 422),
    )
    def lookup_screen(
        file: Annotated[UploadFile, File()],
        listName: Annotated[str, Form(min_length=1, max_length=64)],
        purpose: Annotated[str, Form(min_length=1, max_length=64)],
        grantId: Annotated[str, Form(pattern=_ID32)],
        type: Annotated[str, Form(max_length=32)] = "",
    ) -> dict[str, Any]:
        """Start screening a book of identifiers; poll `GET /lookup/screens/{jobId}`."""
        node = lookups()
        staging, staged = _staged_upload(upload_dir, file)
        try:
            return node.screens.start(
                staged,
                list_name=listName,
                purpose=purpose,
                grant_id=_grant_bytes(grantId),
                default_type=type or None,
            )
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, InvalidInput):
                raise _scrubbed(exc, staging, upload_dir.resolve(), upload_dir) from None
            raise

    @app.get(
        "/lookup/screens/{job_id}",
        dependencies=guard,
        responses=error_responses(*entry, 404, 422),
    )
    def lookup_screen_status(job_id: str, results: bool = True) -> dict[str, Any]:
        """A screening job's progress; its per-row results once done."""
        return lookups().screens.status(job_id, with_results=results)

    @app.get(
        "/lookup/audit",
        dependencies=guard,
        responses=error_responses(*entry, 404, 409, 422, 502),
    )
    def lookup_audit(node: str) -> dict[str, Any]:
        """A regulator's audit of a relay's or provider's query logs (`node`: address)."""
        return lookups().audit(str(as_address(node, "node")))

    return app
