"""One page of a list answer, and the limits every list shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, select

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page:
    """``items`` from ``offset`` on, at most ``limit`` of them, out of ``total``."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None when this one reaches the end."""
        after = self.offset + len(self.items)
        return after if after < self.total and self.items else None

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "nextOffset": self.next_offset,
        }


def check_window(limit: int, offset: int) -> None:
    """Refuse a window the database cannot take (the API validates before this)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be 0 or more, got {offset}")


def fetch_page(
    conn: Connection,
    query: Select[Any],
    limit: int,
    offset: int,
    render: Callable[[Any], dict[str, Any]],
) -> Page:
    """Count ``query``'s rows, then fetch one window of it (it must already be ordered by
    a unique key, so consecutive pages neither repeat nor skip a row)."""
    check_window(limit, offset)
    total = int(
        conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    )
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return Page([render(r) for r in rows], total, limit, offset)


def window(items: list[dict[str, Any]], limit: int, offset: int) -> Page:
    """A page of a list already computed in full (histories, aggregates)."""
    check_window(limit, offset)
    return Page(items[offset : offset + limit], len(items), limit, offset)
