from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.canonical import canonical_json, digest_json
from ledger.rows import (
    COLUMN_TYPES,
    MAX_SAFE_INTEGER,
    MAX_SCALED,
    Column,
    arrow_type,
    batch_leaf_hashes,
    batch_subtree_roots,
    canonical_rows,
    decimal_text,
    row_leaf_data,
    row_leaf_hashes,
    row_salt,
    row_salts,
    schema_digest,
)

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


def test_schema_digest_without_identifiers_is_unchanged() -> None:
    columns = [Column("id", "string"), Column("v", "integer")]
    legacy = [{"name": "id", "type": "string"}, {"name": "v", "type": "integer"}]
    assert schema_digest(columns) == digest_json("dataset-schema", legacy)
    # Pinned from the code before identifier marks existed: a change here would alter
    # the on-chain schema digest of every dataset registered so far.
    assert schema_digest(columns).hex() == (
        "2a8e4ba8c1e4058098e527fe818359d275721759572f3e48dfb1d86977e2dfa5"
    )


def test_identifier_marks_are_committed_in_the_schema_digest() -> None:
    plain = [Column("account", "string"), Column("v", "integer")]
    marked = [Column("account", "string", identifier=True), Column("v", "integer")]
    assert schema_digest(marked) == digest_json(
        "dataset-schema",
        [
            {"name": "account", "type": "string", "identifier": True},
            {"name": "v", "type": "integer"},
        ],
    )
    assert schema_digest(marked) != schema_digest(plain)
    assert Column("a", "string") == Column("a", "string", identifier=False)


# --- the column-wise fast path equals the reference ------------------------------


@pytest.mark.parametrize("key", [KEY, bytes(64), bytes(range(65)), b"\xff" * 200])
@pytest.mark.parametrize("start", [0, 1, 255, 256, 2**32 - 1, 2**40 + 3])
def test_vectorised_salts_are_the_hmac_salts(key: bytes, start: int) -> None:
    assert row_salts(key, start, 5) == [row_salt(key, start + i) for i in range(5)]


def test_vectorised_salts_reject_what_row_salt_rejects() -> None:
    assert row_salts(KEY, 7, 0) == []
    with pytest.raises(ValueError):
        row_salts(bytes(16), 0, 1)
    with pytest.raises(ValueError):
        row_salts(KEY, -1, 1)


# Names whose order differs between UTF-16 code units (RFC 8785) and code points:
# U+FF61 sorts after U+1F600 by code point but before it in UTF-16 (D83D DE00).
TRICKY_NAMES = ["\uff61", "\U0001f600", "a", "A", "é", "\u00e9x", "aa", "\ue000", "\U00010000"]
# Valid Unicode only: Arrow strings are UTF-8, so lone surrogates cannot occur.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\/\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\u2028\u2029é😀\ufeff'),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=12,
)
SAFE_INT = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[Column], list[dict[str, object]]]:
    names = draw(
        st.lists(
            st.one_of(st.sampled_from(TRICKY_NAMES), TEXT), min_size=1, max_size=8, unique=True
        )
    )
    columns = []
    for n in names:
        kind = draw(st.sampled_from(COLUMN_TYPES))
        columns.append(Column(n, kind, scale=draw(st.integers(1, 18)) if kind == "decimal" else 0))
    count = draw(st.integers(0, 12))

    def value(c: Column) -> object:
        if c.type == "decimal":
            return decimal_text(draw(st.integers(-MAX_SCALED, MAX_SCALED)), c.scale)
        return draw(SAFE_INT if c.type == "integer" else TEXT)

    rows = [{c.name: value(c) for c in columns} for _ in range(count)]
    return columns, rows


def as_batch(columns: list[Column], rows: list[dict[str, object]]) -> pa.RecordBatch:
    arrays = [
        pa.array([Decimal(str(r[c.name])) for r in rows], arrow_type(c))
        if c.type == "decimal"
        else pa.array([r[c.name] for r in rows], arrow_type(c))
        for c in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


@settings(max_examples=300, deadline=None)
@given(tables(), st.integers(0, 2**40), st.integers(0, 3))
def test_batch_leaf_hashes_equal_the_reference(
    table: tuple[list[Column], list[dict[str, object]]], start: int, skip: int
) -> None:
    columns, rows = table
    batch = as_batch(columns, rows)
    assert canonical_rows(columns, batch).to_pylist() == [canonical_json(r) for r in rows]
    # The reference numbers rows from 0; the fast path from `start`. Compare both on
    # rows numbered from `start`, and on a slice (Arrow offsets inside buffers).
    reference = [
        merkle.leaf_hash(row_leaf_data(row_salt(KEY, start + i), row)) for i, row in enumerate(rows)
    ]
    assert batch_leaf_hashes(KEY, start, columns, batch) == reference
    sliced = batch.slice(min(skip, len(rows)))
    assert (
        batch_leaf_hashes(KEY, start + min(skip, len(rows)), columns, sliced)
        == (reference[min(skip, len(rows)) :])
    )
    if start == 0:
        assert batch_leaf_hashes(KEY, 0, columns, batch) == row_leaf_hashes(KEY, rows)


@settings(max_examples=100, deadline=None)
@given(tables(), st.integers(0, 100))
def test_subtree_roots_of_batches_build_the_reference_root(
    table: tuple[list[Column], list[dict[str, object]]], cut: int
) -> None:
    columns, rows = table
    batch = as_batch(columns, rows)
    cut = min(cut, len(rows))
    builder = merkle.RootBuilder()
    for start, part in ((0, batch.slice(0, cut)), (cut, batch.slice(cut))):
        for size, subtree in batch_subtree_roots(KEY, start, columns, part):
            builder.append_subtree(subtree, size)
    assert builder.root() == merkle.root(row_leaf_hashes(KEY, rows))


def test_utf16_key_order_is_used() -> None:
    columns = [Column("\U0001f600", "integer"), Column("\uff61", "integer")]
    rows = [{"\U0001f600": 1, "\uff61": 2}]
    encoded = canonical_rows(columns, as_batch(columns, rows)).to_pylist()[0]
    assert encoded == canonical_json(rows[0]) == '{"😀":1,"｡":2}'.encode()


def test_the_fast_path_refuses_what_has_no_row_encoding() -> None:
    columns = [Column("v", "integer")]
    with pytest.raises(ValueError, match="beyond"):
        batch_leaf_hashes(KEY, 0, columns, as_batch(columns, [{"v": MAX_SAFE_INTEGER + 1}]))
    nulls = pa.RecordBatch.from_arrays([pa.array([1, None])], names=["v"])
    with pytest.raises(ValueError, match="nulls"):
        batch_leaf_hashes(KEY, 0, columns, nulls)
    with pytest.raises(ValueError, match="holds string"):
        batch_leaf_hashes(KEY, 0, columns, pa.RecordBatch.from_arrays([pa.array(["1"])], ["v"]))
    with pytest.raises(ValueError, match="schema has 2"):
        batch_leaf_hashes(KEY, 0, [*columns, Column("w", "string")], as_batch(columns, []))


def test_the_fast_path_refuses_decimals_of_another_scale_or_range() -> None:
    cents = [Column("v", "decimal", scale=2)]
    mills = pa.array([Decimal("1.500")], pa.decimal128(18, 3))
    with pytest.raises(ValueError, match=r"scale 2\) holds decimal128\(18, 3\)"):
        batch_leaf_hashes(KEY, 0, cents, pa.RecordBatch.from_arrays([mills], ["v"]))
    huge = pa.array([Decimal(10**18)], pa.decimal128(38, 0)).cast(pa.decimal128(38, 2))
    with pytest.raises(ValueError, match="holds decimal128"):
        batch_leaf_hashes(KEY, 0, cents, pa.RecordBatch.from_arrays([huge], ["v"]))
    assert canonical_rows(
        cents,
        pa.RecordBatch.from_arrays([pa.array([Decimal("-0.5")], arrow_type(cents[0]))], ["v"]),
    ).to_pylist() == [b'{"v":"-0.50"}']
