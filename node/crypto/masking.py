"""Masks for secure aggregation: X25519 agreement, HKDF-SHA256 seeds, ChaCha20 expansion.

In secure aggregation (Bonawitz et al., CCS 2017) each party hides its vector under
masks that cancel in the sum. Two kinds are used:

* a *pairwise* mask between parties i and j, expanded from a seed both derive from an
  X25519 agreement; i adds it and j subtracts it, so it vanishes from the sum;
* a *self* mask expanded from a seed only its owner knows (until the seed is
  reconstructed from Shamir shares), so that a party whose pairwise masks are later
  removed (because it was declared dropped) stays hidden.

Everything lives in the ring Z_{2^128}: a masked element is a uniformly random 128-bit
value whatever the input, and integer sums wrap exactly, so negative inputs travel as
two's complement and are recovered exactly as long as the true total fits in 127 bits.

Seeds are bound by HKDF ``info`` to a 32-byte session context (the task, the
parameters, the parties) and to the party names, so a seed derived for one task, pair
or purpose can never be replayed as another. The PRG is ChaCha20 (RFC 8439) keyed by
the seed with the all-zero nonce and counter: each key is used for exactly one stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RING_BITS = 128
MODULUS = 1 << RING_BITS
ELEMENT_BYTES = RING_BITS // 8
KEY_BYTES = 32
CONTEXT_BYTES = 32
MAX_ELEMENTS = 1 << 20  # room for statistics and model weights; bounds memory on bad input

PAIRWISE_LABEL = b"provnet:secure-agg:pairwise-mask:v1\0"
SELF_LABEL = b"provnet:secure-agg:self-mask:v1\0"
_NONCE = bytes(16)  # cryptography's ChaCha20 nonce: 32-bit counter (0) + 96-bit nonce (0)


class KeyAgreementError(ValueError):
    """A peer's public key is malformed or of low order (the shared secret would be 0)."""


def public_key(private_seed: bytes) -> bytes:
    """The raw 32-byte X25519 public key of a 32-byte private key (RFC 7748 clamping)."""
    _check_len(private_seed, KEY_BYTES, "private key seed")
    return X25519PrivateKey.from_private_bytes(private_seed).public_key().public_bytes_raw()


def agree(private_seed: bytes, peer_public: bytes) -> bytes:
    """The raw X25519 shared secret; refuses low-order peer keys instead of returning 0s."""
    _check_len(private_seed, KEY_BYTES, "private key seed")
    if len(peer_public) != KEY_BYTES:
        raise KeyAgreementError(f"public key must be {KEY_BYTES} bytes, got {len(peer_public)}")
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        return X25519PrivateKey.from_private_bytes(private_seed).exchange(peer)
    except ValueError as exc:  # cryptography rejects an all-zero shared secret
        raise KeyAgreementError(f"unusable X25519 public key: {exc}") from None


def _names(names: Iterable[str]) -> bytes:
    """Length-prefixed UTF-8 names: unambiguous, so ("ab","c") never equals ("a","bc")."""
    out = bytearray()
    for name in names:
        raw = name.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise ValueError("party name longer than 65535 bytes")
        out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def pairwise_seed(
    private_seed: bytes, peer_public: bytes, context: bytes, me: str, peer: str
) -> bytes:
    """s_ij = HKDF-SHA256(X25519(c_i, C_j), info = label || context || sorted pair).

    Symmetric in the pair (both ends, and an aggregator that reconstructed either
    private key, derive the same seed) and bound to the session ``context``.
    """
    _check_len(context, CONTEXT_BYTES, "context")
    if me == peer:
        raise ValueError("a pairwise seed needs two distinct parties")
    shared = agree(private_seed, peer_public)
    return _hkdf(shared, PAIRWISE_LABEL + context + _names(sorted((me, peer))))


def self_mask_seed(self_seed: bytes, context: bytes, owner: str) -> bytes:
    """The key of a party's self mask, derived from its shared seed b_i and its name."""
    _check_len(self_seed, KEY_BYTES, "self-mask seed")
    _check_len(context, CONTEXT_BYTES, "context")
    return _hkdf(self_seed, SELF_LABEL + context + _names((owner,)))


def prg(seed: bytes, length: int) -> list[int]:
    """``length`` ring elements: the ChaCha20 keystream under ``seed``, 16 bytes each,
    read big-endian."""
    _check_len(seed, KEY_BYTES, "PRG seed")
    if not 0 <= length <= MAX_ELEMENTS:
        raise ValueError(f"PRG length must be in 0..{MAX_ELEMENTS}, got {length}")
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(length * ELEMENT_BYTES))
    return decode_vector(stream, length)


def pairwise_sign(my_index: int, peer_index: int) -> int:
    """+1 if this party adds the pair's mask (lower index), -1 if it subtracts it."""
    if my_index == peer_index:
        raise ValueError("no pairwise mask with oneself")
    return 1 if my_index < peer_index else -1


def to_ring(values: Iterable[int]) -> list[int]:
    """Integers to ring elements (negatives become two's complement)."""
    return [v % MODULUS for v in values]


def signed(element: int) -> int:
    """A ring element read as a two's-complement signed 128-bit integer."""
    return element - MODULUS if element >= MODULUS >> 1 else element


def add(a: Sequence[int], b: Sequence[int], sign: int = 1) -> list[int]:
    """a + sign*b in the ring, element-wise."""
    if len(a) != len(b):
        raise ValueError(f"vector lengths differ: {len(a)} != {len(b)}")
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    return [(x + sign * y) % MODULUS for x, y in zip(a, b, strict=True)]


def mask(
    vector: Sequence[int],
    self_key: bytes,
    pairwise: Iterable[tuple[int, bytes]],
) -> list[int]:
    """vector + PRG(self_key) + sum of sign*PRG(seed) over (sign, seed) in ``pairwise``."""
    out = add(to_ring(vector), prg(self_key, len(vector)))
    for sign, seed in pairwise:
        out = add(out, prg(seed, len(vector)), sign)
    return out


def encode_vector(vector: Sequence[int]) -> bytes:
    """Fixed-width big-endian 16-byte elements; refuses anything outside the ring."""
    out = bytearray()
    for v in vector:
        if not 0 <= v < MODULUS:
            raise ValueError(f"ring element out of range: {v}")
        out += v.to_bytes(ELEMENT_BYTES, "big")
    return bytes(out)


def decode_vector(data: bytes, length: int) -> list[int]:
    """The inverse of ``encode_vector``; the byte length must match exactly."""
    if len(data) != length * ELEMENT_BYTES:
        raise ValueError(
            f"expected {length} elements ({length * ELEMENT_BYTES} bytes), got {len(data)} bytes"
        )
    return [
        int.from_bytes(data[k : k + ELEMENT_BYTES], "big")
        for k in range(0, len(data), ELEMENT_BYTES)
    ]


def _check_len(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise ValueError(f"{what} must be {length} bytes, got {len(value)}")
