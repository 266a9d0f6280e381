"""The datasets a node holds, on its own disk, with the secret that salts their rows.

A registered dataset version is immutable: its rows (``rows.parquet``), schema and
recorded root (``meta.json``) and the per-version salt key (``salt.key``) are written
once, to a new directory, and renamed into place only when complete, so a crash
mid-import never leaves a half-written version that could later be committed to chain
or computed on.

Loading recomputes the root from the stored rows and refuses a version that no longer
matches it, so a node never computes on (or proves rows of) data that was altered on
disk. Versions written before rows were stored as Parquet (``rows.jsonl``, one JSON
object per line) are still read and verified the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ledger.ids import InvalidInput
from ledger.rows import Column
from node.datasets import ImportedDataset, arrow_schema, table_root

ROWS_FILE = "rows.parquet"
LEGACY_ROWS_FILE = "rows.jsonl"


@dataclass(frozen=True)
class StoredVersion:
    dataset_id: bytes
    version: int
    data: ImportedDataset
    classification: int


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _dir(self, dataset_id: bytes, version: int) -> Path:
        return self.root / dataset_id.hex() / f"v{version}"

    def save(
        self, dataset_id: bytes, version: int, data: ImportedDataset, classification: int
    ) -> None:
        """Write a version once; refuses to replace an existing one."""
        target = self._dir(dataset_id, version)
        if target.exists():
            raise InvalidInput("dataset version", f"0x{dataset_id.hex()} v{version} already stored")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
        try:
            meta = {
                "columns": [_column_json(c) for c in data.columns],
                "merkleRoot": data.merkle_root.hex(),
                "rowCount": data.row_count,
                "classification": classification,
                "rows": ROWS_FILE,
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2))
            pq.write_table(data.table.cast(arrow_schema(data.columns)), staging / ROWS_FILE)
            key = staging / "salt.key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.version_key)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def load(self, dataset_id: bytes, version: int) -> StoredVersion | None:
        """The stored version, re-verified against its recorded root; None if absent."""
        directory = self._dir(dataset_id, version)
        if not directory.is_dir():
            return None
        meta = json.loads((directory / "meta.json").read_text())
        columns = _columns(meta)
        table = self._rows(directory, meta, columns)
        key = (directory / "salt.key").read_bytes()
        altered = InvalidInput(
            "dataset store", f"0x{dataset_id.hex()} v{version} no longer matches its root"
        )
        if table is None or table.num_rows != int(meta["rowCount"]):
            raise altered
        root = table_root(key, columns, table)
        if root.hex() != meta["merkleRoot"]:
            raise altered
        data = ImportedDataset(columns, table, key, root, table.num_rows)
        return StoredVersion(dataset_id, version, data, int(meta["classification"]))

    def columns(self, dataset_id: bytes, version: int) -> list[Column] | None:
        """A stored version's schema from its metadata alone (no rows read or checked)."""
        meta_file = self._dir(dataset_id, version) / "meta.json"
        if not meta_file.is_file():
            return None
        return _columns(json.loads(meta_file.read_text()))

    def versions(self) -> list[tuple[bytes, int]]:
        found = []
        for ds in sorted(self.root.iterdir()):
            if not ds.is_dir() or ds.name.startswith("."):
                continue
            for v in sorted(ds.iterdir()):
                if v.is_dir() and v.name.startswith("v") and v.name[1:].isdigit():
                    found.append((bytes.fromhex(ds.name), int(v.name[1:])))
        return found

    @staticmethod
    def _rows(directory: Path, meta: dict[str, Any], columns: list[Column]) -> pa.Table | None:
        """The stored rows as a table of the schema's types; None if they do not fit it
        (which can only mean they were altered)."""
        schema = arrow_schema(columns)
        if meta.get("rows") == ROWS_FILE:
            table = pq.read_table(directory / ROWS_FILE)
            return table if table.schema.equals(schema) else None
        with (directory / LEGACY_ROWS_FILE).open() as fh:
            rows = [json.loads(line) for line in fh]
        if not all(_fits(row, columns) for row in rows):
            return None
        return pa.Table.from_pylist(rows, schema=schema)


def _column_json(column: Column) -> dict[str, Any]:
    """A column in ``meta.json``; a decimal's scale is also in the Parquet type, and the
    two must agree on load (``_rows`` compares the stored schema with this one)."""
    entry: dict[str, Any] = {
        "name": column.name,
        "type": column.type,
        "identifier": column.identifier,
    }
    if column.type == "decimal":
        entry["scale"] = column.scale
    return entry


def _columns(meta: dict[str, Any]) -> list[Column]:
    return [
        Column(c["name"], c["type"], bool(c.get("identifier", False)), int(c.get("scale", 0)))
        for c in meta["columns"]
    ]


def _fits(row: object, columns: list[Column]) -> bool:
    """A legacy JSON row holds exactly the schema's columns with values of their types
    (Arrow would silently drop an extra key, which the old root check would catch)."""
    if not isinstance(row, dict) or len(row) != len(columns):
        return False
    for c in columns:
        value = row.get(c.name)
        wanted = {"integer": int, "string": str}.get(c.type)  # no legacy decimal versions
        if wanted is None or type(value) is not wanted:
            return False
    return True
