"""Reading the pages' query strings and forms: typed values or a message naming the field.

A regulator types into these boxes by hand; a malformed id or date must come back as the
same page with the field marked, never as a server error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from ledger.ids import InvalidInput

DAY = 86_400


class FormError(InvalidInput):
    """One field the user must fix (``field``, ``problem``), shown beside the form."""


def text(value: str | None, max_len: int = 200) -> str | None:
    """A trimmed free-text value, None when empty."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    return value[:max_len]


def hex32(value: str | None, field: str) -> bytes | None:
    """A 32-byte id or digest typed as ``0x`` + 64 hex digits (None when empty)."""
    value = text(value)
    if value is None:
        return None
    body = value[2:] if value[:2].lower() == "0x" else value
    if len(body) != 64:
        raise FormError(field, "expected 0x followed by 64 hex digits")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise FormError(field, "expected 0x followed by 64 hex digits") from None


def day(value: str | None, field: str, *, end: bool = False) -> int | None:
    """A ``YYYY-MM-DD`` date (UTC) as Unix seconds: its first second, or with ``end``
    its last, so "until 2026-11-30" includes that whole day."""
    value = text(value)
    if value is None:
        return None
    try:
        start = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise FormError(field, "expected a date as YYYY-MM-DD") from None
    seconds = int(start.timestamp())
    return seconds + DAY - 1 if end else seconds


def offset(value: str | None) -> int:
    """A page offset: a non-negative integer, 0 when absent or malformed (a hand-edited
    URL then simply shows the first page)."""
    try:
        number = int(value) if value else 0
    except ValueError:
        return 0
    return max(number, 0)


def choice(value: str | None, field: str, allowed: tuple[str, ...]) -> str | None:
    """One of ``allowed`` (None when empty)."""
    value = text(value)
    if value is None:
        return None
    if value not in allowed:
        raise FormError(field, f"expected one of: {', '.join(allowed)}")
    return value


Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


def period(value: str | None) -> Period:
    chosen = choice(value, "period", PERIODS)
    for p in PERIODS:
        if p == chosen:
            return p
    return "day"
