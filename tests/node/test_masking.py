"""Masking PRG, key derivation and the Shamir wrapper: published vectors, pinned values,
cancellation, and that a masked value looks the same whatever the input."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto import masking, shamir

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
