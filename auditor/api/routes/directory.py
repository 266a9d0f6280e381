"""Organisations, nodes and datasets, with their histories."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from auditor.api.deps import Viewer
from auditor.api.errors import invalid, not_found
from auditor.api.models import list_responses
from auditor.api.params import (
    DEFAULT,
    FormatParam,
    Limit,
    Offset,
    address,
    dataset_ref,
    org_ref,
)
from auditor.api.reading import context_of, list_answer, snapshot
from auditor.query import datasets, orgs
from auditor.query.paging import window
from ledger.roles import ALL_ROLES, parse_roles

router = APIRouter(tags=["directory"])


def _roles(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        mask = int(value)
        if not 1 <= mask <= ALL_ROLES:
            raise invalid("role", f"a role mask is 1..{ALL_ROLES}, got {value}")
        return mask
    try:
        return parse_roles(value)
    except ValueError as exc:
        raise invalid("role", str(exc).removeprefix("roles: ")) from None


@router.get("/v1/orgs", responses=list_responses(), response_model=None)
def list_orgs(
    request: Request,
    _: Viewer,
    role: Annotated[
        str | None,
        Query(max_length=200, description="provider, consumer, compute, regulator (comma: all of)"),
    ] = None,
    status: Annotated[
        str | None, Query(pattern="^(proposed|active|suspended)$", description="Current status.")
    ] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Organisations in the order they were proposed, with roles and current status."""
    mask = _roles(role)
    with snapshot(context_of(request)) as snap:
        page = orgs.list_orgs(snap.conn, role=mask, status=status, limit=limit, offset=offset)
        return list_answer(snap, page, orgs.ORG_COLUMNS, fmt, "organisations")


@router.get("/v1/orgs/{org}/history", responses=list_responses(404), response_model=None)
def org_history(
    request: Request,
    _: Viewer,
    org: Annotated[str, Path(max_length=200, description="0x org id or its name")],
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """An organisation's status changes (proposed, active, suspended), oldest first."""
    with snapshot(context_of(request)) as snap:
        history = orgs.org_history(snap.conn, org_ref(snap.conn, org, "org"))
        if not history:
            raise not_found("org", f"no organisation {org[:80]!r} in the index")
        return list_answer(
            snap, window(history, limit, offset), orgs.HISTORY_COLUMNS, fmt, "org-history"
        )


@router.get("/v1/nodes", responses=list_responses(), response_model=None)
def list_nodes(
    request: Request,
    _: Viewer,
    org: Annotated[str | None, Query(max_length=200, description="0x org id or name")] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Node accounts in registration order with their organisation and current status."""
    with snapshot(context_of(request)) as snap:
        org_id = None if org is None else org_ref(snap.conn, org, "org")
        page = orgs.list_nodes(snap.conn, org_id=org_id, limit=limit, offset=offset)
        return list_answer(snap, page, orgs.NODE_COLUMNS, fmt, "nodes")


@router.get("/v1/nodes/{node}/history", responses=list_responses(404), response_model=None)
def node_history(
    request: Request,
    _: Viewer,
    node: Annotated[str, Path(max_length=200, description="0x node address")],
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """A node's records (registered, updated, revoked), oldest first."""
    account = address(node, "node")
    with snapshot(context_of(request)) as snap:
        history = orgs.node_history(snap.conn, account)
        if not history:
            raise not_found("node", f"no node {node} in the index")
        return list_answer(
            snap, window(history, limit, offset), orgs.NODE_HISTORY_COLUMNS, fmt, "node-history"
        )


@router.get("/v1/datasets", responses=list_responses(), response_model=None)
def list_datasets(
    request: Request,
    _: Viewer,
    owner: Annotated[str | None, Query(max_length=200, description="0x org id or name")] = None,
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """Datasets in registration order with owner, status and version count."""
    with snapshot(context_of(request)) as snap:
        owner_org = None if owner is None else org_ref(snap.conn, owner, "owner")
        page = datasets.list_datasets(snap.conn, owner_org=owner_org, limit=limit, offset=offset)
        return list_answer(snap, page, datasets.DATASET_COLUMNS, fmt, "datasets")


@router.get(
    "/v1/datasets/{dataset:path}/versions", responses=list_responses(404), response_model=None
)
def dataset_versions(
    request: Request,
    _: Viewer,
    dataset: Annotated[str, Path(max_length=400, description="0x dataset id or ORG/NAME")],
    limit: Limit = DEFAULT,
    offset: Offset = 0,
    fmt: FormatParam = "json",
) -> Response:
    """A dataset's registered versions (Merkle root, rows, schema), oldest first."""
    with snapshot(context_of(request)) as snap:
        versions = datasets.dataset_versions(snap.conn, dataset_ref(snap.conn, dataset, "dataset"))
        if not versions:
            raise not_found("dataset", f"no dataset {dataset[:80]!r} in the index")
        return list_answer(
            snap, window(versions, limit, offset), datasets.VERSION_COLUMNS, fmt, "versions"
        )
