"""Organisations and nodes: who is in the consortium, and how that changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, select

from auditor.index import schema
from auditor.query.paging import Page, fetch_page
from auditor.query.values import hx, latest_rows, latest_status, status_rows, tx_hash_of
from ledger.roles import Role

ORG_COLUMNS = (
    "org",
    "name",
    "roles",
    "roleNames",
    "admin",
    "status",
    "blockNumber",
    "blockTime",
)
NODE_COLUMNS = (
    "node",
    "org",
    "orgName",
    "status",
    "endpoint",
    "tlsCertSha256",
    "teeMeasurement",
    "blockNumber",
    "blockTime",
)
HISTORY_COLUMNS = ("status", "actor", "blockNumber", "logIndex", "blockTime", "txHash")
NODE_HISTORY_COLUMNS = (
    "change",
    "org",
    "orgName",
    "endpoint",
    "tlsCertSha256",
    "teeMeasurement",
    "blockNumber",
    "logIndex",
    "blockTime",
    "txHash",
)


def role_names(mask: int) -> str:
    """``provider,consumer``: the same spelling ``provnet`` commands take."""
    return ",".join(str(r.name).lower() for r in Role if mask & int(r))


def list_orgs(
    conn: Connection, *, role: int | None, status: str | None, limit: int, offset: int
) -> Page:
    """Organisations in the order they were proposed; ``role`` keeps those holding every
    bit of the mask, ``status`` those whose latest status is it (proposed, active,
    suspended)."""
    o = latest_rows(schema.organisations, "org_id")
    current = latest_status("org", o.c.org_id).label("status")
    query = select(o, current).order_by(o.c.block_number, o.c.log_index)
    if role is not None:
        query = query.where(o.c.roles.op("&")(role) == role)
    if status is not None:
        query = query.where(latest_status("org", o.c.org_id) == status)

    def render(r: Any) -> dict[str, Any]:
        return {
            "org": hx(r["org_id"]),
            "name": r["name"],
            "roles": int(r["roles"]),
            "roleNames": role_names(int(r["roles"])),
            "admin": hx(r["admin"]),
            "status": r["status"],
            "blockNumber": int(r["block_number"]),
            "blockTime": int(r["block_time"]),
        }

    return fetch_page(conn, query, limit, offset, render)


def org_history(conn: Connection, org_id: bytes) -> list[dict[str, Any]]:
    """An organisation's status changes, oldest first (empty: no such organisation)."""
    return status_rows(conn, "org", org_id)


def list_nodes(conn: Connection, *, org_id: bytes | None, limit: int, offset: int) -> Page:
    """Every node account in registration order with its current status and the
    endpoint and certificate of its latest record that names them."""
    n = schema.node_records
    first = latest_rows(n, "node")  # one row per node: its newest record
    o = latest_rows(schema.organisations, "org_id")
    described = n.alias("described")
    newest_described = (
        select(described.c.endpoint, described.c.tls_cert_sha256, described.c.tee_measurement)
        .where(described.c.node == first.c.node, described.c.endpoint.is_not(None))
        .order_by(described.c.block_number.desc(), described.c.log_index.desc())
        .limit(1)
    )
    registered = (
        select(n.c.block_number)
        .where(n.c.node == first.c.node)
        .order_by(n.c.block_number, n.c.log_index)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            first.c.node,
            first.c.org_id,
            o.c.name.label("org_name"),
            latest_status("node", first.c.node).label("status"),
            newest_described.with_only_columns(described.c.endpoint)
            .scalar_subquery()
            .label("endpoint"),
            newest_described.with_only_columns(described.c.tls_cert_sha256)
            .scalar_subquery()
            .label("tls"),
            newest_described.with_only_columns(described.c.tee_measurement)
            .scalar_subquery()
            .label("tee"),
            first.c.block_number,
            first.c.block_time,
            registered.label("registered"),
        )
        .outerjoin(o, o.c.org_id == first.c.org_id)
        .order_by(registered, first.c.node)
    )
    if org_id is not None:
        query = query.where(first.c.org_id == org_id)

    def render(r: Any) -> dict[str, Any]:
        return {
            "node": hx(r["node"]),
            "org": hx(r["org_id"]),
            "orgName": r["org_name"],
            "status": r["status"],
            "endpoint": r["endpoint"],
            "tlsCertSha256": hx(r["tls"]),
            "teeMeasurement": hx(r["tee"]),
            "blockNumber": int(r["block_number"]),
            "blockTime": int(r["block_time"]),
        }

    return fetch_page(conn, query, limit, offset, render)


def node_history(conn: Connection, node: bytes) -> list[dict[str, Any]]:
    """A node's records (registered, updated, revoked), oldest first."""
    n = schema.node_records
    o = latest_rows(schema.organisations, "org_id")
    rows = (
        conn.execute(
            select(
                n,
                o.c.name.label("org_name"),
                tx_hash_of(n.c.block_number, n.c.log_index).label("tx"),
            )
            .outerjoin(o, and_(o.c.org_id == n.c.org_id))
            .where(n.c.node == node)
            .order_by(n.c.block_number, n.c.log_index)
        )
        .mappings()
        .all()
    )
    return [
        {
            "change": r["change"],
            "org": hx(r["org_id"]),
            "orgName": r["org_name"],
            "endpoint": r["endpoint"],
            "tlsCertSha256": hx(r["tls_cert_sha256"]),
            "teeMeasurement": hx(r["tee_measurement"]),
            "blockNumber": int(r["block_number"]),
            "logIndex": int(r["log_index"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx"]),
        }
        for r in rows
    ]
