from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.ids import InvalidInput
from node.dataset_store import DatasetStore
from node.datasets import ImportedDataset, import_csv

DS = bytes(range(32))


def imported(tmp_path: Path) -> ImportedDataset:
    path = tmp_path / "d.csv"
    path.write_text("id,amount\nA1,10\nA2,-3\n")
    return import_csv(path)


def test_round_trip_and_write_once(tmp_path: Path) -> None:
    data = imported(tmp_path)
    store = DatasetStore(tmp_path / "store")
    store.save(DS, 1, data, 3)
    loaded = store.load(DS, 1)
    assert loaded is not None
    assert loaded.data.rows == data.rows and loaded.data.merkle_root == data.merkle_root
    assert loaded.classification == 3
    assert store.versions() == [(DS, 1)]
    assert store.load(DS, 2) is None
    key = tmp_path / "store" / DS.hex() / "v1" / "salt.key"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidInput, match="already stored"):
        store.save(DS, 1, data, 3)


def test_tampered_rows_are_detected(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    store.save(DS, 1, imported(tmp_path), 2)
    rows = tmp_path / "store" / DS.hex() / "v1" / "rows.jsonl"
    rows.write_text(rows.read_text().replace("10", "11"))
    with pytest.raises(InvalidInput, match="no longer matches"):
        store.load(DS, 1)
