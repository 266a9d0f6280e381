"""One read snapshot per answer, and the JSON and CSV forms of list answers.

Each answer reads its rows and the index state in one transaction (REPEATABLE READ on
PostgreSQL; SQLite's WAL gives a read transaction a snapshot by itself), so the
``index`` block and the ``X-Provnet-Complete-Up-To-Block`` header are true of exactly
the rows returned.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection

from auditor.api.context import ServiceContext
from auditor.query.paging import Page
from auditor.query.status import index_status

COMPLETE_HEADER = "X-Provnet-Complete-Up-To-Block"
Format = Literal["json", "csv"]


def context_of(request: Request) -> ServiceContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx


class Snapshot:
    """A read connection and the index state seen from it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.index = index_status(conn)

    @property
    def complete_up_to(self) -> str:
        return "-1" if self.index is None else str(self.index["completeUpToBlock"])

    def headers(self) -> dict[str, str]:
        return {COMPLETE_HEADER: self.complete_up_to}


@contextmanager
def snapshot(ctx: ServiceContext) -> Iterator[Snapshot]:
    """A read-only transaction over the index, closed (rolled back) at the end."""
    with ctx.store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield Snapshot(conn)


def json_answer(snap: Snapshot, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({**body, "index": snap.index}, headers=snap.headers())


def list_answer(
    snap: Snapshot, page: Page, columns: Sequence[str], fmt: Format, filename: str
) -> Response:
    """``{"items", "page", "index"}``, or the same items as CSV with ``columns``."""
    if fmt == "csv":
        return Response(
            to_csv(page.items, columns),
            media_type="text/csv; charset=utf-8",
            headers={
                **snap.headers(),
                "Content-Disposition": f'attachment; filename="{filename}.csv"',
                "X-Provnet-Total": str(page.total),
            },
        )
    return JSONResponse(
        {"items": page.items, "page": page.to_json(), "index": snap.index},
        headers=snap.headers(),
    )


#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection:
#: an organisation names itself ``=HYPERLINK(...)`` on chain); such cells get a leading
#: apostrophe, which spreadsheets show as text and do not evaluate.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = (
        json.dumps(value, separators=(",", ":"), sort_keys=True)
        if isinstance(value, dict | list)
        else str(value)
    )
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(items: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A header row of ``columns`` then one row per item: null as an empty cell, lists
    and objects as compact JSON, text that a spreadsheet would run as a formula
    prefixed with an apostrophe (see ``FORMULA_START``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for item in items:
        writer.writerow([_cell(item.get(c)) for c in columns])
    return out.getvalue()
