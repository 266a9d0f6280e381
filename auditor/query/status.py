"""The index's completeness, read inside the caller's transaction.

``IndexStore.status`` opens its own connection; an API answer instead reads the state
row in the same snapshot as its rows, so "complete up to block N" is true of exactly
the rows it returns (the follower moves the cursor in the page's own transaction).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from auditor.index import schema
from auditor.query.values import hx


def index_status(conn: Connection) -> dict[str, Any] | None:
    """The ``index`` block of every answer; None before the indexer bound the database."""
    row = conn.execute(select(schema.index_state)).mappings().first()
    if row is None:
        return None
    cursor = int(row["cursor"])
    head = None if row["head_seen"] is None else int(row["head_seen"])
    return {
        "completeUpToBlock": cursor,
        "completeUpToHash": hx(row["cursor_hash"]),
        "headSeen": head,
        "lag": None if head is None else max(head - cursor, 0),
        "confirmations": row["confirmations"],
        "reorgsSeen": int(row["reorgs_seen"]),
        "updatedAt": float(row["updated_at"]),
    }
