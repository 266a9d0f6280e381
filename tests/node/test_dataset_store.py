"""The node's dataset store: Parquet versions written once, re-verified on load, and
versions written by the earlier JSON-lines code still readable."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.rows import Column, row_leaf_hashes
from node import dataset_store
from node.dataset_store import DatasetStore
from node.datasets import ImportedDataset, import_csv

DS = bytes(range(32))
KEY = bytes(range(1, 33))


def imported(tmp_path: Path, identifiers: tuple[str, ...] = ()) -> ImportedDataset:
    path = tmp_path / "d.csv"
    path.write_text("id,amount\nA1,10\nA2,-3\n")
    return import_csv(path, identifier_columns=identifiers)


def version_dir(tmp_path: Path) -> Path:
    return tmp_path / "store" / DS.hex() / "v1"


def test_round_trip_and_write_once(tmp_path: Path) -> None:
    data = imported(tmp_path, identifiers=("id",))
    store = DatasetStore(tmp_path / "store")
    store.save(DS, 1, data, 3)
    loaded = store.load(DS, 1)
    assert loaded is not None
    assert loaded.data.rows == data.rows and loaded.data.merkle_root == data.merkle_root
    assert loaded.data.table.equals(data.table) and loaded.data.row_count == 2
    assert loaded.data.columns == data.columns
    assert loaded.data.columns[0].identifier and loaded.data.schema_digest == data.schema_digest
    assert loaded.classification == 3
    assert store.columns(DS, 1) == data.columns and store.columns(DS, 2) is None
    assert store.versions() == [(DS, 1)]
    assert store.load(DS, 2) is None
    files = sorted(p.name for p in version_dir(tmp_path).iterdir())
    assert files == ["meta.json", "rows.parquet", "salt.key"]
    meta = json.loads((version_dir(tmp_path) / "meta.json").read_text())
    assert meta["columns"][0] == {"name": "id", "type": "string", "identifier": True}
    key = version_dir(tmp_path) / "salt.key"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidInput, match="already stored"):
        store.save(DS, 1, data, 3)


def test_a_decimal_version_round_trips_with_its_scale(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,balance\nA1,10.5\nA2,-0.25\n")
    data = import_csv(path)
    assert data.columns[1] == Column("balance", "decimal", scale=2)
    store = DatasetStore(tmp_path / "store")
    store.save(DS, 1, data, 1)
    meta = json.loads((version_dir(tmp_path) / "meta.json").read_text())
    assert meta["columns"][1] == {
        "name": "balance",
        "type": "decimal",
        "identifier": False,
        "scale": 2,
    }
    assert pq.read_schema(version_dir(tmp_path) / "rows.parquet").field(
        "balance"
    ).type == pa.decimal128(18, 2)
    loaded = store.load(DS, 1)
    assert loaded is not None
    assert loaded.data.columns == data.columns and loaded.data.merkle_root == data.merkle_root
    assert loaded.data.rows == [{"id": "A1", "balance": "10.50"}, {"id": "A2", "balance": "-0.25"}]


def test_a_decimal_scale_changed_on_disk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,balance\nA1,10.5\nA2,-0.25\n")
    store = DatasetStore(tmp_path / "store")
    store.save(DS, 1, import_csv(path), 1)
    meta_file = version_dir(tmp_path) / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["columns"][1]["scale"] = 3  # the same digits read as tenths of a cent
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(InvalidInput, match="no longer matches its root"):
        store.load(DS, 1)


def rewrite_rows(tmp_path: Path, table: pa.Table) -> None:
    pq.write_table(table, version_dir(tmp_path) / "rows.parquet")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.set_column(1, "amount", pa.array([11, -3], pa.int64())),  # a value
        lambda t: t.slice(0, 1),  # a row dropped
        lambda t: pa.concat_tables([t.slice(1), t.slice(0, 1)]),  # rows reordered
        lambda t: t.set_column(1, "amount", pa.array(["10", "-3"])),  # a type
        lambda t: t.rename_columns(["ID", "amount"]),  # a name
    ],
)
def test_tampered_rows_are_detected(tmp_path: Path, tamper: Callable[[pa.Table], pa.Table]) -> None:
    store = DatasetStore(tmp_path / "store")
    data = imported(tmp_path)
    store.save(DS, 1, data, 2)
    rewrite_rows(tmp_path, tamper(data.table))
    with pytest.raises(InvalidInput, match="no longer matches"):
        store.load(DS, 1)


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DatasetStore(tmp_path / "store")

    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dataset_store.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        store.save(DS, 1, imported(tmp_path), 2)
    assert store.versions() == []
    assert list((tmp_path / "store" / DS.hex()).iterdir()) == []  # no staging left


# --- versions written by the JSON-lines code ------------------------------------------


def write_legacy(tmp_path: Path, rows: list[dict[str, object]], columns: list[Column]) -> None:
    """A version exactly as the code before Parquet storage wrote it."""
    directory = version_dir(tmp_path)
    directory.mkdir(parents=True)
    root = merkle.root(row_leaf_hashes(KEY, rows))
    meta = {
        "columns": [{"name": c.name, "type": c.type} for c in columns],
        "merkleRoot": root.hex(),
        "rowCount": len(rows),
        "classification": 2,
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    with (directory / "rows.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    (directory / "salt.key").write_bytes(KEY)


LEGACY_COLUMNS = [Column("id", "string"), Column("amount", "integer")]
LEGACY_ROWS: list[dict[str, object]] = [
    {"id": 'A"1\\é😀', "amount": 10},
    {"id": "A2\n", "amount": -(2**53 - 1)},
]


def test_legacy_json_lines_versions_load_and_verify(tmp_path: Path) -> None:
    write_legacy(tmp_path, LEGACY_ROWS, LEGACY_COLUMNS)
    loaded = DatasetStore(tmp_path / "store").load(DS, 1)
    assert loaded is not None
    assert loaded.data.rows == LEGACY_ROWS
    assert loaded.data.merkle_root == merkle.root(row_leaf_hashes(KEY, LEGACY_ROWS))
    assert loaded.data.columns == LEGACY_COLUMNS and loaded.classification == 2
    assert loaded.data.table.schema.types == [pa.string(), pa.int64()]


@pytest.mark.parametrize(
    "change",
    [
        ("10", "11"),  # a value
        ('"amount":10}', '"amount":10,"extra":1}'),  # a key Arrow would drop
        ('"amount":10', '"amount":"10"'),  # a type
        ('"amount":10', '"amount":true'),
    ],
)
def test_tampered_legacy_rows_are_detected(tmp_path: Path, change: tuple[str, str]) -> None:
    write_legacy(tmp_path, LEGACY_ROWS, LEGACY_COLUMNS)
    rows = version_dir(tmp_path) / "rows.jsonl"
    rows.write_text(rows.read_text().replace(*change, 1))
    with pytest.raises(InvalidInput, match="no longer matches"):
        DatasetStore(tmp_path / "store").load(DS, 1)
