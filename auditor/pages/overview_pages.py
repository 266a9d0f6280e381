"""Usage per organisation and period (with its chart), refusals and failures by
reason, and the organisations and datasets lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from auditor.api.reading import context_of, snapshot
from auditor.pages import forms
from auditor.pages.chart import usage_chart
from auditor.pages.respond import (
    PAGE_SIZE,
    date_range,
    org_options,
    org_scope,
    pager,
    render,
    signed_in,
    to_signin,
)
from auditor.query import datasets, orgs, usage

router = APIRouter()
#: The chart's choices; the first, tasks in which a node of the organisation held a seat,
#: is the default (a data provider that never creates tasks still shows its use).
USAGE_METRICS = {
    "tasksJoined": "Tasks joined",
    "tasksCreated": "Tasks created",
    "grantUses": "Grant uses",
}

# --- usage and refusals ---------------------------------------------------------------


@router.get("/usage", response_model=None)
def usage_page(request: Request) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    ctx = context_of(request)
    q = request.query_params
    error: forms.FormError | None = None
    rows: list[dict[str, Any]] = []
    period: forms.Period = "day"
    metric = q.get("metric") if q.get("metric") in USAGE_METRICS else "tasksJoined"
    with snapshot(ctx) as snap:
        conn = snap.conn
        try:
            period = forms.period(q.get("period"))
            since, until = date_range(request)
            org = org_scope(request, principal)
        except forms.FormError as exc:
            error = exc
        else:
            rows = usage.usage(conn, period=period, since=since, until=until, org_id=org)
        options = org_options(conn) if principal.is_regulator else []
    return render(
        request,
        "usage.html",
        principal,
        index=snap.index,
        status_code=400 if error else 200,
        title="Usage",
        rows=rows,
        chart=usage_chart(rows, str(metric), period),
        form=dict(q),
        error=error,
        period=period,
        periods=forms.PERIODS,
        metric=metric,
        metrics=USAGE_METRICS,
        org_options=options,
    )


@router.get("/refusals", response_model=None)
def refusals_page(request: Request) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    ctx = context_of(request)
    error: forms.FormError | None = None
    rows: list[dict[str, Any]] = []
    with snapshot(ctx) as snap:
        conn = snap.conn
        try:
            since, until = date_range(request)
            org = org_scope(request, principal)
        except forms.FormError as exc:
            error = exc
        else:
            rows = usage.refusals(conn, since=since, until=until, org_id=org)
        options = org_options(conn) if principal.is_regulator else []
    peak = max((int(r["count"]) for r in rows), default=0)
    return render(
        request,
        "refusals.html",
        principal,
        index=snap.index,
        status_code=400 if error else 200,
        title="Refusals & failures",
        rows=rows,
        peak=peak,
        form=dict(request.query_params),
        error=error,
        org_options=options,
    )


# --- registry lists -------------------------------------------------------------------


@router.get("/orgs", response_model=None)
def orgs_page(request: Request) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    ctx = context_of(request)
    offset = forms.offset(request.query_params.get("offset"))
    with snapshot(ctx) as snap:
        conn = snap.conn
        page = orgs.list_orgs(conn, role=None, status=None, limit=PAGE_SIZE, offset=offset)
        nodes = orgs.list_nodes(conn, org_id=None, limit=1000, offset=0)
    by_org: dict[str, list[Mapping[str, Any]]] = {}
    for node in nodes.items:
        by_org.setdefault(str(node["org"]), []).append(node)
    return render(
        request,
        "orgs.html",
        principal,
        index=snap.index,
        title="Organisations",
        page=page,
        pager=pager(request, page),
        nodes=by_org,
    )


@router.get("/datasets", response_model=None)
def datasets_page(request: Request) -> Response:
    principal = signed_in(request)
    if principal is None:
        return to_signin(request)
    ctx = context_of(request)
    offset = forms.offset(request.query_params.get("offset"))
    error: forms.FormError | None = None
    owner: bytes | None = None
    try:
        owner = forms.hex32(request.query_params.get("owner"), "owner")
    except forms.FormError as exc:
        error = exc
    with snapshot(ctx) as snap:
        conn = snap.conn
        page = datasets.list_datasets(conn, owner_org=owner, limit=PAGE_SIZE, offset=offset)
        options = org_options(conn)
    return render(
        request,
        "datasets.html",
        principal,
        index=snap.index,
        status_code=400 if error else 200,
        title="Datasets",
        page=page,
        pager=pager(request, page),
        form=dict(request.query_params),
        error=error,
        org_options=options,
    )
