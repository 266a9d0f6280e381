"""The ``columns`` of a task's parameters, shared by every algorithm that reads a table.

Why one module: the columns a task names are checked against the provider's dataset
schema by the runner (``schema_digest(params.columns)``), so every algorithm must parse
and print them by the same rules, or one algorithm could accept a description another
refuses for the same data. It is among each such algorithm's digest sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.rows import COLUMN_TYPES, MAX_SCALE, Column

__all__ = ["MAX_COLUMNS", "InvalidParams", "column_json", "parse_columns"]

MAX_COLUMNS = 256


class InvalidParams(ValueError):
    """Parameters the computation cannot run with; ``field`` names the offending one."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_columns(value: object) -> tuple[Column, ...]:
    if value is None:
        raise InvalidParams("columns", "is required")
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_COLUMNS:
        raise InvalidParams("columns", f"must be a list of 1..{MAX_COLUMNS} columns")
    out: list[Column] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"columns[{i}]"
        if (
            not isinstance(item, Mapping)
            or not {"name", "type"} <= set(item)
            or not set(item) <= {"name", "type", "scale", "identifier"}
        ):
            raise InvalidParams(
                where,
                'must be {"name": ..., "type": ...} with optional "scale" (decimal columns) '
                'and "identifier"',
            )
        name, kind = item["name"], item["type"]
        if not isinstance(name, str) or not name:
            raise InvalidParams(f"{where}.name", "must be a non-empty string")
        if kind not in COLUMN_TYPES:
            raise InvalidParams(f"{where}.type", f"must be one of {list(COLUMN_TYPES)}")
        scale = item.get("scale")
        if kind == "decimal" and not (isinstance(scale, int) and _is_int(scale)):
            scale = None
        if kind == "decimal" and (scale is None or not 1 <= scale <= MAX_SCALE):
            raise InvalidParams(
                f"{where}.scale",
                f"a decimal column needs its scale, an integer in 1..{MAX_SCALE}, got {scale!r}",
            )
        if kind != "decimal" and "scale" in item:
            raise InvalidParams(f"{where}.scale", f"only decimal columns have one ({kind})")
        identifier = item.get("identifier", False)
        if not isinstance(identifier, bool):
            raise InvalidParams(f"{where}.identifier", "must be true or false")
        if name in seen:
            raise InvalidParams(f"{where}.name", f"duplicate column {name!r}")
        seen.add(name)
        out.append(Column(name, kind, identifier, scale if isinstance(scale, int) else 0))
    return tuple(out)


def column_json(column: Column) -> dict[str, Any]:
    """A column as in the parameters: scale for decimals, identifier only when marked
    (so ``schema_digest(params.columns)`` is the dataset's when they describe it)."""
    entry: dict[str, Any] = {"name": column.name, "type": column.type}
    if column.type == "decimal":
        entry["scale"] = column.scale
    if column.identifier:
        entry["identifier"] = True
    return entry
