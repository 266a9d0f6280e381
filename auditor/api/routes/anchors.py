"""AnchorLog checkpoints, as the chain recorded them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from auditor.api.deps import Viewer
from auditor.api.models import list_responses
from auditor.api.params import DEFAULT, FormatParam, Limit, Offset, id32, org_ref
from auditor.api.reading import context_of, list_answer, snapshot
from auditor.query import anchors

router = APIRouter(tags=["anchors"])


@router.get("/v1/checkpoints", responses=list_responses(), response_model=None)
def list_checkpoints(
    request: Request,
    _: Viewer,
    log: Annotated[str | None, Query(max_length=200, description="0x AnchorLog log id")] = None,
    owner: Annotated[
        str | None, Query(max_length=200, description="the log owner's 0x org id or name")
    ] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Every AnchorLog checkpoint in chain order: log, owner, tree size, root, writer."""
    with snapshot(context_of(request)) as snap:
        page = anchors.list_checkpoints(
            snap.conn,
            log_id=None if log is None else id32(log, "log"),
            owner_org=None if owner is None else org_ref(snap.conn, owner, "owner"),
            limit=limit,
            offset=offset,
        )
        return list_answer(snap, page, anchors.CHECKPOINT_COLUMNS, fmt, "checkpoints")
