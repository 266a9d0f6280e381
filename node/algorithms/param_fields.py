"""The fields every algorithm's parameters read alike: the JSON object with only its
schema's keys, integers and finite numbers in range, column names, the minimum group
size.

Why one module: a task's parameters are parsed by the creator's node, by every
participant's node and by the auditor, each from the same JSON; one parser per rule
means the same JSON is accepted or refused everywhere for the same reason, named the
same way (``InvalidParams.field``). It is among the digest sources of every algorithm
that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from node.algorithms.task_columns import InvalidParams

__all__ = [
    "INT_LIMIT",
    "column_name",
    "integer",
    "is_int",
    "json_object",
    "min_group_size",
    "number",
]

INT_LIMIT = 2**53 - 1  # integers in params must survive RFC 8785 canonical JSON


def is_int(value: object) -> TypeGuard[int]:
    """An integer that is not a bool (JSON's true is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def json_object(raw: object, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` as parameters of ``schema``: a JSON object with none but its properties
    and every one it requires; otherwise `InvalidParams` naming the first offender."""
    if not isinstance(raw, Mapping):
        raise InvalidParams("params", "must be a JSON object")
    unknown = sorted(str(k) for k in set(raw) - set(schema["properties"]))
    if unknown:
        raise InvalidParams(unknown[0], "unknown parameter")
    for required in schema.get("required", ()):
        if required not in raw:
            raise InvalidParams(required, "is required")
    return raw


def integer(data: Mapping[str, Any], name: str, default: object, low: int, high: int) -> int:
    """``data[name]`` (``default`` when absent): an integer in ``low..high``."""
    value = data.get(name, default)
    if not is_int(value) or not low <= value <= high:
        raise InvalidParams(name, f"must be an integer in {low}..{high}, got {value!r}")
    return int(value)


def number(data: Mapping[str, Any], name: str, default: object, *, positive: bool) -> float:
    """``data[name]`` (``default`` when absent): a finite number, > 0 when ``positive``,
    else >= 0."""
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParams(name, f"must be a finite number, got {value!r}")
    if (positive and value <= 0) or value < 0:
        raise InvalidParams(name, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def column_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParams(name, "must be a non-empty column name (string)")
    return value


def min_group_size(raw: Mapping[str, Any]) -> int | None:
    """``min_group_size``: absent or null, or an integer >= 1."""
    value = raw.get("min_group_size")
    if value is not None and (not is_int(value) or not 1 <= value <= INT_LIMIT):
        raise InvalidParams("min_group_size", f"must be an integer >= 1, got {value!r}")
    return value
