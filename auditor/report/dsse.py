"""Sign and verify the auditor's report: a DSSE envelope around an in-toto Statement.

The envelope, its pre-authentication encoding (PAE) and the signing are those of
`securesystemslib` (the reference implementation in-toto uses), over the auditor's key
held by the regulator: a PEM PKCS#8 private key, Ed25519 or ECDSA P-256/P-384 (e.g.
``openssl genpkey -algorithm ed25519 -out auditor.pem``). Verification takes the
auditor's public key, checks the signature over the PAE of payload type and payload,
and only then parses the payload: a changed byte anywhere fails it.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import FormatError, VerificationError

# The package re-exports these without an __all__; this is its documented import path.
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from auditor.report.statement import STATEMENT_TYPE
from ledger.canonical import canonical_json
from ledger.ids import InvalidInput

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class ReportInvalid(ValueError):
    """A signed report that must not be believed; the message says why."""


def load_signer(path: Path) -> CryptoSigner:
    """The auditor's signing key from a PEM PKCS#8 file (unencrypted)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput("sign-key", f"cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
        return CryptoSigner(key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(
            "sign-key",
            f"{path} is not an unencrypted PEM Ed25519 or ECDSA (P-256/P-384) private key "
            f"({exc}); make one with `openssl genpkey -algorithm ed25519 -out {path.name}`",
        ) from None


def public_key(pem: bytes) -> SSlibKey:
    """The auditor's public key (PEM SubjectPublicKeyInfo) as a verification key."""
    try:
        return SSlibKey.from_crypto(serialization.load_pem_public_key(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput("public-key", f"not a PEM Ed25519 or ECDSA public key ({exc})") from None


def public_key_pem(signer: CryptoSigner) -> bytes:
    """The PEM public key a reader of the signer's reports needs."""
    pem: bytes = signer.public_key._crypto_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def sign(statement: dict[str, Any], signer: CryptoSigner) -> dict[str, Any]:
    """``statement`` (canonical JSON) in a DSSE envelope signed by ``signer``."""
    envelope = Envelope(canonical_json(statement), PAYLOAD_TYPE, {})
    envelope.sign(signer)
    return cast(dict[str, Any], envelope.to_dict())


def verify(envelope: object, key: SSlibKey) -> dict[str, Any]:
    """The Statement inside ``envelope`` once its signature by ``key`` verifies;
    `ReportInvalid` naming the problem otherwise (never another exception)."""
    if not isinstance(envelope, dict):
        raise ReportInvalid("the report is not a DSSE envelope (a JSON object)")
    try:
        # from_dict rewrites the signatures it reads: give it a copy.
        parsed = Envelope.from_dict(json.loads(json.dumps(envelope)))
    except (KeyError, TypeError, ValueError, FormatError, binascii.Error) as exc:
        raise ReportInvalid(f"the report is not a well-formed DSSE envelope ({exc})") from None
    if parsed.payload_type != PAYLOAD_TYPE:
        raise ReportInvalid(f"payload type is {parsed.payload_type!r}, not {PAYLOAD_TYPE!r}")
    try:
        parsed.verify([key], 1)
    except (VerificationError, ValueError) as exc:
        raise ReportInvalid(f"the signature does not verify with key {key.keyid} ({exc})") from None
    try:
        statement = json.loads(parsed.payload)
    except ValueError as exc:
        raise ReportInvalid(f"the signed payload is not JSON ({exc})") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise ReportInvalid(f"the signed payload is not an in-toto Statement ({STATEMENT_TYPE})")
    return statement


def payload_of(envelope: dict[str, Any]) -> bytes:
    """The raw signed payload (unverified: for display and tests)."""
    return base64.b64decode(envelope["payload"])
