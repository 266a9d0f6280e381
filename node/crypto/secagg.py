"""Secure vector sum over Z_{2^128} with dropout recovery, for any aggregate.

An aggregator (holding no data) learns the element-wise sum of the integer vectors of
the providers that survived, and nothing else about any one of them. The module knows
nothing about what the vectors mean: statistics (``node/algorithms/stats.py``) and
federated learning build their vectors and read the sum; this is the one secure sum of
DESIGN §6.

Protocol: Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
Machine Learning" (CCS 2017), with its consistency round (the version secure against a
malicious aggregator), adapted to provnet's mutually authenticated point-to-point
channels (DESIGN §5): keys and Shamir shares go directly provider to provider, never
through the aggregator, so the aggregator can neither read nor substitute them.

1. Keys and commitments. Provider i draws an X25519 key c_i and a self-mask seed b_i,
   sends its public key to every other provider, and commits to (C_i, H(b_i)) at the
   aggregator.
2. Shares. b_i and c_i are Shamir-shared with threshold t; share k goes straight to
   provider k. Setup (steps 1-2) needs every provider.
3. Masked input. Provider i sends the aggregator

       y_i = x_i + PRG(b_i) + sum_{j != i} (+1 if i < j else -1) * PRG(s_ij)

   where s_ij is the seed agreed with j over X25519 (``node/crypto/masking.py``), with a
   digest of all public keys it saw (a provider that sent different keys to different
   peers is caught here).
4. Survivors. The aggregator announces U, the providers whose masked input arrived.
5. Consistency round. Every member of U signs (session context, U) with its node key
   and sends the signature to the aggregator; the aggregator forwards at least t valid
   signatures on U, by distinct members of U, to the members of U. A provider checks
   them all (count >= t, each signer a distinct member of U, each signature valid, on
   exactly the U this provider was told) before revealing anything, and otherwise
   refuses with a ``ProtocolError`` naming the aggregator.
6. Unmask. Each provider that accepted reveals, for every party, exactly one share:
   of b_j for j in U, of c_d for d not in U. The aggregator reconstructs (checking
   each secret against its commitment), strips the self masks of U and the dropped
   parties' pairwise masks, and obtains sum_{j in U} x_j.

Signatures. A party's name is its node's Ethereum address; ``Identity`` wraps the
node's ``eth_account`` LocalAccount and signs with EIP-191 ``personal_sign``
(``encode_defunct``, version 0x45) over the 32-byte digest
``sha256("provnet:secagg-survivor-set:v1\\0" || context || |U| || U)``. The session
context binds the purpose (algorithm, version, parameters), the wire version, the task,
the aggregator, the providers, the threshold and the vector length, so a signature is
worthless in any other session; the domain-separated kind keeps it from ever meaning
anything else provnet signs, and the EIP-191 prefix keeps it from being a transaction.
``AddressVerifier`` recovers the signer and compares it case-insensitively with the
party's name; ``KeyRingVerifier`` maps arbitrary names (tests) to addresses.

Messages (every message starts with the wire version and a type byte and is checked
strictly: exact length, field ranges, canonical order):

====================  ======================  ==========================================
step                  direction               bytes for n providers, vector length L
====================  ======================  ==========================================
commit                provider -> aggregator  2 + 32 context + 32 X25519 key + 32 H(b_i)
keys                  provider -> provider    2 + 32 context + 32 X25519 key
shares                provider -> provider    2 + 1 index + 32 b-share + 32 c-share
masked-input          provider -> aggregator  2 + 32 key-set digest + 4 (L) + 16 L
survivors             aggregator -> provider  2 + 1 (|U|) + |U| indices, increasing
survivor-signature    provider -> aggregator  2 + 65 signature (r, s, v in {27, 28})
survivor-certificate  aggregator -> provider  2 + 1 (k) + k * (1 signer index + 65
                                              signature), k >= 1, indices increasing
unmask                provider -> aggregator  2 + 1 (n) + n * (1 index + 1 kind + 32 share)
====================  ======================  ==========================================

Threat model (n providers, threshold t, c providers colluding with the aggregator):

* Privacy holds against a *malicious* aggregator colluding with up to
  c <= min(t - 1, 2t - n - 1) *malicious* providers. Such a coalition learns about the
  honest providers' vectors only the sum over one survivor set U of its choice with
  |U| >= t (it may claim that others dropped): the sum of at least t - c honest
  vectors, plus its own. Why: an honest provider reveals one secret per party, chosen
  by the single U it was told and only after t valid signatures on that U. The
  colluders hold c < t shares of each secret. Getting both b_j and c_j of an honest j
  needs two accepted sets, one containing j and one not, each signed by t distinct
  members, at least t - c of them honest, and an honest provider signs only the set it
  was told: two disjoint honest groups of t - c, impossible when 2(t - c) > n - c, that
  is 2t > n + c.
* A *semi-honest* aggregator (tells everyone the same U) is covered a fortiori; so are
  providers colluding without the aggregator (they never see masked inputs, and fewer
  than t shares reveal nothing).
* A malicious provider can still lie about its own input (any vector of the ring; the
  caller should sanity-check the sum), and can make the run fail: abort or stall, send
  shares that do not reconstruct (caught against its commitment; the error names it),
  send different keys to different peers (caught by the key-set digest), send a bad
  signature (the aggregator names it). It cannot learn any other input: providers
  receive no output.
* Not provided: correctness against a malicious aggregator (it may publish anything;
  callers commit to the result and record transcripts so that an auditor can compare),
  and liveness with more than n - t dropouts after setup or any dropout during setup.
* For n = 2 (and whenever t - c = 1) the sum itself reveals the one honest vector to
  the coalition: inherent to publishing a sum, not a weakness of the protocol.

Default threshold: c = max(1, floor((n - 1) / 3)) colluders are designed for, and t is
the smallest integer with 2t > n + c and t >= c + 1 (at most n). A caller may raise t
(more colluders tolerated, fewer dropouts), never lower it:

====  =========  ===  =============================  ==================
n     c design   t    colluders tolerated at this t  dropouts tolerated
====  =========  ===  =============================  ==================
2     1          2    1                              0
3     1          3    2                              0
4     1          3    1                              1
5     1          4    2                              1
6     1          4    1                              2
7     2          5    2                              2
8     2          6    3                              2
9     2          6    2                              3
10    3          7    3                              3
====  =========  ===  =============================  ==================
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeVar

import numpy as np
from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature

from ledger.canonical import digest, digest_json
from node.channel import DEFAULT_TIMEOUT, MAX_MESSAGE_BYTES, Channel, ChannelError, PeerTimeout
from node.crypto import masking, shamir

__all__ = [
    "MAX_LENGTH",
    "MAX_PROVIDERS",
    "WIRE_VERSION",
    "AddressVerifier",
    "BelowThreshold",
    "Excluded",
    "Identity",
    "InconsistentShares",
    "InvalidSession",
    "KeyRingVerifier",
    "MalformedMessage",
    "ProtocolError",
    "SecretKind",
    "Session",
    "SetupIncomplete",
    "SignatureVerifier",
    "collect",
    "default_colluders",
    "minimum_threshold",
    "provide",
    "recover_signer",
    "session",
    "survivors_digest",
    "threshold_for",
    "tolerated_colluders",
    "verify_certificate",
]

MAX_PROVIDERS = shamir.MAX_SHARES
# A masked input must fit one channel message (header + key-set digest + length field).
MAX_LENGTH = min(masking.MAX_ELEMENTS, (MAX_MESSAGE_BYTES - 64) // masking.ELEMENT_BYTES)


# --------------------------------------------------------------------------- thresholds


class InvalidSession(ValueError):
    """A session the protocol cannot run with; ``field`` names the offending input."""

    def __init__(self, field_name: str, detail: str) -> None:
        self.field, self.detail = field_name, detail
        super().__init__(f"{field_name}: {detail}")


def _check_providers(providers: int) -> None:
    if not isinstance(providers, int) or isinstance(providers, bool) or providers < 2:
        raise InvalidSession("providers", f"need at least 2 providers, got {providers!r}")
    if providers > MAX_PROVIDERS:
        raise InvalidSession("providers", f"at most {MAX_PROVIDERS} providers, got {providers}")


def default_colluders(providers: int) -> int:
    """c: how many providers colluding with the aggregator the default threshold resists."""
    _check_providers(providers)
    return max(1, (providers - 1) // 3)


def minimum_threshold(providers: int) -> int:
    """The smallest t with 2t > n + c and t >= c + 1 for c = ``default_colluders(n)``."""
    c = default_colluders(providers)
    return min(providers, max((providers + c) // 2 + 1, c + 1))


def tolerated_colluders(providers: int, threshold: int) -> int:
    """The most providers that may collude with the aggregator at threshold t:
    c < t (shares stay hidden) and 2t > n + c (no split into two signed survivor sets)."""
    _check_providers(providers)
    return max(0, min(threshold - 1, 2 * threshold - providers - 1))


def threshold_for(providers: int, requested: int | None = None) -> int:
    """The Shamir threshold for ``providers`` parties: the safe minimum, or ``requested``
    if that is higher. A request below the minimum is refused (``InvalidSession`` with
    field ``threshold``), never silently raised."""
    _check_providers(providers)
    safe = minimum_threshold(providers)
    if requested is None:
        return safe
    if not isinstance(requested, int) or isinstance(requested, bool):
        raise InvalidSession("threshold", f"must be an integer, got {requested!r}")
    if requested > providers:
        raise InvalidSession(
            "threshold", f"{requested} exceeds the number of providers ({providers})"
        )
    if requested < safe:
        c = default_colluders(providers)
        raise InvalidSession(
            "threshold",
            f"{requested} is below the safe minimum {safe} for {providers} providers: with "
            f"the aggregator and {c} colluding provider(s), two groups of providers told "
            "different survivor sets could both be confirmed, revealing both secrets of an "
            "honest provider",
        )
    return requested


# -------------------------------------------------------------------------------- errors


class ProtocolError(ChannelError):
    """A peer sent something the protocol does not allow; names the peer and the step."""

    reason = "PROTOCOL_ERROR"

    def __init__(self, peer: str, step: str, detail: str) -> None:
        self.peer, self.step = peer, step
        super().__init__(f"{step!r} from {peer}: {detail}")


class MalformedMessage(ProtocolError):
    """Wrong version, type, length or field value: the bytes are not a valid message."""


class InconsistentShares(ProtocolError):
    """No threshold subset of the shares of ``peer``'s secret matches its commitment:
    some survivor sent a bad share (or ``peer`` committed to something it did not share)."""

    def __init__(self, owner: str, threshold: int, shares: int) -> None:
        self.peer, self.step = owner, STEP_UNMASK
        ChannelError.__init__(
            self,
            f"step {STEP_UNMASK!r}: no {threshold} of the {shares} shares of {owner}'s secret "
            f"reconstruct what {owner} committed to",
        )


class BelowThreshold(ChannelError):
    """Too few providers took part in a step for the protocol to finish."""

    reason = "PEER_TIMEOUT"

    def __init__(self, step: str, arrived: int, needed: int, missing: Sequence[str]) -> None:
        self.step, self.arrived, self.needed = step, arrived, needed
        self.missing = tuple(missing)
        super().__init__(
            f"step {step!r}: {arrived} provider(s) took part, the threshold needs {needed}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )


class SetupIncomplete(ChannelError):
    """A provider missed key or share exchange; every provider must finish setup."""

    reason = "PEER_TIMEOUT"

    def __init__(self, step: str, missing: Sequence[str], timeout: float) -> None:
        self.step, self.missing = step, tuple(missing)
        super().__init__(
            f"step {step!r}: no message from {', '.join(missing)} within {timeout:g} s; "
            "setup needs every provider"
        )


class Excluded(ChannelError):
    """The aggregator finished without this provider (its masked input came too late)."""

    reason = "PEER_TIMEOUT"


# ---------------------------------------------------------------------------- identities

SIGNATURE_BYTES = 65


class SignatureVerifier(Protocol):
    """Decides whether ``signature`` over ``message_digest`` was made by ``party``."""

    def verify(self, party: str, message_digest: bytes, signature: bytes) -> bool: ...


def _signable(message_digest: bytes) -> SignableMessage:
    if len(message_digest) != 32:
        raise ValueError(f"message digest must be 32 bytes, got {len(message_digest)}")
    return encode_defunct(primitive=message_digest)


def recover_signer(message_digest: bytes, signature: bytes) -> str | None:
    """The checksummed address that made an EIP-191 signature over the digest, or None
    if the signature is not one (wrong length, v, r or s)."""
    if len(signature) != SIGNATURE_BYTES or signature[-1] not in (27, 28):
        return None
    try:
        return str(Account.recover_message(_signable(message_digest), signature=signature))
    except (BadSignature, ValueError):
        return None


class Identity:
    """A node's signing key: wraps its ``eth_account`` LocalAccount (never printed)."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, message_digest: bytes) -> bytes:
        """A 65-byte EIP-191 (``personal_sign``) signature (r || s || v) over the digest."""
        signed = self._account.sign_message(_signable(message_digest))
        return bytes(signed.signature)

    def __repr__(self) -> str:
        return f"Identity({self.address})"


class AddressVerifier:
    """Parties are named by their node addresses: the recovered signer must be the name."""

    def verify(self, party: str, message_digest: bytes, signature: bytes) -> bool:
        signer = recover_signer(message_digest, signature)
        return signer is not None and signer.lower() == party.lower()


class KeyRingVerifier:
    """Parties with arbitrary names (in-memory tests, benchmarks): name -> address."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self.addresses = {name: address.lower() for name, address in addresses.items()}

    def verify(self, party: str, message_digest: bytes, signature: bytes) -> bool:
        expected = self.addresses.get(party)
        signer = recover_signer(message_digest, signature)
        return expected is not None and signer is not None and signer.lower() == expected


# ---------------------------------------------------------------------------------- wire

WIRE_VERSION = 2  # 1 was the survivors-echo protocol, unsafe against a colluding provider
STEP_COMMIT = "commit"
STEP_KEYS = "keys"
STEP_SHARES = "shares"
STEP_MASKED = "masked-input"
STEP_SURVIVORS = "survivors"
STEP_SIGNATURE = "survivor-signature"
STEP_CERTIFICATE = "survivor-certificate"
STEP_UNMASK = "unmask"
KEY = masking.KEY_BYTES
DIGEST = 32
_LENGTH = 4  # bytes of the vector length field of a masked input


class MessageType(IntEnum):
    COMMIT = 1
    KEYS = 2
    SHARES = 3
    MASKED_INPUT = 4
    SURVIVORS = 5
    # 6 was SURVIVORS_ECHO (wire version 1); never reused.
    UNMASK = 7
    SURVIVOR_SIGNATURE = 8
    SURVIVOR_CERTIFICATE = 9


class SecretKind(IntEnum):
    """Which of a party's two shared secrets an unmask entry carries."""

    SELF_SEED = 0  # b_j, for a survivor j
    PAIRWISE_KEY = 1  # c_d, for a dropped party d


def _frame(kind: MessageType, body: bytes) -> bytes:
    return bytes((WIRE_VERSION, kind)) + body


def _body(peer: str, step: str, payload: bytes, kind: MessageType, length: int | None) -> bytes:
    """Check version, type and (if fixed) exact length; return the body."""
    if len(payload) < 2:
        raise MalformedMessage(peer, step, f"truncated: {len(payload)} bytes")
    if payload[0] != WIRE_VERSION:
        raise MalformedMessage(
            peer, step, f"wire version {payload[0]} (this node speaks {WIRE_VERSION})"
        )
    if payload[1] != kind:
        raise MalformedMessage(peer, step, f"message type {payload[1]}, expected {int(kind)}")
    body = payload[2:]
    if length is not None and len(body) != length:
        raise MalformedMessage(peer, step, f"body of {len(body)} bytes, expected {length}")
    return body


def encode_commit(context: bytes, public: bytes, commitment: bytes) -> bytes:
    return _frame(MessageType.COMMIT, context + public + commitment)


def decode_commit(peer: str, payload: bytes) -> tuple[bytes, bytes, bytes]:
    body = _body(peer, STEP_COMMIT, payload, MessageType.COMMIT, DIGEST + KEY + DIGEST)
    return body[:DIGEST], body[DIGEST : DIGEST + KEY], body[DIGEST + KEY :]


def encode_keys(context: bytes, public: bytes) -> bytes:
    return _frame(MessageType.KEYS, context + public)


def decode_keys(peer: str, payload: bytes) -> tuple[bytes, bytes]:
    body = _body(peer, STEP_KEYS, payload, MessageType.KEYS, DIGEST + KEY)
    return body[:DIGEST], body[DIGEST:]


def encode_shares(index: int, self_share: bytes, key_share: bytes) -> bytes:
    return _frame(MessageType.SHARES, bytes((index,)) + self_share + key_share)


def decode_shares(peer: str, payload: bytes) -> tuple[int, bytes, bytes]:
    size = shamir.SHARE_BYTES
    body = _body(peer, STEP_SHARES, payload, MessageType.SHARES, 1 + 2 * size)
    return body[0], body[1 : 1 + size], body[1 + size :]


def encode_masked(keyset: bytes, vector: Sequence[int] | masking.Limbs) -> bytes:
    """A masked input, from ring elements as a list or (the provider's path) as limbs."""
    if isinstance(vector, np.ndarray):
        length, elements = vector.shape[-1], masking.encode_limbs(vector)
    else:
        length, elements = len(vector), masking.encode_vector(vector)
    return _frame(MessageType.MASKED_INPUT, keyset + length.to_bytes(_LENGTH, "big") + elements)


def decode_masked(peer: str, payload: bytes, length: int) -> tuple[bytes, list[int]]:
    keyset, limbs = decode_masked_limbs(peer, payload, length)
    return keyset, masking.to_ints(limbs)


def decode_masked_limbs(peer: str, payload: bytes, length: int) -> tuple[bytes, masking.Limbs]:
    """``decode_masked`` with the vector as limbs: the aggregator sums them in numpy."""
    body = _body(
        peer,
        STEP_MASKED,
        payload,
        MessageType.MASKED_INPUT,
        DIGEST + _LENGTH + length * masking.ELEMENT_BYTES,
    )
    declared = int.from_bytes(body[DIGEST : DIGEST + _LENGTH], "big")
    if declared != length:
        raise MalformedMessage(
            peer, STEP_MASKED, f"vector of {declared} elements, expected {length}"
        )
    return body[:DIGEST], masking.decode_limbs(body[DIGEST + _LENGTH :], length)


def encode_survivors(survivors: Sequence[int]) -> bytes:
    return _frame(MessageType.SURVIVORS, bytes((len(survivors), *survivors)))


def _check_indices(peer: str, step: str, indices: Sequence[int], providers: int, what: str) -> None:
    if any(b <= a for a, b in itertools.pairwise(indices)):
        raise MalformedMessage(peer, step, f"{what} indices must be strictly increasing")
    if indices and indices[-1] >= providers:
        raise MalformedMessage(peer, step, f"{what} index {indices[-1]} >= {providers}")


def decode_survivors(peer: str, payload: bytes, providers: int) -> tuple[int, ...]:
    body = _body(peer, STEP_SURVIVORS, payload, MessageType.SURVIVORS, None)
    if not body or len(body) != 1 + body[0]:
        raise MalformedMessage(
            peer, STEP_SURVIVORS, "survivor list length does not match its count"
        )
    survivors = tuple(body[1:])
    _check_indices(peer, STEP_SURVIVORS, survivors, providers, "survivor")
    return survivors


def _check_signature_bytes(peer: str, step: str, signature: bytes) -> None:
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedMessage(
            peer, step, f"signature of {len(signature)} bytes, expected {SIGNATURE_BYTES}"
        )
    if signature[-1] not in (27, 28):
        raise MalformedMessage(peer, step, f"signature recovery byte v={signature[-1]}, not 27/28")


def _signature_ok(signature: bytes) -> bool:
    return len(signature) == SIGNATURE_BYTES and signature[-1] in (27, 28)


def encode_signature(signature: bytes) -> bytes:
    if not _signature_ok(signature):
        raise ValueError("not a 65-byte signature with v in {27, 28}")
    return _frame(MessageType.SURVIVOR_SIGNATURE, signature)


def decode_signature(peer: str, payload: bytes) -> bytes:
    body = _body(peer, STEP_SIGNATURE, payload, MessageType.SURVIVOR_SIGNATURE, SIGNATURE_BYTES)
    _check_signature_bytes(peer, STEP_SIGNATURE, body)
    return body


_SIGNED = 1 + SIGNATURE_BYTES


def encode_certificate(signatures: Sequence[tuple[int, bytes]]) -> bytes:
    """(signer index, signature) pairs, indices strictly increasing."""
    if not 1 <= len(signatures) <= MAX_PROVIDERS:
        raise ValueError(f"a certificate holds 1..{MAX_PROVIDERS} signatures")
    indices = [index for index, _ in signatures]
    if any(b <= a for a, b in itertools.pairwise(indices)) or not 0 <= indices[0] <= 0xFF:
        raise ValueError("signer indices must be strictly increasing bytes")
    body = bytearray((len(signatures),))
    for index, signature in signatures:
        if not _signature_ok(signature) or index > 0xFF:
            raise ValueError(f"entry for signer {index} is not a valid signature")
        body += bytes((index,)) + signature
    return _frame(MessageType.SURVIVOR_CERTIFICATE, bytes(body))


def decode_certificate(peer: str, payload: bytes, providers: int) -> list[tuple[int, bytes]]:
    body = _body(peer, STEP_CERTIFICATE, payload, MessageType.SURVIVOR_CERTIFICATE, None)
    if not body or body[0] == 0 or len(body) != 1 + body[0] * _SIGNED:
        raise MalformedMessage(
            peer, STEP_CERTIFICATE, "certificate length does not match its signature count"
        )
    entries = [
        (body[1 + k * _SIGNED], body[2 + k * _SIGNED : 1 + (k + 1) * _SIGNED])
        for k in range(body[0])
    ]
    _check_indices(peer, STEP_CERTIFICATE, [i for i, _ in entries], providers, "signer")
    for _, signature in entries:
        _check_signature_bytes(peer, STEP_CERTIFICATE, signature)
    return entries


_ENTRY = 2 + shamir.SHARE_BYTES


def encode_unmask(entries: Sequence[tuple[int, SecretKind, bytes]]) -> bytes:
    body = bytearray((len(entries),))
    for party, kind, share in entries:
        body += bytes((party, kind)) + share
    return _frame(MessageType.UNMASK, bytes(body))


def decode_unmask(
    peer: str, payload: bytes, providers: int, survivors: Sequence[int]
) -> list[bytes]:
    """The shares of an unmask answer, one per provider, after checking that each entry
    is exactly the kind the survivor set calls for (b for survivors, c for the rest)."""
    body = _body(peer, STEP_UNMASK, payload, MessageType.UNMASK, 1 + providers * _ENTRY)
    if body[0] != providers:
        raise MalformedMessage(peer, STEP_UNMASK, f"{body[0]} entries, expected {providers}")
    alive = set(survivors)
    shares = []
    for k in range(providers):
        entry = body[1 + k * _ENTRY : 1 + (k + 1) * _ENTRY]
        expected = SecretKind.SELF_SEED if k in alive else SecretKind.PAIRWISE_KEY
        if entry[0] != k:
            raise MalformedMessage(peer, STEP_UNMASK, f"entry {k} is for party {entry[0]}")
        if entry[1] != expected:
            raise ProtocolError(
                peer, STEP_UNMASK, f"entry {k} carries secret kind {entry[1]}, expected {expected}"
            )
        shares.append(entry[2:])
    return shares


# ------------------------------------------------------------------------------- session


@dataclass(frozen=True)
class Session:
    """What every party must agree on; its digest (``context``) binds keys, seeds and
    signatures. Build it with ``session()``; construction re-checks the threshold."""

    providers: tuple[str, ...]  # sorted: the index order for signs and share indices
    aggregator: str
    threshold: int
    length: int  # ring elements per vector
    context: bytes

    def __post_init__(self) -> None:
        names = self.providers
        if list(names) != sorted(set(names)):
            raise InvalidSession("providers", "must be distinct and in sorted order")
        if self.aggregator in names:
            raise InvalidSession("aggregator", f"{self.aggregator} is also listed as a provider")
        threshold_for(len(names), self.threshold)
        if not 1 <= self.length <= MAX_LENGTH:
            raise InvalidSession("length", f"must be in 1..{MAX_LENGTH}, got {self.length}")
        if len(self.context) != DIGEST:
            raise InvalidSession("context", f"must be {DIGEST} bytes")

    def index(self, name: str) -> int:
        return self.providers.index(name)


def session(
    channel: Channel,
    providers: Sequence[str],
    aggregator: str,
    threshold: int | None,
    length: int,
    purpose: Mapping[str, Any],
    task_id: bytes,
) -> Session:
    """Validate the parties and fix the session. ``threshold`` None means the safe
    minimum; ``purpose`` (canonical JSON: algorithm name, version, parameters) is bound
    into the context so that parties that disagree on it stop at the first message."""
    names = list(providers)
    if any(not isinstance(p, str) or not p for p in names) or len(set(names)) != len(names):
        raise InvalidSession("providers", "must be distinct non-empty names")
    if not isinstance(aggregator, str) or not aggregator:
        raise InvalidSession("aggregator", "must be a non-empty name")
    if aggregator in names:
        raise InvalidSession("aggregator", f"{aggregator} is also listed as a provider")
    t = threshold_for(len(names), threshold)
    reachable = {channel.me, *channel.peers}
    unreachable = sorted({*names, aggregator} - reachable)
    if unreachable:
        raise InvalidSession("providers", f"not on this channel: {', '.join(unreachable)}")
    ordered = tuple(sorted(names))
    context = digest_json(
        "secagg-session",
        {
            "purpose": dict(purpose),
            "wire": WIRE_VERSION,
            "task": task_id.hex(),
            "aggregator": aggregator,
            "providers": list(ordered),
            "threshold": t,
            "length": length,
        },
    )
    return Session(ordered, aggregator, t, length, context)


def seed_commitment(context: bytes, owner: str, self_seed: bytes) -> bytes:
    """H(b_i): lets the aggregator check a reconstructed b_i (b_i is 256 random bits, so
    the hash reveals nothing about it)."""
    return digest("secagg-seed-commitment", context + self_seed + owner.encode("utf-8"))


def keyset_digest(context: bytes, publics: Sequence[bytes]) -> bytes:
    """All providers' public keys in index order: equal at every honest party, so a
    provider that sent different keys to different parties is caught."""
    return digest("secagg-keyset", context + b"".join(publics))


def survivors_digest(context: bytes, survivors: Sequence[int]) -> bytes:
    """What a survivor signs in the consistency round: this session and exactly U."""
    return digest("secagg-survivor-set", context + bytes((len(survivors), *survivors)))


def verify_certificate(
    s: Session,
    survivors: Sequence[int],
    signatures: Sequence[tuple[int, bytes]],
    verifier: SignatureVerifier,
) -> None:
    """Accept the aggregator's certificate for ``survivors`` (the set this provider was
    told) or raise a ``ProtocolError`` naming the aggregator: at least t signatures, by
    distinct members of U, each valid on (this session, exactly U)."""

    def refuse(detail: str) -> ProtocolError:
        return ProtocolError(s.aggregator, STEP_CERTIFICATE, f"{detail}; refusing to reveal shares")

    told = list(survivors)
    if len(signatures) < s.threshold:
        raise refuse(
            f"{len(signatures)} signature(s) on survivor set {told}, the threshold needs "
            f"{s.threshold}"
        )
    set_digest = survivors_digest(s.context, survivors)
    alive, seen = set(survivors), set()
    for index, signature in signatures:
        if not 0 <= index < len(s.providers):
            raise refuse(f"signer index {index} is not a provider")
        name = s.providers[index]
        if index in seen:
            raise refuse(f"two signatures by {name}")
        seen.add(index)
        if index not in alive:
            raise refuse(f"signature by {name}, who is not in survivor set {told}")
        if not verifier.verify(name, set_digest, signature):
            raise refuse(f"signature by {name} is not valid on survivor set {told} in this session")


# ------------------------------------------------------------------------------ protocol

T = TypeVar("T")
_POLL = 0.005


def _gather(
    channel: Channel,
    peers: Sequence[str],
    step: str,
    timeout: float,
    decode: Callable[[str, bytes], T],
    enough: int | None = None,
) -> dict[str, T]:
    """Receive ``step`` from each peer until all arrived, ``enough`` did, or the deadline.

    Waiting for all, it blocks on each peer in turn (one shared deadline). Waiting for
    the first ``enough``, it polls the peers round-robin so that an absent peer cannot
    hold up the ones that answered. Decoding errors propagate: a malformed message is a
    protocol violation, never a dropout.
    """
    deadline = time.monotonic() + timeout
    pending = list(peers)
    got: dict[str, T] = {}
    while pending and (enough is None or len(got) < enough):
        for peer in list(pending):
            remaining = deadline - time.monotonic()
            if enough is None or len(pending) == 1:
                wait = max(remaining, 0.0)
            else:
                wait = max(min(_POLL, remaining), 0.0)
            try:
                payload = channel.receive(peer, step, timeout=wait)
            except PeerTimeout:
                continue
            got[peer] = decode(peer, payload)
            pending.remove(peer)
            if enough is not None and len(got) >= enough:
                break
        if deadline - time.monotonic() <= 0:
            break
    return got


def _send_to_maybe_gone(channel: Channel, peer: str, step: str, payload: bytes) -> bool:
    """Send to a peer that may have dropped out; a failed send is a dropout, not an error.

    Used only where the protocol already tolerates the peer's absence (the survivor
    announcement, the certificate): the missing answer is handled there.
    """
    try:
        channel.send(peer, step, payload)
    except ChannelError:
        return False
    return True


def _check_identity(s: Session, me: str, identity: Identity, verifier: SignatureVerifier) -> None:
    """Refuse, before sending anything, a key that peers would not accept as ``me``."""
    probe = digest("secagg-identity-check", s.context)
    if not verifier.verify(me, probe, identity.sign(probe)):
        raise InvalidSession(
            "identity", f"signatures by {identity.address} do not verify as party {me}"
        )


def provide(
    channel: Channel,
    session: Session,
    vector: Sequence[int],
    identity: Identity,
    timeout: float = DEFAULT_TIMEOUT,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    *,
    verifier: SignatureVerifier | None = None,
) -> None:
    """A provider's side: contribute ``vector`` (integers, negatives as two's complement)
    to the sum. Returns once this provider's unmask answer is sent.

    ``timeout`` bounds each wait; the waits for the survivor set and the certificate are
    twice as long because the aggregator itself waits up to ``timeout`` first.
    ``identity`` signs the survivor set; ``verifier`` checks the other survivors'
    signatures (default: parties are named by their addresses). ``random_bytes`` exists
    so tests can fix the masks, and must otherwise stay the OS CSPRNG.
    """
    s = session
    me = channel.me
    if me not in s.providers:
        raise InvalidSession("providers", f"this party ({me}) is not a provider")
    if len(vector) != s.length:
        raise InvalidSession("vector", f"{len(vector)} elements, the session has {s.length}")
    # The exact-type pass is the common case and ~2x faster at 10^6 elements; the full
    # check (int subclasses other than bool) decides only when it fails.
    if not all(type(v) is int for v in vector) and not all(
        isinstance(v, int) and not isinstance(v, bool) for v in vector
    ):
        raise InvalidSession("vector", "elements must be integers")
    check = verifier if verifier is not None else AddressVerifier()
    _check_identity(s, me, identity, check)

    n, t, i = len(s.providers), s.threshold, s.index(me)
    others = [p for p in s.providers if p != me]

    # 1. Keys: an ephemeral X25519 key per session, straight to every other provider.
    key_seed, self_seed = random_bytes(KEY), random_bytes(KEY)
    if len(key_seed) != KEY or len(self_seed) != KEY:
        raise ValueError("random_bytes returned the wrong number of bytes")
    public = masking.public_key(key_seed)
    commitment = seed_commitment(s.context, me, self_seed)
    channel.send(s.aggregator, STEP_COMMIT, encode_commit(s.context, public, commitment))
    for peer in others:
        channel.send(peer, STEP_KEYS, encode_keys(s.context, public))

    def on_keys(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        context, peer_public = decode_keys(peer, payload)
        if context != s.context:
            raise ProtocolError(
                peer, STEP_KEYS, "session context differs (task, purpose or parties)"
            )
        try:
            seed = masking.pairwise_seed(key_seed, peer_public, s.context, me, peer)
        except masking.KeyAgreementError as exc:
            raise ProtocolError(peer, STEP_KEYS, str(exc)) from None
        return peer_public, seed

    keys = _gather(channel, others, STEP_KEYS, timeout, on_keys)
    if len(keys) < len(others):
        raise SetupIncomplete(STEP_KEYS, [p for p in others if p not in keys], timeout)

    # 2. Shares of b_i and c_i, straight to each provider (index k+1 goes to provider k).
    self_split = shamir.split(self_seed, t, n)
    key_split = shamir.split(key_seed, t, n)
    for peer in others:
        k = s.index(peer)
        channel.send(peer, STEP_SHARES, encode_shares(k + 1, self_split[k][1], key_split[k][1]))

    def on_shares(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        index, self_share, key_share = decode_shares(peer, payload)
        if index != i + 1:
            raise MalformedMessage(peer, STEP_SHARES, f"share index {index}, expected {i + 1}")
        return self_share, key_share

    held = _gather(channel, others, STEP_SHARES, timeout, on_shares)
    if len(held) < len(others):
        raise SetupIncomplete(STEP_SHARES, [p for p in others if p not in held], timeout)
    held[me] = (self_split[i][1], key_split[i][1])

    # 3. The masked input, kept as limbs from the mask to the wire bytes.
    masked = masking.mask_limbs(
        vector,
        masking.self_mask_seed(self_seed, s.context, me),
        [(masking.pairwise_sign(i, s.index(p)), keys[p][1]) for p in others],
    )
    publics = [public if p == me else keys[p][0] for p in s.providers]
    channel.send(
        s.aggregator, STEP_MASKED, encode_masked(keyset_digest(s.context, publics), masked)
    )

    # 4. The survivor set.
    announced = channel.receive(s.aggregator, STEP_SURVIVORS, 2 * timeout)
    survivors = decode_survivors(s.aggregator, announced, n)
    if i not in survivors:
        raise Excluded(f"{s.aggregator} finished without this provider's input")
    if len(survivors) < t:
        missing = [p for k, p in enumerate(s.providers) if k not in survivors]
        raise BelowThreshold(STEP_SURVIVORS, len(survivors), t, missing)

    # 5. Consistency round: sign U; reveal nothing unless t members of U signed it too.
    signature = identity.sign(survivors_digest(s.context, survivors))
    channel.send(s.aggregator, STEP_SIGNATURE, encode_signature(signature))
    certificate = channel.receive(s.aggregator, STEP_CERTIFICATE, 2 * timeout)
    verify_certificate(s, survivors, decode_certificate(s.aggregator, certificate, n), check)

    # 6. One secret per party, chosen by the single certified set: b for survivors, c
    # for the dropped. This is the only answer this provider ever gives for the session.
    alive = set(survivors)
    entries = [
        (k, SecretKind.SELF_SEED, held[p][0])
        if k in alive
        else (k, SecretKind.PAIRWISE_KEY, held[p][1])
        for k, p in enumerate(s.providers)
    ]
    channel.send(s.aggregator, STEP_UNMASK, encode_unmask(entries))


def collect(
    channel: Channel,
    session: Session,
    verifier: SignatureVerifier,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[list[int], tuple[int, ...]]:
    """The aggregator's side: (the sum over the survivors in the ring, their indices).

    ``timeout`` bounds each collection round (commitments, masked inputs, signatures,
    unmask answers). Elements are ring values; ``masking.signed`` reads them as signed.
    """
    s = session
    if channel.me != s.aggregator:
        raise InvalidSession("aggregator", f"this party ({channel.me}) is not the aggregator")
    n, t, length = len(s.providers), s.threshold, s.length

    def on_commit(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        context, public, commitment = decode_commit(peer, payload)
        if context != s.context:
            raise ProtocolError(
                peer, STEP_COMMIT, "session context differs (task, purpose or parties)"
            )
        return public, commitment

    commits = _gather(channel, s.providers, STEP_COMMIT, timeout, on_commit)
    if len(commits) < n:
        raise SetupIncomplete(STEP_COMMIT, [p for p in s.providers if p not in commits], timeout)
    expected_keyset = keyset_digest(s.context, [commits[p][0] for p in s.providers])

    def on_masked(peer: str, payload: bytes) -> masking.Limbs:
        keyset, vector = decode_masked_limbs(peer, payload, length)
        if keyset != expected_keyset:
            raise ProtocolError(
                peer, STEP_MASKED, "saw different provider public keys than were committed"
            )
        return vector

    masked = _gather(channel, s.providers, STEP_MASKED, timeout, on_masked)
    survivors = tuple(k for k, p in enumerate(s.providers) if p in masked)
    # Everyone hears the outcome, also below threshold, so live providers stop at once.
    announcement = encode_survivors(survivors)
    for peer in s.providers:
        _send_to_maybe_gone(channel, peer, STEP_SURVIVORS, announcement)
    if len(survivors) < t:
        raise BelowThreshold(
            STEP_MASKED, len(survivors), t, [p for p in s.providers if p not in masked]
        )
    members = [s.providers[k] for k in survivors]

    set_digest = survivors_digest(s.context, survivors)

    def on_signature(peer: str, payload: bytes) -> bytes:
        signature = decode_signature(peer, payload)
        if not verifier.verify(peer, set_digest, signature):
            raise ProtocolError(
                peer, STEP_SIGNATURE, "signature on the survivor set does not verify"
            )
        return signature

    signed = _gather(channel, members, STEP_SIGNATURE, timeout, on_signature, enough=t)
    if len(signed) < t:
        raise BelowThreshold(
            STEP_SIGNATURE, len(signed), t, [p for p in members if p not in signed]
        )
    certificate = encode_certificate(sorted((s.index(p), sig) for p, sig in signed.items()))
    for peer in members:
        _send_to_maybe_gone(channel, peer, STEP_CERTIFICATE, certificate)

    def on_unmask(peer: str, payload: bytes) -> list[bytes]:
        return decode_unmask(peer, payload, n, survivors)

    # Proceed with the first t answers; wait for more only if they do not reconstruct.
    deadline = time.monotonic() + timeout
    answers = _gather(channel, members, STEP_UNMASK, timeout, on_unmask, enough=t)
    while True:
        if len(answers) < t:
            missing = [p for p in members if p not in answers]
            raise BelowThreshold(STEP_UNMASK, len(answers), t, missing)
        try:
            self_seeds, key_seeds = _reconstruct(s, survivors, commits, answers)
            break
        except InconsistentShares:
            rest = [p for p in members if p not in answers]
            remaining = deadline - time.monotonic()
            more = _gather(channel, rest, STEP_UNMASK, remaining, on_unmask) if rest else {}
            if not more:
                raise
            answers.update(more)

    # The sum in limbs (numpy): the masked inputs, then every mask to strip in one pass of
    # masking.add_masks; a list of ring elements at the end.
    total = np.zeros((masking.LIMBS, length), dtype=np.uint64)
    strip: list[tuple[int, bytes]] = []
    for k in survivors:
        name = s.providers[k]
        total = masking.add_limbs(total, masked[name])
        strip.append((-1, masking.self_mask_seed(self_seeds[k], s.context, name)))
    for d, key_seed in key_seeds.items():
        for j in survivors:
            peer = s.providers[j]
            try:
                seed = masking.pairwise_seed(
                    key_seed, commits[peer][0], s.context, s.providers[d], peer
                )
            except masking.KeyAgreementError as exc:
                raise ProtocolError(peer, STEP_COMMIT, str(exc)) from None
            # j added sign(j, d) * PRG(s_jd) for the dropped d; take it back out.
            strip.append((-masking.pairwise_sign(j, d), seed))
    masking.add_masks(total, strip)
    return masking.to_ints(total), survivors


def _reconstruct(
    s: Session,
    survivors: Sequence[int],
    commits: Mapping[str, tuple[bytes, bytes]],
    answers: Mapping[str, list[bytes]],
) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """b_j for every survivor and c_d for every dropped party, each checked against what
    its owner committed to (H(b_j), the public key C_d) before it is used."""
    alive = set(survivors)
    self_seeds: dict[int, bytes] = {}
    key_seeds: dict[int, bytes] = {}
    for k, name in enumerate(s.providers):
        shares = sorted((s.index(r) + 1, answer[k]) for r, answer in answers.items())
        public, commitment = commits[name]
        if k in alive:
            self_seeds[k] = _combine_checked(
                name, shares, s.threshold, _matches_commitment(s.context, name, commitment)
            )
        else:
            key_seeds[k] = _combine_checked(name, shares, s.threshold, _matches_public(public))
    return self_seeds, key_seeds


def _matches_commitment(context: bytes, owner: str, commitment: bytes) -> Callable[[bytes], bool]:
    return lambda seed: seed_commitment(context, owner, seed) == commitment


def _matches_public(public: bytes) -> Callable[[bytes], bool]:
    return lambda seed: masking.public_key(seed) == public


MAX_SUBSETS = 256


def _combine_checked(
    owner: str,
    shares: Sequence[tuple[int, bytes]],
    threshold: int,
    check: Callable[[bytes], bool],
) -> bytes:
    """The first threshold-subset of shares whose secret passes ``check``.

    With honest survivors the first subset works; trying others tolerates a few bad
    shares without trusting any one survivor. Bounded, so bad input cannot make it slow.
    """
    for subset in itertools.islice(itertools.combinations(shares, threshold), MAX_SUBSETS):
        secret = shamir.combine(list(subset))
        if check(secret):
            return secret
    raise InconsistentShares(owner, threshold, len(shares))
