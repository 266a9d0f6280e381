"""Grants: by dataset, grantee, grantor, purpose, or active at a moment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from auditor.api.deps import Viewer
from auditor.api.models import list_responses
from auditor.api.params import (
    DEFAULT,
    FormatParam,
    Limit,
    Offset,
    dataset_ref,
    org_ref,
    purpose_ref,
    time_query,
)
from auditor.api.reading import context_of, list_answer, snapshot
from auditor.query import grants

router = APIRouter(tags=["grants"])

_Org = Annotated[str | None, Query(max_length=200, description="0x org id or name")]


@router.get("/v1/grants", responses=list_responses(), response_model=None)
def list_grants(
    request: Request,
    _: Viewer,
    dataset: Annotated[
        str | None, Query(max_length=400, description="0x dataset id or ORG/NAME")
    ] = None,
    grantee: _Org = None,
    grantor: _Org = None,
    purpose: Annotated[
        str | None, Query(max_length=400, description="0x purpose id or the purpose's text")
    ] = None,
    active_at: Annotated[
        int | None, time_query("Usable at this Unix time.", alias="activeAt")
    ] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Grants in creation order with uses consumed and status (revoked, exhausted,
    expired, active). ``activeAt`` keeps the grants usable at that Unix time."""
    with snapshot(context_of(request)) as snap:
        conn = snap.conn
        page = grants.list_grants(
            conn,
            dataset_id=None if dataset is None else dataset_ref(conn, dataset, "dataset"),
            grantee_org=None if grantee is None else org_ref(conn, grantee, "grantee"),
            grantor_org=None if grantor is None else org_ref(conn, grantor, "grantor"),
            purpose=None if purpose is None else purpose_ref(purpose, "purpose"),
            active_at=active_at,
            limit=limit,
            offset=offset,
        )
        return list_answer(snap, page, grants.GRANT_COLUMNS, fmt, "grants")
