"""Masking PRG, key derivation and the Shamir wrapper: published vectors, pinned values,
cancellation, that a masked value looks the same whatever the input, and that the numpy
(uint64 limb) ring arithmetic equals a plain Python-integer reference bit for bit."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import masking, secagg, shamir
from node.fl.fixed_point import FixedPoint, clip_l2

# RFC 7748 §6.1 (X25519 Diffie-Hellman test vector).
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
CONTEXT = bytes(range(32))


def rfc5869_hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """An independent HKDF (RFC 5869, salt absent = zeros) to check the derivation."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def test_x25519_matches_rfc7748() -> None:
    assert masking.public_key(ALICE_PRIVATE) == ALICE_PUBLIC
    assert masking.public_key(BOB_PRIVATE) == BOB_PUBLIC
    assert masking.agree(ALICE_PRIVATE, BOB_PUBLIC) == SHARED
    assert masking.agree(BOB_PRIVATE, ALICE_PUBLIC) == SHARED


def test_prg_is_chacha20_rfc8439_keystream() -> None:
    # RFC 8439 appendix A.1, test vector #1: all-zero key, nonce and counter.
    assert masking.prg(bytes(32), 2) == [
        0x76B8E0ADA0F13D90405D6AE55386BD28,
        0xBDD219B8A08DED1AA836EFCC8B770DC7,
    ]
    assert masking.prg(bytes(32), 0) == []
    # A prefix property: longer outputs extend shorter ones (one stream per key).
    assert masking.prg(b"k" * 32, 5)[:3] == masking.prg(b"k" * 32, 3)


def test_pairwise_seed_known_answer_and_independent_hkdf() -> None:
    seed = masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "alice", "bob")
    names = b"\x00\x05alice\x00\x03bob"
    assert seed == rfc5869_hkdf_sha256(SHARED, masking.PAIRWISE_LABEL + CONTEXT + names)
    assert seed.hex() == "13c884ae316c978689cbde61d64529808e7357dbb1b155111eb0456f2e477319"
    # Symmetric: both ends derive the same seed, whatever the argument order.
    assert masking.pairwise_seed(BOB_PRIVATE, ALICE_PUBLIC, CONTEXT, "bob", "alice") == seed
    assert masking.prg(seed, 2) == [
        0x8C2FAF0B636DB4F21CE05B89C1A607E9,
        0x0FB5BF396E52622E67E9A4FFC44E268C,
    ]


def test_self_mask_seed_known_answer() -> None:
    seed = masking.self_mask_seed(bytes(32), CONTEXT, "alice")
    assert seed == rfc5869_hkdf_sha256(bytes(32), masking.SELF_LABEL + CONTEXT + b"\x00\x05alice")
    assert seed.hex() == "e6c30fa9210aeaddbed7901462861000a1da3e5deff4ea56524d2eebcafb4bf6"


def test_seeds_are_bound_to_context_pair_and_purpose() -> None:
    base = masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "alice", "bob")
    other_context = bytes(32)
    assert masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, other_context, "alice", "bob") != base
    assert masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "alice", "carol") != base
    # Unambiguous name encoding: ("ab", "c") and ("a", "bc") differ.
    assert masking.pairwise_seed(
        ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "ab", "c"
    ) != masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "a", "bc")
    # Purpose separation: the same secret under the self-mask and pairwise labels.
    same_secret_pairwise = rfc5869_hkdf_sha256(
        SHARED, masking.PAIRWISE_LABEL + CONTEXT + b"\x00\x05alice"
    )
    assert masking.self_mask_seed(SHARED, CONTEXT, "alice") != same_secret_pairwise


def test_bad_keys_and_lengths_are_refused() -> None:
    with pytest.raises(masking.KeyAgreementError, match="unusable"):
        masking.agree(ALICE_PRIVATE, bytes(32))  # low order: shared secret would be zero
    with pytest.raises(masking.KeyAgreementError, match="32 bytes"):
        masking.agree(ALICE_PRIVATE, ALICE_PUBLIC[:31])
    with pytest.raises(ValueError, match="private key seed"):
        masking.public_key(b"short")
    with pytest.raises(ValueError, match="context"):
        masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, b"x", "a", "b")
    with pytest.raises(ValueError, match="two distinct"):
        masking.pairwise_seed(ALICE_PRIVATE, BOB_PUBLIC, CONTEXT, "a", "a")
    with pytest.raises(ValueError, match="PRG length"):
        masking.prg(bytes(32), -1)
    with pytest.raises(ValueError):
        masking.pairwise_sign(2, 2)


def test_pairwise_masks_cancel_exactly() -> None:
    rng = random.Random(7)
    names = [f"p{i}" for i in range(6)]
    privates = [rng.randbytes(32) for _ in names]
    publics = [masking.public_key(k) for k in privates]
    length = 9
    vectors = [[rng.randrange(-(10**12), 10**12) for _ in range(length)] for _ in names]
    self_keys = [rng.randbytes(32) for _ in names]
    masked = []
    for i, name in enumerate(names):
        pairwise = [
            (
                masking.pairwise_sign(i, j),
                masking.pairwise_seed(privates[i], publics[j], CONTEXT, name, names[j]),
            )
            for j in range(len(names))
            if j != i
        ]
        masked.append(masking.mask(vectors[i], self_keys[i], pairwise))
    total = [0] * length
    for i, y in enumerate(masked):
        total = masking.add(total, y)
        total = masking.add(total, masking.prg(self_keys[i], length), -1)
    expected = [sum(col) for col in zip(*vectors, strict=True)]
    assert [masking.signed(x) for x in total] == expected


@given(st.lists(st.integers(min_value=-(2**127), max_value=2**127 - 1), max_size=8))
def test_ring_encoding_round_trips(values: list[int]) -> None:
    ring = masking.to_ring(values)
    assert masking.decode_vector(masking.encode_vector(ring), len(ring)) == ring
    assert [masking.signed(x) for x in ring] == values


def test_vector_encoding_is_strict() -> None:
    with pytest.raises(ValueError, match="out of range"):
        masking.encode_vector([masking.MODULUS])
    with pytest.raises(ValueError, match="expected 2 elements"):
        masking.decode_vector(bytes(31), 2)
    with pytest.raises(ValueError, match="lengths differ"):
        masking.add([1], [1, 2])


def test_masked_value_is_uniform_whatever_the_input() -> None:
    """One masked element, over 4096 independent mask keys, for input 5 and for input 7.

    Exactly: with the same key, y(7) = y(5) + 2 (mod 2^128), a bijection of the uniform
    mask, so each input gives the uniform distribution. Statistically (a deterministic
    sample, so no flakiness): the bytes of y pass a chi-square test for uniformity and
    the two inputs' byte histograms are indistinguishable.
    """
    stream = hashlib.shake_256(b"uniformity-test").digest(4096 * 32)
    keys = [stream[k : k + 32] for k in range(0, len(stream), 32)]
    samples = {v: [masking.mask([v], key, [])[0] for key in keys] for v in (5, 7)}
    assert all((b - a) % masking.MODULUS == 2 for a, b in zip(samples[5], samples[7], strict=True))

    def histogram(values: list[int]) -> list[int]:
        counts = [0] * 256
        for v in values:
            for byte in v.to_bytes(16, "big"):
                counts[byte] += 1
        return counts

    h5, h7 = histogram(samples[5]), histogram(samples[7])
    expected = 4096 * 16 / 256
    for h in (h5, h7):
        chi2 = sum((c - expected) ** 2 / expected for c in h)
        assert chi2 < 350, chi2  # 255 degrees of freedom; p ~ 1e-4 critical value
    homogeneity = sum((a - b) ** 2 / (a + b) for a, b in zip(h5, h7, strict=True) if a + b)
    assert homogeneity < 350, homogeneity


# ------------------------------------------------------------ vectorised ring arithmetic
#
# masking does its ring arithmetic on uint64 limbs in numpy. These tests check it against
# a reference written here with nothing but Python integers: a pure-Python ChaCha20 block
# function (RFC 8439 §2.3), keystream bytes read as big-endian 128-bit integers, and sums
# reduced mod 2^128 element by element. PINNED holds digests of the outputs of the
# pre-numpy implementation (Python integers throughout) on the same inputs.

RING = 1 << 128
M32 = 0xFFFFFFFF
EDGES = [
    0, 1, -1, 2, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64),
    2**127 - 1, -(2**127), 2**127, RING - 1, RING, -RING, RING + 5, 2**200, -(2**200) + 3,
]  # fmt: skip
LENGTHS = (0, 1, 2, 3, 5, 64, 257, 1000)


def _rotl(v: int, c: int) -> int:
    return ((v << c) & M32) | (v >> (32 - c))


def chacha20_keystream(key: bytes, size: int) -> bytes:
    """RFC 8439 ChaCha20 keystream, all-zero nonce, block counter from 0 (Python ints)."""
    key_words = [int.from_bytes(key[k : k + 4], "little") for k in range(0, 32, 4)]
    out = bytearray()
    counter = 0
    while len(out) < size:
        state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key_words, counter, 0, 0, 0]
        x = list(state)
        for _ in range(10):
            for a, b, c, d in (
                (0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14),
            ):  # fmt: skip
                x[a] = (x[a] + x[b]) & M32
                x[d] = _rotl(x[d] ^ x[a], 16)
                x[c] = (x[c] + x[d]) & M32
                x[b] = _rotl(x[b] ^ x[c], 12)
                x[a] = (x[a] + x[b]) & M32
                x[d] = _rotl(x[d] ^ x[a], 8)
                x[c] = (x[c] + x[d]) & M32
                x[b] = _rotl(x[b] ^ x[c], 7)
        out += b"".join(
            ((w + s) & M32).to_bytes(4, "little") for w, s in zip(x, state, strict=True)
        )
        counter += 1
    return bytes(out[:size])


def reference_prg(seed: bytes, length: int) -> list[int]:
    stream = chacha20_keystream(seed, 16 * length)
    return [int.from_bytes(stream[16 * k : 16 * k + 16], "big") for k in range(length)]


def reference_mask(
    vector: list[int], self_key: bytes, pairwise: list[tuple[int, bytes]]
) -> list[int]:
    total = [
        (v + r) % RING for v, r in zip(vector, reference_prg(self_key, len(vector)), strict=True)
    ]
    for sign, seed in pairwise:
        total = [
            (t + sign * r) % RING
            for t, r in zip(total, reference_prg(seed, len(vector)), strict=True)
        ]
    return total


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _vector(length: int, label: str, bits: int = 130) -> list[int]:
    """Deterministic: the ring edges first, then values of up to ``bits`` bits, any sign."""
    stream = hashlib.shake_256(label.encode()).digest(32 * length)
    drawn = [
        int.from_bytes(stream[32 * k : 32 * k + 32], "big", signed=True) >> (256 - bits)
        for k in range(length)
    ]
    if bits > 64:
        drawn[: len(EDGES)] = EDGES[:length]
    return drawn


def _pairwise(count: int, label: str) -> list[tuple[int, bytes]]:
    return [(1 if k % 2 else -1, _seed(f"{label}/pair{k}")) for k in range(count)]


def _digest(elements: list[int]) -> str:
    return hashlib.sha256(b"".join(v.to_bytes(16, "big") for v in elements)).hexdigest()


def test_reference_chacha20_is_rfc8439_and_the_library_stream() -> None:
    assert reference_prg(bytes(32), 2) == [
        0x76B8E0ADA0F13D90405D6AE55386BD28,
        0xBDD219B8A08DED1AA836EFCC8B770DC7,
    ]
    # Past the first blocks too (counter increments), for a key that is not all zero.
    assert masking.prg(_seed("multi-block"), 70) == reference_prg(_seed("multi-block"), 70)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("bits", [40, 64, 130])
def test_mask_equals_python_int_reference(length: int, bits: int) -> None:
    """Small values take the int64 path, 130-bit ones (and the ring edges) the exact one."""
    label = f"mask/{length}/{bits}"
    vector = _vector(length, label, bits)
    pairwise = _pairwise(3, label)
    expected = reference_mask(vector, _seed(label), pairwise)
    assert masking.mask(vector, _seed(label), pairwise) == expected
    limbs = masking.mask_limbs(vector, _seed(label), pairwise)
    assert limbs.dtype == np.uint64 and limbs.shape == (2, length)
    assert masking.to_ints(limbs) == expected
    assert masking.encode_limbs(limbs) == masking.encode_vector(expected)
    assert all(type(v) is int for v in masking.mask(vector, _seed(label), pairwise))


# sha256 of the 16-byte big-endian elements of masking.mask(_vector(n, label, bits),
# _seed(label), _pairwise(10, label)), label = f"pinned/{n}/{bits}", computed with the
# pre-numpy masking.py (Python integers per element) before it was replaced.
PINNED = {
    (0, 130): "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    (1, 130): "686a9f09ce1cf888867d7bcaa8551ce4391e07c7ef304ccc184292424102c64c",
    (23, 130): "14109e9a892204547e4a9f4b2f838163cd736d8a6c733bd74c53292e18ea3897",
    (1000, 130): "70b769dffa0dcfcad42f24986b0243c7404358e0f0046e5f7d0843762a4bd5b9",
    (4097, 48): "73042757637c7963d951fe6dacab27f2316e16a00fb472a97db0fc2490e2dff6",
}


@pytest.mark.parametrize(("length", "bits"), sorted(PINNED))
def test_mask_matches_the_pre_numpy_implementation(length: int, bits: int) -> None:
    label = f"pinned/{length}/{bits}"
    masked = masking.mask(_vector(length, label, bits), _seed(label), _pairwise(10, label))
    assert _digest(masked) == PINNED[(length, bits)]


def test_numpy_and_list_inputs_agree() -> None:
    """Every input form of one vector gives the same ring elements (``to_ring``)."""
    small = [0, 1, -1, 5, -(2**40), 2**31 - 1, -(2**31)]
    expected = [v % RING for v in small]
    for form in (
        small,
        np.array(small, dtype=np.int64),
        np.array(small, dtype=object),
    ):
        assert masking.to_ints(masking.to_limbs(form)) == expected
    assert masking.to_ints(masking.to_limbs(np.array([0, 2**64 - 1], dtype=np.uint64))) == [
        0,
        2**64 - 1,
    ]
    assert masking.to_ints(masking.to_limbs(np.array([-(2**31), 7], dtype=np.int32))) == [
        RING - 2**31,
        7,
    ]
    assert masking.to_ints(masking.to_limbs(np.array([True, False]))) == [1, 0]
    assert masking.to_ints(masking.to_limbs([True, 2])) == [1, 2]
    # A list numpy alone would read as float64 (uint64 beside a negative) stays exact.
    mixed = [-1, 2**63, 2**64 - 1, -(2**63) - 1]
    assert masking.to_ints(masking.to_limbs(mixed)) == [v % RING for v in mixed]
    assert masking.to_ints(masking.to_limbs(EDGES)) == masking.to_ring(EDGES)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("length", LENGTHS)
def test_add_carries_and_borrows_like_python_ints(sign: int, length: int) -> None:
    ring_edges = [0, 1, 2**64 - 1, 2**64, 2**127, RING - 1, RING - 2**64, 2**64 + 1]
    a = [v % RING for v in _vector(length, f"a/{length}")]
    b = [v % RING for v in _vector(length, f"b/{length}")]
    a[: len(ring_edges)] = ring_edges[:length]  # every carry/borrow combination below
    b[: len(ring_edges)] = list(reversed(ring_edges))[:length]
    expected = [(x + sign * y) % RING for x, y in zip(a, b, strict=True)]
    assert masking.add(a, b, sign) == expected
    la, lb = masking.to_limbs(a), masking.to_limbs(b)
    assert masking.to_ints(masking.add_limbs(la, lb, sign)) == expected
    assert masking.to_ints(la) == a  # add_limbs leaves its operands alone
    # Unreduced or negative operands reduce as Python's % does.
    raw = _vector(length, f"raw/{length}")
    assert masking.add(raw, raw[::-1], sign) == [
        (x + sign * y) % RING for x, y in zip(raw, raw[::-1], strict=True)
    ]


@given(
    st.lists(st.integers(min_value=-(2**140), max_value=2**140), max_size=12),
    st.lists(st.sampled_from([1, -1]), max_size=3),
    st.binary(min_size=32, max_size=32),
)
@settings(max_examples=60, deadline=None)
def test_mask_property(values: list[int], signs: list[int], key: bytes) -> None:
    pairwise = [(s, hashlib.sha256(key + bytes([k])).digest()) for k, s in enumerate(signs)]
    assert masking.mask(values, key, pairwise) == reference_mask(values, key, pairwise)


def test_wire_forms_agree() -> None:
    elements = [v % RING for v in _vector(300, "wire")]
    data = masking.encode_vector(elements)
    assert data == b"".join(v.to_bytes(16, "big") for v in elements)
    limbs = masking.decode_limbs(data, len(elements))
    assert masking.encode_limbs(limbs) == data
    assert masking.to_ints(limbs) == masking.decode_vector(data, len(elements)) == elements
    assert masking.encode_vector(np.array([0, 7], dtype=np.int64)) == masking.encode_vector([0, 7])
    assert masking.encode_limbs(masking.to_limbs([])) == b"" == masking.encode_vector([])
    with pytest.raises(ValueError, match="out of range: -3"):
        masking.encode_vector([1, -3, -4])
    with pytest.raises(ValueError, match="out of range: -3"):
        masking.encode_vector(np.array([1, -3, -4]))
    with pytest.raises(ValueError, match=f"out of range: {RING}"):
        masking.encode_vector([0, RING])
    with pytest.raises(ValueError, match="out of range: -1"):
        masking.encode_vector(np.array([2**100, -1], dtype=object))
    assert masking.encode_vector(np.array([2**100], dtype=object)) == (2**100).to_bytes(16, "big")
    with pytest.raises(ValueError, match="expected 2 elements"):
        masking.decode_limbs(bytes(33), 2)
    # The secure sum's masked-input message: limbs and lists give the same bytes.
    keyset = bytes(32)
    framed = secagg.encode_masked(keyset, limbs)
    assert framed == secagg.encode_masked(keyset, elements)
    assert secagg.decode_masked("p", framed, 300) == (keyset, elements)
    digest, decoded = secagg.decode_masked_limbs("p", framed, 300)
    assert digest == keyset and np.array_equal(decoded, limbs)


@pytest.mark.parametrize("chunk", [1, 3, 5, 64])
def test_chunked_keystream_continues_across_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 16 * ``chunk`` bytes split ChaCha20's 64-byte blocks anywhere: each
    stream must still continue exactly, and the sum carry across chunk edges."""
    monkeypatch.setattr(masking, "CHUNK_ELEMENTS", chunk)
    for length in (1, 23, 257):
        label = f"chunk/{chunk}/{length}"
        vector, pairwise = _vector(length, label), _pairwise(4, label)
        expected = reference_mask(vector, _seed(label), pairwise)
        assert masking.mask(vector, _seed(label), pairwise) == expected
        assert masking.prg(_seed(label), length) == reference_prg(_seed(label), length)


def test_production_chunks_against_one_shot_keystream() -> None:
    """Beyond two production chunks: each mask is the library's one-shot keystream."""
    length = 2 * masking.CHUNK_ELEMENTS + 1234
    vector = _vector(length, "long", 64)
    pairwise = _pairwise(2, "long")

    def one_shot(seed: bytes) -> list[int]:
        stream = (
            Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None)
            .encryptor()
            .update(bytes(16 * length))
        )
        return [int.from_bytes(stream[16 * k : 16 * k + 16], "big") for k in range(length)]

    expected = [(v + r) % RING for v, r in zip(vector, one_shot(_seed("long")), strict=True)]
    for sign, seed in pairwise:
        expected = [(t + sign * r) % RING for t, r in zip(expected, one_shot(seed), strict=True)]
    assert masking.mask(vector, _seed("long"), pairwise) == expected


def test_add_masks_in_place_and_prg_limbs_owns_its_array() -> None:
    acc = masking.to_limbs([5] * 33)
    masking.add_masks(acc, [(-1, _seed("y")), (1, _seed("x"))])
    assert masking.to_ints(acc) == [
        (5 - y + x) % RING
        for x, y in zip(reference_prg(_seed("x"), 33), reference_prg(_seed("y"), 33), strict=True)
    ]
    a, b = masking.prg_limbs(_seed("x"), 33), masking.prg_limbs(_seed("y"), 33)
    assert masking.to_ints(a) == reference_prg(_seed("x"), 33) != masking.to_ints(b)
    masking.add_masks(acc, [])  # nothing to add: unchanged
    assert masking.prg_limbs(_seed("x"), 0).shape == (2, 0)


def test_limb_inputs_are_checked() -> None:
    with pytest.raises(TypeError):
        masking.to_limbs([1, 2.5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        masking.to_limbs(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="flat vector"):
        masking.to_limbs(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="lengths differ"):
        masking.add_limbs(masking.to_limbs([1]), masking.to_limbs([1, 2]))
    with pytest.raises(ValueError, match="sign"):
        masking.add_limbs(masking.to_limbs([1]), masking.to_limbs([1]), 0)
    with pytest.raises(ValueError, match="ring limbs"):
        masking.to_ints(np.zeros((3, 2), dtype=np.uint64))
    with pytest.raises(ValueError, match="sign"):
        masking.mask([1], bytes(32), [(2, bytes(32))])
    with pytest.raises(ValueError, match="PRG length"):
        masking.add_masks(np.zeros((2, masking.MAX_ELEMENTS + 1), dtype=np.uint64), [])
    with pytest.raises(ValueError, match="PRG seed"):
        masking.prg_limbs(b"short", 1)
    with pytest.raises(ValueError, match="PRG seed"):
        masking.add_masks(masking.to_limbs([1]), [(1, bytes(31))])
    with pytest.raises(ValueError, match="sign"):
        masking.add_masks(masking.to_limbs([1]), [(0, bytes(32))])


def test_fixed_point_fast_path_gives_the_python_int_encoding() -> None:
    """``encode_update`` multiplies in int64 when the products fit: same integers as
    w * int(q) per coordinate, and the Python path still serves products beyond 2^63."""
    rng = np.random.default_rng(3)
    for encoding, weight, update in (
        (FixedPoint(), 100, rng.standard_normal(257) * 1e-3),
        (FixedPoint(), 1, rng.standard_normal(5) * 100),
        (
            FixedPoint(frac_bits=52, clip_norm=1e6, max_weight=1 << 40),
            1 << 40,
            rng.standard_normal(9),
        ),
        (FixedPoint(), 7, np.zeros(0)),
        (FixedPoint(), 3, -np.zeros(4)),
    ):
        clipped = clip_l2(update, encoding.clip_norm)
        expected = [weight * round(x * encoding.scale) for x in clipped.tolist()] + [weight]
        got = encoding.encode_update(update, weight)
        assert got == expected and all(type(v) is int for v in got)
    big = FixedPoint(frac_bits=52, clip_norm=1e6, max_weight=1 << 40).encode_update(
        np.array([1e6]), 1 << 40
    )
    assert big[0] > 2**63 and big[0] == (1 << 40) * int(1e6 * 2**52)


# ------------------------------------------------------------------------------ Shamir


def test_shamir_any_threshold_subset_recovers_the_secret() -> None:
    secret = bytes(range(32))
    shares = shamir.split(secret, 3, 5)
    assert [i for i, _ in shares] == [1, 2, 3, 4, 5]
    assert all(len(s) == shamir.SHARE_BYTES for _, s in shares)
    for subset in itertools.combinations(shares, 3):
        assert shamir.combine(list(subset)) == secret
    # Fewer than the threshold interpolate to something else (and reveal nothing).
    assert shamir.combine(shares[:2]) != secret


def test_shamir_halves_are_independent() -> None:
    secret = b"A" * 16 + b"B" * 16
    shares = shamir.split(secret, 2, 2)
    low = shamir.combine([(i, s[:16] + bytes(16)) for i, s in shares])[:16]
    assert low == b"A" * 16


def test_shamir_refuses_bad_input() -> None:
    with pytest.raises(shamir.ShareError, match="32 bytes"):
        shamir.split(b"x" * 16, 2, 3)
    with pytest.raises(shamir.ShareError, match="threshold"):
        shamir.split(bytes(32), 4, 3)
    with pytest.raises(shamir.ShareError, match="threshold"):
        shamir.split(bytes(32), 1, 3)
    shares = shamir.split(bytes(32), 2, 3)
    with pytest.raises(shamir.ShareError, match="duplicate"):
        shamir.combine([shares[0], shares[0]])
    with pytest.raises(shamir.ShareError, match="must be 32 bytes"):
        shamir.combine([shares[0], (2, b"short")])
    with pytest.raises(shamir.ShareError, match="outside"):
        shamir.combine([shares[0], (0, bytes(32))])
    with pytest.raises(shamir.ShareError, match="no shares"):
        shamir.combine([])
