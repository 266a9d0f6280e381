"""Query and path parameters: their OpenAPI declarations and their parsing.

Ids arrive as ``0x`` + hex; an organisation may also be named (``bank-a``), a dataset
as ``ORG/NAME`` (the spelling ``provnet`` commands use) and a purpose as its text. A
value that cannot be an id is a 422 naming the parameter; a well-formed id that names
nothing simply matches nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from sqlalchemy import Connection, select

from auditor.api.errors import invalid
from auditor.index import schema
from auditor.index.schema import INT64_MAX
from auditor.query.paging import DEFAULT_LIMIT, MAX_LIMIT
from ledger.ids import InvalidInput, dataset_id_for, name_id

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1..{MAX_LIMIT}).")]
Offset = Annotated[
    int, Query(ge=0, le=INT64_MAX, description="Items to skip (the previous page's nextOffset).")
]
FormatParam = Annotated[
    Literal["json", "csv"],
    Query(alias="format", description="json (default) or csv (a download, same columns)."),
]


def time_query(description: str, alias: str | None = None) -> Any:
    """A Unix-seconds query parameter (bounded so every database can compare it)."""
    return Query(ge=0, le=INT64_MAX, alias=alias, description=description)


DEFAULT = DEFAULT_LIMIT

_HEX = frozenset("0123456789abcdef")


def _hex_bytes(value: str, field: str, size: int) -> bytes:
    text = value.strip().lower()
    digits = text[2:] if text.startswith("0x") else None
    if digits is None or len(digits) != 2 * size or not set(digits) <= _HEX:
        raise invalid(field, f"expected 0x and {2 * size} hex digits, got {value[:80]!r}")
    return bytes.fromhex(digits)


def id32(value: str, field: str) -> bytes:
    """A 32-byte id or digest: ``0x`` and 64 hex digits."""
    return _hex_bytes(value, field, 32)


def address(value: str, field: str) -> bytes:
    """A 20-byte account address: ``0x`` and 40 hex digits (any case)."""
    return _hex_bytes(value, field, 20)


def _looks_hex(value: str) -> bool:
    return value.strip().lower().startswith("0x")


def org_ref(conn: Connection, value: str, field: str) -> bytes:
    """An organisation by id (``0x``...) or by its registered name."""
    if _looks_hex(value):
        return id32(value, field)
    o = schema.organisations
    found = conn.execute(
        select(o.c.org_id).where(o.c.name == value).order_by(o.c.block_number.desc()).limit(1)
    ).scalar()
    if found is None:
        raise invalid(field, f"no organisation is named {value[:80]!r}; give its name or 0x id")
    return bytes(found)


def dataset_ref(conn: Connection, value: str, field: str) -> bytes:
    """A dataset by id (``0x``...) or as ``ORG/NAME`` (its owner and registered name)."""
    if _looks_hex(value):
        return id32(value, field)
    owner, sep, name = value.partition("/")
    if not sep or not owner or not name:
        raise invalid(field, f"expected a 0x dataset id or ORG/NAME, got {value[:80]!r}")
    try:
        return dataset_id_for(org_ref(conn, owner, field), name_id("dataset", name))
    except InvalidInput as exc:
        raise invalid(field, exc.problem) from None


def purpose_ref(value: str, field: str) -> bytes:
    """A purpose by id (``0x``...) or by its text (hashed as the node hashes it)."""
    if _looks_hex(value):
        return id32(value, field)
    try:
        return name_id("purpose", value)
    except InvalidInput as exc:
        raise invalid(field, exc.problem) from None
