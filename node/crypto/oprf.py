"""RFC 9497 OPRF(ristretto255, SHA-512): the base mode (0x00) and the verifiable mode (0x01).

Why this module exists: PSI and the anonymous blacklist lookup (DESIGN §6) both need a
PRF that one party keys and another evaluates without revealing its input. RFC 9497
fixes every byte of that exchange, so any conforming implementation interoperates and
the RFC's Appendix A vectors pin ours down.

No group arithmetic is implemented here. Every ristretto255 operation (scalar
multiplication, point addition, scalar reduction, inversion, random scalars, the RFC
9496 one-way map) is libsodium's, reached through ``rbcl`` (which bundles its own
libsodium, so a fresh machine needs no system library). SHA-512 is ``hashlib``'s. This
module only fixes the RFC's encodings, domain separation tags and checks:

* scalars and elements travel as 32-byte ``bytes``; a received element that is not a
  canonical ristretto255 encoding, or is the identity, raises
  :class:`InvalidElementError`; a secret scalar that is zero or not reduced below the
  group order raises :class:`InvalidScalarError` (both name the offending argument);
* an input that hashes to the identity raises :class:`InvalidInputError`, as the
  RFC's ``Blind`` and ``Evaluate`` require;
* a VOPRF proof that does not verify raises :class:`VerifyError` before anything is
  unblinded, so a client never uses an output computed under a key other than the
  one the server committed to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Sequence

import rbcl  # type: ignore[import-untyped]


def _remove_rbcl_library_copy() -> None:
    """Delete the copy of libsodium that ``rbcl`` wrote to the temp directory on import.

    rbcl 1.1.2 ships libsodium inside its Python source, writes it to a fresh
    ``NamedTemporaryFile(delete=False)`` and ``dlopen``s it, once per process, and never
    removes it: every node, worker and test process would leave 2.7 MB in /tmp. Once
    loaded, the mapping survives the unlink on POSIX; where the OS refuses (Windows
    keeps loaded files locked) the file is simply left, as rbcl would have.
    """
    # ``rbcl._sodium`` as an attribute is the loaded CDLL; the loader module holds the path.
    loader = sys.modules.get("rbcl._sodium")
    path = getattr(loader, "lib_path", None)
    if isinstance(path, str) and os.path.isfile(path):
        with contextlib.suppress(OSError):
            os.unlink(path)


_remove_rbcl_library_copy()

MODE_OPRF = 0x00
MODE_VOPRF = 0x01
IDENTIFIER = b"ristretto255-SHA512"

SCALAR_BYTES = 32
ELEMENT_BYTES = 32
OUTPUT_BYTES = 64  # Nh: SHA-512 digest size
PROOF_BYTES = 2 * SCALAR_BYTES

# Order of the prime-order group ristretto255 (RFC 9496 §4). Used only to reject
# non-reduced scalar encodings, as RFC 9497 §4.1 DeserializeScalar requires.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493

_IDENTITY = bytes(ELEMENT_BYTES)
_MAX_LEN_2 = 0xFFFF  # every length prefix in RFC 9497 is I2OSP(len, 2)

# RFC 9380 expand_message_xmd parameters for SHA-512.
_XMD_B_IN_BYTES = 64
_XMD_S_IN_BYTES = 128
_OVERSIZE_DST_PREFIX = b"H2C-OVERSIZE-DST-"


class OprfError(ValueError):
    """Base of every error this module raises on bad input, so callers can catch one type."""


class InvalidElementError(OprfError):
    """An element that is not a canonical, non-identity ristretto255 encoding."""


class InvalidScalarError(OprfError):
    """A scalar that is not 32 bytes, is zero where zero is forbidden, or is >= the order."""


class InvalidInputError(OprfError):
    """A private input the protocol cannot process (hashes to the identity, or too long)."""


class DeriveKeyPairError(OprfError):
    """DeriveKeyPair exhausted its 256 counters without a non-zero scalar (RFC 9497 §3.2.1)."""


class VerifyError(OprfError):
    """A VOPRF proof failed verification: the server did not use the committed key."""


def context_string(mode: int) -> bytes:
    """``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`` (RFC 9497 §3.1).

    Every hash in the protocol is bound to this string, so outputs of the two modes (and
    of other suites) can never be confused.
    """
    if mode not in (MODE_OPRF, MODE_VOPRF):
        raise OprfError(f"mode must be 0x00 (OPRF) or 0x01 (VOPRF), got {mode!r}")
    return b"OPRFV1-" + bytes([mode]) + b"-" + IDENTIFIER


def _i2osp2(value: int, what: str) -> bytes:
    """Two-byte big-endian length prefix; refuses what would silently wrap around."""
    if not 0 <= value <= _MAX_LEN_2:
        raise InvalidInputError(f"{what} is {value} bytes; RFC 9497 allows at most {_MAX_LEN_2}")
    return value.to_bytes(2, "big")


def _prefixed(value: bytes, what: str) -> bytes:
    """``I2OSP(len(value), 2) || value``, the framing every RFC 9497 transcript uses."""
    return _i2osp2(len(value), what) + value


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 ``expand_message_xmd`` with SHA-512.

    HashToGroup and HashToScalar (RFC 9497 §4.1) feed its 64-byte output to libsodium's
    one-way map and scalar reduction. A DST longer than 255 bytes is first hashed as
    RFC 9380 §5.3.3 prescribes, so no caller can produce an ambiguous ``DST_prime``.
    """
    if len(dst) > 255:
        dst = hashlib.sha512(_OVERSIZE_DST_PREFIX + dst).digest()
    ell = -(-len_in_bytes // _XMD_B_IN_BYTES)
    if len_in_bytes <= 0 or ell > 255 or len_in_bytes > _MAX_LEN_2:
        raise ValueError(f"len_in_bytes must be in 1..{255 * _XMD_B_IN_BYTES}, got {len_in_bytes}")
    dst_prime = dst + bytes([len(dst)])
    msg_prime = bytes(_XMD_S_IN_BYTES) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    blocks = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        blocks.append(b_i)
    return b"".join(blocks)[:len_in_bytes]


def hash_to_group(msg: bytes, mode: int = MODE_OPRF) -> bytes:
    """RFC 9497 §4.1 HashToGroup: RFC 9380 ``hash_to_ristretto255`` with the suite's DST.

    May return the identity (with negligible probability); callers that must refuse it
    (``blind``, ``evaluate``) check, because the RFC makes that their decision.
    """
    uniform = expand_message_xmd(msg, b"HashToGroup-" + context_string(mode), 64)
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(uniform)
    return element


def hash_to_scalar(msg: bytes, mode: int = MODE_OPRF, dst: bytes | None = None) -> bytes:
    """RFC 9497 §4.1 HashToScalar: 64 uniform bytes reduced modulo the group order.

    The default DST is ``"HashToScalar-" || contextString``; DeriveKeyPair passes its own.
    """
    tag = dst if dst is not None else b"HashToScalar-" + context_string(mode)
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(expand_message_xmd(msg, tag, 64))
    return scalar


def check_scalar(value: bytes, name: str, *, allow_zero: bool = False) -> bytes:
    """Return ``value`` if it is a canonical 32-byte scalar, else raise naming ``name``.

    Zero is refused for keys and blinds (it would erase the input); proof scalars
    may be zero, as RFC 9497 DeserializeScalar allows.
    """
    if not isinstance(value, bytes) or len(value) != SCALAR_BYTES:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise InvalidScalarError(f"{name} must be {SCALAR_BYTES} bytes, got {got}")
    as_int = int.from_bytes(value, "little")
    if as_int >= GROUP_ORDER:
        raise InvalidScalarError(f"{name} is not reduced: it is >= the ristretto255 group order")
    if as_int == 0 and not allow_zero:
        raise InvalidScalarError(f"{name} is the zero scalar")
    return value


def check_element(value: bytes, name: str) -> bytes:
    """Return ``value`` if it is a canonical non-identity ristretto255 encoding (§4.1)."""
    if not isinstance(value, bytes) or len(value) != ELEMENT_BYTES:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise InvalidElementError(f"{name} must be {ELEMENT_BYTES} bytes, got {got}")
    if not rbcl.crypto_core_ristretto255_is_valid_point(value):
        raise InvalidElementError(f"{name} is not a canonical ristretto255 encoding")
    if value == _IDENTITY:
        raise InvalidElementError(f"{name} is the identity element")
    return value


def _mul(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element`` by libsodium; the identity comes back as 32 zero bytes.

    The ``allow_scalar_zero`` variant is used so that an adversarial proof scalar of
    zero makes verification fail rather than raise an unrelated RuntimeError.
    """
    product: bytes = rbcl.crypto_scalarmult_ristretto255_allow_scalar_zero(scalar, element)
    return product


def _add(p: bytes, q: bytes) -> bytes:
    """Point addition by libsodium (the identity, 32 zero bytes, is a valid operand)."""
    total: bytes = rbcl.crypto_core_ristretto255_add(p, q)
    return total


def _mul_gen(scalar: bytes) -> bytes:
    """``scalar * G`` by libsodium (the identity for the zero scalar)."""
    product: bytes = rbcl.crypto_scalarmult_ristretto255_base_allow_scalar_zero(scalar)
    return product


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar from libsodium's CSPRNG (RFC 9497 RandomScalar)."""
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_random()
    return scalar


def derive_key_pair(seed: bytes, info: bytes, mode: int = MODE_OPRF) -> tuple[bytes, bytes]:
    """RFC 9497 §3.2.1 DeriveKeyPair: a deterministic ``(skS, pkS)`` from a 32-byte seed.

    Deterministic derivation lets an operator re-create a key from escrowed seed material
    and lets the RFC vectors check it; ``info`` separates keys derived from one seed.
    """
    if len(seed) != 32:
        raise InvalidInputError(f"seed must be 32 bytes, got {len(seed)}")
    derive_input = seed + _prefixed(info, "info")
    dst = b"DeriveKeyPair" + context_string(mode)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + bytes([counter]), dst=dst)
        if sk != bytes(SCALAR_BYTES):
            return sk, _mul_gen(sk)
    raise DeriveKeyPairError("no non-zero scalar after 256 counters")  # pragma: no cover


def public_key(sk: bytes) -> bytes:
    """``pkS = skS * G``: what a VOPRF server publishes (and anchors) as its commitment."""
    return _mul_gen(check_scalar(sk, "sk"))


def _input_element(input: bytes, mode: int) -> bytes:
    """HashToGroup(input), refusing the identity with InvalidInputError as the RFC says."""
    _i2osp2(len(input), "input")
    element = hash_to_group(input, mode)
    if element == _IDENTITY:
        raise InvalidInputError("input hashes to the identity element; it cannot be evaluated")
    return element


def blind(input: bytes, blind: bytes | None = None, mode: int = MODE_OPRF) -> tuple[bytes, bytes]:
    """RFC 9497 §3.3.1 Blind: ``(blind, blind * HashToGroup(input))``.

    ``blind`` is drawn from libsodium when omitted; passing it is for test vectors and
    for callers that must persist it between request and response.
    """
    r = random_scalar() if blind is None else check_scalar(blind, "blind")
    return r, _mul(r, _input_element(input, mode))


def blind_evaluate(sk: bytes, blinded_element: bytes) -> bytes:
    """RFC 9497 §3.3.1 BlindEvaluate (OPRF mode): ``skS * blindedElement``."""
    return _mul(check_scalar(sk, "sk"), check_element(blinded_element, "blinded_element"))


def _unblinded_output(input: bytes, unblinded: bytes) -> bytes:
    """``Hash(len || input || len || element || "Finalize")``, shared by Finalize/Evaluate."""
    transcript = _prefixed(input, "input") + _prefixed(unblinded, "element") + b"Finalize"
    return hashlib.sha512(transcript).digest()


def finalize(input: bytes, blind: bytes, evaluated_element: bytes) -> bytes:
    """RFC 9497 §3.3.1 Finalize: unblind the server's answer and hash it to 64 bytes."""
    inverse: bytes = rbcl.crypto_core_ristretto255_scalar_invert(check_scalar(blind, "blind"))
    unblinded = _mul(inverse, check_element(evaluated_element, "evaluated_element"))
    return _unblinded_output(input, unblinded)


def evaluate(sk: bytes, input: bytes, mode: int = MODE_OPRF) -> bytes:
    """RFC 9497 §3.3.1/§3.3.2 Evaluate: the PRF computed directly by the key holder.

    Equal to ``finalize(input, r, blind_evaluate(sk, blind(input, r)[1]))`` for every
    blind ``r``; a PSI server uses it on its own set, the tests use it as the oracle.
    """
    evaluated = _mul(check_scalar(sk, "sk"), _input_element(input, mode))
    return _unblinded_output(input, evaluated)


def _composite_seed(b: bytes, mode: int) -> bytes:
    """The seed that binds composite weights to the public key and suite (§2.2.1)."""
    seed_dst = b"Seed-" + context_string(mode)
    return hashlib.sha512(_prefixed(b, "element") + _prefixed(seed_dst, "seedDST")).digest()


def _composite_weight(seed: bytes, i: int, c_i: bytes, d_i: bytes, mode: int) -> bytes:
    """``d_i = HashToScalar(seed || i || C[i] || D[i] || "Composite")`` (§2.2.1)."""
    transcript = (
        _prefixed(seed, "seed")
        + _i2osp2(i, "batch index")
        + _prefixed(c_i, "element")
        + _prefixed(d_i, "element")
        + b"Composite"
    )
    return hash_to_scalar(transcript, mode)


def _check_batch(cs: Sequence[bytes], ds: Sequence[bytes], c_name: str, d_name: str) -> None:
    """A batch needs equal, non-empty, validated lists; a short list would drop elements."""
    if not cs or len(cs) != len(ds):
        raise OprfError(f"{c_name} and {d_name} must be non-empty and of equal length")
    if len(cs) > _MAX_LEN_2 + 1:
        raise OprfError(f"a batch holds at most {_MAX_LEN_2 + 1} elements, got {len(cs)}")
    for i, (c_i, d_i) in enumerate(zip(cs, ds, strict=True)):
        check_element(c_i, f"{c_name}[{i}]")
        check_element(d_i, f"{d_name}[{i}]")


def compute_composites_fast(
    k: bytes, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], mode: int = MODE_VOPRF
) -> tuple[bytes, bytes]:
    """RFC 9497 §2.2.1 ComputeCompositesFast (prover): ``M = sum d_i*C[i]``, ``Z = k*M``.

    The prover knows ``k``, so one multiplication replaces the second weighted sum.
    """
    seed = _composite_seed(b, mode)
    m = _IDENTITY
    for i, (c_i, d_i) in enumerate(zip(cs, ds, strict=True)):
        m = _add(_mul(_composite_weight(seed, i, c_i, d_i, mode), c_i), m)
    return m, _mul(k, m)


def compute_composites(
    b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], mode: int = MODE_VOPRF
) -> tuple[bytes, bytes]:
    """RFC 9497 §2.2.2 ComputeComposites (verifier): ``M = sum d_i*C[i]``, ``Z = sum d_i*D[i]``."""
    seed = _composite_seed(b, mode)
    m = _IDENTITY
    z = _IDENTITY
    for i, (c_i, d_i) in enumerate(zip(cs, ds, strict=True)):
        weight = _composite_weight(seed, i, c_i, d_i, mode)
        m = _add(_mul(weight, c_i), m)
        z = _add(_mul(weight, d_i), z)
    return m, z


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, mode: int) -> bytes:
    """The Fiat-Shamir challenge over ``B, M, Z, t2, t3`` and ``"Challenge"`` (§2.2.1)."""
    transcript = b"".join(_prefixed(x, "element") for x in (b, m, z, t2, t3)) + b"Challenge"
    return hash_to_scalar(transcript, mode)


def generate_proof(
    k: bytes,
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    r: bytes | None = None,
    mode: int = MODE_VOPRF,
) -> bytes:
    """RFC 9497 §2.2.1 GenerateProof: a batched DLEQ proof that ``B = k*A`` and ``D[i] = k*C[i]``.

    Returns ``c || s`` (64 bytes). ``r`` is the prover's nonce, random unless a test
    vector fixes it; it must never be reused with the same key.
    """
    check_scalar(k, "k")
    check_element(a, "a")
    check_element(b, "b")
    _check_batch(cs, ds, "cs", "ds")
    nonce = random_scalar() if r is None else check_scalar(r, "r")
    m, z = compute_composites_fast(k, b, cs, ds, mode)
    t2 = _mul(nonce, a)
    t3 = _mul(nonce, m)
    c = _challenge(b, m, z, t2, t3, mode)
    s: bytes = rbcl.crypto_core_ristretto255_scalar_sub(
        nonce, rbcl.crypto_core_ristretto255_scalar_mul(c, k)
    )
    return c + s


def verify_proof(
    a: bytes,
    b: bytes,
    cs: Sequence[bytes],
    ds: Sequence[bytes],
    proof: bytes,
    mode: int = MODE_VOPRF,
) -> bool:
    """RFC 9497 §2.2.2 VerifyProof: recompute ``t2 = s*A + c*B``, ``t3 = s*M + c*Z`` and c.

    Malformed elements raise (they are a protocol error, not a failed proof); a
    well-formed proof that does not check returns False.
    """
    check_element(a, "a")
    check_element(b, "b")
    _check_batch(cs, ds, "cs", "ds")
    if len(proof) != PROOF_BYTES:
        raise InvalidScalarError(f"proof must be {PROOF_BYTES} bytes, got {len(proof)}")
    c = check_scalar(proof[:SCALAR_BYTES], "proof.c", allow_zero=True)
    s = check_scalar(proof[SCALAR_BYTES:], "proof.s", allow_zero=True)
    m, z = compute_composites(b, cs, ds, mode)
    t2 = _add(_mul(s, a), _mul(c, b))
    t3 = _add(_mul(s, m), _mul(c, z))
    return _challenge(b, m, z, t2, t3, mode) == c


def _generator() -> bytes:
    """The ristretto255 generator's encoding, from libsodium (``1 * G``)."""
    return _mul_gen((1).to_bytes(SCALAR_BYTES, "little"))


def verifiable_blind_evaluate_batch(
    sk: bytes, pk: bytes, blinded_elements: Sequence[bytes], r: bytes | None = None
) -> tuple[list[bytes], bytes]:
    """RFC 9497 §3.3.2 BlindEvaluate (VOPRF) over a batch, with one proof for all of it.

    One proof per batch costs two scalar multiplications plus one per element, instead of
    a full proof per element; the client verifies it with ``verifiable_finalize_batch``.
    """
    check_scalar(sk, "sk")
    check_element(pk, "pk")
    if not blinded_elements:
        raise OprfError("blinded_elements must be non-empty")
    evaluated = [
        _mul(sk, check_element(e, f"blinded_elements[{i}]")) for i, e in enumerate(blinded_elements)
    ]
    proof = generate_proof(sk, _generator(), pk, blinded_elements, evaluated, r, MODE_VOPRF)
    return evaluated, proof


def verifiable_blind_evaluate(
    sk: bytes, pk: bytes, blinded_element: bytes, r: bytes | None = None
) -> tuple[bytes, bytes]:
    """RFC 9497 §3.3.2 BlindEvaluate (VOPRF) for one element: ``(evaluated, proof)``."""
    evaluated, proof = verifiable_blind_evaluate_batch(sk, pk, [blinded_element], r)
    return evaluated[0], proof


def verifiable_finalize_batch(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated_elements: Sequence[bytes],
    blinded_elements: Sequence[bytes],
    pk: bytes,
    proof: bytes,
) -> list[bytes]:
    """RFC 9497 §3.3.2 Finalize (VOPRF) over a batch: verify the one proof, then unblind.

    Raises :class:`VerifyError` before any output is produced if the proof fails.
    """
    if not len(inputs) == len(blinds) == len(evaluated_elements) == len(blinded_elements):
        raise OprfError("inputs, blinds, evaluated and blinded elements must have equal length")
    check_element(pk, "pk")
    _check_batch(blinded_elements, evaluated_elements, "blinded_elements", "evaluated_elements")
    if not verify_proof(_generator(), pk, blinded_elements, evaluated_elements, proof):
        raise VerifyError("VOPRF proof does not verify against pk for these elements")
    return [finalize(x, r, e) for x, r, e in zip(inputs, blinds, evaluated_elements, strict=True)]


def verifiable_finalize(
    input: bytes,
    blind: bytes,
    evaluated_element: bytes,
    blinded_element: bytes,
    pk: bytes,
    proof: bytes,
) -> bytes:
    """RFC 9497 §3.3.2 Finalize (VOPRF) for one element."""
    return verifiable_finalize_batch(
        [input], [blind], [evaluated_element], [blinded_element], pk, proof
    )[0]
