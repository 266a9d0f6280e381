"""What a lookup node keeps in files under its data dir, written atomically.

Why this module exists: the meter, the relay's query log and the holders' logs live in
the node's database; the rest of the roles' state is in memory (``rpc/state.py``), and
some of it must survive a restart or the node stops serving: a provider's **pending
list** (what the operator published for the next epoch) and its **key share** of the
current epoch (without it, a restarted provider no longer counts towards ``t``), the
relay's **built epoch** (keys, descriptor, union: queriers download it) and its
**settlement records** (what was, or is to be, written on chain). Each file is replaced
whole by write-then-rename, so a crash leaves the old or the new version, never a mix.
Key shares are written readable by the node's user only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.crypto.threshold_oprf import KeyShare
from node.lookup.epoch import EpochDescriptor, EpochKeys
from node.lookup.listing import ListedEntry
from node.lookup.rpc.state import Published
from node.lookup.union import Union

__all__ = ["PENDING_SOURCES", "LookupFiles", "write_json_durably"]

PENDING_SOURCES = ("publish", "verify")
"""A pending list has two parts, each replaced by its own `provnet lookup publish` run:
list rows (``publish``) and element-verification records (``--verify``)."""


def _write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_durably(path: Path, obj: object, mode: int = 0o644) -> None:
    """Write-then-rename with an fsync first: after a crash the file is old or new, whole."""
    _write_bytes(path, json.dumps(obj, separators=(",", ":")).encode(), mode)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class LookupFiles:
    """The files of one node's lookup roles, under ``root`` (``<data_dir>/lookup``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- a provider's pending list ---------------------------------------------------

    def _pending(self, list_name: str, source: str) -> Path:
        if source not in PENDING_SOURCES:
            raise ValueError(f"source must be one of {PENDING_SOURCES}, got {source!r}")
        return self.root / "pending" / f"{list_name}.{source}.json"

    def save_pending(self, list_name: str, source: str, entries: Sequence[ListedEntry]) -> None:
        rows = [[e.list_name, e.input.hex(), sorted(e.labels), e.event_time] for e in entries]
        write_json_durably(self._pending(list_name, source), {"entries": rows}, 0o600)

    def pending(self, list_name: str) -> list[ListedEntry]:
        """Every pending entry of ``list_name`` (both parts), in part order."""
        out: list[ListedEntry] = []
        for source in PENDING_SOURCES:
            data = _read_json(self._pending(list_name, source))
            for name, x, labels, event_time in (data or {}).get("entries", []):
                out.append(ListedEntry(name, bytes.fromhex(x), frozenset(labels), event_time))
        return out

    # --- a provider's key share ------------------------------------------------------

    def _share(self, list_name: str) -> Path:
        return self.root / "shares" / f"{list_name}.json"

    def save_share(self, list_name: str, share: KeyShare, keys: EpochKeys) -> None:
        data = {
            "index": share.index,
            "secret": share.secret.hex(),
            "public": share.public.hex(),
            "keys": keys.to_json(),
        }
        write_json_durably(self._share(list_name), data, 0o600)

    def share(self, list_name: str) -> tuple[KeyShare, EpochKeys] | None:
        data = _read_json(self._share(list_name))
        if data is None:
            return None
        share = KeyShare(
            data["index"], bytes.fromhex(data["secret"]), bytes.fromhex(data["public"])
        )
        return share, EpochKeys.from_json(data["keys"])

    # --- the relay's built epoch -----------------------------------------------------

    def _epoch(self, list_name: str) -> tuple[Path, Path]:
        base = self.root / "epochs"
        return base / f"{list_name}.json", base / f"{list_name}.union"

    def save_published(self, list_name: str, published: Published) -> None:
        meta, union = self._epoch(list_name)
        # The union first: a crash in between leaves a union without metadata, ignored.
        _write_bytes(union, published.union.to_bytes())
        write_json_durably(
            meta, {"keys": published.keys.to_json(), "descriptor": published.descriptor.to_json()}
        )

    def published(self, list_name: str) -> Published | None:
        meta, union_path = self._epoch(list_name)
        data = _read_json(meta)
        if data is None or not union_path.exists():
            return None
        descriptor = EpochDescriptor.from_json(data["descriptor"])
        union = Union.from_bytes(union_path.read_bytes())
        if union.digest != descriptor.union_digest:
            return None  # the metadata of another epoch than the union: rebuild
        return Published(EpochKeys.from_json(data["keys"]), descriptor, union)

    # --- the relay's settlements -----------------------------------------------------

    @property
    def _settlements(self) -> Path:
        return self.root / "settlements.json"

    def settlements(self) -> dict[str, dict[str, Any]]:
        data = _read_json(self._settlements)
        return dict(data or {})

    def save_settlements(self, records: dict[str, dict[str, Any]]) -> None:
        write_json_durably(self._settlements, records)
