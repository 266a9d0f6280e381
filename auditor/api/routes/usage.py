"""Usage per organisation per period, and failures by reason.

Regulators see every organisation's; any other member only its own (no ``org`` given
means its own; another organisation's is 403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from auditor.api.deps import Viewer
from auditor.api.errors import ApiError
from auditor.api.models import list_responses
from auditor.api.params import DEFAULT, FormatParam, Limit, Offset, org_ref, time_query
from auditor.api.reading import context_of, list_answer, snapshot
from auditor.auth.principal import Principal
from auditor.query import usage as queries
from auditor.query.paging import MAX_LIMIT, window
from auditor.query.usage import Period

router = APIRouter(tags=["usage"])

_Org = Annotated[
    str | None, Query(max_length=200, description="0x org id or name; members: their own")
]


def _scope(conn: Connection, principal: Principal, org: str | None) -> bytes | None:
    wanted = None if org is None else org_ref(conn, org, "org")
    if principal.is_regulator:
        return wanted
    if wanted is not None and wanted != principal.org_id:
        raise ApiError(403, "org", "members see only their own organisation's figures; omit org")
    return principal.org_id


@router.get("/v1/usage", responses=list_responses(403), response_model=None)
def usage(
    request: Request,
    principal: Viewer,
    period: Annotated[Period, Query(description="day, week (from Monday) or month; UTC")] = "day",
    since: Annotated[int | None, time_query("From (inclusive, Unix seconds).")] = None,
    until: Annotated[int | None, time_query("To (exclusive, Unix seconds).")] = None,
    org: _Org = None,
    limit: Limit = MAX_LIMIT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Per organisation and period: tasks created, tasks joined (a node held a seat),
    and uses of the grants it gave."""
    with snapshot(context_of(request)) as snap:
        org_id = _scope(snap.conn, principal, org)
        rows = queries.usage(snap.conn, period=period, since=since, until=until, org_id=org_id)
        return list_answer(snap, window(rows, limit, offset), queries.USAGE_COLUMNS, fmt, "usage")


@router.get("/v1/refusals", responses=list_responses(403), response_model=None)
def refusals(
    request: Request,
    principal: Viewer,
    since: Annotated[int | None, time_query("From (inclusive, Unix seconds).")] = None,
    until: Annotated[int | None, time_query("To (exclusive, Unix seconds).")] = None,
    org: _Org = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Refusals and failures counted by step and reason code, most frequent first."""
    with snapshot(context_of(request)) as snap:
        org_id = _scope(snap.conn, principal, org)
        rows = queries.refusals(snap.conn, since=since, until=until, org_id=org_id)
        return list_answer(
            snap, window(rows, limit, offset), queries.REFUSAL_COLUMNS, fmt, "refusals"
        )
