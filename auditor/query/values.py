"""The JSON forms of stored values, and the lookups every answer shares (names)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, ScalarSelect, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from auditor.index import schema

ZERO32 = bytes(32)


def hx(value: Any) -> str | None:
    """Raw bytes (or a driver's memoryview) as ``0x`` lower-case hex; None stays None."""
    if value is None:
        return None
    return "0x" + bytes(value).hex()


def org_names(conn: Connection) -> dict[bytes, str]:
    """Every organisation's name by id (the latest proposal of an id wins)."""
    o = schema.organisations
    rows = conn.execute(select(o.c.org_id, o.c.name).order_by(o.c.block_number, o.c.log_index))
    return {bytes(org_id): str(name) for org_id, name in rows}


def node_orgs(conn: Connection) -> dict[bytes, bytes]:
    """The organisation of every node account ever registered (its latest record)."""
    n = schema.node_records
    rows = conn.execute(select(n.c.node, n.c.org_id).order_by(n.c.block_number, n.c.log_index))
    return {bytes(node): bytes(org) for node, org in rows}


def latest_status(entity: str, entity_id: ColumnElement[Any]) -> ScalarSelect[Any]:
    """The latest status row of one entity, as a correlated scalar subquery."""
    s = schema.status_history
    return (
        select(s.c.status)
        .where(s.c.entity == entity, s.c.entity_id == entity_id)
        .order_by(s.c.block_number.desc(), s.c.log_index.desc())
        .limit(1)
        .scalar_subquery()
    )


def status_rows(conn: Connection, entity: str, entity_id: bytes) -> list[dict[str, Any]]:
    """An entity's status history, oldest first."""
    s = schema.status_history
    rows = (
        conn.execute(
            select(s)
            .where(s.c.entity == entity, s.c.entity_id == entity_id)
            .order_by(s.c.block_number, s.c.log_index)
        )
        .mappings()
        .all()
    )
    return [
        {
            "status": r["status"],
            "actor": hx(r["actor"]),
            "blockNumber": int(r["block_number"]),
            "logIndex": int(r["log_index"]),
            "blockTime": int(r["block_time"]),
            "txHash": hx(r["tx_hash"]),
        }
        for r in rows
    ]


def latest_rows(table: Any, key: str) -> Any:
    """The newest row of ``table`` per ``key`` value (one organisation per id, one
    algorithm per digest), as a subquery: a row no later row of the same key follows."""
    later = table.alias(f"later_{table.name}")
    newer = (
        select(later.c[key])
        .where(
            later.c[key] == table.c[key],
            or_(
                later.c.block_number > table.c.block_number,
                and_(
                    later.c.block_number == table.c.block_number,
                    later.c.log_index > table.c.log_index,
                ),
            ),
        )
        .exists()
    )
    return select(table).where(~newer).subquery(f"latest_{table.name}")


def latest_algorithms() -> Any:
    """One row per algorithm digest (its latest proposal), as a subquery to join: a digest
    dropped and proposed again keeps one name, the newest."""
    return latest_rows(schema.algorithms, "digest")


def tx_hash_of(block_number: ColumnElement[Any], log_index: ColumnElement[Any]) -> Any:
    """The transaction hash of the event at a position (for tables that do not keep it)."""
    e = schema.events
    return (
        select(e.c.tx_hash)
        .where(e.c.block_number == block_number, e.c.log_index == log_index)
        .scalar_subquery()
    )
