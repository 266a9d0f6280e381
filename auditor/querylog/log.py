"""``QueryLog``: the append-only log of regulator requests, with RFC 9162 proofs.

Leaf ``i`` is the RFC 8785 JSON of ``{seq, at, address, org, method, target}`` and its
Merkle leaf hash is ``ledger.merkle.leaf_hash`` of those bytes, so anyone holding an
entry, the anchored root and a proof can check it with any RFC 9162 verifier. The JSON
text is what the database keeps; leaf hashes are recomputed from it when loaded, so a
row edited in the database changes the root and no longer matches the checkpoint
anchored on chain.

Appends are serialised (a process lock; across processes SQLite's ``BEGIN IMMEDIATE``
or a PostgreSQL advisory lock, with the ``seq`` primary key as the backstop), so ``seq``
is dense: 0, 1, 2, ... Loaded leaf hashes are
cached: the log is append-only, so the cache only ever grows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from auditor.auth.principal import Principal
from auditor.index import schema
from auditor.index.store import IndexStore
from ledger import merkle
from ledger.canonical import canonical_json

#: Longest request target kept verbatim; longer ones are cut (and say so).
MAX_TARGET_CHARS = 4096
_APPEND_ATTEMPTS = 5
_PG_APPEND_LOCK = 0x70726F766E6574 + 0x716C  # "provnet" + "ql"


def encode_leaf(seq: int, at: int, address: str, org_id: bytes, method: str, target: str) -> bytes:
    """The RFC 8785 bytes of one entry: what the Merkle leaf commits to."""
    entry = {
        "seq": seq,
        "at": at,
        "address": address,
        "org": "0x" + org_id.hex(),
        "method": method,
        "target": target,
    }
    return canonical_json(entry)  # RFC 8785 via the rfc8785 package


def entry_leaf_hash(leaf: bytes) -> bytes:
    return merkle.leaf_hash(leaf)


class QueryLog:
    """The query log of one auditor database."""

    def __init__(
        self, engine_or_store: Engine | IndexStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = (
            engine_or_store.engine if isinstance(engine_or_store, IndexStore) else engine_or_store
        )
        self._clock = clock
        self._append_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._hashes: list[bytes] = []

    # --- writing ----------------------------------------------------------------------

    def append(self, principal: Principal, method: str, target: str) -> int:
        """Log one request; returns its leaf index."""
        method = method.upper()[:16]
        if len(target) > MAX_TARGET_CHARS:
            cut = len(target) - MAX_TARGET_CHARS
            target = target[:MAX_TARGET_CHARS] + f"...[{cut} more characters]"
        at = int(self._clock())
        with self._append_lock:
            for attempt in range(_APPEND_ATTEMPTS):
                try:
                    return self._append_once(principal, method, target, at)
                except IntegrityError:  # another process took the same seq: retry
                    if attempt == _APPEND_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    def _append_once(self, principal: Principal, method: str, target: str, at: int) -> int:
        q = schema.query_log
        with self.engine.connect().execution_options(provnet_write=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":  # one appender at a time, all processes
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_APPEND_LOCK})
            seq = _size(conn)
            leaf = encode_leaf(seq, at, principal.address, principal.org_id, method, target)
            conn.execute(
                q.insert().values(
                    seq=seq,
                    at=at,
                    address=principal.address,
                    org_id=principal.org_id,
                    leaf=leaf.decode("utf-8"),
                )
            )
        return seq

    # --- reading ----------------------------------------------------------------------

    def size(self) -> int:
        with self.engine.connect() as conn:
            return _size(conn)

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first ``size`` leaf hashes; ValueError if the log is shorter."""
        _check_size(size, "size")
        with self._cache_lock:
            if len(self._hashes) < size:
                with self.engine.connect() as conn:
                    q = schema.query_log
                    rows = conn.execute(
                        select(q.c.seq, q.c.leaf)
                        .where(q.c.seq >= len(self._hashes), q.c.seq < size)
                        .order_by(q.c.seq)
                    ).all()
                for seq, leaf in rows:
                    if int(seq) != len(self._hashes):
                        raise RuntimeError(f"query log: entry {len(self._hashes)} is missing")
                    self._hashes.append(merkle.leaf_hash(str(leaf).encode("utf-8")))
            if len(self._hashes) < size:
                raise ValueError(f"the log has {len(self._hashes)} entries, not {size}")
            return self._hashes[:size]

    def root(self, size: int) -> bytes:
        """The RFC 9162 root of the first ``size`` entries."""
        return merkle.root(self.leaf_hashes(size))

    def leaf_hash(self, index: int) -> bytes:
        _check_size(index, "index")
        return self.leaf_hashes(index + 1)[index]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """Proof that entry ``index`` is in the tree of the first ``size`` entries."""
        _check_size(index, "index")
        if not 0 <= index < size:
            raise ValueError(f"index must be below treeSize ({size}), got {index}")
        return merkle.inclusion_proof(self.leaf_hashes(size), index)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """Proof that the tree of ``old`` entries is a prefix of the tree of ``new``."""
        _check_size(old, "from")
        if not 0 < old <= new:
            raise ValueError(f"need 0 < from <= to, got from={old} to={new}")
        return merkle.consistency_proof(self.leaf_hashes(new), old)

    def entries(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """Entries ``offset`` .. ``offset + limit - 1`` as logged (the leaf JSON), each
        with its ``leafHash``."""
        _check_size(offset, "offset")
        _check_size(limit, "limit")
        q = schema.query_log
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(q.c.leaf).where(q.c.seq >= offset).order_by(q.c.seq).limit(limit)
            ).scalars()
            leaves = [str(leaf) for leaf in rows]
        result = []
        for leaf in leaves:
            entry: dict[str, Any] = json.loads(leaf)
            entry["leafHash"] = "0x" + merkle.leaf_hash(leaf.encode("utf-8")).hex()
            result.append(entry)
        return result

    def checkpoints(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The checkpoints sent to AnchorLog, oldest first."""
        c = schema.query_log_checkpoints
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c).order_by(c.c.tree_size).offset(offset).limit(limit)
            ).mappings()
            return [checkpoint_json(r) for r in rows]

    def checkpoint_count(self) -> int:
        c = schema.query_log_checkpoints
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(c)).scalar_one())

    def record_checkpoint(
        self, tree_size: int, root_hash: bytes, log_id: bytes, tx_hash: bytes, block: int
    ) -> dict[str, Any]:
        row = {
            "tree_size": tree_size,
            "root_hash": root_hash,
            "log_id": log_id,
            "tx_hash": tx_hash,
            "block_number": block,
            "created_at": int(self._clock()),
        }
        with self.engine.connect().execution_options(provnet_write=True) as conn, conn.begin():
            conn.execute(schema.query_log_checkpoints.insert().values(**row))
        return checkpoint_json(row)


def checkpoint_json(row: Any) -> dict[str, Any]:
    return {
        "treeSize": int(row["tree_size"]),
        "rootHash": "0x" + bytes(row["root_hash"]).hex(),
        "logId": "0x" + bytes(row["log_id"]).hex(),
        "txHash": "0x" + bytes(row["tx_hash"]).hex(),
        "blockNumber": int(row["block_number"]),
        "createdAt": int(row["created_at"]),
    }


def _size(conn: Connection) -> int:
    """Entries so far: seq is dense from 0, so max + 1 (an index lookup, not a count)."""
    top = conn.execute(select(func.max(schema.query_log.c.seq))).scalar()
    return 0 if top is None else int(top) + 1


def _check_size(value: object, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer, got {value!r}")
