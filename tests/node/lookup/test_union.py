"""The epoch union against a plaintext oracle (dict identifier -> listings)."""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from node.algorithms.identifiers import identifier_tag, normalise
from node.crypto import oprf
from node.lookup import union as u
from node.lookup.union import (
    TABLE_ENTRY_BYTES,
    Contribution,
    Entry,
    Listing,
    Union,
    UnionBuildError,
    UnionDigestMismatch,
    UnionFormatError,
    bucket_of,
    build_union,
    lookup,
    multi_head_count,
    open_labels,
    verify_digest,
)

EPOCH = 2026_11
DAY = 86_400
NOW = 1_790_000_000
LABELS = ("fraud", "overdue-90", "multi-head", "identity-theft", "court-order")
PROVIDER_NAMES = [f"provider-bank-{i:02d}" for i in range(10)]

SK = oprf.random_scalar()


def _prf(phone: str) -> bytes:
    return oprf.evaluate(SK, identifier_tag("phone") + normalise("phone", phone).encode())


# 60 identifiers is enough to hit every case; their PRFs are computed once per module.
PHONES = [f"+86 138 {i:04d} {(i * 7) % 10000:04d}" for i in range(60)]
PRFS = {phone: _prf(phone) for phone in PHONES}


def _random_plan(seed: int, providers: int) -> list[list[tuple[str, frozenset[str], int]]]:
    """Per provider, a list of (phone, labels, event_time) with overlaps and duplicates."""
    rng = random.Random(seed)
    plan: list[list[tuple[str, frozenset[str], int]]] = []
    for _ in range(providers):
        rows = []
        for phone in rng.sample(PHONES[:40], rng.randint(3, 20)):
            labels = frozenset(rng.sample(LABELS, rng.randint(0, 3)))
            rows.append((phone, labels, NOW - rng.randint(0, 120 * DAY)))
        # a duplicate listing of one identifier within the provider
        phone, labels, t = rows[0]
        rows.append((phone, frozenset({"duplicate"}), t - DAY))
        plan.append(rows)
    return plan


def _oracle(plan: list[list[tuple[str, frozenset[str], int]]]) -> dict[str, list[Listing]]:
    """Plaintext union: per phone, one listing per provider (labels united, latest time)."""
    out: dict[str, list[Listing]] = {}
    for rows in plan:
        merged: dict[str, tuple[frozenset[str], int]] = {}
        for phone, labels, t in rows:
            old = merged.get(phone)
            merged[phone] = (labels, t) if old is None else (old[0] | labels, max(old[1], t))
        for phone, (labels, t) in merged.items():
            out.setdefault(phone, []).append(Listing(t, tuple(sorted(labels))))
    return {phone: sorted(items) for phone, items in out.items()}


def _contributions(plan: list[list[tuple[str, frozenset[str], int]]]) -> list[Contribution]:
    return [Contribution([Entry(PRFS[p], labels, t) for p, labels, t in rows]) for rows in plan]


@pytest.mark.parametrize("providers", [2, 3, 5, 10])
def test_union_matches_plaintext_oracle(providers: int) -> None:
    plan = _random_plan(providers, providers)
    oracle = _oracle(plan)
    union = build_union(EPOCH, _contributions(plan))
    assert len(union.table) == len(oracle)
    assert union.bucket_count == u.default_bucket_count(len(oracle))
    for phone in PHONES:
        prf = PRFS[phone]
        hit = lookup(union.table, prf, EPOCH)
        bucket = union.buckets[bucket_of(prf, EPOCH, union.bucket_count)]
        if phone in oracle:
            assert hit is not None
            assert hit.multiplicity == len(oracle[phone])
            assert open_labels(bucket, prf, EPOCH) == oracle[phone]
        else:
            assert hit is None
            assert open_labels(bucket, prf, EPOCH) == []


def test_random_prfs_miss_and_open_nothing() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(1, 4)), bucket_count=1)
    for _ in range(200):
        prf = os.urandom(64)
        assert lookup(union.table, prf, EPOCH) is None
        assert open_labels(union.buckets[0], prf, EPOCH) == []


def test_duplicates_within_a_provider_are_merged() -> None:
    prf = PRFS[PHONES[0]]
    one = Contribution(
        [
            Entry(prf, frozenset({"fraud"}), NOW - 10 * DAY),
            Entry(prf, frozenset({"overdue-90"}), NOW - DAY),
        ]
    )
    other = Contribution([Entry(prf, frozenset(), NOW - 50 * DAY)])
    union = build_union(EPOCH, [one, one, other])
    hit = lookup(union.table, prf, EPOCH)
    assert hit is not None and hit.multiplicity == 3
    got = open_labels(union.buckets[0], prf, EPOCH)
    assert got == sorted(
        [
            Listing(NOW - DAY, ("fraud", "overdue-90")),
            Listing(NOW - DAY, ("fraud", "overdue-90")),
            Listing(NOW - 50 * DAY, ()),
        ]
    )


def test_compact_table_size() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(7, 6)))
    n = len(union.table)
    assert TABLE_ENTRY_BYTES == 9 <= 12
    assert len(union.table_bytes) == TABLE_ENTRY_BYTES * n
    assert len(union.table_bytes) <= 12 * n


def test_no_provider_identity_in_serialised_union() -> None:
    plan = _random_plan(3, 10)
    data = build_union(EPOCH, _contributions(plan)).to_bytes()
    for name in PROVIDER_NAMES:
        assert name.encode() not in data
    # nor any identifier, label or PRF in the clear
    for phone in PHONES:
        assert PRFS[phone][:16] not in data
    for label in LABELS:
        assert label.encode() not in data


def _plaintexts(union: Union) -> Counter[bytes]:
    """All label plaintexts (decrypted with the PRFs the test knows), as a multiset."""
    out: Counter[bytes] = Counter()
    for prf in PRFS.values():
        bucket = union.buckets[bucket_of(prf, union.epoch, union.bucket_count)]
        listings = open_labels(bucket, prf, union.epoch)
        if listings:
            out[repr(listings).encode()] += 1
    return out


def test_reassigning_entries_to_other_providers_gives_the_same_union_shape() -> None:
    plan = _random_plan(11, 5)
    permuted = [plan[i] for i in (3, 0, 4, 1, 2)]
    a = build_union(EPOCH, _contributions(plan))
    b = build_union(EPOCH, _contributions(permuted), rng=random.Random(1))
    assert a.table_bytes == b.table_bytes  # same tags, same multiplicities, sorted
    assert len(a.to_bytes()) == len(b.to_bytes())
    assert [len(x) for x in a.buckets] == [len(x) for x in b.buckets]
    assert sorted(map(len, u.parse_bucket(a.buckets[0])[1])) == sorted(
        map(len, u.parse_bucket(b.buckets[0])[1])
    )
    assert _plaintexts(a) == _plaintexts(b)
    # fresh salt per build: ciphertexts differ even for the same content
    assert a.buckets != b.buckets


def test_round_trip_and_digest() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(5, 4)), bucket_count=5)
    data = union.to_bytes()
    again = Union.from_bytes(data)
    assert again.to_bytes() == data
    assert again.digest == union.digest
    verify_digest(again, union.digest)
    with pytest.raises(UnionDigestMismatch):
        verify_digest(again, bytes(32))


def test_querier_checks_one_bucket_without_the_others() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(6, 4)), bucket_count=4)
    digests = union.bucket_digests
    assert u.digest_from_parts(EPOCH, union.table_bytes, digests) == union.digest
    assert u.bucket_digest(union.buckets[2]) == digests[2]
    assert u.digest_from_parts(EPOCH + 1, union.table_bytes, digests) != union.digest
    swapped = (digests[1], digests[0], *digests[2:])
    assert u.digest_from_parts(EPOCH, union.table_bytes, swapped) != union.digest


def test_digest_changes_when_any_byte_changes() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(5, 3)), bucket_count=3)
    data = union.to_bytes()
    seen = {union.digest}
    for i in range(len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 0x01
        try:
            parsed = Union.from_bytes(bytes(mutated))
        except UnionFormatError:
            continue
        assert parsed.digest not in seen, f"byte {i} did not change the digest"
        seen.add(parsed.digest)


def test_malformed_bytes_raise_named_errors() -> None:
    union = build_union(EPOCH, _contributions(_random_plan(2, 3)), bucket_count=4)
    data = union.to_bytes()
    bad = [
        b"",
        data[:10],
        b"XXXX" + data[4:],
        data[:4] + b"\x09" + data[5:],
        data[:-1],
        data + b"\x00",
    ]
    for blob in bad:
        with pytest.raises(UnionFormatError):
            Union.from_bytes(blob)
    with pytest.raises(UnionFormatError):
        u.UnionTable.from_bytes(union.table_bytes[:-1])
    # an unsorted table
    t = union.table
    swapped = u.UnionTable(t.tags[::-1].copy(), t.multiplicities[::-1].copy())
    with pytest.raises(UnionFormatError):
        u.UnionTable.from_bytes(swapped.to_bytes())
    with pytest.raises(UnionFormatError):
        u.parse_bucket(union.buckets[0][:-1])
    with pytest.raises(UnionFormatError):
        open_labels(b"short", PRFS[PHONES[0]], EPOCH)


def test_bad_contributions_are_refused() -> None:
    prf = PRFS[PHONES[0]]
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [Contribution([Entry(prf[:32], frozenset(), NOW)])])
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [Contribution([Entry(prf, frozenset(), -1)])])
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [Contribution([Entry(prf, frozenset({1}), NOW)])])  # type: ignore[arg-type]
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [Contribution([Entry(prf, frozenset({"\ud800"}), NOW)])])
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [Contribution([])] * 256)
    with pytest.raises(UnionBuildError):
        build_union(EPOCH, [], bucket_count=0)


def test_empty_union() -> None:
    union = Union.from_bytes(build_union(EPOCH, []).to_bytes())
    assert len(union.table) == 0 and union.bucket_count == 1
    assert lookup(union.table, PRFS[PHONES[0]], EPOCH) is None
    assert open_labels(union.buckets[0], PRFS[PHONES[0]], EPOCH) == []


def test_epoch_separation() -> None:
    prf = PRFS[PHONES[0]]
    assert u.membership_tag(prf, EPOCH) != u.membership_tag(prf, EPOCH + 1)
    salt = bytes(16)
    assert u.label_key(prf, EPOCH, salt) != u.label_key(prf, EPOCH + 1, salt)
    union = build_union(EPOCH, [Contribution([Entry(prf, frozenset({"fraud"}), NOW)])])
    assert lookup(union.table, prf, EPOCH) is not None
    assert lookup(union.table, prf, EPOCH + 1) is None
    assert open_labels(union.buckets[0], prf, EPOCH + 1) == []
    assert open_labels(union.buckets[0], prf, EPOCH) == [Listing(NOW, ("fraud",))]


def test_multi_head_windows() -> None:
    times = [NOW - DAY, NOW - 6 * DAY, NOW - 7 * DAY, NOW - 20 * DAY, NOW - 89 * DAY]
    times += [NOW - 100 * DAY, NOW + DAY]  # too old, in the future
    listings = [Listing(t, ()) for t in times]
    assert multi_head_count(listings, [], NOW, 7) == 2  # exactly 7 days ago is out
    assert multi_head_count(listings, [], NOW, 30) == 4
    assert multi_head_count(listings, [], NOW, 90) == 5
    # the asker's own listing (6 days ago) is excluded, from every window containing it
    own = [NOW - 6 * DAY]
    assert [multi_head_count(listings, own, NOW, w) for w in u.MULTI_HEAD_WINDOWS] == [1, 3, 4]
    # an own time that is not in the union subtracts nothing
    assert multi_head_count(listings, [NOW - 2 * DAY], NOW, 7) == 2
    # an own time outside the window subtracts nothing from it
    assert multi_head_count(listings, [NOW - 20 * DAY], NOW, 7) == 2
    with pytest.raises(u.UnionError):
        multi_head_count(listings, [], NOW, 0)


def test_multi_head_end_to_end_excludes_asker() -> None:
    prf = PRFS[PHONES[1]]
    asker_time = NOW - 2 * DAY
    others = [NOW - 3 * DAY, NOW - 25 * DAY, NOW - 60 * DAY]
    contributions = [Contribution([Entry(prf, frozenset({"loan"}), asker_time)])]
    contributions += [Contribution([Entry(prf, frozenset({"loan"}), t)]) for t in others]
    union = build_union(EPOCH, contributions)
    listings = open_labels(union.buckets[0], prf, EPOCH)
    counts = [multi_head_count(listings, [asker_time], NOW, w) for w in u.MULTI_HEAD_WINDOWS]
    assert counts == [1, 2, 3]
