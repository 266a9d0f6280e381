"""Two-party DH-PSI core over ristretto255 (node/crypto/ecdh_psi.py).

Checked: intersection and cardinality equal Python set operations on random sets of
several sizes and overlaps (empty, disjoint, identical, with duplicates, and tagged
normalised identifiers written differently on each side); the cardinality answer is
shuffled independently of the requester's order; nothing the responder sends contains an
item or an unkeyed hash of one; different keys give unrelated outputs; malformed peer
elements, digests and keys are refused with named errors; the streaming, multi-process
path gives the same bytes as the plain functions. Sets are kept to a few hundred items
because every item costs ~0.2 ms of curve work.
"""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
import rbcl  # type: ignore[import-untyped]

from node.algorithms.identifiers import identifier_tag, normalise
from node.crypto import ecdh_psi as psi
from node.crypto import oprf

Items = list[bytes]


def _tagged(values: list[str], kind: str = "text") -> Items:
    return [identifier_tag(kind) + v.encode() for v in values]


def _random_sets(
    rng: random.Random, n_a: int, n_b: int, overlap: int, dup: int = 0
) -> tuple[Items, Items]:
    """Two sets with exactly ``overlap`` common values, then ``dup`` repeats on each side."""
    universe = [f"id-{rng.getrandbits(64):016x}" for _ in range(n_a + n_b - overlap)]
    a = universe[:n_a]
    b = universe[n_a - overlap : n_a - overlap + n_b]
    a += rng.choices(a, k=dup) if a else []
    b += rng.choices(b, k=dup) if b else []
    rng.shuffle(a)
    rng.shuffle(b)
    return _tagged(a), _tagged(b)


def _run(items_a: Items, items_b: Items) -> tuple[Items, int, list[bytes]]:
    """Whole protocol in memory: (intersection, cardinality, everything B sent)."""
    a, b = psi.new_key(), psi.new_key()
    x_a = psi.hash_and_blind(a, items_a)
    x_b = psi.hash_and_blind(b, items_b)
    in_order = psi.intersection_response(b, x_a)
    shuffled = psi.cardinality_response(b, x_a)
    peer = psi.digests(psi.reblind(a, x_b))
    common = psi.intersection(items_a, in_order, peer)
    count = psi.cardinality(shuffled, peer)
    return common, count, [*x_b, *in_order, *shuffled]


@pytest.mark.parametrize(
    ("n_a", "n_b", "overlap", "dup"),
    [
        (0, 0, 0, 0),  # both empty
        (0, 7, 0, 0),  # requester empty
        (9, 0, 0, 0),  # responder empty
        (1, 1, 1, 0),  # one common item
        (40, 60, 0, 0),  # disjoint
        (50, 50, 50, 0),  # identical
        (120, 80, 30, 0),
        (200, 150, 149, 0),
        (60, 90, 20, 15),  # duplicates on both sides
    ],
)
def test_outputs_equal_set_operations(n_a: int, n_b: int, overlap: int, dup: int) -> None:
    rng = random.Random(f"{n_a}-{n_b}-{overlap}-{dup}")
    items_a, items_b = _random_sets(rng, n_a, n_b, overlap, dup)
    common, count, _ = _run(items_a, items_b)
    expected = set(items_a) & set(items_b)
    assert set(common) == expected
    assert len(common) == len(expected)  # distinct, no item reported twice
    assert common == [x for x in dict.fromkeys(items_a) if x in expected]  # requester's order
    assert count == len(expected) == overlap


def test_normalised_identifiers_written_differently_match() -> None:
    raw_a = ["+86 138-0013-8000", "0086 139 0000 0000", "13700000000"]
    raw_b = ["13800138000", "(+86) 13700000000", "13600000000"]
    tag = identifier_tag("phone")
    items_a = [tag + normalise("phone", v).encode() for v in raw_a]
    items_b = [tag + normalise("phone", v).encode() for v in raw_b]
    common, count, _ = _run(items_a, items_b)
    assert common == [tag + b"+8613800138000", tag + b"+8613700000000"]
    assert count == 2


def test_same_value_under_different_kinds_does_not_match() -> None:
    common, count, _ = _run([identifier_tag("card") + b"4111111111111111"],
                            [identifier_tag("text") + b"4111111111111111"])  # fmt: skip
    assert (common, count) == ([], 0)


def test_cardinality_order_is_shuffled_independently_of_requester_order() -> None:
    rng = random.Random(7)
    items_a, _ = _random_sets(rng, 200, 0, 0)
    a, b = psi.new_key(), psi.new_key()
    x_a = psi.hash_and_blind(a, items_a)
    in_order = psi.intersection_response(b, x_a)
    first = psi.cardinality_response(b, x_a)
    second = psi.cardinality_response(b, x_a)
    reversed_input = psi.cardinality_response(b, x_a[::-1])
    # The same multiset every time, never in the requester's order, and two answers to
    # the same (or reversed) request are in unrelated orders.
    assert sorted(first) == sorted(second) == sorted(reversed_input) == sorted(in_order)
    assert first != in_order
    assert first != second
    assert reversed_input != in_order[::-1]
    positions = {d: i for i, d in enumerate(first)}
    moved = [positions[d] for d in in_order]
    # Rank correlation with the requester's order is near zero (|rho| < 0.25 fails
    # with probability ~4e-4 for a uniform permutation of 200).
    n = len(moved)
    rho = 1 - 6 * sum((i - p) ** 2 for i, p in enumerate(moved)) / (n * (n * n - 1))
    assert abs(rho) < 0.25


def test_shuffle_digest_buffer_is_a_permutation() -> None:
    values = [i.to_bytes(psi.DIGEST_BYTES, "big") for i in range(500)]
    out = psi.shuffle_digest_buffer(b"".join(values))
    rows = [out[i : i + psi.DIGEST_BYTES] for i in range(0, len(out), psi.DIGEST_BYTES)]
    assert sorted(rows) == values and rows != values
    assert psi.shuffle_digest_buffer(b"") == b""
    with pytest.raises(psi.InvalidDigestError):
        psi.shuffle_digest_buffer(b"x" * (psi.DIGEST_BYTES + 1))


def test_responder_messages_contain_no_item_or_unkeyed_hash() -> None:
    rng = random.Random(11)
    values_a = [f"{rng.randrange(10**11):011d}" for _ in range(60)]
    values_b = values_a[:30] + [f"{rng.randrange(10**11):011d}" for _ in range(30)]
    items_a, items_b = _tagged(values_a, "phone"), _tagged(values_b, "phone")
    _, _, sent = _run(items_a, items_b)
    transcript = b"".join(sent)
    forbidden: list[bytes] = []
    for value, tagged in zip(values_a + values_b, items_a + items_b, strict=True):
        for form in (value.encode(), tagged):
            forbidden.append(form)
            for digest in (hashlib.sha256(form).digest(), hashlib.sha512(form).digest()):
                forbidden += [digest, digest[: psi.DIGEST_BYTES]]
        forbidden.append(psi.hash_to_element(tagged))  # the unkeyed group element
    assert len(transcript) > 0
    for needle in forbidden:
        assert needle not in transcript


def test_different_keys_give_unrelated_outputs() -> None:
    items = _tagged([f"k{i}" for i in range(100)])
    k1, k2 = psi.new_key(), psi.new_key()
    assert k1 != k2
    x1, x2 = psi.hash_and_blind(k1, items), psi.hash_and_blind(k2, items)
    assert not set(x1) & set(x2)
    b = psi.new_key()
    d1, d2 = psi.intersection_response(b, x1), psi.intersection_response(b, x2)
    assert not set(d1) & set(d2)
    # A responder answering under one key but blinding its set under another matches nothing.
    a = psi.new_key()
    x_a = psi.hash_and_blind(a, items)
    peer = psi.digests(psi.reblind(a, psi.hash_and_blind(psi.new_key(), items)))
    assert psi.intersection(items, psi.intersection_response(b, x_a), peer) == []
    # ... while under the same key the doubly-blinded values commute.
    assert psi.reblind(b, psi.hash_and_blind(a, items)) == psi.reblind(
        a, psi.hash_and_blind(b, items)
    )


# RFC 9496 Appendix A.2 bad encodings (non-canonical field elements, negative elements,
# non-square x^2, and an Ed25519 small-order point's encoding).
BAD_ENCODINGS = [
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


@pytest.mark.parametrize("bad", BAD_ENCODINGS)
def test_invalid_point_from_peer_is_refused(bad: str) -> None:
    element = bytes.fromhex(bad)
    assert not rbcl.crypto_core_ristretto255_is_valid_point(element)
    good = psi.hash_and_blind(psi.new_key(), [b"x"])
    with pytest.raises(psi.InvalidPeerElementError, match="element 1 is not a canonical"):
        psi.reblind(psi.new_key(), [*good, element])


@pytest.mark.parametrize(
    ("element", "message"),
    [
        (bytes(32), "element 0 is the identity"),
        (b"\x01" * 31, "element 0 must be 32 bytes, got 31 bytes"),
        (b"\x01" * 33, "element 0 must be 32 bytes, got 33 bytes"),
        (b"", "element 0 must be 32 bytes, got 0 bytes"),
        ("ab" * 16, "element 0 must be 32 bytes, got str"),
    ],
)
def test_malformed_element_from_peer_is_refused(element: bytes, message: str) -> None:
    with pytest.raises(psi.InvalidPeerElementError, match=message):
        psi.reblind(psi.new_key(), [element])
    with pytest.raises(psi.InvalidPeerElementError, match=message):
        psi.intersection_response(psi.new_key(), [element])
    with pytest.raises(psi.InvalidPeerElementError, match=message):
        psi.cardinality_response(psi.new_key(), [element])


@pytest.mark.parametrize(
    "key",
    [bytes(32), b"\x01" * 31, oprf.GROUP_ORDER.to_bytes(32, "little"), b"\xff" * 32],
)
def test_bad_key_is_refused(key: bytes) -> None:
    with pytest.raises(psi.InvalidKeyError):
        psi.hash_and_blind(key, [b"x"])
    with pytest.raises(psi.InvalidKeyError):
        psi.reblind(key, [])
    with pytest.raises(psi.InvalidKeyError):
        psi.iter_reblind(key, [])


def test_malformed_digests_and_responses_are_refused() -> None:
    good = [b"\x00" * psi.DIGEST_BYTES]
    with pytest.raises(psi.InvalidDigestError, match=r"peer_digests\[0\]"):
        psi.cardinality(good, [b"short"])
    with pytest.raises(psi.InvalidDigestError, match=r"response\[0\]"):
        psi.cardinality([b"short"], good)
    with pytest.raises(psi.InvalidDigestError, match=r"response\[0\]"):
        psi.intersection([b"item"], [b"\x00" * 32], good)
    with pytest.raises(psi.EcdhPsiError, match="response has 2 digests for 1 items"):
        psi.intersection([b"item"], good * 2, good)
    # Digests whose bytes end in zeros stay distinct from each other (numpy S dtype).
    z = b"\x00" * psi.DIGEST_BYTES
    nz = b"\x01" + b"\x00" * (psi.DIGEST_BYTES - 1)
    assert psi.cardinality([z, nz], [nz]) == 1
    assert psi.intersection([b"p", b"q"], [z, nz], [z]) == [b"p"]


def test_streaming_on_two_processes_equals_plain_functions() -> None:
    items = _tagged([f"s{i}" for i in range(300)])
    a, b = psi.new_key(), psi.new_key()
    x_a = psi.hash_and_blind(a, items)
    expected = psi.reblind(b, x_a)
    with psi.new_executor(2) as pool:
        blinded = [
            e
            for chunk in psi.iter_hash_and_blind(a, psi.chunked(items, 37), 2, pool)
            for e in chunk
        ]
        assert blinded == x_a
        again = [e for chunk in psi.iter_reblind(b, psi.chunked(x_a, 50), 2, pool) for e in chunk]
        assert again == expected
        # An invalid element is reported at its position in the whole stream, from a worker.
        broken = [*x_a[:120], bytes(32), *x_a[121:]]
        with pytest.raises(psi.InvalidPeerElementError, match="element 120 is the identity"):
            for _ in psi.iter_reblind(b, psi.chunked(broken, 50), 2, pool):
                pass
    inline = [e for chunk in psi.iter_reblind(b, psi.chunked(x_a, 64)) for e in chunk]
    assert inline == expected
    assert list(psi.iter_hash_and_blind(a, [])) == []
    with pytest.raises(ValueError, match="chunk size"):
        list(psi.chunked(items, 0))


def test_own_pool_is_started_and_shut_down() -> None:
    items = _tagged([f"p{i}" for i in range(40)])
    a = psi.new_key()
    out = [e for chunk in psi.iter_hash_and_blind(a, psi.chunked(items, 10), 2) for e in chunk]
    assert out == psi.hash_and_blind(a, items)


def test_streamed_requester_side_equals_whole_set_functions() -> None:
    rng = random.Random(5)
    items_a, items_b = _random_sets(rng, 150, 120, 45, dup=10)
    a, b = psi.new_key(), psi.new_key()
    x_a = psi.hash_and_blind(a, items_a)
    x_b = psi.hash_and_blind(b, items_b)
    peer = psi.DigestSet()
    for chunk in psi.iter_reblind(a, psi.chunked(x_b, 40)):
        peer.add_buffer(psi.digest_buffer(chunk))  # as it arrives off the wire
    response_chunks = (psi.intersection_response(b, c) for c in psi.chunked(x_a, 32))
    streamed = [
        x for c in psi.iter_intersection(psi.chunked(items_a, 32), response_chunks, peer) for x in c
    ]
    expected = set(items_a) & set(items_b)
    assert streamed == psi.intersection(items_a, psi.intersection_response(b, x_a), peer)
    assert set(streamed) == expected and len(streamed) == len(expected)
    shuffled = psi.shuffle_digest_buffer(b"".join(psi.intersection_response(b, x_a)))
    assert peer.count_distinct(shuffled) == len(expected) == 45
    assert len(peer) == len(items_b)
    with pytest.raises(psi.EcdhPsiError, match="frozen"):
        peer.add([b"\x00" * psi.DIGEST_BYTES])
    with pytest.raises(psi.EcdhPsiError, match="response stream ended first"):
        list(psi.iter_intersection([items_a[:2], items_a[2:4]], [[b"\x00" * 12] * 2], peer))
    with pytest.raises(psi.EcdhPsiError, match="item stream ended first"):
        list(psi.iter_intersection([], [[b"\x00" * 12]], peer))
    with pytest.raises(psi.EcdhPsiError, match="response chunk at 0 has 1 digests for 2 items"):
        list(psi.iter_intersection([items_a[:2]], [[b"\x00" * 12]], peer))
    with pytest.raises(psi.InvalidDigestError, match="not a multiple"):
        psi.DigestSet().add_buffer(b"\x00" * 13)


def test_buffer_streams_equal_the_plain_functions() -> None:
    """The wire-form streams (one buffer per chunk, pieces of any size in) give exactly
    what the list functions give, inline and on a pool, digests made in the workers."""
    items = _tagged([f"b{i}" for i in range(260)])
    a, b = psi.new_key(), psi.new_key()
    x_a = psi.hash_and_blind(a, items)
    expected = psi.reblind(b, x_a)
    # pieces as they arrive off the wire: uneven, one empty, one of a single element
    cuts = [0, 7, 7, 8, 100, 260]
    pieces = [b"".join(x_a[i:j]) for i, j in itertools.pairwise(cuts)]
    with psi.new_executor(2) as pool:
        for processes, executor in ((1, None), (2, pool)):
            blinded = psi.iter_blind_buffers(a, psi.chunked(items, 37), processes, executor)
            assert b"".join(blinded) == b"".join(x_a)
            again = psi.iter_reblind_buffers(b, pieces, processes, executor)
            assert b"".join(again) == b"".join(expected)
            digests = list(psi.iter_reblind_buffers(b, pieces, processes, executor, digest=True))
            assert b"".join(digests) == psi.digest_buffer(expected)
            assert all(len(d) % psi.DIGEST_BYTES == 0 for d in digests)
        broken = [pieces[3], pieces[4][:64] + bytes(32) + pieces[4][96:]]
        with pytest.raises(psi.InvalidPeerElementError, match="element 94 is the identity"):
            list(psi.iter_reblind_buffers(b, broken, 2, pool))
    with pytest.raises(psi.InvalidPeerElementError, match="elements from 1 on: 33 bytes"):
        list(psi.iter_reblind_buffers(b, [x_a[0], x_a[1] + b"\x00"]))
    with pytest.raises(psi.InvalidKeyError):
        psi.iter_reblind_buffers(bytes(32), pieces)
    assert list(psi.iter_blind_buffers(a, [])) == []


def test_digest_set_lookups_in_chunks_equal_set_operations() -> None:
    """``hits`` and ``count_distinct_chunks`` against a plaintext set of digests; the set
    is built from many parts (frozen into one sorted array) and compared chunk by chunk."""
    rng = random.Random(9)
    universe = [rng.randbytes(psi.DIGEST_BYTES) for _ in range(600)]
    peer_values = rng.sample(universe, 250)
    peer = psi.DigestSet()
    for i in range(0, len(peer_values), 13):
        peer.add_buffer(b"".join(peer_values[i : i + 13]))
    probe = [rng.choice(universe) for _ in range(400)]  # with repeats
    chunks = [b"".join(probe[i : i + 64]) for i in range(0, len(probe), 64)]
    members = set(peer_values)
    hits = [bool(h) for c in chunks for h in peer.hits(c)]
    assert hits == [p in members for p in probe]
    assert peer.count_distinct_chunks(chunks) == len(set(probe) & members)
    assert peer.count_distinct_chunks([]) == 0
    assert peer.count_distinct(b"".join(chunks)) == len(set(probe) & members)
    assert len(peer) == len(members)
    with pytest.raises(psi.InvalidDigestError):
        peer.hits(b"\x00" * (psi.DIGEST_BYTES + 1))
    empty = psi.DigestSet()
    assert not empty.hits(b"".join(probe[:3])).any() and len(empty) == 0
