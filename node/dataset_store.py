"""The datasets a node holds, on its own disk, with the secret that salts their rows.

A registered dataset version is immutable: its rows and the per-version salt key are
written once, to a new directory, and renamed into place only when complete, so a
crash mid-import never leaves a half-written version that could later be committed
to chain or computed on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ledger.ids import InvalidInput
from ledger.rows import Column, row_leaf_hashes
from node.datasets import ImportedDataset, Row


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
                "columns": [{"name": c.name, "type": c.type} for c in data.columns],
                "merkleRoot": data.merkle_root.hex(),
                "rowCount": len(data.rows),
                "classification": classification,
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2))
            with (staging / "rows.jsonl").open("w") as fh:
                for row in data.rows:
                    fh.write(json.dumps(row, separators=(",", ":")) + "\n")
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
        columns = [Column(c["name"], c["type"]) for c in meta["columns"]]
        with (directory / "rows.jsonl").open() as fh:
            rows: list[Row] = [json.loads(line) for line in fh]
        key = (directory / "salt.key").read_bytes()
        data = ImportedDataset(columns, rows, key, row_leaf_hashes(key, rows))
        if data.merkle_root.hex() != meta["merkleRoot"]:
            raise InvalidInput(
                "dataset store", f"0x{dataset_id.hex()} v{version} no longer matches its root"
            )
        return StoredVersion(dataset_id, version, data, int(meta["classification"]))

    def versions(self) -> list[tuple[bytes, int]]:
        found = []
        for ds in sorted(self.root.iterdir()):
            if not ds.is_dir() or ds.name.startswith("."):
                continue
            for v in sorted(ds.iterdir()):
                if v.is_dir() and v.name.startswith("v") and v.name[1:].isdigit():
                    found.append((bytes.fromhex(ds.name), int(v.name[1:])))
        return found
