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

Arithmetic is vectorised: a vector of ring elements is held as a ``Limbs`` array, two
rows of uint64 (high and low 64 bits), and sums carry from the low row into the high
one in numpy; each keystream is read in cache-sized chunks straight into reused
buffers. A Python integer per element and per mask cost 16.1 s per provider at 10^6
parameters with 10 neighbours (docs/fl.md); the limbs take ~0.1 s. The list-of-int
functions (``prg``, ``add``, ``mask``, ``encode_vector``, ``decode_vector``) return
exactly what they always returned; the secure sum's provider masks and encodes with
``mask_limbs`` and ``encode_limbs``, and its aggregator sums limbs and builds the list
of totals once, because turning 10^6 128-bit elements into Python integers alone costs
more than masking them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
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
LIMB_BITS = 64
LIMBS = RING_BITS // LIMB_BITS
# Two full limbs: the ring is exactly 2^128, so a carry out of the high limb is the
# reduction (uint64 wraps) and no top-limb mask is needed. Another ring size would need
# one; refuse to run rather than compute in the wrong ring.
if LIMBS != 2 or LIMBS * LIMB_BITS != RING_BITS:
    raise ImportError("masking's limb arithmetic is written for a 128-bit ring")
_LOW_MASK = (1 << LIMB_BITS) - 1
_WIRE_LIMB = np.dtype(">u8")  # elements travel (and the PRG is read) big-endian
# Elements per keystream chunk (512 KiB): a chunk of every stream and of the sum stay in
# the CPU caches while they are added.
CHUNK_ELEMENTS = 1 << 15

Limbs: TypeAlias = npt.NDArray[np.uint64]
"""Ring elements as a C-contiguous (2, n) uint64 array: row 0 holds each element's high
64 bits, row 1 its low 64 bits (element k is ``limbs[0, k] * 2^64 + limbs[1, k]``)."""

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


def add_masks(acc: Limbs, masks: Iterable[tuple[int, bytes]]) -> None:
    """acc += sum of sign*PRG(seed) over (sign, seed) in ``masks``, in the ring, in place.

    PRG(seed) is ``prg``'s: the ChaCha20 keystream (RFC 8439, the all-zero nonce and
    counter) under the seed, 16 bytes per element, read big-endian. Each stream is
    produced in order, CHUNK_ELEMENTS elements at a time (one cipher context per seed,
    so its keystream continues exactly as one long ``update`` would), into one reused
    buffer, and added while still in cache: at 10^6 elements, fresh 16 MB outputs per
    stream cost more in page faults and memory traffic than the ChaCha20 itself.
    """
    _check_limbs(acc)
    length = acc.shape[1]
    if length > MAX_ELEMENTS:
        raise ValueError(f"PRG length must be in 0..{MAX_ELEMENTS}, got {length}")
    streams = []
    for sign, seed in masks:
        if sign not in (1, -1):
            raise ValueError("sign must be +1 or -1")
        _check_len(seed, KEY_BYTES, "PRG seed")
        cipher = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None)
        streams.append((sign, cipher.encryptor()))
    chunk = max(1, min(length, CHUNK_ELEMENTS))
    zeros = memoryview(bytes(chunk * ELEMENT_BYTES))
    stream = bytearray(chunk * ELEMENT_BYTES)
    wire = np.frombuffer(stream, dtype=_WIRE_LIMB).reshape(chunk, LIMBS)
    native: Limbs = np.empty((LIMBS, chunk), dtype=np.uint64)
    for start in range(0, length, chunk):
        size = min(chunk, length - start)
        part, mask_part = acc[:, start : start + size], native[:, :size]
        for sign, encryptor in streams:
            if encryptor.update_into(zeros[: size * ELEMENT_BYTES], stream) != size * ELEMENT_BYTES:
                raise RuntimeError("ChaCha20 returned a short keystream")
            np.copyto(mask_part, wire[:size].T)  # big-endian to native: one swap per limb
            _accumulate(part, mask_part, sign)


def prg_limbs(seed: bytes, length: int) -> Limbs:
    """``length`` ring elements: the ChaCha20 keystream under ``seed``, 16 bytes each,
    read big-endian (``prg`` as limbs, without building Python integers)."""
    _check_len(seed, KEY_BYTES, "PRG seed")
    if not 0 <= length <= MAX_ELEMENTS:
        raise ValueError(f"PRG length must be in 0..{MAX_ELEMENTS}, got {length}")
    out: Limbs = np.zeros((LIMBS, length), dtype=np.uint64)
    add_masks(out, [(1, seed)])
    return out


def prg(seed: bytes, length: int) -> list[int]:
    """``length`` ring elements: the ChaCha20 keystream under ``seed``, 16 bytes each,
    read big-endian."""
    return to_ints(prg_limbs(seed, length))


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


def to_limbs(values: Sequence[int] | npt.NDArray[np.integer] | npt.NDArray[np.bool_]) -> Limbs:
    """Integers (any size, any sign) to ring elements as limbs: ``to_ring`` for arrays.

    Values that all fit int64 (model updates, statistics) convert in numpy: two's
    complement sign-extends into the high limb. Anything else (Python integers beyond
    64 bits) goes through exact Python integers, so no value is ever rounded; a
    non-integer (float, string) is a ``TypeError``, never truncated.
    """
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"expected a flat vector of integers, got shape {values.shape}")
        kind = values.dtype.kind
        if kind in "ub" and values.dtype.itemsize <= 8:
            out = np.zeros((LIMBS, values.shape[0]), dtype=np.uint64)
            out[1] = values
            return out
        if kind == "i" and values.dtype.itemsize <= 8:
            return _from_int64(values.astype(np.int64, copy=False))
        if kind != "O":
            raise TypeError(f"ring elements must be integers, got {values.dtype}")
        return _from_python(values.tolist())
    try:
        wide = np.fromiter(map(operator.index, values), dtype=np.int64, count=len(values))
    except OverflowError:  # some value needs more than 64 bits: exact Python integers
        return _from_python(values)
    return _from_int64(wide)


def _from_int64(wide: npt.NDArray[np.int64]) -> Limbs:
    out = np.empty((LIMBS, wide.shape[0]), dtype=np.uint64)
    out[1] = wide.view(np.uint64)  # the low 64 bits of two's complement
    out[0] = (wide >> 63).view(np.uint64)  # arithmetic shift: all ones if negative, else 0
    return out


def _from_python(values: Iterable[int]) -> Limbs:
    ring = map(MODULUS.__rmod__, map(operator.index, values))
    wire = b"".join(map(int.to_bytes, ring, repeat(ELEMENT_BYTES), _big_endian()))
    return _from_wire(wire, len(wire) // ELEMENT_BYTES)


def to_ints(limbs: Limbs) -> list[int]:
    """Limbs back to Python integers in 0..2^128-1 (the list form of a ring vector)."""
    _check_limbs(limbs)
    high: list[int] = limbs[0].tolist()
    low: list[int] = limbs[1].tolist()
    return [(h << LIMB_BITS) | lo for h, lo in zip(high, low, strict=True)]


def add_limbs(a: Limbs, b: Limbs, sign: int = 1) -> Limbs:
    """a + sign*b in the ring, element-wise, as a new array (``a`` is left as it is)."""
    _check_limbs(a)
    _check_limbs(b)
    if a.shape != b.shape:
        raise ValueError(f"vector lengths differ: {a.shape[1]} != {b.shape[1]}")
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    out = a.copy()
    _accumulate(out, b, sign)
    return out


def _accumulate(acc: Limbs, other: Limbs, sign: int) -> None:
    """acc += sign*other mod 2^128, in place: the low limbs wrap mod 2^64 and carry (or
    borrow) one into the high limbs, whose own wrap mod 2^64 is the reduction mod 2^128."""
    high, low = acc[0], acc[1]
    if sign == 1:
        np.add(low, other[1], out=low)
        carry = low < other[1]  # the wrapped sum is below an addend iff it wrapped
        np.add(high, other[0], out=high)
        np.add(high, carry, out=high)
    else:
        borrow = low < other[1]
        np.subtract(low, other[1], out=low)
        np.subtract(high, other[0], out=high)
        np.subtract(high, borrow, out=high)


def add(a: Sequence[int], b: Sequence[int], sign: int = 1) -> list[int]:
    """a + sign*b in the ring, element-wise."""
    if len(a) != len(b):
        raise ValueError(f"vector lengths differ: {len(a)} != {len(b)}")
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    out = to_limbs(a)
    _accumulate(out, to_limbs(b), sign)
    return to_ints(out)


def mask_limbs(
    vector: Sequence[int] | npt.NDArray[np.integer],
    self_key: bytes,
    pairwise: Iterable[tuple[int, bytes]],
) -> Limbs:
    """vector + PRG(self_key) + sum of sign*PRG(seed) over (sign, seed) in ``pairwise``,
    as limbs: what ``mask`` computes, without a Python integer per element."""
    out = to_limbs(vector)
    add_masks(out, [(1, self_key), *pairwise])
    return out


def mask(
    vector: Sequence[int],
    self_key: bytes,
    pairwise: Iterable[tuple[int, bytes]],
) -> list[int]:
    """vector + PRG(self_key) + sum of sign*PRG(seed) over (sign, seed) in ``pairwise``."""
    return to_ints(mask_limbs(vector, self_key, pairwise))


def encode_limbs(limbs: Limbs) -> bytes:
    """Fixed-width big-endian 16-byte elements (``encode_vector`` of the same values)."""
    _check_limbs(limbs)
    return limbs.T.astype(_WIRE_LIMB, order="C").tobytes()


def encode_vector(vector: Sequence[int] | npt.NDArray[np.integer]) -> bytes:
    """Fixed-width big-endian 16-byte elements; refuses anything outside the ring."""
    if isinstance(vector, np.ndarray) and vector.dtype.kind != "O":
        limbs = to_limbs(vector)  # integer dtypes only; only signed ones can be negative
        if vector.dtype.kind == "i":
            negative = np.flatnonzero(vector < 0)
            if negative.size:  # the first, as the element-wise check reports it
                raise ValueError(f"ring element out of range: {int(vector[negative[0]])}")
        return encode_limbs(limbs)
    if isinstance(vector, np.ndarray):
        vector = vector.tolist()  # Python integers of any size: checked as a list
    try:  # int.to_bytes refuses (OverflowError) exactly the values outside 0..2^128-1
        return b"".join(map(int.to_bytes, vector, repeat(ELEMENT_BYTES), _big_endian()))
    except OverflowError:
        for v in vector:
            if not 0 <= v < MODULUS:
                raise ValueError(f"ring element out of range: {v}") from None
        raise


def decode_limbs(data: bytes, length: int) -> Limbs:
    """The inverse of ``encode_limbs``; the byte length must match exactly."""
    if len(data) != length * ELEMENT_BYTES:
        raise ValueError(
            f"expected {length} elements ({length * ELEMENT_BYTES} bytes), got {len(data)} bytes"
        )
    return _from_wire(data, length)


def decode_vector(data: bytes, length: int) -> list[int]:
    """The inverse of ``encode_vector``; the byte length must match exactly."""
    return to_ints(decode_limbs(data, length))


def _from_wire(data: bytes, length: int) -> Limbs:
    """Big-endian 16-byte elements to native limbs (one byte-swapping, transposing copy)."""
    wire = np.frombuffer(data, dtype=_WIRE_LIMB).reshape(length, LIMBS)
    return wire.T.astype(np.uint64, order="C")


def _big_endian() -> repeat[Literal["big"]]:
    """``int.to_bytes``'s byte order for ``map``: C-level calls, no Python frame each."""
    return repeat("big")


def _check_limbs(limbs: Limbs) -> None:
    if not (
        isinstance(limbs, np.ndarray)
        and limbs.dtype == np.uint64
        and limbs.ndim == 2
        and limbs.shape[0] == LIMBS
    ):
        raise ValueError(f"expected ring limbs: a ({LIMBS}, n) uint64 array")


def _check_len(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise ValueError(f"{what} must be {length} bytes, got {len(value)}")
