"""AnchorLog logs and their checkpoints, as the chain recorded them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from auditor.index import schema
from auditor.query.paging import Page, fetch_page
from auditor.query.values import hx, latest_rows

CHECKPOINT_COLUMNS = (
    "log",
    "logName",
    "owner",
    "ownerOrg",
    "ownerOrgName",
    "treeSize",
    "rootHash",
    "writer",
    "blockNumber",
    "logIndex",
    "blockTime",
    "txHash",
)


def list_checkpoints(
    conn: Connection, *, log_id: bytes | None, owner_org: bytes | None, limit: int, offset: int
) -> Page:
    """Checkpoints in chain order, each with its log's owner (``logName`` is the on-chain
    bytes32 name id); ``log_id`` / ``owner_org`` narrow to one log or one owner."""
    c = schema.checkpoints
    logs = latest_rows(schema.anchor_logs, "log_id")
    orgs = latest_rows(schema.organisations, "org_id")
    query = (
        select(
            c,
            logs.c.name.label("log_name"),
            logs.c.owner,
            logs.c.owner_org,
            orgs.c.name.label("owner_name"),
        )
        .outerjoin(logs, logs.c.log_id == c.c.log_id)
        .outerjoin(orgs, orgs.c.org_id == logs.c.owner_org)
        .order_by(c.c.block_number, c.c.log_index)
    )
    if log_id is not None:
        query = query.where(c.c.log_id == log_id)
    if owner_org is not None:
        query = query.where(logs.c.owner_org == owner_org)

    def render(r: Any) -> dict[str, Any]:
        return {
            "log": hx(r["log_id"]),
            "logName": hx(r["log_name"]),
            "owner": hx(r["owner"]),
            "ownerOrg": hx(r["owner_org"]),
            "ownerOrgName": r["owner_name"],
            "treeSize": int(r["tree_size"]),
            "rootHash": hx(r["root_hash"]),
            "writer": hx(r["writer"]),
            "blockNumber": int(r["block_number"]),
            "logIndex": int(r["log_index"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx_hash"]),
        }

    return fetch_page(conn, query, limit, offset, render)
