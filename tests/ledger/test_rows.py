from __future__ import annotations

import hashlib
import hmac

import pytest

from ledger import merkle
from ledger.canonical import canonical_json
from ledger.rows import Column, row_leaf_data, row_leaf_hashes, row_salt, schema_digest

KEY = bytes(range(32))


def test_salt_is_hmac_of_the_index() -> None:
    expected = hmac.new(
        KEY, b"provnet:row-salt:v1\0" + (5).to_bytes(8, "big"), hashlib.sha256
    ).digest()
    assert row_salt(KEY, 5) == expected
    assert row_salt(KEY, 5) != row_salt(KEY, 6)
    assert row_salt(KEY, 5) != row_salt(bytes(32), 5)


def test_leaf_is_salt_then_canonical_row() -> None:
    row = {"b": 2, "a": "x"}
    data = row_leaf_data(row_salt(KEY, 0), row)
    assert data == row_salt(KEY, 0) + canonical_json({"a": "x", "b": 2})


def test_a_revealed_row_proves_against_the_commitment() -> None:
    rows = [{"id": f"P{i}", "v": i} for i in range(11)]
    leaves = row_leaf_hashes(KEY, rows)
    root = merkle.root(leaves)
    proof = merkle.inclusion_proof(leaves, 7)
    leaf = merkle.leaf_hash(row_leaf_data(row_salt(KEY, 7), rows[7]))
    assert merkle.verify_inclusion(leaf, 7, len(rows), proof, root)
    forged = merkle.leaf_hash(row_leaf_data(row_salt(KEY, 7), {"id": "P7", "v": 8}))
    assert not merkle.verify_inclusion(forged, 7, len(rows), proof, root)


def test_unsalted_guess_does_not_match_a_leaf() -> None:
    rows = [{"phone": "+15550000001"}]
    assert row_leaf_hashes(KEY, rows)[0] != merkle.leaf_hash(canonical_json(rows[0]))


def test_short_keys_and_negative_indices_are_rejected() -> None:
    with pytest.raises(ValueError):
        row_salt(bytes(16), 0)
    with pytest.raises(ValueError):
        row_salt(KEY, -1)


def test_schema_digest_binds_names_order_and_types() -> None:
    a = [Column("id", "string"), Column("v", "integer")]
    assert schema_digest(a) != schema_digest(list(reversed(a)))
    assert schema_digest(a) != schema_digest([Column("id", "string"), Column("v", "string")])
