"""The regulators' query log over HTTP: its entries, checkpoints and RFC 9162 proofs.

Regulators only (403 for other members): the log names who looked at what. Reading it
is itself a regulator request, so it is logged like every other (``auditor.api.deps``).
Proofs are answered for any tree size up to the current one; a verifier checks them
against a root it trusts, normally a ``Checkpointed`` root read from ``AnchorLog``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from auditor.api.deps import viewer
from auditor.api.errors import ApiError, error_responses
from auditor.api.models import READ_ERRORS, list_responses
from auditor.api.params import DEFAULT, FormatParam, Limit, Offset
from auditor.api.reading import context_of, list_answer, snapshot
from auditor.auth.errors import AuthError
from auditor.auth.principal import Principal
from auditor.index.schema import INT64_MAX
from auditor.query.paging import Page
from auditor.querylog.log import QueryLog

router = APIRouter(prefix="/v1/query-log", tags=["query log"])

_SIZE = Query(ge=0, le=INT64_MAX)


def _regulator(principal: Annotated[Principal, Depends(viewer)]) -> Principal:
    if not principal.is_regulator:
        raise AuthError(403, "Authorization", "only regulators may read the query log")
    return principal


Regulator = Annotated[Principal, Depends(_regulator)]
_RESPONSES = error_responses(*READ_ERRORS, 403)


def _log(request: Request) -> QueryLog:
    log = getattr(request.app.state.ctx, "query_log", None)
    if not isinstance(log, QueryLog):
        raise RuntimeError("ServiceContext.query_log must be an auditor.querylog.log.QueryLog")
    return log


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


ENTRY_COLUMNS = ("seq", "at", "address", "org", "method", "target", "leafHash")
CHECKPOINT_COLUMNS = ("treeSize", "rootHash", "logId", "txHash", "blockNumber", "createdAt")


@router.get("", responses=list_responses(403), response_model=None)
def entries(
    request: Request,
    _: Regulator,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Logged requests, oldest first: ``seq, at, address, org, method, target`` exactly as
    hashed into the log, and each entry's ``leafHash``."""
    log = _log(request)
    with snapshot(context_of(request)) as snap:
        page = Page(log.entries(offset, limit), log.size(), limit, offset)
        return list_answer(snap, page, ENTRY_COLUMNS, fmt, "query-log")


@router.get("/checkpoints", responses=list_responses(403), response_model=None)
def checkpoints(
    request: Request,
    _: Regulator,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """The log's roots as sent to AnchorLog, each with its transaction hash."""
    log = _log(request)
    with snapshot(context_of(request)) as snap:
        page = Page(log.checkpoints(offset, limit), log.checkpoint_count(), limit, offset)
        return list_answer(snap, page, CHECKPOINT_COLUMNS, fmt, "query-log-checkpoints")


def _tree_size(log: QueryLog, size: int, field: str) -> None:
    current = log.size()
    if not 0 < size <= current:
        raise ApiError(422, field, f"must be 1..{current} (the log's current size)")


@router.get("/proof/inclusion", responses=_RESPONSES)
def inclusion(
    request: Request,
    _: Regulator,
    index: Annotated[int, _SIZE],
    tree_size: Annotated[int, Query(alias="treeSize", ge=0, le=INT64_MAX)],
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of ``treeSize`` entries."""
    log = _log(request)
    _tree_size(log, tree_size, "treeSize")
    if index >= tree_size:
        raise ApiError(422, "index", f"must be below treeSize ({tree_size})")
    proof = log.inclusion(index, tree_size)
    entry = log.entries(index, 1)[0]
    return {
        "index": index,
        "treeSize": tree_size,
        "leafHash": entry["leafHash"],
        "entry": entry,
        "rootHash": _hex(log.root(tree_size)),
        "proof": [_hex(p) for p in proof],
    }


@router.get("/proof/consistency", responses=_RESPONSES)
def consistency(
    request: Request,
    _: Regulator,
    old: Annotated[int, Query(alias="from", ge=0, le=INT64_MAX)],
    new: Annotated[int, Query(alias="to", ge=0, le=INT64_MAX)],
) -> dict[str, Any]:
    """RFC 9162 consistency proof: the tree of ``from`` entries is a prefix of ``to``'s."""
    log = _log(request)
    _tree_size(log, new, "to")
    if not 0 < old <= new:
        raise ApiError(422, "from", f"must be 1..{new} (at most `to`)")
    return {
        "from": old,
        "to": new,
        "fromRoot": _hex(log.root(old)),
        "toRoot": _hex(log.root(new)),
        "proof": [_hex(p) for p in log.consistency(old, new)],
    }
