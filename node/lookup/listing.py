"""Reading the files of anonymous lookups: what providers publish and what queriers screen.

Why this module exists: a provider's list and a querier's book of accounts arrive as CSV
or Parquet files written by people, with identifiers in every spelling
(``+86 138 0013 8000``, ``0086-13800138000``, full-width digits). Both sides must turn a
row into exactly the OPRF input ``x`` of ``node.lookup.inputs`` — otherwise a listed
identifier silently never matches — and must do so for 10^6 rows in seconds, so the
identifiers go through ``identifiers.normalise_column`` (vectorised) rather than the
scalar rule, and repeated values in the small columns (``type``, ``list``, ``labels``,
``event_time``) are parsed once per distinct value.

The two kinds of file fail differently, on purpose (formats in ``docs/lookup-files.md``):

* a **publish** file (and an element **verification** file) is refused whole on any bad
  row — nothing partial is published, since a half-published list would look like a
  list with entries removed — and one :class:`InvalidRowsError` reports every bad row
  (the first :data:`MAX_REPORTED` of them) so a provider can fix them all in one go;
* a **screening** file never stops at a bad row — a bulk screen of 10^6 existing accounts
  must not fail because of one mistyped phone number — the row is reported as skipped,
  with its reason, and the rest are screened, chunk by chunk.

Row numbers count data rows from 1 (the header is row 0), the same for CSV and Parquet;
in a CSV without line breaks inside quoted fields, row ``N`` is on line ``N + 1``.
No message ever contains a whole cell value: values are shown through
``identifiers.redact``, since a value in the wrong column may be an identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import ClassVar, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ledger.ids import InvalidInput
from node.algorithms.identifiers import KINDS, identifier_tag, normalise_column, redact
from node.datasets import read_csv  # the project's strict CSV reading (csv module rules)
from node.lookup import inputs
from node.lookup.union import LABEL_MAX, LABEL_PATTERN, MAX_LABELS

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "FUTURE_SLACK",
    "LABEL_MAX",
    "MAX_EVENT_TIME",
    "MAX_IDENTIFIER_BYTES",
    "MAX_REPORTED",
    "MIN_EVENT_TIME",
    "PUBLISH_COLUMNS",
    "SCREEN_COLUMNS",
    "VERIFY_COLUMNS",
    "BadEventTimeError",
    "BadLabelError",
    "DuplicateColumnError",
    "InvalidRowsError",
    "ListedEntry",
    "ListingError",
    "ListingFileError",
    "MissingColumnError",
    "MissingKindError",
    "RefusedIdentifierError",
    "RowError",
    "ScreenChunk",
    "ScreenFile",
    "ScreenQuery",
    "UnknownColumnError",
    "UnknownKindError",
    "UnknownListNameError",
    "open_screen_file",
    "read_publish_file",
    "read_verify_file",
]

PUBLISH_COLUMNS: Final = ("identifier", "type", "labels", "event_time", "list")
VERIFY_COLUMNS: Final = ("id", "id_type", *inputs.ELEMENT_KINDS)
SCREEN_COLUMNS: Final = ("identifier", "type")

MAX_REPORTED: Final = 20
"""Bad rows listed in one :class:`InvalidRowsError`; ``total`` counts all of them."""
DEFAULT_CHUNK_ROWS: Final = 10_000
MIN_EVENT_TIME: Final = 100_000_000
"""1973-03-03T09:46:40Z. Earlier times are refused: no listed event is that old, and an
ISO basic date such as ``20261130`` would otherwise be read as unix seconds in 1970."""
MAX_EVENT_TIME: Final = 253_402_300_799
"""9999-12-31T23:59:59Z. Integer times above it are refused: they are almost always
milliseconds (or an identifier in the wrong column) rather than seconds."""
FUTURE_SLACK: Final = 86_400
"""An event time may be at most this far after ``now`` (clock skew, a zone mix-up).
Anything later is refused: a multi-head window (``event_time <= now``) would silently
never count it, and it usually means a wrong column or unit."""

_INT_TIME: Final = r"^[0-9]{1,16}$"
MAX_IDENTIFIER_BYTES: Final = 4096
"""A normalised identifier longer than this is refused (``too-long``). No real one comes
close, and the cap keeps every OPRF input, even an element verification composite of
two identifiers, under RFC 9497's 65 535-byte input limit."""
_NUMBER_COLUMNS: Final = ("identifier", "id", *inputs.ELEMENT_KINDS)  # may be Parquet integers
_KIND_CODE: Final = {kind: i for i, kind in enumerate(KINDS)}
_LIST_CODE: Final = {name: i for i, name in enumerate(inputs.MEMBERSHIP_LISTS)}

IntArray = npt.NDArray[np.int64]


# --- errors ----------------------------------------------------------------------------


class ListingError(ValueError):
    """Base of every error about a lookup file; ``file`` is the path as given."""

    def __init__(self, file: str, detail: str) -> None:
        self.file = file
        self.detail = detail
        super().__init__(f"{file}: {detail}")


class ListingFileError(ListingError):
    """The file as a whole cannot be read: missing, wrong suffix, not CSV/Parquet, a
    malformed CSV line, a Parquet column of a type this format does not take."""


class MissingColumnError(ListingError):
    """A required column is absent from the header."""

    def __init__(self, file: str, column: str, found: Sequence[str]) -> None:
        self.column = column
        super().__init__(
            file,
            f"no {column!r} column (header row 0 has {', '.join(map(repr, found)) or 'nothing'});"
            " add it, see docs/lookup-files.md",
        )


class UnknownColumnError(ListingError):
    """A column this kind of file does not have; refused rather than ignored, because a
    misspelt ``lables`` would otherwise silently publish entries without labels."""

    def __init__(self, file: str, columns: Sequence[str], allowed: Sequence[str]) -> None:
        self.columns = tuple(columns)
        super().__init__(
            file,
            f"unknown column(s) {', '.join(map(repr, columns))} in header row 0; "
            f"the columns are {', '.join(allowed)} (rename or remove the others)",
        )


class DuplicateColumnError(ListingError):
    """Two header names that are equal after trimming and lower-casing."""

    def __init__(self, file: str, column: str) -> None:
        self.column = column
        super().__init__(file, f"column {column!r} appears twice in header row 0")


class RowError(ListingError):
    """One bad cell: names the file, the row (data rows from 1; header = row 0) and the
    column. Raised inside :class:`InvalidRowsError` by the publish readers, returned as
    a skipped row by screening."""

    code: ClassVar[str] = "bad-row"
    hint: ClassVar[str] = ""

    def __init__(self, file: str, row: int, column: str, problem: str) -> None:
        self.row = row
        self.column = column
        self.problem = problem
        hint = f"; {self.hint}" if self.hint else ""
        super().__init__(file, f"row {row}, column {column!r}: {problem}{hint}")


class UnknownKindError(RowError):
    code = "unknown-type"
    hint = f"use one of {', '.join(KINDS)}"


class MissingKindError(RowError):
    code = "missing-type"
    hint = "fill in the type, or give a default type for the whole file"


class UnknownListNameError(RowError):
    code = "unknown-list"
    hint = (
        f"use one of {', '.join(inputs.MEMBERSHIP_LISTS)} "
        "(element verification records go in a verify file)"
    )


class BadEventTimeError(RowError):
    code = "bad-event-time"


_TIME_FORMS: Final = (
    "write an ISO 8601 date (2026-11-30, read as 00:00 UTC), a date-time with zone "
    "(2026-11-30T09:30:00+08:00 or ...Z) or integer unix seconds"
)


class BadLabelError(RowError):
    code = "bad-label"
    hint = (
        f"labels are 1-{LABEL_MAX} characters of a-z 0-9 _ - separated by ';', at most {MAX_LABELS}"
    )


class RefusedIdentifierError(RowError):
    """An identifier the rules of its kind refuse (``identifiers.Reason``)."""

    code = "refused-identifier"
    hint = "see docs/identifiers.md for the rule of each type"

    def __init__(self, file: str, row: int, column: str, kind: str, reason: str, shown: str):
        self.kind = kind
        self.reason = reason
        self.redacted = shown
        super().__init__(file, row, column, f"{kind} identifier {shown} refused: {reason}")


class InvalidRowsError(ListingError):
    """Every bad row of a publish or verify file, at once; nothing from the file is used.

    ``errors`` holds the first :data:`MAX_REPORTED` problems in row order (each a named
    :class:`RowError`), ``total`` how many there are in all.
    """

    def __init__(self, file: str, errors: Sequence[RowError], total: int) -> None:
        self.errors = tuple(errors)
        self.total = total
        lines = [f"  {e.detail}" for e in self.errors]
        if total > len(self.errors):
            lines.append(f"  ... and {total - len(self.errors)} more")
        super().__init__(
            file,
            f"{total} bad cell(s); nothing from this file was used, fix them and try again "
            "(rows count from 1 after the header):\n" + "\n".join(lines),
        )


# --- results ---------------------------------------------------------------------------


class ListedEntry(NamedTuple):
    """One entry to publish: ``input`` is the OPRF input ``x`` (``inputs.membership_input``
    or ``inputs.element_input``), evaluated into ``union.Entry.prf`` by the publisher."""

    list_name: str
    input: bytes
    labels: frozenset[str]
    event_time: int


class ScreenQuery(NamedTuple):
    """The OPRF input to query for data row ``row`` (from 1) of a screening file."""

    row: int
    input: bytes


@dataclass(frozen=True, slots=True)
class ScreenChunk:
    """Rows ``first_row .. first_row + row_count - 1``: each is in exactly one of
    ``queries`` and ``skipped`` (both in row order)."""

    first_row: int
    row_count: int
    queries: tuple[ScreenQuery, ...]
    skipped: tuple[RowError, ...]


# --- reading files ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A file's normalised header and its rows as Arrow record batches."""

    file: str
    columns: tuple[str, ...]
    total_rows: int
    batches: Callable[[int], Iterator[pa.RecordBatch]]


def _open(path: Path, allowed: Sequence[str], required: Sequence[str]) -> _Source:
    """Header checks (duplicates, unknown, missing) and a way to read the rows.

    CSV goes through ``node.datasets``' reader, so every file the dataset import accepts
    (and only those) is accepted here too, with the same errors for a malformed line.
    """
    file = str(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            header, csv_batches = read_csv(path)
        except InvalidInput as exc:
            raise ListingFileError(file, str(exc)) from None
        columns = _check_header(file, header, allowed, required)
        records = [pa.RecordBatch.from_arrays(b.values, names=list(columns)) for b in csv_batches]
        total = sum(r.num_rows for r in records)
        return _Source(file, columns, total, lambda size: _rechunk(iter(records), size))
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except FileNotFoundError:
            raise ListingFileError(file, "the file does not exist") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise ListingFileError(file, f"not a Parquet file ({exc})") from None
        names = parquet.schema_arrow.names
        columns = _check_header(file, names, allowed, required)
        _check_parquet_types(file, columns, parquet.schema_arrow.types)

        def parquet_batches(size: int) -> Iterator[pa.RecordBatch]:
            for batch in parquet.iter_batches(batch_size=size):
                yield pa.RecordBatch.from_arrays(batch.columns, names=list(columns))

        return _Source(file, columns, parquet.metadata.num_rows, parquet_batches)
    raise ListingFileError(file, "expected a .csv or .parquet file")


def _check_parquet_types(file: str, columns: Sequence[str], types: Sequence[pa.DataType]) -> None:
    """Refuse a column of the wrong type when the file is opened, not at its first chunk:
    each column's converter is run on an empty array of its type."""
    for column, kind in zip(columns, types, strict=True):
        empty = pa.array([], kind)
        if column == "event_time":
            _event_times(file, empty, 0, 0, [])
        else:
            _text(file, column, empty, numbers=column in _NUMBER_COLUMNS)


def _check_header(
    file: str, header: Sequence[str], allowed: Sequence[str], required: Sequence[str]
) -> tuple[str, ...]:
    """Header names trimmed and lower-cased (a spreadsheet's BOM dropped), then checked."""
    columns: list[str] = []
    for i, raw in enumerate(header):
        name = (raw.removeprefix("\ufeff") if i == 0 else raw).strip().lower()
        if name in columns:
            raise DuplicateColumnError(file, name)
        columns.append(name)
    for column in required:
        if column not in columns:
            raise MissingColumnError(file, column, columns)
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise UnknownColumnError(file, unknown, allowed)
    return tuple(columns)


def _rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly ``size`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            piece = batch.slice(offset, size - held)
            pending.append(piece)
            held += piece.num_rows
            offset += piece.num_rows
            if held == size:
                yield _concat(pending)
                pending, held = [], 0
    if held:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _whole(source: _Source) -> dict[str, pa.Array]:
    """Every column of a (publish or verify) file as one Arrow array each."""
    batches = list(source.batches(max(source.total_rows, 1)))  # one batch: one copy
    if not batches:
        return {c: pa.array([], pa.string()) for c in source.columns}
    table = pa.Table.from_batches(batches).combine_chunks()
    return {c: table.column(c).combine_chunks() for c in source.columns}


def _text(file: str, column: str, values: pa.Array, numbers: bool = False) -> pa.Array:
    """A column as strings. Parquet integers are taken for identifier columns only
    (phone or card numbers stored as numbers); anything else must already be text."""
    kind = values.type
    if pa.types.is_string(kind):
        return values
    if pa.types.is_dictionary(kind):
        return _text(file, column, values.dictionary_decode(), numbers)
    if (
        pa.types.is_large_string(kind)
        or pa.types.is_null(kind)
        or (numbers and pa.types.is_integer(kind))
    ):
        return values.cast(pa.string())
    raise ListingFileError(
        file, f"column {column!r} has Parquet type {kind}; write it as strings (UTF-8)"
    )


def _distinct(values: pa.Array) -> tuple[list[str | None], IntArray]:
    """(distinct values, each row's index into them): small columns are parsed once per
    distinct value instead of once per row."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return encoded.dictionary.to_pylist(), indices


# --- per-column parsing ----------------------------------------------------------------

_Found = list[tuple[IntArray, Callable[[int], RowError]]]  # (0-based rows, error maker)


def _codes(
    file: str,
    column: str,
    values: pa.Array | None,
    n: int,
    default: str | None,
    known: dict[str, int],
    unknown: type[RowError],
    found: _Found,
) -> IntArray:
    """Each row's index into ``known`` (-1 where bad) for a ``type`` or ``list`` column."""
    fallback = -1 if default is None else known[default]
    if values is None:
        if fallback < 0:
            raise MissingColumnError(file, column, ())
        return np.full(n, fallback, np.int64)
    distinct, indices = _distinct(_text(file, column, values))
    lut = np.empty(len(distinct), np.int64)
    for j, value in enumerate(distinct):
        name = (value or "").strip().lower()
        if not name:
            lut[j] = fallback
            if fallback < 0:
                found.append(
                    (
                        np.flatnonzero(indices == j),
                        _maker(MissingKindError, file, column, "empty"),
                    )
                )
            continue
        lut[j] = known.get(name, -1)
        if lut[j] < 0:
            problem = f"unknown value {redact(value or '')}"
            found.append((np.flatnonzero(indices == j), _maker(unknown, file, column, problem)))
    return lut[indices]


def _labels(
    file: str, values: pa.Array | None, n: int, found: _Found
) -> tuple[list[frozenset[str]], IntArray]:
    """(distinct label sets, each row's index into them); bad cells reported."""
    if values is None:
        return [frozenset()], np.zeros(n, np.int64)
    distinct, indices = _distinct(_text(file, "labels", values))
    sets: list[frozenset[str]] = []
    for j, cell in enumerate(distinct):
        parsed, problem = _parse_labels(cell or "")
        sets.append(parsed)
        if problem:
            found.append(
                (
                    np.flatnonzero(indices == j),
                    _maker(BadLabelError, file, "labels", problem),
                )
            )
    return sets, indices


def _parse_labels(cell: str) -> tuple[frozenset[str], str | None]:
    labels = [piece.strip().lower() for piece in cell.split(";")]
    if len({label for label in labels if label}) > MAX_LABELS:
        return frozenset(), f"{len(labels)} labels; at most {MAX_LABELS}"
    for i, label in enumerate(labels, start=1):
        if len(label) > LABEL_MAX:
            return frozenset(), f"label {i} has {len(label)} characters"
        if label and not LABEL_PATTERN.fullmatch(label):
            bad = sorted({c for c in label if not LABEL_PATTERN.fullmatch(c)})
            shown = " ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad)
            return frozenset(), f"label {i} contains {shown}"
    return frozenset(label for label in labels if label), None


def _event_times(file: str, values: pa.Array | None, n: int, now: int, found: _Found) -> IntArray:
    """Unix seconds per row; ``now`` where the cell is empty or the column absent."""
    if values is None:
        return np.full(n, now, np.int64)
    kind = values.type
    if pa.types.is_integer(kind):
        try:
            times = np.asarray(values.cast(pa.int64()).fill_null(now).to_numpy(), np.int64)
        except pa.ArrowInvalid:
            raise ListingFileError(
                file, "column 'event_time' holds integers beyond int64"
            ) from None
    elif pa.types.is_timestamp(kind):
        if kind.tz is None:
            raise ListingFileError(
                file,
                "column 'event_time' holds timestamps without a time zone; store them "
                "as UTC (timezone-aware) timestamps",
            )
        unit = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
        raw = np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False))
        times = np.where(_null(values), now, raw // unit).astype(np.int64)
    elif pa.types.is_date(kind):
        days = values.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        times = np.where(_null(values), now, np.asarray(days, np.int64) * 86_400).astype(np.int64)
    else:
        times = _string_times(file, _text(file, "event_time", values), now, found)
    _range_check(file, times, now, found)
    return times


def _null(values: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False), np.bool_)


def _string_times(file: str, values: pa.Array, now: int, found: _Found) -> IntArray:
    text = pc.utf8_trim_whitespace(values.fill_null(""))
    times = np.full(len(text), now, np.int64)
    integer = np.asarray(pc.match_substring_regex(text, _INT_TIME).to_numpy(zero_copy_only=False))
    if integer.any():
        rows = np.flatnonzero(integer)
        times[rows] = np.asarray(text.take(pa.array(rows)).cast(pa.int64()).to_numpy(), np.int64)
    length = np.asarray(pc.utf8_length(text).to_numpy(zero_copy_only=False))
    rows = np.flatnonzero(~integer & (length > 0))
    if not len(rows):
        return times
    distinct, indices = _distinct(text.take(pa.array(rows)))
    parsed = np.empty(len(distinct), np.int64)
    for j, value in enumerate(distinct):
        seconds, problem = _parse_time(value or "")
        parsed[j] = now if seconds is None else seconds
        if problem:
            found.append(
                (
                    rows[indices == j],
                    _maker(BadEventTimeError, file, "event_time", problem),
                )
            )
    times[rows] = parsed[indices]
    return times


def _parse_time(value: str) -> tuple[int | None, str | None]:
    """ISO 8601 date (midnight UTC) or date-time with zone, to whole unix seconds."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return int(datetime.combine(day, time(), UTC).timestamp()), None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None, f"not a date, a date-time or unix seconds; {_TIME_FORMS}"
    if moment.tzinfo is None:
        return None, "a date-time without a time zone; add Z or an offset like +08:00"
    return int(moment.timestamp() // 1), None


def _range_check(file: str, times: IntArray, now: int, found: _Found) -> None:
    checks = (
        (
            times < MIN_EVENT_TIME,
            "before 1973-03-03 (a date without dashes? write it as 2026-11-30)",
        ),
        (times > MAX_EVENT_TIME, "after year 9999 (milliseconds instead of seconds?)"),
        (
            (times > now + FUTURE_SLACK) & (times <= MAX_EVENT_TIME),
            f"more than a day after now ({now}); event times are when the event happened",
        ),
    )
    for mask, problem in checks:
        rows = np.flatnonzero(mask)
        if len(rows):
            found.append((rows, _maker(BadEventTimeError, file, "event_time", problem)))


def _normalised(
    file: str,
    column: str,
    values: pa.Array,
    kind: str,
    rows: IntArray,
    country: str,
    found: _Found,
) -> tuple[IntArray, pa.Array]:
    """The rows (0-based, of the file) whose identifier ``kind`` accepts, and their
    normalised values framed as in ``inputs`` (``len(u16) || UTF-8``); refused rows are
    reported with a redacted value."""
    subset = values.take(pa.array(rows, pa.int64()))
    out, refused = normalise_column(kind, subset, country=country)
    too_long = np.asarray(
        pc.greater(pc.binary_length(out), MAX_IDENTIFIER_BYTES)
        .fill_null(False)
        .to_numpy(zero_copy_only=False),
        np.bool_,
    )
    for i, reason in refused:
        original = subset[i].as_py() or ""
        found.append((rows[i : i + 1], _refusal(file, column, kind, reason, original)))
    for j in np.flatnonzero(too_long).tolist():
        original = subset[j].as_py() or ""
        found.append((rows[j : j + 1], _refusal(file, column, kind, "too-long", original)))
    ok = np.asarray(out.is_valid().to_numpy(zero_copy_only=False), np.bool_) & ~too_long
    keep = np.flatnonzero(ok)
    return rows[keep], _framed(out.take(pa.array(keep, pa.int64())))


def _framed(values: pa.Array) -> pa.Array:
    """``len(value)`` as a big-endian u16, then the value: ``inputs``' framing of a part,
    over a whole column at once (values are at most ``MAX_IDENTIFIER_BYTES``)."""
    data = values.cast(pa.binary())
    lengths = np.asarray(pc.binary_length(data).to_numpy(zero_copy_only=False), ">u2")
    prefix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(2), len(data), [None, pa.py_buffer(lengths.tobytes())]
    ).cast(pa.binary())
    return pc.binary_join_element_wise(prefix, data, b"")


def _joined(*parts: pa.Array | bytes) -> pa.Array:
    """Row-wise concatenation of binary columns and constant byte strings."""
    return pc.binary_join_element_wise(
        *(pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in parts), b""
    )


def _maker(cls: type[RowError], file: str, column: str, problem: str) -> Callable[[int], RowError]:
    """A deferred error: only the first few of a column's bad rows are ever built."""

    def make(row: int) -> RowError:
        return cls(file, row, column, problem)

    return make


def _refusal(
    file: str, column: str, kind: str, reason: str, original: str
) -> Callable[[int], RowError]:
    shown = redact(original)
    return lambda row: RefusedIdentifierError(file, row, column, kind, reason, shown)


def _in_row_order(pieces: Sequence[tuple[IntArray, pa.Array]], n: int) -> pa.Array:
    """One column of ``n`` rows from pieces covering every row exactly once."""
    if not pieces:
        return pa.array([], pa.binary())
    rows = np.concatenate([r for r, _ in pieces])
    assert len(rows) == n  # every row without a piece was reported as an error
    return pa.concat_arrays([x for _, x in pieces]).take(pa.array(np.argsort(rows)))


def _raise_found(file: str, columns: Sequence[str], found: _Found) -> None:
    if not found:
        return
    total = sum(len(rows) for rows, _ in found)
    order = {c: i for i, c in enumerate(columns)}
    errors = [make(int(r) + 1) for rows, make in found for r in rows[:MAX_REPORTED]]
    errors.sort(key=lambda e: (e.row, order.get(e.column, len(order))))
    raise InvalidRowsError(file, errors[:MAX_REPORTED], total)


def _check_caller(now: int, default_kind: str | None, country: str) -> None:
    if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now <= MAX_EVENT_TIME:
        raise ValueError(f"now must be unix seconds in [0, {MAX_EVENT_TIME}], got {now!r}")
    if default_kind is not None:
        identifier_tag(default_kind)  # raises UnknownIdentifierKind
    normalise_column("phone", [], country=country)  # raises ValueError for a bad country


# --- publish files ---------------------------------------------------------------------


def read_publish_file(
    path: Path | str,
    *,
    now: int,
    default_list: str = "blacklist",
    default_kind: str | None = None,
    country: str = "86",
) -> list[ListedEntry]:
    """The entries a provider publishes from a CSV/Parquet list file, in order of first
    appearance.

    Rows listing the same identifier on the same list (however it is written) are
    merged into one entry: labels united, latest event time. ``union.build_union``
    merges per provider too, but merging here first means one OPRF evaluation per
    identifier instead of one per row. Any bad cell raises :class:`InvalidRowsError`
    naming all of them (the first :data:`MAX_REPORTED`); header problems raise
    :class:`MissingColumnError`, :class:`UnknownColumnError`,
    :class:`DuplicateColumnError`; an unreadable file :class:`ListingFileError`.
    """
    _check_caller(now, default_kind, country)
    if default_list not in _LIST_CODE:
        raise inputs.UnknownListError(
            f"unknown default list {default_list!r}; expected one of {inputs.MEMBERSHIP_LISTS}"
        )
    required = ("identifier",) if default_kind is not None else ("identifier", "type")
    source = _open(Path(path), PUBLISH_COLUMNS, required)
    file, table = source.file, _whole(source)
    n = len(table["identifier"])
    found: _Found = []
    kinds = _codes(
        file, "type", table.get("type"), n, default_kind, _KIND_CODE, UnknownKindError, found
    )
    lists = _codes(
        file, "list", table.get("list"), n, default_list, _LIST_CODE, UnknownListNameError, found
    )
    label_sets, label_of = _labels(file, table.get("labels"), n, found)
    times = _event_times(file, table.get("event_time"), n, now, found)
    identifier = _text(file, "identifier", table["identifier"], numbers=True)

    pieces: list[tuple[IntArray, pa.Array]] = []
    for k, kind in enumerate(KINDS):
        rows = np.flatnonzero(kinds == k)  # checked whatever the list, to report everything
        if not len(rows):
            continue
        ok_rows, framed = _normalised(file, "identifier", identifier, kind, rows, country, found)
        listed = lists[ok_rows] >= 0
        heads = pa.array([inputs.membership_head(name, kind) for name in inputs.MEMBERSHIP_LISTS])
        head = heads.take(pa.array(lists[ok_rows][listed]))
        pieces.append((ok_rows[listed], _joined(head, framed.filter(pa.array(listed)))))
    _raise_found(file, source.columns, found)
    return _merged(_in_row_order(pieces, n), lists, label_sets, label_of, times)


def _merged(
    xs: pa.Array,
    lists: IntArray,
    label_sets: Sequence[frozenset[str]],
    label_of: IntArray,
    times: IntArray,
) -> list[ListedEntry]:
    """One entry per distinct input, in order of first appearance: labels united, latest
    event time. Arrow's dictionary encoding finds the groups (its dictionary is in
    first-appearance order) and numpy reduces them, so 10^6 rows take about a second
    and no per-row Python objects besides the entries themselves."""
    encoded = pc.dictionary_encode(xs)
    group = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    label_index, latest, first = label_of, times, np.arange(len(xs))
    multi: list[tuple[int, IntArray]] = []  # (group, its rows) where labels differ
    if len(encoded.dictionary) < len(xs):  # some input is repeated
        order = np.argsort(group, kind="stable")
        ordered = group[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        first = order[starts]
        latest = np.maximum.reduceat(times[order], starts)
        label_index = np.minimum.reduceat(label_of[order], starts)
        differ = np.flatnonzero(label_index != np.maximum.reduceat(label_of[order], starts))
        ends = np.r_[starts[1:], len(order)]
        multi = [(g, order[starts[g] : ends[g]]) for g in differ.tolist()]
    labels = [label_sets[i] for i in label_index.tolist()]
    for g, rows in multi:
        labels[g] = frozenset().union(*(label_sets[i] for i in set(label_of[rows].tolist())))
    names = [inputs.MEMBERSHIP_LISTS[c] for c in lists[first].tolist()]
    return list(map(ListedEntry, names, encoded.dictionary.to_pylist(), labels, latest.tolist()))


# --- element verification files --------------------------------------------------------


def read_verify_file(
    path: Path | str,
    *,
    now: int,
    default_kind: str | None = None,
    country: str = "86",
) -> list[ListedEntry]:
    """Element verification entries: one per non-empty element cell, on list ``verify``.

    Each is ``inputs.element_input(id_type, id, field, element)`` — "the record for this
    ID has this element" — with no labels and ``event_time = now``; a repeated
    (ID, field, element) gives one entry. Empty element cells are skipped (a member need
    not hold every element); bad cells raise :class:`InvalidRowsError` as for publish.
    """
    _check_caller(now, default_kind, country)
    required = ("id",) if default_kind is not None else ("id", "id_type")
    source = _open(Path(path), VERIFY_COLUMNS, required)
    fields = [c for c in source.columns if c in inputs.ELEMENT_KINDS]
    if not fields:
        raise MissingColumnError(
            source.file, f"element ({', '.join(inputs.ELEMENT_KINDS)})", source.columns
        )
    file, table = source.file, _whole(source)
    n = len(table["id"])
    found: _Found = []
    kinds = _codes(
        file, "id_type", table.get("id_type"), n, default_kind, _KIND_CODE, UnknownKindError, found
    )
    ids = _text(file, "id", table["id"], numbers=True)
    subjects: list[tuple[IntArray, pa.Array]] = []  # verify head || framed normalised ID
    for k, kind in enumerate(KINDS):
        rows = np.flatnonzero(kinds == k)
        if len(rows):
            ok_rows, framed = _normalised(file, "id", ids, kind, rows, country, found)
            subjects.append((ok_rows, _joined(inputs.verify_head(kind), framed)))

    elements: list[tuple[IntArray, bytes, pa.Array]] = []
    for field in fields:
        element_kind = inputs.ELEMENT_KINDS[field]
        values = _text(file, field, table[field], numbers=True)
        filled = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(values.fill_null(""))), 0)
        rows = np.flatnonzero(np.asarray(filled.to_numpy(zero_copy_only=False), np.bool_))
        ok_rows, framed = _normalised(file, field, values, element_kind, rows, country, found)
        elements.append((ok_rows, inputs.element_head(field), framed))
    _raise_found(file, source.columns, found)

    subject = _in_row_order(subjects, n)
    if not elements or not n:
        return []
    xs = pa.concat_arrays(
        [_joined(subject.take(pa.array(rows)), tail, framed) for rows, tail, framed in elements]
    )
    rows = np.concatenate([r for r, _, _ in elements])
    field_of = np.concatenate([np.full(len(r), i) for i, (r, _, _) in enumerate(elements)])
    ordered = pc.unique(xs.take(pa.array(np.lexsort((field_of, rows)))))  # row, then field
    empty: frozenset[str] = frozenset()
    return [ListedEntry(inputs.VERIFY_LIST, x, empty, now) for x in ordered.to_pylist()]


# --- screening files -------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenFile:
    """An opened screening file: header checked, rows read chunk by chunk.

    ``total_rows`` is known before screening starts (for a progress bar). Iterating
    yields :class:`ScreenChunk` s of ``chunk_rows`` rows, so only one chunk's inputs are
    Python objects at a time (a CSV's text is held as Arrow strings, a Parquet file is
    streamed).
    """

    path: str
    list_name: str
    total_rows: int
    chunk_rows: int
    _source: _Source
    _default_kind: str | None
    _country: str

    def __iter__(self) -> Iterator[ScreenChunk]:
        first = 1
        for batch in self._source.batches(self.chunk_rows):
            yield self._screen(first, batch)
            first += batch.num_rows

    def _screen(self, first: int, batch: pa.RecordBatch) -> ScreenChunk:
        file, n = self.path, batch.num_rows
        columns = dict(zip(self._source.columns, batch.columns, strict=True))
        found: _Found = []
        kinds = _codes(
            file,
            "type",
            columns.get("type"),
            n,
            self._default_kind,
            _KIND_CODE,
            UnknownKindError,
            found,
        )
        identifier = _text(file, "identifier", columns["identifier"], numbers=True)
        pieces: list[tuple[IntArray, pa.Array]] = []
        for k, kind in enumerate(KINDS):
            rows = np.flatnonzero(kinds == k)
            if len(rows):
                ok_rows, framed = _normalised(
                    file, "identifier", identifier, kind, rows, self._country, found
                )
                pieces.append(
                    (ok_rows, _joined(inputs.membership_head(self.list_name, kind), framed))
                )
        queries: tuple[ScreenQuery, ...] = ()
        if pieces:
            rows = np.concatenate([r for r, _ in pieces])
            order = np.argsort(rows)
            xs = pa.concat_arrays([x for _, x in pieces]).take(pa.array(order))
            queries = tuple(map(ScreenQuery, (rows[order] + first).tolist(), xs.to_pylist()))
        skipped = sorted(
            (make(first + int(r)) for rows, make in found for r in rows), key=lambda e: e.row
        )
        return ScreenChunk(first, n, queries, tuple(skipped))


def open_screen_file(
    path: Path | str,
    *,
    list_name: str = "blacklist",
    default_kind: str | None = None,
    country: str = "86",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ScreenFile:
    """Open a screening file (``identifier`` and optional ``type`` columns) for
    ``list_name``. Header problems raise here; bad rows never do — they come back as
    ``ScreenChunk.skipped`` with their reason (a :class:`RowError`, value redacted)."""
    _check_caller(0, default_kind, country)
    if list_name not in _LIST_CODE:
        raise inputs.UnknownListError(
            f"unknown lookup list {list_name!r}; expected one of {inputs.MEMBERSHIP_LISTS}"
        )
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    required = ("identifier",) if default_kind is not None else ("identifier", "type")
    source = _open(Path(path), SCREEN_COLUMNS, required)
    return ScreenFile(
        source.file, list_name, source.total_rows, chunk_rows, source, default_kind, country
    )
