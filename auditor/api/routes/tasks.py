"""Tasks: search, one task's summary and its trail, scoped to who may see them.

Regulators see every task; any other member sees only tasks its organisation created or
holds a seat in. A task a member may not see answers exactly like a task that does not
exist (404, same message), by id, in search, in the trail and in CSV, so its existence
does not leak.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, select

from auditor.api.deps import Viewer
from auditor.api.errors import error_responses, invalid, not_found
from auditor.api.models import READ_ERRORS, TaskAnswer, list_responses
from auditor.api.params import (
    DEFAULT,
    FormatParam,
    Limit,
    Offset,
    dataset_ref,
    id32,
    org_ref,
    time_query,
)
from auditor.api.reading import context_of, json_answer, list_answer, snapshot
from auditor.auth.principal import Principal
from auditor.index import schema
from auditor.query import tasks
from auditor.query.paging import window
from ledger.clients.algorithms import AlgorithmKind

router = APIRouter(tags=["tasks"])

_TaskId = Annotated[
    str, Path(alias="taskId", max_length=200, description="0x task id (64 hex digits)")
]


def _kind(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit() and int(value) < 256:
        return int(value)
    try:
        return int(AlgorithmKind[value.upper()])
    except KeyError:
        names = ", ".join(k.name.lower() for k in AlgorithmKind)
        raise invalid("kind", f"expected a kind number or one of {names}") from None


def visible_task(conn: Connection, principal: Principal, value: str) -> bytes:
    """The task id, if the task exists and ``principal`` may see it; 404 otherwise."""
    task_id = id32(value, "taskId")
    if principal.is_regulator:
        t = schema.tasks
        found = conn.execute(select(t.c.task_id).where(t.c.task_id == task_id)).first()
        visible = found is not None
    else:
        visible = principal.org_id in tasks.task_orgs(conn, task_id)
    if not visible:
        raise not_found("taskId", f"no task {value} in the index")
    return task_id


@router.get("/v1/tasks", responses=list_responses(), response_model=None)
def search_tasks(
    request: Request,
    principal: Viewer,
    org: Annotated[
        str | None, Query(max_length=200, description="creator or participant: 0x id or name")
    ] = None,
    dataset: Annotated[
        str | None, Query(max_length=400, description="0x dataset id or ORG/NAME")
    ] = None,
    algorithm: Annotated[
        str | None, Query(max_length=200, description="0x algorithm digest")
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=20, description="psi, pir, mpc, fl, tee, other or 0..5")
    ] = None,
    status: Annotated[
        str | None,
        Query(
            pattern="^(created|running|completed|disputed|failed|expired)$",
            description="Current status.",
        ),
    ] = None,
    since: Annotated[int | None, time_query("Created at or after (Unix seconds).")] = None,
    until: Annotated[int | None, time_query("Created before (Unix seconds).")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Task id hex prefix or algorithm name substring."),
    ] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Tasks newest first; members other than regulators see only their own tasks."""
    with snapshot(context_of(request)) as snap:
        conn = snap.conn
        f = tasks.TaskFilter(
            org=None if org is None else org_ref(conn, org, "org"),
            dataset=None if dataset is None else dataset_ref(conn, dataset, "dataset"),
            algorithm=None if algorithm is None else id32(algorithm, "algorithm"),
            kind=_kind(kind),
            status=status,
            since=since,
            until=until,
            text=(q or "").strip() or None,
        )
        visible_to = None if principal.is_regulator else principal.org_id
        page = tasks.search_tasks(conn, f, visible_to=visible_to, limit=limit, offset=offset)
        return list_answer(snap, page, tasks.TASK_COLUMNS, fmt, "tasks")


@router.get(
    "/v1/tasks/{taskId}",
    response_model=TaskAnswer,
    responses=error_responses(*sorted({*READ_ERRORS, 404})),
)
def task_summary(request: Request, principal: Viewer, task_id: _TaskId) -> JSONResponse:
    """The task: creator, algorithm, status, when it started and ended, the participants
    (node, organisation, dataset version, grant) and the result digests."""
    with snapshot(context_of(request)) as snap:
        found = visible_task(snap.conn, principal, task_id)
        summary = tasks.task_summary(snap.conn, found)
        if summary is None:  # pragma: no cover - visible_task checked it exists
            raise not_found("taskId", f"no task {task_id} in the index")
        return json_answer(snap, {"task": summary})


@router.get("/v1/tasks/{taskId}/trail", responses=list_responses(404), response_model=None)
def task_trail(
    request: Request,
    principal: Viewer,
    task_id: _TaskId,
    limit: Limit = 1000,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Every event of the task in chain order: block, time, transaction, step, acting
    node and organisation, grant, digests, round and failure reason."""
    with snapshot(context_of(request)) as snap:
        found = visible_task(snap.conn, principal, task_id)
        trail = tasks.task_trail(snap.conn, found)
        return list_answer(snap, window(trail, limit, offset), tasks.TRAIL_COLUMNS, fmt, "trail")
