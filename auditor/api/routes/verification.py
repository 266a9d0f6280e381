"""A task's verification over HTTP: run it (regulators), read the latest, its signed
report and its provenance.

``POST /v1/tasks/{taskId}/verification`` runs ``auditor.service.verification`` (the one
verification `provnet audit verify` also runs: evidence fetched by the regulator's node,
every check, the DSSE-signed in-toto statement, PROV-JSON) and stores the run in the
``verifications`` table; ``GET`` answers the latest stored run. Members other than
regulators may read verifications of tasks their organisation took part in (404 for any
other task, as everywhere, so existence does not leak) but may not start one: a run
makes the regulator's node ask every participant for its evidence.

``GET .../verification/report`` answers the DSSE envelope as the exact bytes its
``reportDigest`` ("sha256:<hex>") is over, so ``sha256sum`` of the download matches it;
``GET .../verification/prov`` the task's W3C PROV-JSON.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, select

from auditor.api.context import ServiceContext
from auditor.api.deps import Viewer
from auditor.api.errors import ApiError, error_responses, invalid, not_found
from auditor.api.reading import context_of, snapshot
from auditor.api.routes.tasks import visible_task
from auditor.auth.principal import Principal
from auditor.index import schema
from auditor.service.verification import TaskVerifier, Verification, envelope_bytes
from auditor.verify.checkpoints import ResultDisclosure
from ledger.ids import InvalidInput
from ledger.task_params import ParamsEnvelope

router = APIRouter(tags=["verification"])

REPORT_DIGEST_HEADER = "X-Provnet-Report-Digest"
_TaskId = Annotated[str, Path(max_length=200, description="0x task id (64 hex digits)")]
_READ = error_responses(401, 404, 422, 503)
#: One verification at a time: the verifier holds one chain connection, and a run makes
#: the regulator's node fetch evidence from every participant.
_running = threading.Lock()


def _task(request: Request, principal: Principal, task: str) -> bytes:
    with snapshot(context_of(request)) as snap:
        return visible_task(snap.conn, principal, task)


def disclosed_params(body: dict[str, Any] | None) -> ParamsEnvelope | None:
    """The creator's disclosed parameters: the envelope ``{"params", "salt"}`` or the
    creator's ``task result`` answer holding it (as ``audit verify --params`` reads)."""
    if not body:
        return None
    raw: Any = body if "salt" in body else body.get("params")
    try:
        return ParamsEnvelope.from_json(raw, "params")
    except (InvalidInput, ValueError, TypeError, KeyError) as exc:
        raise invalid("params", f"not a parameters envelope {{params, salt}} ({exc})") from None


def disclosed_result(body: dict[str, Any] | None) -> ResultDisclosure | None:
    """The creator's disclosed result and salt, when the body is its whole `task result`
    answer (the round-chain and enclave checks open the on-chain commitment with it)."""
    if not body or "result" not in body or "commitmentSalt" not in body:
        return None
    try:
        return ResultDisclosure.from_json(body)
    except ValueError as exc:
        raise invalid("result", f"not a disclosed result ({exc})") from None


def _stored_json(row: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(row.result)
    task = result["task"]
    base = f"/v1/tasks/{task}/verification"
    return {
        **result,
        "id": int(row.id),
        "createdAt": int(row.created_at),
        "requestedBy": row.requested_by,
        "links": {
            "report": None if row.envelope is None else f"{base}/report",
            "prov": None if row.prov is None else f"{base}/prov",
            "page": f"/tasks/{task}/verification",
        },
    }


def _latest(conn: Connection, task_id: bytes) -> Any:
    v = schema.verifications
    return conn.execute(
        select(v).where(v.c.task_id == task_id).order_by(v.c.id.desc()).limit(1)
    ).first()


def store(conn: Connection, result: Verification, requested_by: str) -> int:
    """Keep one run; its id. The envelope is stored as the exact bytes it is served as."""
    envelope = None if result.envelope is None else envelope_bytes(result.envelope)
    inserted = conn.execute(
        schema.verifications.insert().values(
            task_id=result.task_id,
            created_at=int(time.time()),
            requested_by=requested_by,
            verified=result.verified,
            read_up_to_block=result.read_up_to[0],
            read_up_to_hash=result.read_up_to[1],
            report_digest=result.report_digest,
            result=json.dumps(result.to_json(), sort_keys=True),
            envelope=envelope,
            prov=result.prov,
        )
    )
    key = inserted.inserted_primary_key
    return int(key[0]) if key is not None else -1


def _verifier(request: Request) -> TaskVerifier:
    verifier = context_of(request).verifier
    if verifier is None:
        raise ApiError(
            503,
            "verifier",
            "this auditor runs without a verifier (no regulator node configured); start it "
            "with `provnet auditor run --config auditor.json`",
            code="VERIFIER_UNAVAILABLE",
        )
    return verifier


def latest_json(conn: Connection, task_id: bytes) -> dict[str, Any] | None:
    """The newest stored verification of ``task_id`` as ``GET`` answers it, or None."""
    row = _latest(conn, task_id)
    return None if row is None else _stored_json(row)


def run_and_store(
    ctx: ServiceContext,
    task_id: bytes,
    requested_by: str,
    params: ParamsEnvelope | None = None,
    disclosed: ResultDisclosure | None = None,
) -> dict[str, Any]:
    """Verify ``task_id`` now with ``ctx.verifier`` (one run at a time), store the run and
    answer it as ``GET`` will. For the API's POST and the pages' "verify now" button."""
    if ctx.verifier is None:
        raise RuntimeError("no verifier configured")
    with _running:
        result = ctx.verifier.verify(task_id, params, None, disclosed)
    with ctx.store.engine.connect().execution_options(provnet_write=True) as conn:
        with conn.begin():
            store(conn, result, requested_by)
        answer = latest_json(conn, task_id)
    assert answer is not None
    return answer


@router.post(
    "/v1/tasks/{taskId}/verification",
    status_code=201,
    responses=error_responses(401, 403, 404, 422, 503),
)
def run_verification(
    request: Request,
    principal: Viewer,
    taskId: _TaskId,
    body: Annotated[
        dict[str, Any] | None,
        Body(
            description="Optional: the creator's disclosed parameters, as "
            '{"params", "salt"} or the creator\'s `task result` answer; without them '
            "`params_commitment` is not applicable. The whole `task result` answer also "
            "discloses the result, which the round-chain and enclave checks need."
        ),
    ] = None,
) -> JSONResponse:
    """Run the task's verification now (regulators only) and store it."""
    if not principal.is_regulator:
        raise ApiError(403, "Authorization", "only regulators may run a verification")
    task_id = _task(request, principal, taskId)
    params, disclosed = disclosed_params(body), disclosed_result(body)
    _verifier(request)  # 503 before anything runs when there is none
    return JSONResponse(
        run_and_store(context_of(request), task_id, principal.address, params, disclosed),
        status_code=201,
    )


@router.get("/v1/tasks/{taskId}/verification", responses=_READ)
def latest_verification(request: Request, principal: Viewer, taskId: _TaskId) -> JSONResponse:
    """The latest stored verification of the task."""
    with snapshot(context_of(request)) as snap:
        task_id = visible_task(snap.conn, principal, taskId)
        row = _latest(snap.conn, task_id)
        headers = snap.headers()
    if row is None:
        raise not_found(
            "taskId", f"no verification of task {taskId} yet: a regulator POSTs to run one"
        )
    return JSONResponse(_stored_json(row), headers=headers)


@router.get(
    "/v1/tasks/{taskId}/verification/report",
    responses={
        **_READ,
        200: {"content": {"application/json": {}}, "description": "The DSSE envelope."},
    },
    response_class=Response,
)
def verification_report(request: Request, principal: Viewer, taskId: _TaskId) -> Response:
    """The latest verification's signed report: a DSSE envelope holding the in-toto
    Statement, as the exact bytes its ``reportDigest`` is over."""
    with snapshot(context_of(request)) as snap:
        task_id = visible_task(snap.conn, principal, taskId)
        row = _latest(snap.conn, task_id)
    if row is None or row.envelope is None:
        raise not_found("taskId", f"no signed report of task {taskId}: run a verification")
    return Response(
        bytes(row.envelope),
        media_type="application/json",
        headers={
            REPORT_DIGEST_HEADER: str(row.report_digest),
            "Content-Disposition": f'attachment; filename="report-{taskId[:18]}.dsse.json"',
        },
    )


@router.get(
    "/v1/tasks/{taskId}/verification/prov",
    responses={**_READ, 200: {"content": {"application/json": {}}, "description": "PROV-JSON"}},
    response_class=Response,
)
def verification_prov(request: Request, principal: Viewer, taskId: _TaskId) -> Response:
    """The task's W3C PROV-JSON, as of the latest verification."""
    with snapshot(context_of(request)) as snap:
        task_id = visible_task(snap.conn, principal, taskId)
        row = _latest(snap.conn, task_id)
    if row is None or row.prov is None:
        raise not_found("taskId", f"no provenance of task {taskId}: run a verification")
    return Response(
        str(row.prov),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="prov-{taskId[:18]}.json"'},
    )
