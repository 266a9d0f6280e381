"""Dataset commitments: a Merkle root over salted, canonically encoded rows.

Rows are often guessable (a phone number, an account id). An inclusion proof hands
out sibling hashes, so an unsalted leaf would let anyone brute-force neighbouring rows.
Each leaf therefore starts with a per-row salt, HMAC-SHA256 of the row index under a
per-version secret that only the owner keeps: the owner can reveal one row with its
salt and proof, and nothing else becomes guessable.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger import merkle
from ledger.canonical import canonical_json, digest_json

SALT_LABEL = b"provnet:row-salt:v1\0"
COLUMN_TYPES = ("integer", "string")


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def row_salt(version_key: bytes, index: int) -> bytes:
    if len(version_key) < 32:
        raise ValueError("version key must be at least 32 bytes")
    if index < 0:
        raise ValueError(f"row index must be >= 0, got {index}")
    return hmac.new(version_key, SALT_LABEL + index.to_bytes(8, "big"), hashlib.sha256).digest()


def row_leaf_data(salt: bytes, row: Mapping[str, object]) -> bytes:
    """The bytes a leaf commits to: 32-byte salt, then the row's RFC 8785 JSON."""
    return salt + canonical_json(dict(row))


def row_leaf_hashes(version_key: bytes, rows: Iterable[Mapping[str, object]]) -> list[bytes]:
    return [
        merkle.leaf_hash(row_leaf_data(row_salt(version_key, i), row)) for i, row in enumerate(rows)
    ]


def schema_digest(columns: Sequence[Column]) -> bytes:
    """Binds column names, order and types, so a version cannot silently change shape."""
    return digest_json("dataset-schema", [{"name": c.name, "type": c.type} for c in columns])
