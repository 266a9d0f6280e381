"""Grants: who may use which dataset, for what, until when, and how often they did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from auditor.index import schema
from auditor.query.paging import Page, fetch_page
from auditor.query.values import ZERO32, hx, latest_rows

GRANT_COLUMNS = (
    "grant",
    "dataset",
    "granteeOrg",
    "granteeOrgName",
    "grantorOrg",
    "grantorOrgName",
    "algorithm",
    "purpose",
    "notAfter",
    "maxUses",
    "uses",
    "status",
    "revokedAt",
    "blockNumber",
    "blockTime",
    "txHash",
)


def indexed_time(conn: Connection) -> int | None:
    """The timestamp of the newest indexed block: "now" as far as the index knows, so
    an answer's expired / active verdicts are reproducible from the same index."""
    value = conn.execute(select(func.max(schema.blocks.c.timestamp))).scalar()
    return None if value is None else int(value)


def list_grants(
    conn: Connection,
    *,
    dataset_id: bytes | None,
    grantee_org: bytes | None,
    grantor_org: bytes | None,
    purpose: bytes | None,
    active_at: int | None,
    limit: int,
    offset: int,
) -> Page:
    """Grants in creation order. ``active_at`` keeps those a task could have used at that
    Unix time: created at or before it, ``notAfter`` not passed (inclusive, as the
    contract checks), not revoked at or before it, and fewer than ``maxUses`` uses
    consumed before it. ``status`` is the grant's state as of the newest indexed block:
    revoked, exhausted, expired or active. ``algorithm`` is null for "any approved"."""
    g = schema.grants
    u = schema.grant_uses
    s = schema.status_history
    orgs = latest_rows(schema.organisations, "org_id")
    grantee = orgs.alias("grantee")
    grantor = orgs.alias("grantor")
    # GrantUsed carries the cumulative count (a settlement of a metered service adds
    # several uses in one event), so uses are the latest count, not the number of events.
    uses = (
        select(func.coalesce(func.max(u.c.used), 0))
        .where(u.c.grant_id == g.c.grant_id)
        .scalar_subquery()
    )
    revoked_at = (
        select(func.min(s.c.block_time))
        .where(s.c.entity == "grant", s.c.entity_id == g.c.grant_id, s.c.status == "revoked")
        .scalar_subquery()
    )
    created_tx = (
        select(s.c.tx_hash)
        .where(s.c.block_number == g.c.block_number, s.c.log_index == g.c.log_index)
        .scalar_subquery()
    )
    query = (
        select(
            g,
            grantee.c.name.label("grantee_name"),
            grantor.c.name.label("grantor_name"),
            uses.label("uses"),
            revoked_at.label("revoked_at"),
            created_tx.label("tx"),
        )
        .outerjoin(grantee, grantee.c.org_id == g.c.grantee_org)
        .outerjoin(grantor, grantor.c.org_id == g.c.grantor_org)
        .order_by(g.c.block_number, g.c.log_index)
    )
    if dataset_id is not None:
        query = query.where(g.c.dataset_id == dataset_id)
    if grantee_org is not None:
        query = query.where(g.c.grantee_org == grantee_org)
    if grantor_org is not None:
        query = query.where(g.c.grantor_org == grantor_org)
    if purpose is not None:
        query = query.where(g.c.purpose == purpose)
    if active_at is not None:
        revoked_by = (
            select(s.c.entity_id)
            .where(
                s.c.entity == "grant",
                s.c.entity_id == g.c.grant_id,
                s.c.status == "revoked",
                s.c.block_time <= active_at,
            )
            .exists()
        )
        used_before = (
            select(func.coalesce(func.max(u.c.used), 0))
            .where(u.c.grant_id == g.c.grant_id, u.c.block_time < active_at)
            .scalar_subquery()
        )
        query = query.where(
            g.c.block_time <= active_at,
            g.c.not_after >= active_at,
            ~revoked_by,
            used_before < g.c.max_uses,
        )
    now = indexed_time(conn)

    def render(r: Any) -> dict[str, Any]:
        used, max_uses = int(r["uses"]), int(r["max_uses"])
        if r["revoked_at"] is not None:
            status = "revoked"
        elif used >= max_uses:
            status = "exhausted"
        elif now is not None and now > int(r["not_after"]):
            status = "expired"
        else:
            status = "active"
        algorithm = bytes(r["algorithm_digest"])
        return {
            "grant": hx(r["grant_id"]),
            "dataset": hx(r["dataset_id"]),
            "granteeOrg": hx(r["grantee_org"]),
            "granteeOrgName": r["grantee_name"],
            "grantorOrg": hx(r["grantor_org"]),
            "grantorOrgName": r["grantor_name"],
            "algorithm": None if algorithm == ZERO32 else hx(algorithm),
            "purpose": hx(r["purpose"]),
            "notAfter": int(r["not_after"]),
            "maxUses": max_uses,
            "uses": used,
            "status": status,
            "revokedAt": None if r["revoked_at"] is None else int(r["revoked_at"]),
            "blockNumber": int(r["block_number"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx"]),
        }

    return fetch_page(conn, query, limit, offset, render)
