"""Intel SGX DCAP quote v3: structure only, behind the same ``Verifier`` seam.

This proves the seam, not the hardware: a ``DcapVerifier`` slots into
``verify.verify_report`` exactly as ``SimulatedVerifier`` does, parses a real quote's
fixed layout (header, the 384-byte ISV enclave report body, the signature-data length),
checks that the quote's MRENCLAVE is the report's measurement and that its report data
carries the report's claims digest, and then refuses with ``UNVERIFIABLE_EVIDENCE``:
checking the ECDSA quote signature, the QE report, the PCK certificate chain to Intel's
root and the TCB status is not implemented. Until it is, no DCAP report is accepted.

Layout (little-endian), from Intel's "SGX ECDSA Quote Library Reference, DCAP API"
(Appendix A, Quote Format v3) and the SDK header ``sgx_quote_3.h``:

header (48 bytes): version u16 @0, attestation key type u16 @2 (2 = ECDSA-256 with
P-256), reserved / TEE type u32 @4 (0 = SGX), QE SVN u16 @8, PCE SVN u16 @10, QE vendor
id [16] @12, user data [20] @28. Report body (384 bytes) @48: CPU SVN [16] @0, MISCSELECT
u32 @16, attributes [16] @48, MRENCLAVE [32] @64, MRSIGNER [32] @128, ISV prod id u16
@256, ISV SVN u16 @258, report data [64] @320. Signature data length u32 @432, signature
data @436 (quote signature [64], attestation key [64], QE report [384], QE report
signature [64], QE auth data (u16 size + bytes), certification data (u16 type, u32
size, bytes)).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport

if TYPE_CHECKING:
    from node.tee.backend import Verifier

__all__ = [
    "DCAP_BACKEND",
    "EVIDENCE_FORMAT",
    "NOT_IMPLEMENTED",
    "DcapVerifier",
    "QuoteV3",
    "parse_quote_v3",
]

DCAP_BACKEND = "sgx-dcap"
EVIDENCE_FORMAT = "sgx-dcap-quote-v3"
NOT_IMPLEMENTED = "hardware quote signature verification not implemented"

_HEADER = struct.Struct("<HHIHH16s20s")  # 48 bytes
_HEADER_LEN = 48
_BODY_LEN = 384
_SIG_LEN_AT = _HEADER_LEN + _BODY_LEN  # 432
_SIG_DATA_AT = _SIG_LEN_AT + 4  # 436
_ECDSA_FIXED = 64 + 64 + _BODY_LEN + 64  # sig, att key, QE report, QE report sig
_ECDSA_P256 = 2


@dataclass(frozen=True)
class QuoteV3:
    """The fields of an SGX quote v3 a verifier needs; nothing here is authenticated."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    cpu_svn: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes
    signature_data: bytes
    certification_data_type: int
    certification_data: bytes


def _malformed(what: str) -> Refused:
    return Refused(Reason.MALFORMED, f"SGX quote v3: {what}")


def parse_quote_v3(quote: bytes) -> QuoteV3:
    """Parse the fixed layout; raises ``Refused(MALFORMED)`` naming the bad field.

    Lengths are checked before every read (a truncated or padded quote is refused, never
    an ``IndexError``), so hostile bytes from a host cannot crash the checker.
    """
    if len(quote) < _SIG_DATA_AT:
        raise _malformed(f"{len(quote)} bytes, shorter than header + report body + length")
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user = _HEADER.unpack_from(quote, 0)
    if version != 3:
        raise _malformed(f"version is {version}, expected 3")
    if key_type != _ECDSA_P256:
        raise _malformed(f"attestation key type is {key_type}, expected 2 (ECDSA-256 P-256)")
    body = quote[_HEADER_LEN:_SIG_LEN_AT]
    (sig_len,) = struct.unpack_from("<I", quote, _SIG_LEN_AT)
    if _SIG_DATA_AT + sig_len != len(quote):
        raise _malformed(
            f"signature data length is {sig_len}, but {len(quote) - _SIG_DATA_AT} bytes follow"
        )
    sig = quote[_SIG_DATA_AT:]
    if len(sig) < _ECDSA_FIXED + 2:
        raise _malformed("signature data too short for the ECDSA signature structure")
    (auth_len,) = struct.unpack_from("<H", sig, _ECDSA_FIXED)
    cert_at = _ECDSA_FIXED + 2 + auth_len
    if len(sig) < cert_at + 6:
        raise _malformed("signature data too short for the QE auth and certification data")
    cert_type, cert_len = struct.unpack_from("<HI", sig, cert_at)
    if cert_at + 6 + cert_len != len(sig):
        raise _malformed(f"certification data length {cert_len} does not match what follows")
    return QuoteV3(
        version=version,
        attestation_key_type=key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=vendor,
        user_data=user,
        cpu_svn=body[0:16],
        attributes=body[48:64],
        mr_enclave=body[64:96],
        mr_signer=body[128:160],
        isv_prod_id=struct.unpack_from("<H", body, 256)[0],
        isv_svn=struct.unpack_from("<H", body, 258)[0],
        report_data=body[320:384],
        signature_data=sig,
        certification_data_type=cert_type,
        certification_data=sig[cert_at + 6 :],
    )


class DcapVerifier:
    """The checking side of an SGX DCAP backend; refuses until signatures are checked."""

    backend = DCAP_BACKEND

    def check_evidence(self, report: AttestationReport) -> None:
        if report.evidence.format != EVIDENCE_FORMAT:
            raise _malformed(f"evidence format is {report.evidence.format!r}")
        quote = parse_quote_v3(report.evidence.data)
        claims = report.claims
        if quote.mr_enclave != claims.measurement:
            raise Refused(
                Reason.BAD_SIGNATURE,
                f"quote MRENCLAVE {quote.mr_enclave.hex()} is not the reported measurement "
                f"{claims.measurement.hex()}",
            )
        if quote.report_data != claims.digest + bytes(32):
            raise Refused(
                Reason.BAD_SIGNATURE, "quote report data does not carry the report's claims digest"
            )
        raise Refused(Reason.UNVERIFIABLE_EVIDENCE, NOT_IMPLEMENTED)


if TYPE_CHECKING:  # mypy proves the DCAP verifier satisfies the same protocol
    _verifier: Verifier = DcapVerifier()
