"""Tests for ledger.merkle against RFC 9162 §2.1, published vectors and independent
reference implementations written here straight from the RFC's definitions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from functools import cache
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    RootBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    subtree_roots,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import rfc6962_vectors as vectors

# --- independent reference implementation (RFC 9162 §2.1, literally) ------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _ref_leaf(data: bytes) -> bytes:
    return _sha(b"\x00" + data)


def _ref_node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def _k(n: int) -> int:
    """Largest power of two strictly less than n (n > 1), by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, the recursive definition of RFC 9162 §2.1.1."""
    n = len(hashes)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return hashes[0]
    k = _k(n)
    return _ref_node(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(hashes)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if b else [ref_mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], b), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


def distinct_leaves(n: int) -> list[bytes]:
    return [_ref_leaf(b"leaf-%d" % i) for i in range(n)]


LEAVES_64 = distinct_leaves(64)
ROOTS_64 = [ref_mth(LEAVES_64[:n]) for n in range(65)]


# --- oracles for mutated claims ---------------------------------------------------------
# A verifier only sees hashes, so it cannot tell which tree a proof came from: a changed
# index or size still verifies exactly when the verifier's recomputation is the same
# formula as the committed root. These oracles decide that without hashing, from the
# RFC's tree shape; with distinct leaves and a collision-resistant hash, "same formula"
# and "same hash" coincide, so the verifier must agree with them exactly.


@cache
def path_shape(m: int, n: int) -> tuple[int, ...]:
    """For each proof element of PATH(m, D[n]), leaf to root: 1 if it is a left sibling.

    The verifier's computation for (index, tree_size) is fully determined by this
    sequence, so a proof made for one claim verifies for another iff the shapes match.
    """
    if n == 1:
        return ()
    k = _k(n)
    if m < k:
        return (*path_shape(m, k), 0)
    return (*path_shape(m - k, n - k), 1)


def inclusion_should_verify(orig_index: int, orig_size: int, index: int, size: int) -> bool:
    """Oracle: the genuine proof of (orig_index, orig_size), with its leaf and root,
    presented as a claim about (index, size)."""
    if not 0 <= index < size:
        return False
    return path_shape(index, size) == path_shape(orig_index, orig_size)


# A formula over the leaves: a leaf index, or a (left, right) pair of formulas.
Formula = int | tuple[Any, Any]


@cache
def tree_formula(start: int, end: int) -> Formula:
    """MTH(D[start:end]) as a formula: what a collision-free hash commits to."""
    if end - start == 1:
        return start
    k = _k(end - start)
    return (tree_formula(start, start + k), tree_formula(start + k, end))


def ref_subproof_ranges(m: int, start: int, end: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF, returning the leaf range of each element instead of its hash."""
    if m == end - start:
        return [] if b else [(start, end)]
    k = _k(end - start)
    if m <= k:
        return [*ref_subproof_ranges(m, start, start + k, b), (start + k, end)]
    return [*ref_subproof_ranges(m - k, start + k, end, False), (start, start + k)]


def _shape(start: int, end: int, cover: dict[tuple[int, int], int]) -> Any:
    """MTH(D[start:end]) written in terms of proof slots (ints index the slot list)."""
    if (start, end) in cover:
        return ("slot", cover[(start, end)])
    if end - start == 1:
        raise AssertionError(f"leaf {start} not covered by the proof")
    k = _k(end - start)
    return (_shape(start, start + k, cover), _shape(start + k, end, cover))


def _substitute(shape: Any, slots: Sequence[Formula]) -> Formula:
    if shape[0] == "slot":
        slot: int = shape[1]
        return slots[slot]
    return (_substitute(shape[0], slots), _substitute(shape[1], slots))


def consistency_should_verify(orig_old: int, orig_new: int, old: int, new: int) -> bool:
    """Oracle: the genuine consistency proof for (orig_old, orig_new), with both genuine
    roots, presented as a claim about (old, new).

    Builds, from the RFC definition, how a verifier for (old, new) must rebuild both
    roots from the proof's slots (the old root itself fills slot 0 when ``old`` is a
    power of two), fills the slots with the formulas the presented proof really
    carries, and asks whether the results are the formulas of the presented roots.
    """
    if not 0 < old <= new:
        return False
    if orig_old == orig_new:
        # Empty proof, equal roots; (old, new) needs the same, or the roots differ.
        return old == new
    if old == new:
        return False  # a non-empty proof never verifies for equal sizes
    claimed_old_root = tree_formula(0, orig_old)
    claimed_new_root = tree_formula(0, orig_new)
    carried = [tree_formula(a, b) for a, b in ref_subproof_ranges(orig_old, 0, orig_new, True)]
    ranges = ref_subproof_ranges(old, 0, new, True)
    if _is_pow2(old):
        ranges = [(0, old), *ranges]
        carried = [claimed_old_root, *carried]
    if len(ranges) != len(carried):
        return False
    cover = {r: i for i, r in enumerate(ranges)}
    rebuilt_old = _substitute(_shape(0, old, cover), carried)
    rebuilt_new = _substitute(_shape(0, new, cover), carried)
    return rebuilt_old == claimed_old_root and rebuilt_new == claimed_new_root


def bit_flips(value: bytes) -> Iterator[bytes]:
    for i in range(len(value) * 8):
        flipped = bytearray(value)
        flipped[i // 8] ^= 1 << (i % 8)
        yield bytes(flipped)


def size_mutations(n: int) -> set[int]:
    return {n - 1, n + 1, n * 2, n // 2, 0, *(n ^ (1 << b) for b in range(7))}


# --- hashing and the published reference tree -----------------------------------------


def test_leaf_and_node_hash_are_prefixed_sha256() -> None:
    assert leaf_hash(b"") == _sha(b"\x00")
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    a, b = _sha(b"a"), _sha(b"b")
    assert node_hash(a, b) == _sha(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    # Domain separation: a leaf whose data is two hashes is not the node over them.
    assert leaf_hash(a + b) != node_hash(a, b)


def test_reference_tree_node_hashes() -> None:
    leaves = [leaf_hash(d) for d in vectors.LEAF_INPUTS]
    assert [h.hex() for h in leaves] == vectors.NODE_HASHES[0]
    for level, expected in enumerate(vectors.NODE_HASHES):
        width = 1 << level
        got = [root(leaves[i : i + width]).hex() for i in range(0, len(leaves), width)]
        assert got == expected, f"level {level}"


@pytest.mark.parametrize("size", range(len(vectors.ROOTS)))
def test_reference_tree_roots(size: int) -> None:
    leaves = [leaf_hash(d) for d in vectors.LEAF_INPUTS[:size]]
    assert root(leaves).hex() == vectors.ROOTS[size]
    assert ref_mth(leaves).hex() == vectors.ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), vectors.INCLUSION_PROOFS)
def test_reference_tree_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    leaves = [leaf_hash(d) for d in vectors.LEAF_INPUTS[:size]]
    proof = inclusion_proof(leaves, index)
    assert [p.hex() for p in proof] == expected
    tree_root = bytes.fromhex(vectors.ROOTS[size])
    assert verify_inclusion(leaves[index], index, size, proof, tree_root)


@pytest.mark.parametrize(("old", "new", "expected"), vectors.CONSISTENCY_PROOFS)
def test_reference_tree_consistency_proofs(old: int, new: int, expected: list[str]) -> None:
    leaves = [leaf_hash(d) for d in vectors.LEAF_INPUTS[:new]]
    proof = consistency_proof(leaves, old)
    assert [p.hex() for p in proof] == expected
    old_root, new_root = bytes.fromhex(vectors.ROOTS[old]), bytes.fromhex(vectors.ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, proof)


def test_reference_tree_every_proof() -> None:
    """Every proof of the 8-leaf tree verifies against the published roots."""
    leaves = [leaf_hash(d) for d in vectors.LEAF_INPUTS]
    published = [bytes.fromhex(r) for r in vectors.ROOTS]
    for n in range(1, 9):
        for i in range(n):
            proof = inclusion_proof(leaves[:n], i)
            assert verify_inclusion(leaves[i], i, n, proof, published[n])
        for m in range(1, n + 1):
            proof = consistency_proof(leaves[:n], m)
            assert verify_consistency(m, n, published[m], published[n], proof)


def test_empty_tree_root() -> None:
    assert root([]) == hashlib.sha256(b"").digest()
    assert root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_single_leaf_root_is_the_leaf_hash() -> None:
    h = leaf_hash(b"only")
    assert root([h]) == h
    assert inclusion_proof([h], 0) == []
    assert verify_inclusion(h, 0, 1, [], h)


# --- agreement with the reference implementation ---------------------------------------


def test_root_matches_naive_definition() -> None:
    leaves = distinct_leaves(130)
    for n in range(len(leaves) + 1):
        assert root(leaves[:n]) == ref_mth(leaves[:n]), n


def test_root_of_a_large_tree_matches_naive_definition() -> None:
    leaves = distinct_leaves(2**14 + 3)
    assert root(leaves) == ref_mth(leaves)


def test_root_accepts_tuples_and_does_not_mutate_input() -> None:
    leaves = distinct_leaves(5)
    snapshot = list(leaves)
    assert root(tuple(leaves)) == root(leaves) == ref_mth(leaves)
    inclusion_proof(leaves, 3)
    consistency_proof(leaves, 3)
    assert leaves == snapshot


def test_inclusion_round_trip_all_sizes_to_64() -> None:
    for n in range(1, 65):
        leaves, tree_root = LEAVES_64[:n], ROOTS_64[n]
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            assert proof == ref_path(i, leaves), (i, n)
            assert len(proof) == len(path_shape(i, n))
            assert verify_inclusion(leaves[i], i, n, proof, tree_root), (i, n)


def test_consistency_round_trip_all_sizes_to_64() -> None:
    for n in range(1, 65):
        leaves = LEAVES_64[:n]
        for m in range(1, n + 1):
            proof = consistency_proof(leaves, m)
            assert proof == ref_subproof(m, leaves, True), (m, n)
            assert verify_consistency(m, n, ROOTS_64[m], ROOTS_64[n], proof), (m, n)


def test_consistency_proof_for_equal_sizes_is_empty() -> None:
    for n in (1, 2, 3, 8, 13):
        assert consistency_proof(LEAVES_64[:n], n) == []
        assert verify_consistency(n, n, ROOTS_64[n], ROOTS_64[n], [])
        assert not verify_consistency(n, n, ROOTS_64[n], ROOTS_64[n - 1], [])
        assert not verify_consistency(n, n, ROOTS_64[n], ROOTS_64[n], [ROOTS_64[n]])


def test_oracles_accept_the_genuine_claims() -> None:
    for n in range(1, 21):
        for i in range(n):
            assert inclusion_should_verify(i, n, i, n)
        for m in range(1, n + 1):
            assert consistency_should_verify(m, n, m, n)


# --- mutations: a changed claim verifies only if it is genuinely the same claim ---------


MUTATION_SIZES = range(1, 21)


def test_inclusion_bit_flips_never_verify() -> None:
    for n in MUTATION_SIZES:
        leaves, tree_root = LEAVES_64[:n], ROOTS_64[n]
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            for k, element in enumerate(proof):
                for bad in bit_flips(element):
                    bad_proof = [*proof[:k], bad, *proof[k + 1 :]]
                    assert not verify_inclusion(leaves[i], i, n, bad_proof, tree_root)
            for bad in bit_flips(tree_root):
                assert not verify_inclusion(leaves[i], i, n, proof, bad)
            for bad in bit_flips(leaves[i]):
                assert not verify_inclusion(bad, i, n, proof, tree_root)


def test_inclusion_index_and_size_mutations_match_oracle() -> None:
    accepted_changes = 0
    for n in MUTATION_SIZES:
        leaves, tree_root = LEAVES_64[:n], ROOTS_64[n]
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            indices = {i - 1, i + 1, 0, n - 1, n, n + 1, *(i ^ (1 << b) for b in range(6))}
            sizes = size_mutations(n) | {n}
            for index in indices:
                for size in sizes:
                    expected = inclusion_should_verify(i, n, index, size)
                    got = verify_inclusion(leaves[i], index, size, proof, tree_root)
                    assert got == expected, (i, n, index, size)
                    if index != i:
                        # Same tree, other leaf: never the same claim with distinct leaves.
                        assert size != n or not got
                    accepted_changes += got and (index, size) != (i, n)
    # Sanity: the oracle is not vacuous (RFC verifiers do not bind the size beyond shape).
    assert accepted_changes > 0


def test_inclusion_proof_structure_mutations_never_verify() -> None:
    junk = _sha(b"junk")
    for n in MUTATION_SIZES:
        leaves, tree_root = LEAVES_64[:n], ROOTS_64[n]
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            variants = [[*proof, junk], [junk, *proof], [*proof, tree_root], [tree_root, *proof]]
            if proof:
                variants += [proof[:-1], proof[1:], [*proof[:1], junk, *proof[1:]]]
            if len(proof) > 1:
                variants += [proof[::-1], [proof[1], proof[0], *proof[2:]]]
            for other in range(n):
                if other != i:
                    variants.append(inclusion_proof(leaves, other))
                    assert not verify_inclusion(leaves[other], i, n, proof, tree_root)
            for bad_proof in variants:
                assert not verify_inclusion(leaves[i], i, n, bad_proof, tree_root)


def test_inclusion_with_equal_leaves_is_a_true_claim() -> None:
    # With leaves 0 and 1 equal, leaf 1 really is that hash and the proofs coincide:
    # the swapped claim is true, not a forgery.
    leaves = [LEAVES_64[0], *LEAVES_64[:5]]
    proof = inclusion_proof(leaves, 0)
    assert proof == inclusion_proof(leaves, 1)
    assert verify_inclusion(leaves[0], 1, 6, proof, root(leaves))


def test_inclusion_checks_only_the_shape_of_tree_size() -> None:
    # Documented RFC 9162 behaviour: PATH(0) in trees of 5 and 6 leaves has the same
    # shape, so a size-5 proof also "verifies" for size 6 against the size-5 root. The
    # root and the size must come from the same trusted tree head.
    leaves = LEAVES_64[:5]
    proof = inclusion_proof(leaves, 0)
    assert verify_inclusion(leaves[0], 0, 6, proof, ROOTS_64[5])
    assert not verify_inclusion(leaves[0], 0, 6, proof, ROOTS_64[6])


def test_consistency_bit_flips_never_verify() -> None:
    for n in MUTATION_SIZES:
        for m in range(1, n + 1):
            proof = consistency_proof(LEAVES_64[:n], m)
            old_root, new_root = ROOTS_64[m], ROOTS_64[n]
            for k, element in enumerate(proof):
                for bad in bit_flips(element):
                    bad_proof = [*proof[:k], bad, *proof[k + 1 :]]
                    assert not verify_consistency(m, n, old_root, new_root, bad_proof)
            for bad in bit_flips(old_root):
                assert not verify_consistency(m, n, bad, new_root, proof)
            for bad in bit_flips(new_root):
                assert not verify_consistency(m, n, old_root, bad, proof)


def test_consistency_size_mutations_match_oracle() -> None:
    accepted_changes = 0
    for n in MUTATION_SIZES:
        for m in range(1, n + 1):
            proof = consistency_proof(LEAVES_64[:n], m)
            old_root, new_root = ROOTS_64[m], ROOTS_64[n]
            for old in size_mutations(m) | {m, n}:
                for new in size_mutations(n) | {n, m}:
                    expected = consistency_should_verify(m, n, old, new)
                    got = verify_consistency(old, new, old_root, new_root, proof)
                    assert got == expected, (m, n, old, new)
                    accepted_changes += got and (old, new) != (m, n)
            if m != n:
                assert not verify_consistency(m, n, new_root, old_root, proof)
                assert not verify_consistency(n, m, new_root, old_root, proof)
    assert accepted_changes > 0


def test_consistency_proof_structure_mutations_never_verify() -> None:
    junk = _sha(b"junk")
    for n in MUTATION_SIZES:
        for m in range(1, n):
            proof = consistency_proof(LEAVES_64[:n], m)
            old_root, new_root = ROOTS_64[m], ROOTS_64[n]
            variants = [
                [],
                proof[:-1],
                proof[1:],
                [*proof, junk],
                [junk, *proof],
                [old_root, *proof],
                [*proof, new_root],
            ]
            if len(proof) > 1:
                variants += [proof[::-1], [proof[1], proof[0], *proof[2:]]]
            for other in range(1, n):
                if other != m:
                    variants.append(consistency_proof(LEAVES_64[:n], other))
            for bad_proof in variants:
                assert not verify_consistency(m, n, old_root, new_root, bad_proof), (m, n)
            # Roots of other tree sizes.
            for other in range(1, n + 1):
                if other != m:
                    assert not verify_consistency(m, n, ROOTS_64[other], new_root, proof)
            for other in range(1, 22):
                if other != n:
                    assert not verify_consistency(m, n, old_root, ROOTS_64[other], proof)


# --- malformed input: verification returns False, never raises -------------------------


def _case_id(value: object) -> str:
    """A parametrize id that is the same in every process (pytest-xdist needs that)."""
    name = type(value).__name__
    try:
        return f"{name}-len{len(value)}"  # type: ignore[arg-type]
    except TypeError:
        return f"{name}-{value!r}" if isinstance(value, int | float | None) else name


class _ExplodingSequence(Sequence[bytes]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("boom")


class _FriendlySequence(Sequence[bytes]):
    def __init__(self, items: list[bytes]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]


_N = 11
_I = 6
_LEAVES = LEAVES_64[:_N]
_ROOT = ROOTS_64[_N]
_PROOF = inclusion_proof(_LEAVES, _I)
_LEAF = _LEAVES[_I]

_BAD_HASHES: list[object] = [
    _LEAF[:31],
    _LEAF + b"\x00",
    b"",
    bytearray(_LEAF),
    memoryview(_LEAF),
    _LEAF.hex(),
    None,
    0,
    [_LEAF],
]
_BAD_PROOFS: list[object] = [
    None,
    _PROOF[:-1],
    [*_PROOF, _PROOF[0]],
    [p[:31] for p in _PROOF],
    [*_PROOF[:-1], _PROOF[-1] + b"\x00"],
    [*_PROOF[:-1], bytearray(_PROOF[-1])],
    [*_PROOF[:-1], None],
    [*_PROOF[:-1], _PROOF[-1].hex()],
    b"".join(_PROOF),
    "".join(p.hex() for p in _PROOF),
    set(_PROOF),
    iter(_PROOF),
    {i: p for i, p in enumerate(_PROOF)},
    _ExplodingSequence(),
    [_PROOF[0]] * 10_000,
    42,
]
_BAD_SIZES: list[object] = [
    -1,
    -(2**64),
    2**64,
    10**100,
    1.0,
    float("nan"),
    "3",
    None,
    True,
    False,
]


def test_valid_baseline_for_malformed_cases() -> None:
    assert verify_inclusion(_LEAF, _I, _N, _PROOF, _ROOT)
    assert verify_inclusion(_LEAF, _I, _N, tuple(_PROOF), _ROOT)
    assert verify_inclusion(_LEAF, _I, _N, _FriendlySequence(_PROOF), _ROOT)


@pytest.mark.parametrize("bad", _BAD_HASHES, ids=_case_id)
def test_inclusion_malformed_hashes(bad: Any) -> None:
    assert verify_inclusion(bad, _I, _N, _PROOF, _ROOT) is False
    assert verify_inclusion(_LEAF, _I, _N, _PROOF, bad) is False


@pytest.mark.parametrize("bad", _BAD_PROOFS, ids=_case_id)
def test_inclusion_malformed_proofs(bad: Any) -> None:
    assert verify_inclusion(_LEAF, _I, _N, bad, _ROOT) is False


@pytest.mark.parametrize("bad", _BAD_SIZES, ids=repr)
def test_inclusion_malformed_index_and_size(bad: Any) -> None:
    assert verify_inclusion(_LEAF, bad, _N, _PROOF, _ROOT) is False
    assert verify_inclusion(_LEAF, _I, bad, _PROOF, _ROOT) is False


def test_inclusion_out_of_range_index() -> None:
    for index, size in [(_N, _N), (_N + 1, _N), (0, 0), (1, 0), (2, 1), (2**64 - 1, 2**64 - 1)]:
        assert verify_inclusion(_LEAF, index, size, _PROOF, _ROOT) is False
    # Booleans are not sizes, even where the int value would be a valid claim.
    h = LEAVES_64[0]
    assert verify_inclusion(h, 0, 1, [], h)
    assert verify_inclusion(h, False, 1, [], h) is False
    assert verify_inclusion(h, 0, True, [], h) is False


def test_inclusion_huge_tree_size_does_not_raise() -> None:
    for size in (2**63, 2**64 - 1):
        assert verify_inclusion(_LEAF, _I, size, _PROOF, _ROOT) is False
        assert verify_inclusion(_LEAF, size - 1, size, [_ROOT] * 64, _ROOT) is False


_M = 5
_CPROOF = consistency_proof(_LEAVES, _M)
_OLD_ROOT = ROOTS_64[_M]


def test_consistency_valid_baseline_for_malformed_cases() -> None:
    assert verify_consistency(_M, _N, _OLD_ROOT, _ROOT, _CPROOF)
    assert verify_consistency(_M, _N, _OLD_ROOT, _ROOT, tuple(_CPROOF))
    assert verify_consistency(_M, _N, _OLD_ROOT, _ROOT, _FriendlySequence(_CPROOF))


@pytest.mark.parametrize("bad", _BAD_HASHES, ids=_case_id)
def test_consistency_malformed_roots(bad: Any) -> None:
    assert verify_consistency(_M, _N, bad, _ROOT, _CPROOF) is False
    assert verify_consistency(_M, _N, _OLD_ROOT, bad, _CPROOF) is False
    assert verify_consistency(_N, _N, bad, bad, []) is False


@pytest.mark.parametrize("bad", _BAD_PROOFS, ids=_case_id)
def test_consistency_malformed_proofs(bad: Any) -> None:
    assert verify_consistency(_M, _N, _OLD_ROOT, _ROOT, bad) is False
    assert verify_consistency(_N, _N, _ROOT, _ROOT, bad) is False


def test_consistency_malformed_proof_elements() -> None:
    for k in range(len(_CPROOF)):
        for bad in _BAD_HASHES:
            bad_proof: list[Any] = [*_CPROOF[:k], bad, *_CPROOF[k + 1 :]]
            assert verify_consistency(_M, _N, _OLD_ROOT, _ROOT, bad_proof) is False


@pytest.mark.parametrize("bad", _BAD_SIZES, ids=repr)
def test_consistency_malformed_sizes(bad: Any) -> None:
    assert verify_consistency(bad, _N, _OLD_ROOT, _ROOT, _CPROOF) is False
    assert verify_consistency(_M, bad, _OLD_ROOT, _ROOT, _CPROOF) is False


def test_consistency_out_of_range_sizes() -> None:
    empty = _sha(b"")
    cases = [
        (0, _N, empty, _ROOT, _CPROOF),
        (0, _N, empty, _ROOT, []),
        (0, 0, empty, empty, []),
        (_N, _M, _ROOT, _OLD_ROOT, _CPROOF),
        (_N + 1, _N, _OLD_ROOT, _ROOT, _CPROOF),
        (_M, 2**64, _OLD_ROOT, _ROOT, _CPROOF),
        (2**64 - 2, 2**64 - 1, _OLD_ROOT, _ROOT, [_ROOT] * 65),
        (1, 2**64 - 1, _OLD_ROOT, _ROOT, [_ROOT] * 64),
    ]
    for case in cases:
        assert verify_consistency(*case) is False, case
    one = LEAVES_64[0]
    assert verify_consistency(1, 1, one, one, [])
    assert verify_consistency(True, 1, one, one, []) is False
    assert verify_consistency(1, True, one, one, []) is False


@settings(max_examples=300, deadline=None)
@given(
    leaf=st.one_of(st.binary(max_size=40), st.none(), st.integers()),
    index=st.integers(min_value=-(2**70), max_value=2**70),
    size=st.integers(min_value=-(2**70), max_value=2**70),
    proof=st.lists(st.one_of(st.binary(min_size=30, max_size=34), st.none()), max_size=70),
    tree_root=st.binary(min_size=30, max_size=34),
)
def test_verification_never_raises(
    leaf: Any, index: int, size: int, proof: list[Any], tree_root: bytes
) -> None:
    assert verify_inclusion(leaf, index, size, proof, tree_root) in (True, False)
    assert verify_consistency(index, size, tree_root, tree_root, proof) in (True, False)
    assert verify_consistency(size, index, tree_root, leaf, proof) in (True, False)


# --- bad arguments to the builders raise ValueError --------------------------------------


@pytest.mark.parametrize(
    "leaves",
    [
        [b"\x00" * 31],
        [LEAVES_64[0], b"\x00" * 33],
        [LEAVES_64[0], bytearray(32)],
        [LEAVES_64[0], LEAVES_64[1].hex()],
        [None],
        b"\x00" * 32,
        "abc",
        None,
        42,
    ],
    ids=_case_id,
)
def test_builders_reject_bad_leaf_hashes(leaves: Any) -> None:
    with pytest.raises(ValueError, match="hash"):
        root(leaves)
    with pytest.raises(ValueError, match="hash"):
        inclusion_proof(leaves, 0)
    with pytest.raises(ValueError, match="hash"):
        consistency_proof(leaves, 1)


@pytest.mark.parametrize("index", [-1, 5, 6, 2**64, True, 1.0, "1", None], ids=repr)
def test_inclusion_proof_rejects_bad_index(index: Any) -> None:
    with pytest.raises(ValueError, match="index"):
        inclusion_proof(LEAVES_64[:5], index)


def test_inclusion_proof_rejects_empty_tree() -> None:
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof([], 0)


@pytest.mark.parametrize("old_size", [0, -1, 6, 2**64, True, 2.0, None], ids=repr)
def test_consistency_proof_rejects_bad_old_size(old_size: Any) -> None:
    with pytest.raises(ValueError, match="old_size"):
        consistency_proof(LEAVES_64[:5], old_size)


def test_consistency_proof_rejects_empty_tree() -> None:
    with pytest.raises(ValueError, match="old_size"):
        consistency_proof([], 0)


def test_hash_functions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        leaf_hash("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        leaf_hash(bytearray(b"x"))  # type: ignore[arg-type]
    good = LEAVES_64[0]
    for bad in (good[:31], good + b"\x00", good.hex(), None):
        with pytest.raises(ValueError):
            node_hash(bad, good)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            node_hash(good, bad)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.data(), raw=st.lists(st.binary(max_size=12), min_size=1, max_size=150))
def test_random_trees_round_trip(data: st.DataObject, raw: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in raw]
    n = len(leaves)
    tree_root = root(leaves)
    assert tree_root == ref_mth(leaves)

    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    proof = inclusion_proof(leaves, index)
    assert proof == ref_path(index, leaves)
    assert verify_inclusion(leaves[index], index, n, proof, tree_root)

    old = data.draw(st.integers(min_value=1, max_value=n), label="old_size")
    cproof = consistency_proof(leaves, old)
    assert cproof == ref_subproof(old, leaves, True)
    assert verify_consistency(old, n, root(leaves[:old]), tree_root, cproof)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3000),
    data=st.data(),
)
def test_larger_random_trees_round_trip(n: int, data: st.DataObject) -> None:
    leaves = [_ref_leaf(i.to_bytes(4, "big")) for i in range(n)]
    tree_root = root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    assert verify_inclusion(leaves[index], index, n, inclusion_proof(leaves, index), tree_root)
    old = data.draw(st.integers(min_value=1, max_value=n), label="old_size")
    proof = consistency_proof(leaves, old)
    assert verify_consistency(old, n, root(leaves[:old]), tree_root, proof)


# --- the streaming builder --------------------------------------------------------------


def test_builder_root_equals_root_for_every_size_to_70() -> None:
    leaves = distinct_leaves(70)
    builder = RootBuilder()
    assert builder.root() == root([]) == hashlib.sha256(b"").digest()
    for n, leaf in enumerate(leaves, start=1):
        builder.append(leaf)
        assert builder.size == n
        assert builder.root() == root(leaves[:n]) == ref_mth(leaves[:n]), n


@pytest.mark.parametrize("n", [2**10, 2**12 + 1, 3 * 2**12 - 1, 2**14 + 3, 40_000])
def test_builder_root_of_large_trees(n: int) -> None:
    leaves = [_ref_leaf(i.to_bytes(4, "big")) for i in range(n)]
    one_by_one, at_once = RootBuilder(), RootBuilder()
    for leaf in leaves:
        one_by_one.append(leaf)
    at_once.extend(leaves)
    assert one_by_one.root() == at_once.root() == root(leaves)


def test_builder_memory_is_logarithmic() -> None:
    builder = RootBuilder()
    builder.extend(distinct_leaves(1000))
    assert len(builder._stack) == bin(1000).count("1")  # one subtree per set bit


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=300), data=st.data())
def test_builder_fed_in_pieces_equals_root(n: int, data: st.DataObject) -> None:
    """Any split into runs, each given as leaves or as subtree_roots, gives the root."""
    leaves = distinct_leaves(n)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6), label="cuts"))
    bounds = [0, *cuts, n]
    builder = RootBuilder()
    for start, end in pairwise(bounds):
        if data.draw(st.booleans(), label="as subtrees"):
            for size, subtree in subtree_roots(start, leaves[start:end]):
                builder.append_subtree(subtree, size)
        else:
            builder.extend(leaves[start:end])
    assert builder.size == n
    assert builder.root() == root(leaves)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 2**20), count=st.integers(0, 200))
def test_subtree_roots_are_aligned_perfect_subtrees(start: int, count: int) -> None:
    leaves = [_ref_leaf(i.to_bytes(4, "big")) for i in range(count)]
    position = start
    for size, subtree in subtree_roots(start, leaves):
        assert size & (size - 1) == 0 and position % size == 0
        offset = position - start
        assert subtree == ref_mth(leaves[offset : offset + size])
        position += size
    assert position == start + count


def test_builder_rejects_bad_input() -> None:
    leaf = distinct_leaves(1)[0]
    builder = RootBuilder()
    builder.append(leaf)
    with pytest.raises(ValueError, match="cannot start at leaf 1"):
        builder.append_subtree(leaf, 2)
    with pytest.raises(ValueError, match="power of two"):
        builder.append_subtree(leaf, 3)
    with pytest.raises(ValueError, match="power of two"):
        builder.append_subtree(leaf, 0)
    with pytest.raises(ValueError, match="32-byte"):
        builder.append(b"short")
    with pytest.raises(ValueError, match="must be an int"):
        builder.append_subtree(leaf, True)
    with pytest.raises(ValueError, match="start must be >= 0"):
        subtree_roots(-1, [leaf])
    with pytest.raises(ValueError, match="32-byte"):
        builder.extend([b"x" * 31])
    assert builder.size == 1 and builder.root() == leaf
