"""Import a dataset file into rows and compute its on-chain commitment.

Types are inferred per column (integer where every value parses as one, else string)
so that the canonical row encoding, and hence the commitment, does not depend on how a
CSV writer happened to quote numbers. A malformed file is rejected whole, naming the
line, before anything is registered.
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass
from pathlib import Path

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.rows import Column, row_leaf_hashes, schema_digest

Row = dict[str, int | str]
MAX_COLUMNS = 256


@dataclass(frozen=True)
class ImportedDataset:
    columns: list[Column]
    rows: list[Row]
    version_key: bytes  # secret: derives the per-row salts
    leaf_hashes: list[bytes]

    @property
    def merkle_root(self) -> bytes:
        return merkle.root(self.leaf_hashes)

    @property
    def schema_digest(self) -> bytes:
        return schema_digest(self.columns)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("dataset file", f"{path} does not exist") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if not header:
                raise InvalidInput("dataset file", f"{path} is empty (no header line)")
            _check_header(header)
            body = []
            for row in reader:
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path.name} line {reader.line_num}",
                        f"expected {len(header)} fields, got {len(row)}",
                    )
                body.append(row)
        except csv.Error as exc:
            raise InvalidInput(f"{path.name} line {reader.line_num}", str(exc)) from None
        except UnicodeDecodeError:
            raise InvalidInput("dataset file", f"{path} is not UTF-8 text") from None
    return header, body


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


def _parses_as_int(value: str) -> bool:
    text = value.strip()
    return bool(text) and text.lstrip("-").isdigit() and len(text) <= 18


def infer_columns(header: list[str], body: list[list[str]]) -> list[Column]:
    columns = []
    for i, name in enumerate(header):
        is_int = bool(body) and all(_parses_as_int(r[i]) for r in body)
        columns.append(Column(name, "integer" if is_int else "string"))
    return columns


def import_csv(path: Path, version_key: bytes | None = None) -> ImportedDataset:
    header, body = read_csv(path)
    columns = infer_columns(header, body)
    rows: list[Row] = [
        {c.name: int(v) if c.type == "integer" else v for c, v in zip(columns, r, strict=True)}
        for r in body
    ]
    return _committed(columns, rows, version_key)


def import_parquet(path: Path, version_key: bytes | None = None) -> ImportedDataset:
    """Integer and string columns only: anything else has no canonical encoding yet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InvalidInput("dataset file", f"{path} does not exist") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput("dataset file", f"{path} is not a Parquet file ({exc})") from None
    _check_header(table.column_names)
    columns = []
    for name, field in zip(table.column_names, table.schema, strict=True):
        if pa.types.is_integer(field.type):
            columns.append(Column(name, "integer"))
        elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            columns.append(Column(name, "string"))
        else:
            raise InvalidInput(f"column {name!r}", f"unsupported Parquet type {field.type}")
    rows: list[Row] = table.to_pylist()
    for i, row in enumerate(rows):
        for name, value in row.items():
            if value is None:
                raise InvalidInput(f"{path.name} row {i + 1}", f"null in column {name!r}")
    return _committed(columns, rows, version_key)


def import_file(path: Path, version_key: bytes | None = None) -> ImportedDataset:
    """Dispatch on the file suffix: `.csv` or `.parquet`."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return import_csv(path, version_key)
    if suffix in (".parquet", ".pq"):
        return import_parquet(path, version_key)
    raise InvalidInput("dataset file", f"{path.name}: expected a .csv or .parquet file")


def _committed(
    columns: list[Column], rows: list[Row], version_key: bytes | None
) -> ImportedDataset:
    key = version_key if version_key is not None else secrets.token_bytes(32)
    return ImportedDataset(columns, rows, key, row_leaf_hashes(key, rows))
