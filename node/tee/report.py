"""The attestation report: what an enclave claims about itself, and its canonical bytes.

A report binds, in one signed statement, the enclave's measured code, the approved
algorithm digest it runs, the public keys generated inside it (an X25519 key that data
owners encrypt their inputs to, an Ed25519 key that signs results and receipts), the
verifier's nonce and the issue time. Whoever checks the statement knows that whoever
holds those private keys runs that code, answered that challenge, and nothing else.

The claims are hashed with the project's one rule (DESIGN §4, ``ledger.canonical``):
RFC 8785 JSON, domain-separated SHA-256 under the kind ``tee-report``. That digest is
the report's identity: it is what the backend's evidence signs (for a hardware quote it
is what goes in the quote's 64-byte report data), what HPKE ``info`` binds and what a
later slice anchors on chain. The evidence is the proof of the claims, not one of them,
so it stays outside the digest.

The serialized form names its backend in ``type`` (``provnet/tee-report/v1+simulated``)
as well as in ``backend``, so a simulated report is labelled as such wherever its JSON
ends up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledger.canonical import canonical_json, digest_json

__all__ = [
    "DIGEST_KIND",
    "AttestationReport",
    "Evidence",
    "ReportClaims",
    "report_type",
]

DIGEST_KIND = "tee-report"
_TYPE_PREFIX = "provnet/tee-report/v1+"
_BACKEND = re.compile(r"[a-z0-9-]{1,32}")
_KEY_LEN = 32
_NONCE_LEN = 32


def report_type(backend: str) -> str:
    """The serialized ``type`` of a report made by ``backend``."""
    return _TYPE_PREFIX + backend


def _fixed(name: str, value: object, length: int) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{name} must be exactly {length} bytes, got {len(value)}")
    return value


def _hex(name: str, doc: dict[str, Any], length: int | None = None) -> bytes:
    text = doc.get(name)
    if not isinstance(text, str):
        raise ValueError(f"report field {name!r} must be a hex string")
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"report field {name!r} is not hex: {exc}") from exc
    if length is not None and len(value) != length:
        raise ValueError(f"report field {name!r} must be {length} bytes, got {len(value)}")
    return value


@dataclass(frozen=True)
class ReportClaims:
    """What the enclave asserts; every field is covered by the report digest.

    ``measurement`` identifies the enclave's whole code (runtime and algorithm), which
    is what a consortium votes to trust; ``algorithm_digest`` is the approved algorithm
    the enclave runs, checked separately against the task so a trusted enclave cannot
    be offered for another task's algorithm. ``issued_at`` is Unix seconds.
    """

    backend: str
    measurement: bytes
    algorithm_digest: bytes
    hpke_public_key: bytes
    signing_public_key: bytes
    nonce: bytes
    issued_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or _BACKEND.fullmatch(self.backend) is None:
            raise ValueError(f"backend must be 1-32 chars of [a-z0-9-], got {self.backend!r}")
        _fixed("measurement", self.measurement, 32)
        _fixed("algorithm_digest", self.algorithm_digest, 32)
        _fixed("hpke_public_key", self.hpke_public_key, _KEY_LEN)
        _fixed("signing_public_key", self.signing_public_key, _KEY_LEN)
        _fixed("nonce", self.nonce, _NONCE_LEN)
        if (
            not isinstance(self.issued_at, int)
            or isinstance(self.issued_at, bool)
            or not 0 <= self.issued_at < 2**53
        ):
            raise ValueError(f"issued_at must be Unix seconds, got {self.issued_at!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "type": report_type(self.backend),
            "backend": self.backend,
            "measurement": self.measurement.hex(),
            "algorithmDigest": self.algorithm_digest.hex(),
            "hpkePublicKey": self.hpke_public_key.hex(),
            "hpkeSuite": "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM",
            "signingPublicKey": self.signing_public_key.hex(),
            "signingAlgorithm": "Ed25519",
            "nonce": self.nonce.hex(),
            "issuedAt": self.issued_at,
        }

    @property
    def digest(self) -> bytes:
        """The report's identity: what evidence signs and what HPKE ``info`` binds."""
        return digest_json(DIGEST_KIND, self.to_json())

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ReportClaims:
        backend = doc.get("backend")
        if not isinstance(backend, str):
            raise ValueError("report field 'backend' must be a string")
        if doc.get("type") != report_type(backend):
            raise ValueError(
                f"report field 'type' must be {report_type(backend)!r}, got {doc.get('type')!r}"
            )
        issued_at = doc.get("issuedAt")
        if not isinstance(issued_at, int) or isinstance(issued_at, bool):
            raise ValueError("report field 'issuedAt' must be an integer")
        claims = cls(
            backend=backend,
            measurement=_hex("measurement", doc, 32),
            algorithm_digest=_hex("algorithmDigest", doc, 32),
            hpke_public_key=_hex("hpkePublicKey", doc, _KEY_LEN),
            signing_public_key=_hex("signingPublicKey", doc, _KEY_LEN),
            nonce=_hex("nonce", doc, _NONCE_LEN),
            issued_at=issued_at,
        )
        if claims.to_json() != doc:
            # Unknown or altered fields (a suite name, say) would otherwise be dropped
            # silently, and the digest would vouch for less than the document shows.
            raise ValueError("report claims carry unknown or non-canonical fields")
        return claims


@dataclass(frozen=True)
class Evidence:
    """The backend's proof of the claims, opaque to everything but that backend's verifier.

    ``format`` names the evidence kind (``simulated-ed25519``, later e.g.
    ``sgx-dcap-quote-v3``) so a verifier never misreads one kind as another.
    """

    format: str
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "data": self.data.hex()}


@dataclass(frozen=True)
class AttestationReport:
    """Claims plus evidence: what a host hands to every data owner."""

    claims: ReportClaims
    evidence: Evidence

    @property
    def backend(self) -> str:
        return self.claims.backend

    @property
    def digest(self) -> bytes:
        return self.claims.digest

    def to_json(self) -> dict[str, Any]:
        return {"claims": self.claims.to_json(), "evidence": self.evidence.to_json()}

    def to_bytes(self) -> bytes:
        """Canonical (RFC 8785) bytes, for transport and evidence stores."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, doc: object) -> AttestationReport:
        if not isinstance(doc, dict) or set(doc) != {"claims", "evidence"}:
            raise ValueError("report must be an object with exactly 'claims' and 'evidence'")
        claims, evidence = doc["claims"], doc["evidence"]
        if not isinstance(claims, dict):
            raise ValueError("report field 'claims' must be an object")
        if not isinstance(evidence, dict) or set(evidence) != {"format", "data"}:
            raise ValueError("report field 'evidence' must have exactly 'format' and 'data'")
        fmt = evidence["format"]
        if not isinstance(fmt, str):
            raise ValueError("evidence field 'format' must be a string")
        return cls(ReportClaims.from_json(claims), Evidence(fmt, _hex("data", evidence)))
