"""Task search, a task's page (summary, participants, timeline, verification) and
running its verification."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from auditor.api.errors import ApiError
from auditor.api.reading import context_of, snapshot
from auditor.auth.principal import Principal
from auditor.pages import forms, verifications
from auditor.pages.respond import (
    PAGE_SIZE,
    date_range,
    not_found,
    org_options,
    pager,
    render,
    secure,
    signed_in,
    to_signin,
    visible_to,
)
from auditor.pages.session import same_origin
from auditor.query import tasks
from auditor.query.paging import Page
from auditor.query.tasks import TASK_STATUSES, TaskFilter
from ledger.clients.algorithms import AlgorithmKind

router = APIRouter()
log = logging.getLogger(__name__)

# --- tasks ----------------------------------------------------------------------------


def _task_filter(request: Request) -> TaskFilter:
    q = request.query_params
    kind = forms.choice(q.get("kind"), "kind", tuple(k.name for k in AlgorithmKind))
    since, until = date_range(request)
    return TaskFilter(
        org=forms.hex32(q.get("org"), "org"),
        dataset=forms.hex32(q.get("dataset"), "dataset"),
        algorithm=forms.hex32(q.get("algorithm"), "algorithm"),
        kind=None if kind is None else int(AlgorithmKind[kind]),
        status=forms.choice(q.get("status"), "status", TASK_STATUSES),
        since=since,
        until=until,
        text=forms.text(q.get("q")),
    )


@router.get("/tasks", response_model=None)
def task_search(request: Request) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    ctx = context_of(request)
    error: forms.FormError | None = None
    try:
        selected = _task_filter(request)
    except forms.FormError as exc:
        error, selected = exc, TaskFilter()
    offset = forms.offset(request.query_params.get("offset"))
    with snapshot(ctx) as snap:
        conn = snap.conn
        page = (
            Page([], 0, PAGE_SIZE, 0)
            if error is not None
            else tasks.search_tasks(
                conn, selected, visible_to=visible_to(principal), limit=PAGE_SIZE, offset=offset
            )
        )
        options = org_options(conn)
    return render(
        request,
        "tasks.html",
        principal,
        index=snap.index,
        status_code=400 if error else 200,
        title="Tasks",
        page=page,
        pager=pager(request, page),
        form=dict(request.query_params),
        error=error,
        org_options=options,
        statuses=TASK_STATUSES,
        kinds=[k.name for k in AlgorithmKind],
    )


def _task_for(
    principal: Principal, conn: Connection, task_hex: str
) -> tuple[bytes, dict[str, Any]] | None:
    """The task's id and summary when it exists and ``principal`` may see it."""
    try:
        task_id = forms.hex32(task_hex, "task")
    except forms.FormError:
        return None
    if task_id is None:
        return None
    if not principal.is_regulator and principal.org_id not in tasks.task_orgs(conn, task_id):
        return None  # not yours: indistinguishable from a task that does not exist
    summary = tasks.task_summary(conn, task_id)
    if summary is None:
        return None
    return task_id, summary


def _unknown(task_hex: str) -> str:
    shown = task_hex if len(task_hex) <= 80 else task_hex[:77] + "..."
    return f"No task {shown} that you may see."


@router.get("/tasks/{task_hex}", response_model=None)
def task_page(request: Request, task_hex: str) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    return _task_view(request, principal, task_hex, None)


def _task_view(
    request: Request, principal: Principal, task_hex: str, notice: str | None, code: int = 200
) -> Response:
    ctx = context_of(request)
    with snapshot(ctx) as snap:
        conn = snap.conn
        found = _task_for(principal, conn, task_hex)
        if found is None:
            return not_found(request, principal, _unknown(task_hex))
        task_id, summary = found
        trail = tasks.task_trail(conn, task_id)
        verification = verifications.latest(conn, task_id)
    return render(
        request,
        "task.html",
        principal,
        index=snap.index,
        status_code=code,
        title=f"Task {summary['task'][:10]}…",
        task=summary,
        trail=trail,
        verification=verification,
        can_verify=principal.is_regulator and verifications.available(ctx),
        notice=notice,
        exports=verifications.export_links(summary["task"], verification),
    )


@router.get("/tasks/{task_hex}/verification", response_model=None)
def verification_page(request: Request, task_hex: str) -> Response:
    """The address the API's verification answers link to: the task page, scrolled to
    its verification."""
    try:
        task_id = forms.hex32(task_hex, "task")
    except forms.FormError:
        task_id = None
    target = "/tasks" if task_id is None else f"/tasks/0x{task_id.hex()}#verification"
    response = RedirectResponse(target, status_code=303)
    secure(response)
    return response


@router.post("/tasks/{task_hex}/verification", response_model=None)
async def run_verification(request: Request, task_hex: str) -> Response:
    form = await request.form()
    pasted = form.get("params")
    return await run_in_threadpool(
        _run_verification, request, task_hex, pasted if isinstance(pasted, str) else None
    )


def _run_verification(request: Request, task_hex: str, pasted: str | None) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    if not same_origin(request):
        return _task_view(request, principal, task_hex, "Refused: sent from another site.", 403)
    ctx = context_of(request)
    with snapshot(ctx) as snap:
        conn = snap.conn
        found = _task_for(principal, conn, task_hex)
    if found is None:
        return not_found(request, principal, _unknown(task_hex))
    if not principal.is_regulator:
        return _task_view(request, principal, task_hex, "Only regulators run verifications.", 403)
    if not verifications.available(ctx):
        message = "This auditor has no verifier configured (no chain connection)."
        return _task_view(request, principal, task_hex, message, 503)
    try:
        params = verifications.disclosed(pasted)
    except ApiError as exc:
        return _task_view(request, principal, task_hex, f"Parameters: {exc.message}", 422)
    try:
        verifications.run(ctx, found[0], principal, params)
    except Exception as exc:  # the chain or a node failed: say so on the page, keep going
        log.exception("verification of %s failed", task_hex)
        message = f"The verification could not run: {type(exc).__name__}: {exc}"
        return _task_view(request, principal, task_hex, message, 502)
    response = RedirectResponse(f"/tasks/{found[1]['task']}#verification", status_code=303)
    secure(response)
    return response
