"""Import a dataset file column-wise into Arrow and compute its on-chain commitment.

Types are inferred per column so that the canonical row encoding, and hence the
commitment, does not depend on how a CSV writer happened to quote numbers:

* an identifier column (``identifier_columns``) is always a string column, however
  numeric it looks: account numbers must keep their leading zeros;
* integer where every value parses as one (as before: ASCII or Unicode digits, an
  optional ``-``, surrounding spaces, at most 18 characters);
* decimal where every value is a number (``-``? digits, optional ``.`` fraction,
  optional exponent ``e``/``E``; ASCII digits; spaces or tabs around) and at least one
  has a fraction or an exponent. The scale is the largest number of digits after the
  point any value is *written* with (``12.50`` has 2, ``1.5e-3`` has 4, ``1e3`` has 0),
  so ``10.00,12.5`` gives scale 2 and commits ``"10.00"``/``"12.50"``. Where that
  largest number is 0 (only integers and forms like ``1e3`` or ``1.5e1``) the column
  is an integer column of the exact integer values. A value with more than 18 digits
  after the point, or with more than 18 digits in all at the column's scale, is
  refused, naming the line: decimals are exact or not at all;
* string where no value is a number; a column mixing numbers and text is refused,
  naming the column, the line and the value, so "12.5" beside "n/a" or an empty field
  can never silently turn balances into text.

A file without rows (header only, or empty) is refused: a dataset of no rows commits
to nothing worth registering. A malformed file is rejected whole, naming the line,
before anything is registered.

Rows never become Python objects: a file is read in Arrow batches of strings (pass 1:
structure and type inference), the batches are converted to typed columns (pass 2),
and the commitment is computed chunk by chunk, on every core for big tables
(``ledger.rows.batch_subtree_roots`` in worker processes, whose subtree roots a
``merkle.RootBuilder`` folds). The commitment is byte for byte the one the row-wise
reference functions of ``ledger.rows`` define; tests hold the two paths equal.

Which files are accepted, and what they contain, is exactly what Python's ``csv``
module in strict mode said before this path existed: Arrow reads the files in which
the two cannot differ (no quotes, no blank lines, nothing ``csv`` would refuse), and
any other file is read by ``csv`` itself, which then also names the offending line.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import secrets
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.rows import (
    DECIMAL_DIGITS,
    MAX_SAFE_INTEGER,
    MAX_SCALE,
    MAX_SCALED,
    Column,
    arrow_type,
    batch_subtree_roots,
    decimal_array,
    decimal_strings,
    ipc_subtree_roots,
    row_salts,
    schema_digest,
)

Row = dict[str, int | str]
MAX_COLUMNS = 256
# Rows per hashing task. A power of two, so every full chunk is one perfect subtree and
# a worker returns one hash for it; big enough that task overhead is noise.
CHUNK_ROWS = 1 << 16
# Below this many rows (or CSV bytes, ~30 per row), starting worker processes costs
# more than it saves.
POOL_MIN_ROWS = 1 << 17
POOL_MIN_BYTES = 4 << 20
MAX_WORKERS = 8
_READ_BLOCK = 4 << 20
_MAX_HEADER_BYTES = 1 << 20
# What _parses_as_int accepts without help: ASCII digits, an optional '-', <= 18 chars.
# Everything else (surrounding spaces, other Unicode digits...) is asked of it directly.
_PLAIN_INT = r"^(?:-[0-9]{1,17}|[0-9]{1,18})$"
# A number, as far as type inference is concerned (ASCII, as RE2 and ``re`` agree on):
# what Python's ``Decimal`` reads, without signs other than a leading '-', NaN or
# infinities, underscores or other Unicode digits.
_NUMBER = r"^[ \t]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*$"
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
# The common decimal form, converted without Python: '-'? digits '.' digits.
_PLAIN_DECIMAL = r"^-?[0-9]{1,18}\.[0-9]{0,18}$"
_PLAIN_PARTS = r"^(?P<sign>-?)(?P<whole>[0-9]{1,18})(?:\.(?P<fraction>[0-9]{0,18}))?$"
# What a value needs to be an integer by ``_parses_as_int`` but not a ``_NUMBER``.
_MAYBE_INT = r"[^\x00-\x7f]|[\n\r\x0b\x0c\x1c-\x1f]"
_IDENTIFIER_HINT = "fix the value, or mark the column as an identifier column, which is always text"


@dataclass(frozen=True)
class ImportedDataset:
    """One dataset version: its schema, rows as an Arrow table, and commitment.

    ``table`` has the columns in schema order, int64 for integer and string for string
    columns, no nulls. ``merkle_root`` is computed once, at import or load.
    """

    columns: list[Column]
    table: pa.Table
    version_key: bytes  # secret: derives the per-row salts
    merkle_root: bytes
    row_count: int

    @property
    def schema_digest(self) -> bytes:
        return schema_digest(self.columns)

    @property
    def rows(self) -> list[Row]:
        """The rows as Python dicts, as the row-wise reference commits to them (decimal
        values as their canonical text, ``ledger.rows.decimal_text``): for small data
        and tests only.

        A million rows take seconds and hundreds of MB this way; anything on a
        compute path works on ``table`` instead.
        """
        table = self.table
        for i, column in enumerate(self.columns):
            if column.type == "decimal":
                text = decimal_strings(table.column(i), column.scale)
                table = table.set_column(i, column.name, text)
        rows: list[Row] = table.to_pylist()
        return rows


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of a dataset's table (``ledger.rows.arrow_type`` per column)."""
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in columns])


# --- importing ---------------------------------------------------------------------


def import_file(
    path: Path, version_key: bytes | None = None, identifier_columns: Sequence[str] = ()
) -> ImportedDataset:
    """Dispatch on the file suffix: `.csv` or `.parquet`."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return import_csv(path, version_key, identifier_columns)
    if suffix in (".parquet", ".pq"):
        return import_parquet(path, version_key, identifier_columns)
    raise InvalidInput("dataset file", f"{path.name}: expected a .csv or .parquet file")


def import_csv(
    path: Path, version_key: bytes | None = None, identifier_columns: Sequence[str] = ()
) -> ImportedDataset:
    try:
        big = path.stat().st_size >= POOL_MIN_BYTES
    except FileNotFoundError:
        raise InvalidInput("dataset file", f"{path} does not exist") from None
    with hashing_pool() if big else nullcontext() as pool:  # workers start while we read
        header, batches = read_csv(path)
        marked = _identifier_names(header, identifier_columns)
        if not any(b.num_rows for b in batches):
            raise InvalidInput(
                "dataset file",
                f"{path.name} has a header but no rows: a dataset needs at least one row",
            )
        kinds = _infer(path.name, header, marked, batches)
        columns = [
            Column(name, kind.type, name in marked, kind.column_scale)
            for name, kind in zip(header, kinds, strict=True)
        ]
        table = _typed_table(path.name, columns, kinds, batches)
        return _committed(columns, table, version_key, pool)


def import_parquet(
    path: Path, version_key: bytes | None = None, identifier_columns: Sequence[str] = ()
) -> ImportedDataset:
    """Integer, string and decimal128 columns (a decimal of scale 0 is an integer
    column); floats are refused, being inexact, and so is every other type."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InvalidInput("dataset file", f"{path} does not exist") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput("dataset file", f"{path} is not a Parquet file ({exc})") from None
    _check_header(table.column_names)
    if not table.column_names:
        raise InvalidInput("dataset file", f"{path.name} has no columns")
    if not table.num_rows:
        raise InvalidInput(
            "dataset file", f"{path.name} has no rows: a dataset needs at least one row"
        )
    marked = _identifier_names(table.column_names, identifier_columns)
    columns = [
        _parquet_column(name, arrow_type_, name in marked)
        for name, arrow_type_ in zip(table.column_names, table.schema.types, strict=True)
    ]
    _check_parquet_values(path.name, columns, table)
    schema = arrow_schema(columns)
    typed = pa.Table.from_arrays(
        [_parquet_values(c, table.column(i)) for i, c in enumerate(columns)], schema=schema
    )
    return _committed(columns, typed, version_key)


def _parquet_column(name: str, arrow_type_: pa.DataType, identifier: bool) -> Column:
    if pa.types.is_integer(arrow_type_):
        return Column(name, "integer", identifier)
    if pa.types.is_string(arrow_type_) or pa.types.is_large_string(arrow_type_):
        return Column(name, "string", identifier)
    if pa.types.is_decimal128(arrow_type_) and 0 <= arrow_type_.scale <= MAX_SCALE:
        if arrow_type_.scale == 0:
            return Column(name, "integer", identifier)
        return Column(name, "decimal", identifier, arrow_type_.scale)
    if pa.types.is_decimal(arrow_type_):
        raise InvalidInput(
            f"column {name!r}",
            f"unsupported Parquet type {arrow_type_}: decimals are decimal128 with a scale "
            f"of 0..{MAX_SCALE} digits after the point",
        )
    if pa.types.is_floating(arrow_type_):
        raise InvalidInput(
            f"column {name!r}",
            f"floating-point values ({arrow_type_}) are not exact and are not accepted: "
            "write the column as decimal128 with the digits after the point it needs "
            "(e.g. pyarrow.decimal128(18, 2) for cents), or as integers",
        )
    raise InvalidInput(f"column {name!r}", f"unsupported Parquet type {arrow_type_}")


def _parquet_values(column: Column, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A checked Parquet column in the dataset's Arrow type."""
    if pa.types.is_decimal(values.type):
        scaled = _decimal128_words(values)[0]
        if column.type == "integer":
            return pa.array(scaled, pa.int64())
        return decimal_array(scaled, column.scale)
    return values.cast(arrow_type(column))


def _decimal128_words(
    values: pa.ChunkedArray,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.bool_]]]:
    """(low 64-bit words, "fits an int64" mask) of a decimal128 column (nulls read 0)."""
    array = values.combine_chunks()
    buffer = array.buffers()[1]
    if buffer is None or not len(array):
        return np.zeros(0, np.int64), np.zeros(0, np.bool_)
    words = np.frombuffer(buffer, "<i8")[2 * array.offset : 2 * (array.offset + len(array))]
    low, high = words[0::2].astype(np.int64), words[1::2]
    return low, np.asarray(high == (low >> 63))


def _check_parquet_values(file_name: str, columns: list[Column], table: pa.Table) -> None:
    """The first null or unencodable number in row order, as the row-wise code met it."""
    worst: tuple[int, int, str] | None = None  # (row, column index, problem)
    for i, column in enumerate(columns):
        values = table.column(i)
        bad = pc.is_null(values)
        problem = "null in column {name!r}"
        if pa.types.is_decimal(values.type):
            low, fits = _decimal128_words(values)
            limit = MAX_SAFE_INTEGER if column.type == "integer" else MAX_SCALED
            beyond = ~fits | (np.abs(low) > limit)
            if beyond.any():
                bad = pc.or_(pc.fill_null(bad, False), pa.array(beyond))
                problem = (
                    "null or integer beyond ±(2**53-1) in column {name!r}"
                    if column.type == "integer"
                    else f"null or decimal beyond {DECIMAL_DIGITS} digits in column {{name!r}}"
                )
        elif column.type == "integer" and values.type.bit_width == 64:  # narrower always fit
            high = pc.greater(values, pa.scalar(MAX_SAFE_INTEGER, values.type))
            if pa.types.is_signed_integer(values.type):
                high = pc.or_(high, pc.less(values, pa.scalar(-MAX_SAFE_INTEGER, values.type)))
            if pc.any(high).as_py():
                bad = pc.or_(bad, pc.fill_null(high, False))
                problem = "null or integer beyond ±(2**53-1) in column {name!r}"
        first = _first_true(bad)
        if first is not None and (worst is None or first < worst[0]):
            worst = (first, i, problem)
    if worst is not None:
        row, i, problem = worst
        raise InvalidInput(f"{file_name} row {row + 1}", problem.format(name=columns[i].name))


def _identifier_names(header: Sequence[str], identifier_columns: Sequence[str]) -> set[str]:
    known = set(header)
    for name in identifier_columns:
        if name not in known:
            raise InvalidInput(
                "identifierColumns", f"no column named {name!r} (columns: {', '.join(header)})"
            )
    return set(identifier_columns)


def _committed(
    columns: list[Column], table: pa.Table, version_key: bytes | None, pool: Executor | None = None
) -> ImportedDataset:
    key = version_key if version_key is not None else secrets.token_bytes(32)
    root = table_root(key, columns, table, pool)
    return ImportedDataset(columns, table, key, root, table.num_rows)


# --- reading CSV as string batches -------------------------------------------------


@dataclass
class _Batch:
    """Consecutive rows of a CSV file as string arrays, with where they are in it."""

    values: list[pa.Array]  # one string array per column
    first_line: int  # the line of row 0 when rows are one line each...
    lines: np.ndarray[Any, np.dtype[np.int64]] | None = None  # ...or each row's last line
    # Columns whose values here are all plain ASCII integers (found by inference).
    plain: set[int] = field(default_factory=set)

    @property
    def num_rows(self) -> int:
        return len(self.values[0]) if self.values else 0

    def line(self, row: int) -> int:
        return int(self.lines[row]) if self.lines is not None else self.first_line + row


def read_csv(path: Path) -> tuple[list[str], list[_Batch]]:
    """The header and all rows as string batches; InvalidInput naming the line if the
    file is not what ``csv.reader(strict=True)`` accepts with one field per column.

    Arrow reads the files it reads exactly as ``csv`` does (see ``_read_with_arrow``);
    every other file, and any file in which Arrow meets a problem, is read by ``csv``
    itself, so what is rejected, and the error reported, are what they always were.
    """
    try:
        quoted = _has_quote(path)
    except FileNotFoundError:
        raise InvalidInput("dataset file", f"{path} does not exist") from None
    read = None if quoted else _read_with_arrow(path)
    if read is not None:
        return read
    try:
        return _read_with_csv_module(path)
    except UnicodeDecodeError:
        raise InvalidInput("dataset file", f"{path} is not UTF-8 text") from None


def _has_quote(path: Path) -> bool:
    """Does the file hold a double quote? Quoting is where CSV parsers disagree, and
    Arrow is told to treat quotes as plain text, so such files go to ``csv``."""
    with path.open("rb") as handle:
        return any(b'"' in block for block in iter(lambda: handle.read(1 << 24), b""))


def _read_with_csv_module(path: Path) -> tuple[list[str], list[_Batch]]:
    """The strict ``csv`` reader: its rules define which files are accepted."""
    batches: list[_Batch] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if not header:
                raise InvalidInput("dataset file", f"{path} is empty (no header line)")
            _check_header(header)
            pending: list[list[str]] = [[] for _ in header]
            lines: list[int] = []
            for row in reader:
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path.name} line {reader.line_num}",
                        f"expected {len(header)} fields, got {len(row)}",
                    )
                for values, value in zip(pending, row, strict=True):
                    values.append(value)
                lines.append(reader.line_num)
                if len(lines) == CHUNK_ROWS:
                    batches.append(_string_batch(pending, lines))
                    pending, lines = [[] for _ in header], []
        except csv.Error as exc:
            raise InvalidInput(f"{path.name} line {reader.line_num}", str(exc)) from None
    if lines:
        batches.append(_string_batch(pending, lines))
    return header, batches


def _string_batch(values: list[list[str]], lines: list[int]) -> _Batch:
    arrays = [pa.array(v, pa.string()) for v in values]
    return _Batch(arrays, lines[0], np.array(lines, np.int64))


def _read_with_arrow(path: Path) -> tuple[list[str], list[_Batch]] | None:
    """Arrow's streaming reader, for files without quotes; None when the file is
    anything but plainly well-formed, for ``csv`` to read or report.

    In such a file every line is one row, split at commas, which is what ``csv``
    makes of it too, with these exceptions, all sent to ``csv``: what it would refuse
    and Arrow not (a header that is not UTF-8 or breaks the rules, rows of the wrong
    width, fields over ``csv.field_size_limit``), and blank lines, a row without
    fields to ``csv`` but a row of empty fields to Arrow (so any row of only empty
    fields goes to ``csv``). Arrow's dropping of a UTF-8 BOM is undone by taking the
    header from the raw first line.
    """
    header = _header_line(path)
    if header is None or _header_problem(header):
        return None
    names = [f"c{i}" for i in range(len(header))]
    limit = csv.field_size_limit()
    batches: list[_Batch] = []
    next_line = 1  # of the reader's next row; its first row is the header, dropped
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=_READ_BLOCK),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
        for record_batch in reader:
            batch = _Batch(record_batch.columns, next_line)
            if next_line == 1 and record_batch.num_rows:
                batch = _Batch([v[1:] for v in batch.values], 2)
            next_line += record_batch.num_rows
            if not _plainly_well_formed(batch, limit):
                return None
            batches.append(batch)
    except pa.ArrowInvalid:  # a row of the wrong width, invalid UTF-8, a huge row...
        return None
    return header, batches


def _plainly_well_formed(batch: _Batch, limit: int) -> bool:
    """No row of only empty fields (maybe a blank line) and no field over ``limit``
    characters (bytes first: a field has at least as many bytes as characters)."""
    if not batch.num_rows:
        return True
    blank = None
    for values in batch.values:
        lengths = pc.binary_length(values)
        if pc.max(lengths).as_py() > limit and pc.max(pc.utf8_length(values)).as_py() > limit:
            return False
        empty = pc.equal(lengths, 0)
        blank = empty if blank is None else pc.and_(blank, empty)
    return not pc.any(blank).as_py()


def _header_line(path: Path) -> list[str] | None:
    """The first line split at commas (``csv``'s reading of it, there being no quotes);
    None if it is empty, not UTF-8 or absurdly long."""
    with path.open("rb") as handle:
        head = handle.read(_MAX_HEADER_BYTES + 1)
    cut = min((i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0), default=len(head))
    if cut == 0 or cut > _MAX_HEADER_BYTES:
        return None
    try:
        return head[:cut].decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None


def _header_problem(header: list[str]) -> bool:
    try:
        _check_header(header)
    except InvalidInput:
        return True
    limit = csv.field_size_limit()
    return any(len(name) > limit for name in header)


def _check_header(header: list[str]) -> None:
    if len(header) > MAX_COLUMNS:
        raise InvalidInput("header", f"more than {MAX_COLUMNS} columns")
    seen = set()
    for i, name in enumerate(header):
        if not name.strip():
            raise InvalidInput(f"header column {i + 1}", "empty column name")
        if name in seen:
            raise InvalidInput(f"header column {i + 1}", f"duplicate column name {name!r}")
        seen.add(name)


# --- types ---------------------------------------------------------------------------


def _parses_as_int(value: str) -> bool:
    """The definition of an integer value; the vectorised checks defer to it."""
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text  # one sign, as int() takes it
    # isdecimal, not isdigit: superscripts and circled digits ('²', '①') are digits
    # that int() refuses; the decimal digits (Unicode Nd) are exactly what it reads.
    return digits.isdecimal() and len(text) <= 18


@dataclass
class _Kind:
    """What pass 1 learned of one column, batch after batch."""

    identifier: bool = False  # always a string column: no inference at all
    integer: bool = True  # every value so far parses as an integer (``_parses_as_int``)
    number: tuple[int, str] | None = None  # (line, value) of the first number
    text: tuple[int, str] | None = None  # ...of the first value that is no number
    scale: int = 0  # the most digits after the point any value is written with
    too_fine: tuple[int, str, int] | None = None  # first value with > MAX_SCALE of them

    @property
    def type(self) -> str:
        if self.identifier or self.number is None:
            return "string"
        if self.integer or self.scale == 0:
            return "integer"
        return "decimal"

    @property
    def column_scale(self) -> int:
        return self.scale if self.type == "decimal" else 0


def _infer(
    file_name: str, header: Sequence[str], marked: set[str], batches: list[_Batch]
) -> list[_Kind]:
    """Pass 1: each column's type (see the module docstring), refusing a column that
    mixes numbers and text or a decimal that cannot be held exactly."""
    kinds = [_Kind(identifier=name in marked) for name in header]
    for batch in batches:
        mixed: list[tuple[int, int]] = []  # (line, column) of the columns mixed by now
        for i, values in enumerate(batch.values):
            kind = kinds[i]
            if kind.identifier or not len(values):
                continue
            _observe(kind, batch, i, values)
            if kind.number is not None and kind.text is not None:
                mixed.append((max(kind.number[0], kind.text[0]), i))
        if mixed:  # the earliest line at which a column stopped being all numbers or text
            i = min(mixed)[1]
            number, text = kinds[i].number, kinds[i].text
            assert number is not None and text is not None
            raise _mixed(file_name, header[i], number, text)
    for name, kind in zip(header, kinds, strict=True):
        if kind.type != "string" and kind.too_fine is not None:
            line, value, digits = kind.too_fine
            raise InvalidInput(
                f"{file_name} line {line}",
                f"column {name!r}: {value!r} has {digits} digits after the point; a decimal "
                f"column keeps at most {MAX_SCALE} exactly, so round the value",
            )
    return kinds


def _mixed(
    file_name: str, name: str, number: tuple[int, str], text: tuple[int, str]
) -> InvalidInput:
    """The refusal of a column holding both numbers and text, naming the later of the
    first number and the first text: the value that broke the column's pattern."""

    def shown(value: str) -> str:
        return "an empty value" if not value.strip() else repr(value)

    if text[0] > number[0]:
        line = text[0]
        detail = (
            f"{shown(text[1])} is not a number, but line {number[0]} holds the number {number[1]!r}"
        )
    else:
        line = number[0]
        detail = f"{number[1]!r} is a number, but line {text[0]} holds the text {shown(text[1])}"
    return InvalidInput(
        f"{file_name} line {line}",
        f"column {name!r} mixes numbers and text: {detail}; {_IDENTIFIER_HINT} "
        f"(provnet dataset register --identifier-columns {name})",
    )


def _observe(kind: _Kind, batch: _Batch, column: int, values: pa.Array) -> None:
    """Fold one batch's values of a column into what is known of it."""
    plain = pc.match_substring_regex(values, _PLAIN_INT)
    if pc.all(plain).as_py():
        batch.plain.add(column)
        if kind.number is None:
            kind.number = (batch.line(0), values[0].as_py())
        return
    if kind.integer:
        kind.integer = _all_parse_as_int(values.filter(pc.invert(plain)))
    if kind.integer:  # all integers, some with spaces or non-ASCII digits
        if kind.number is None:
            kind.number = (batch.line(0), values[0].as_py())
        return
    numeric = _numbers(values)
    if kind.number is None and numeric.any():
        row = int(np.argmax(numeric))
        kind.number = (batch.line(row), values[row].as_py())
    if kind.text is None and not numeric.all():
        row = int(np.argmin(numeric))
        kind.text = (batch.line(row), values[row].as_py())
    if kind.text is not None:
        return  # no scale needed: the column is text, or mixed (refused)
    _observe_scale(kind, batch, values, numeric & ~_mask(plain))


def _observe_scale(
    kind: _Kind, batch: _Batch, values: pa.Array, candidates: np.ndarray[Any, np.dtype[np.bool_]]
) -> None:
    """The digits after the point of the numbers that are not plain integers: Arrow for
    the plain ``-12.50`` form, ``_fraction_digits`` for the rest (exponents, spaces)."""
    fast = candidates & _mask(pc.match_substring_regex(values, _PLAIN_DECIMAL))
    digits = np.zeros(len(values), np.int64)
    if fast.any():
        chosen = values.filter(pa.array(fast))
        point = pc.find_substring(chosen, ".")
        digits[fast] = pc.subtract(pc.subtract(pc.utf8_length(chosen), point), 1).to_numpy()
    for row in np.flatnonzero(candidates & ~fast).tolist():
        digits[row] = _fraction_digits(values[row].as_py())
    if not digits.size:
        return
    kind.scale = max(kind.scale, min(int(digits.max()), MAX_SCALE))
    fine = np.flatnonzero(digits > MAX_SCALE)
    if fine.size and kind.too_fine is None:
        row = int(fine[0])
        kind.too_fine = (batch.line(row), values[row].as_py(), int(digits[row]))


def _numbers(values: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which values are numbers: ``_NUMBER`` or an integer by ``_parses_as_int``.

    Beyond ``_NUMBER``, ``_parses_as_int`` accepts only non-ASCII digits and the
    whitespace ``str.strip`` removes, so only values holding a non-ASCII character or
    such whitespace are asked of it one by one.
    """
    numeric = _mask(pc.match_substring_regex(values, _NUMBER))
    maybe = ~numeric & _mask(pc.match_substring_regex(values, _MAYBE_INT))
    for row in np.flatnonzero(maybe).tolist():
        numeric[row] = _parses_as_int(values[row].as_py())
    return numeric


def _mask(values: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A boolean Arrow array (no nulls) as a writable numpy array."""
    return np.array(values.to_numpy(zero_copy_only=False), np.bool_)


_NUMBER_PARTS = re.compile(
    r"^[ \t]*(-?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?[ \t]*$", re.ASCII
)


def _number_parts(value: str) -> tuple[bool, int, int]:
    """(negative, digits, exponent) with value = +-digits x 10^exponent, the exponent as
    written (``12.50`` is (False, 1250, -2)): the definition of a number's value."""
    match = _NUMBER_PARTS.match(value) if _NUMBER_RE.match(value) else None
    if match is None:  # an integer by ``_parses_as_int`` (spaces, Unicode digits)
        number = int(value)
        return number < 0, abs(number), 0
    sign, whole, fraction, exponent = match.groups()
    fraction = fraction or ""
    digits = int((whole + fraction) or "0")
    return bool(sign) and digits != 0, digits, int(exponent or 0) - len(fraction)


def _fraction_digits(value: str) -> int:
    """How many digits after the point ``value`` is written with (``1.5e-3``: 4)."""
    return max(0, -_number_parts(value)[2])


def _scaled_value(value: str, scale: int) -> int | None:
    """value x 10^scale exactly, or None if that has more than DECIMAL_DIGITS digits."""
    negative, digits, exponent = _number_parts(value)
    shift = exponent + scale
    if shift < 0:  # more digits after the point than the scale: pass 1 prevents it
        digits, rest = divmod(digits, 10**-shift)
        if rest:
            raise ValueError(f"{value!r} has more than {scale} digits after the point")
    elif digits and len(str(digits)) + shift > DECIMAL_DIGITS:
        return None
    else:
        digits *= 10**shift
    result: int = -digits if negative else digits
    return result


def _all_parse_as_int(values: pa.Array) -> bool:
    """``all(_parses_as_int(v) for v in values)``, materialising a slice at a time: a
    string column usually fails on its first value."""
    step = 256
    for start in range(0, len(values), step):
        if not all(map(_parses_as_int, values.slice(start, step).to_pylist())):
            return False
    return True


def _typed_table(
    file_name: str, columns: list[Column], kinds: list[_Kind], batches: list[_Batch]
) -> pa.Table:
    """Pass 2: integer columns converted as ``int()`` would, numbers with a fraction or
    exponent exactly (``_to_scaled``), strings kept. Consumes ``batches`` so each string
    batch is freed once converted."""
    schema = arrow_schema(columns)
    typed = []
    while batches:
        batch = batches.pop(0)
        arrays = [
            _typed(file_name, column, kind, batch, i)
            for i, (column, kind) in enumerate(zip(columns, kinds, strict=True))
        ]
        typed.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(typed, schema=schema)


def _typed(file_name: str, column: Column, kind: _Kind, batch: _Batch, i: int) -> pa.Array:
    if column.type == "string":
        return batch.values[i]
    if kind.integer:
        return _to_int64(file_name, column.name, batch, i)
    scaled = _to_scaled(file_name, column, batch, i)
    if column.type == "integer":
        return pa.array(scaled, pa.int64())
    return decimal_array(scaled, column.scale)


def _to_scaled(
    file_name: str, column: Column, batch: _Batch, i: int
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The column's numbers x 10^scale as int64, exactly, range-checked: the plain
    ``-12.50`` form column-wise, anything else through ``_scaled_value``."""
    values, scale = batch.values[i], column.scale
    limit = MAX_SCALED if column.type == "decimal" else MAX_SAFE_INTEGER
    parts = pc.extract_regex(values, _PLAIN_PARTS)
    matched = _mask(pc.is_valid(parts))
    scaled = np.zeros(len(values), np.int64)
    beyond = np.zeros(len(values), np.bool_)
    if matched.any():
        plain = parts.filter(pa.array(matched))
        whole = pc.cast(plain.field("whole"), pa.int64()).to_numpy()
        fraction = np.zeros(len(plain), np.int64)
        if scale:
            padded = pc.utf8_rpad(plain.field("fraction"), scale, "0")
            fraction = pc.cast(padded, pa.int64()).to_numpy()
        fits = whole < 10 ** (DECIMAL_DIGITS - scale)
        magnitude = np.where(fits, whole, 0) * 10**scale + fraction
        negative = _mask(pc.equal(plain.field("sign"), "-"))
        scaled[matched] = np.where(negative, -magnitude, magnitude)
        beyond[matched] = ~fits
    for row in np.flatnonzero(~matched).tolist():
        value = _scaled_value(values[row].as_py(), scale)
        if value is None or abs(value) > limit:
            beyond[row] = True
        else:
            scaled[row] = value
    beyond |= np.abs(scaled) > limit
    if beyond.any():
        row = int(np.argmax(beyond))
        detail = (
            f"beyond {DECIMAL_DIGITS} digits, {scale} of them after the point: the exact "
            f"range of this decimal column"
            if column.type == "decimal"
            else "beyond ±(2**53-1), the integers a row's canonical JSON can hold"
        )
        raise InvalidInput(
            f"{file_name} line {batch.line(row)}",
            f"column {column.name!r}: {values[row].as_py()!r} is {detail}",
        )
    return scaled


def _to_int64(file_name: str, name: str, batch: _Batch, column: int) -> pa.Array:
    values = batch.values[column]
    if column in batch.plain:
        ints = pc.cast(values, pa.int64())
    else:  # spaces or non-ASCII digits: int() decides, as it did row by row
        plain = pc.match_substring_regex(values, _PLAIN_INT)
        numbers = np.zeros(len(values), np.int64)
        mask = np.asarray(plain.to_numpy(zero_copy_only=False), bool)
        numbers[mask] = pc.cast(values.filter(plain), pa.int64()).to_numpy()
        for row in np.flatnonzero(~mask).tolist():
            text = values[row].as_py()
            try:
                numbers[row] = int(text)
            except ValueError:
                raise InvalidInput(
                    f"{file_name} line {batch.line(row)}",
                    f"column {name!r}: {text!r} is not an integer",
                ) from None
        ints = pa.array(numbers, pa.int64())
    beyond = pc.or_(pc.less(ints, -MAX_SAFE_INTEGER), pc.greater(ints, MAX_SAFE_INTEGER))
    first = _first_true(beyond)
    if first is not None:
        raise InvalidInput(
            f"{file_name} line {batch.line(first)}",
            f"column {name!r}: {ints[first].as_py()} is beyond ±(2**53-1), the integers "
            "a row's canonical JSON can hold",
        )
    return ints


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first true value of a boolean Arrow array, or None."""
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


# --- the commitment ------------------------------------------------------------------


def table_root(
    version_key: bytes, columns: Sequence[Column], table: pa.Table, pool: Executor | None = None
) -> bytes:
    """The dataset commitment of a table: ``merkle.root(row_leaf_hashes(version_key,
    table.to_pylist()))``, computed chunk-wise, in worker processes for big tables.

    ``pool`` is one from ``hashing_pool``; without it, a pool is started here when
    the table is big enough to repay the start-up.
    """
    if pool is None and table.num_rows >= POOL_MIN_ROWS:
        with hashing_pool() as own:
            return table_root(version_key, columns, table, own)
    builder = merkle.RootBuilder()
    if pool is None:
        for start, batch in _chunks(table):
            _feed(builder, batch_subtree_roots(version_key, start, columns, batch))
        return builder.root()
    pending: deque[Future[list[tuple[int, bytes]]]] = deque()
    for start, batch in _chunks(table):
        pending.append(pool.submit(ipc_subtree_roots, version_key, start, columns, _ipc(batch)))
        if len(pending) > 2 * MAX_WORKERS:  # bounded: a big table is not copied whole
            _feed(builder, pending.popleft().result())
    while pending:
        _feed(builder, pending.popleft().result())
    return builder.root()


@contextmanager
def hashing_pool() -> Iterator[Executor | None]:
    """Worker processes for ``table_root``, one per usable core (None on one core).

    Started on entry, and each made to import the hashing code at once, so that a
    caller can overlap their start-up (a fresh interpreter each) with reading a file.
    They are spawned, not forked: the node runs this in a process with gRPC and web
    server threads, whose locks a forked child could inherit held. Like every spawned
    multiprocessing worker they re-import the main module, so a script using this must
    keep its top-level code under ``if __name__ == "__main__"``.
    """
    workers = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    if workers < 2:
        yield None
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for _ in range(workers):
            pool.submit(row_salts, bytes(32), 0, 0)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(table: pa.Table) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Aligned record batches of CHUNK_ROWS rows (the last may be shorter)."""
    for start in range(0, table.num_rows, CHUNK_ROWS):
        piece = table.slice(start, CHUNK_ROWS)
        arrays = [column.combine_chunks() for column in piece.columns]
        yield start, pa.RecordBatch.from_arrays(arrays, schema=piece.schema)


def _feed(builder: merkle.RootBuilder, roots: list[tuple[int, bytes]]) -> None:
    for size, root in roots:
        builder.append_subtree(root, size)


def _ipc(batch: pa.RecordBatch) -> bytes:
    """A batch as Arrow IPC bytes: unlike pickle, it sends a slice without its parent."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    data: bytes = sink.getvalue().to_pybytes()
    return data
