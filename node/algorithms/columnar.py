"""Column-wise local work on a provider's rows: row selection, exact sums, category counts.

A provider's local statistics are plaintext work on its own data, so they should run at
the speed of a columnar engine, not of a Python loop over dicts. Everything here works
on a pyarrow table (the form the dataset store holds) with numpy and pyarrow compute.

Exactness matters more than speed: a sum of squares of 60-bit values over millions of
rows needs ~140 bits, and a float or a wrapped int64 would silently give a wrong
aggregate. ``exact_sums`` therefore splits each int64 value into three limbs whose
products fit in int64 even when summed over a chunk of 2^16 rows, and assembles the
totals as Python integers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ledger.rows import Column, arrow_type, decimal_array, decimal_strings, decimal_unscaled

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LIMB = 20  # bits; values are |v| < 2^63, so the top limb is below 2^23 in magnitude
_CHUNK = 1 << 16  # rows per partial sum: 2^16 * 2^46 < 2^63 for any limb product
_COMPARE = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Filter(Protocol):
    """A ``column op value`` row filter (read-only, as frozen dataclasses are)."""

    @property
    def column(self) -> str: ...

    @property
    def op(self) -> str: ...

    @property
    def value(self) -> int | str: ...


def as_table(
    rows: pa.Table | Sequence[Mapping[str, int | str]], columns: Sequence[Column]
) -> pa.Table:
    """The rows as a table with exactly ``columns`` (int64 / string / decimal128(18, s)),
    type-checked.

    A table is checked, not converted: a provider computes only on the schema it
    committed to. A list of dicts (tests, small callers) is checked value by value so a
    wrong type names its row, as the row-wise code did.
    """
    schema = pa.schema([(c.name, arrow_type(c)) for c in columns])
    if isinstance(rows, pa.Table):
        missing = [c.name for c in columns if c.name not in rows.column_names]
        if missing:
            raise ValueError(f"rows: missing column {missing[0]!r}")
        table = rows.select([c.name for c in columns])
        for c in columns:
            if not table.schema.field(c.name).type.equals(arrow_type(c)):
                raise ValueError(
                    f"rows: column {c.name!r} must be {arrow_type(c)} ({c.type}), "
                    f"got {table.schema.field(c.name).type}"
                )
        if table.num_rows and any(table.column(c.name).null_count for c in columns):
            raise ValueError("rows: null values are not allowed")
        return table
    kinds = {"integer": int, "string": str, "decimal": str}  # decimals as canonical text
    for c in columns:
        kind = kinds[c.type]
        for i, row in enumerate(rows):
            if c.name not in row:
                raise ValueError(f"row {i}: missing column {c.name!r}")
            value = row[c.name]
            if type(value) is not kind:
                raise ValueError(
                    f"row {i}: column {c.name!r} must be {kind.__name__}, "
                    f"got {type(value).__name__}"
                )
            if kind is int and not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                raise ValueError(f"row {i}: column {c.name!r} is outside the 64-bit range")
    arrays = []
    for c in columns:
        values = [r[c.name] for r in rows]
        if c.type == "decimal":
            arrays.append(_decimal_values(c, values))
        else:
            arrays.append(pa.array(values, arrow_type(c)))
    return pa.Table.from_arrays(arrays, schema=schema)


def _decimal_values(column: Column, values: Sequence[object]) -> pa.Array:
    """Decimal text (at most the column's scale of digits after the point) as decimal128."""
    out = []
    for i, value in enumerate(values):
        try:
            number = Decimal(str(value))
            scaled = number.scaleb(column.scale, Context(prec=60))
        except InvalidOperation:
            raise ValueError(
                f"row {i}: column {column.name!r}: {value!r} is not a decimal"
            ) from None
        if not number.is_finite() or scaled != scaled.to_integral_value():
            raise ValueError(
                f"row {i}: column {column.name!r}: {value!r} is not a decimal with at most "
                f"{column.scale} digits after the point"
            )
        out.append(int(scaled))
    return (
        decimal_array(np.array(out, np.int64), column.scale)
        if out
        else pa.array([], arrow_type(column))
    )


def selection_mask(table: pa.Table, row_filter: Filter | None) -> BoolArray | None:
    """Which rows a filter selects; None when there is no filter (every row)."""
    if row_filter is None:
        return None
    column = table.column(row_filter.column)
    if pa.types.is_decimal(column.type):  # exact: the scaled integers, compared in numpy
        scaled = decimal_unscaled(column)
        wanted = _scaled(str(row_filter.value), column.type.scale)
        return np.asarray(OPERATORS[row_filter.op](scaled, wanted), dtype=np.bool_)
    compare = _COMPARE[row_filter.op]
    selected = compare(column, pa.scalar(row_filter.value))
    return np.asarray(selected.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _scaled(text: str, scale: int) -> int:
    """A validated decimal filter value (``stats`` checked it fits the column) x 10^scale."""
    return int(Decimal(text).scaleb(scale, Context(prec=60)))


@dataclass(frozen=True)
class StoredFilter:
    column: str
    op: str
    value: int | str


def filter_from_json(data: Mapping[str, Any] | None) -> StoredFilter | None:
    """A recorded selection (``{"column", "op", "value"}`` or None) as a filter."""
    if data is None:
        return None
    return StoredFilter(str(data["column"]), str(data["op"]), data["value"])


def selected_count(table: pa.Table, mask: BoolArray | None) -> int:
    return table.num_rows if mask is None else int(np.count_nonzero(mask))


def difference(a: BoolArray | None, b: BoolArray | None, rows: int) -> int:
    """Rows in exactly one of two selections (None selects every row)."""
    if a is None and b is None:
        return 0
    if a is None or b is None:
        other = b if a is None else a
        assert other is not None
        return rows - int(np.count_nonzero(other))
    return int(np.count_nonzero(a ^ b))


def int_values(table: pa.Table, name: str, mask: BoolArray | None) -> IntArray:
    """An integer column's values, or a decimal column's scaled integers (x 10^scale)."""
    column = table.column(name)
    if pa.types.is_decimal(column.type):
        values = decimal_unscaled(column)
    else:
        values = np.asarray(column.to_numpy(), dtype=np.int64)
    return values if mask is None else values[mask]


def exact_sums(values: IntArray) -> tuple[int, int]:
    """(sum, sum of squares) of int64 values, exactly, as Python integers."""
    total = squares = 0
    for start in range(0, len(values), _CHUNK):
        v = values[start : start + _CHUNK]
        low = v & ((1 << _LIMB) - 1)
        mid = (v >> _LIMB) & ((1 << _LIMB) - 1)
        high = v >> (2 * _LIMB)  # arithmetic shift: carries the sign
        s_low, s_mid, s_high = (int(x.sum()) for x in (low, mid, high))
        total += s_low + (s_mid << _LIMB) + (s_high << (2 * _LIMB))
        hh, hm, hl = int((high * high).sum()), int((high * mid).sum()), int((high * low).sum())
        mm, ml, ll = int((mid * mid).sum()), int((mid * low).sum()), int((low * low).sum())
        # v^2 = h^2 2^80 + 2hm 2^60 + (2hl + m^2) 2^40 + 2ml 2^20 + l^2
        squares += (
            (hh << (4 * _LIMB))
            + ((2 * hm) << (3 * _LIMB))
            + ((2 * hl + mm) << (2 * _LIMB))
            + ((2 * ml) << _LIMB)
            + ll
        )
    return total, squares


def category_counts(
    table: pa.Table, name: str, mask: BoolArray | None, categories: Sequence[int | str]
) -> list[int]:
    """Selected rows per category, in the order given (absent categories count 0); a
    decimal column's categories are its canonical text (``ledger.rows.decimal_text``)."""
    column = table.column(name)
    if pa.types.is_decimal(column.type):
        column = decimal_strings(column, column.type.scale)
    if mask is not None:
        column = column.filter(pa.array(mask, type=pa.bool_()))
    counts = pc.value_counts(column)
    found = dict(
        zip(
            counts.field("values").to_pylist(),
            counts.field("counts").to_pylist(),
            strict=True,
        )
    )
    return [int(found.get(c, 0)) for c in categories]
