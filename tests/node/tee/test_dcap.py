"""The hardware seam: a real SGX DCAP quote v3 parsed, and refused through the same API.

The sample quote (data/sgx_dcap_quote_v3.dat) is a hardware quote from a live system,
copied unmodified from github.com/mobilecoinfoundation/sgx (dcap/types/data/tests/
hw_quote.dat, commit 84d1827e782e60a6a00df520e343267ca104b20b), Apache License 2.0,
Copyright (c) The MobileCoin Foundation; see data/README.md. The expected field values
below were read off the file at the offsets of Intel's DCAP quote v3 layout and are
cross-checked by independent facts: Intel's QE vendor id, the signature-data length
that exactly accounts for the file size, and three PEM certificates (PCK, intermediate,
root) in the certification data, as the source repository's own test asserts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from pathlib import Path

import pytest

from node.tee.dcap import (
    DCAP_BACKEND,
    EVIDENCE_FORMAT,
    NOT_IMPLEMENTED,
    DcapVerifier,
    parse_quote_v3,
)
from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport, Evidence, ReportClaims
from node.tee.simulated import SIMULATED
from node.tee.verify import Expectation, TrustPolicy, verify_report

QUOTE = (Path(__file__).parent / "data" / "sgx_dcap_quote_v3.dat").read_bytes()
MRENCLAVE = bytes.fromhex("1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189")
MRSIGNER = bytes.fromhex("d412a4f07ef83892a5915fb2ab584be31e186e5a4f95ab5f6950fd4eb8694d7b")
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
NOW = 1_800_000_000
REPORT_DATA_AT = 48 + 320


def test_sample_is_the_shipped_file() -> None:
    digest = hashlib.sha256(QUOTE).hexdigest()
    assert digest == "5e3a2ec7d73ffe33c6366006de2b047587a2d02288fd29829520ddb3430d3087"


def test_sample_quote_structure() -> None:
    quote = parse_quote_v3(QUOTE)
    assert (quote.version, quote.attestation_key_type, quote.tee_type) == (3, 2, 0)
    assert (quote.qe_svn, quote.pce_svn) == (7, 12)
    assert quote.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert quote.mr_enclave == MRENCLAVE
    assert quote.mr_signer == MRSIGNER
    assert (quote.isv_prod_id, quote.isv_svn) == (0, 0)
    assert quote.report_data == bytes(64)
    assert len(quote.signature_data) == len(QUOTE) - 436 == 4167
    assert quote.certification_data_type == 5
    assert quote.certification_data.count(b"-----BEGIN CERTIFICATE-----") == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda q: q[:400], "shorter than header"),
        (lambda q: q[:-1], "signature data length"),
        (lambda q: q + b"\0", "signature data length"),
        (lambda q: struct.pack("<H", 4) + q[2:], "version is 4"),
        (lambda q: q[:2] + struct.pack("<H", 3) + q[4:], "attestation key type is 3"),
    ],
)
def test_malformed_quotes_are_refused_naming_the_field(mutate: object, message: str) -> None:
    with pytest.raises(Refused) as caught:
        parse_quote_v3(mutate(QUOTE))  # type: ignore[operator]
    assert caught.value.reason is Reason.MALFORMED
    assert message in caught.value.detail


def _dcap_report(nonce: bytes, bind: bool = True) -> AttestationReport:
    claims = ReportClaims(
        backend=DCAP_BACKEND,
        measurement=MRENCLAVE,
        algorithm_digest=bytes(range(32)),
        hpke_public_key=os.urandom(32),
        signing_public_key=os.urandom(32),
        nonce=nonce,
        issued_at=NOW,
    )
    quote = QUOTE
    if bind:  # what the enclave would put in REPORTDATA (the signature then breaks)
        data = claims.digest + bytes(32)
        quote = QUOTE[:REPORT_DATA_AT] + data + QUOTE[REPORT_DATA_AT + 64 :]
    return AttestationReport(claims, Evidence(EVIDENCE_FORMAT, quote))


def _verify(report: AttestationReport, nonce: bytes, backends: frozenset[str]) -> ReportClaims:
    # The same call a caller makes for a simulated report: only the verifier map differs.
    return verify_report(
        report,
        expectation=Expectation(
            trusted_measurements=frozenset({MRENCLAVE}),
            revoked_measurements=frozenset(),
            algorithm_digest=bytes(range(32)),
            nonce=nonce,
        ),
        policy=TrustPolicy(allowed_backends=backends),
        verifiers={DCAP_BACKEND: DcapVerifier()},
        now=NOW,
    )


def test_dcap_report_is_refused_as_unverifiable_through_the_same_api() -> None:
    nonce = os.urandom(32)
    with pytest.raises(Refused) as caught:
        _verify(_dcap_report(nonce), nonce, frozenset({DCAP_BACKEND}))
    assert caught.value.reason is Reason.UNVERIFIABLE_EVIDENCE
    assert caught.value.detail == NOT_IMPLEMENTED


def test_quote_not_binding_the_claims_is_refused() -> None:
    nonce = os.urandom(32)
    with pytest.raises(Refused) as caught:
        _verify(_dcap_report(nonce, bind=False), nonce, frozenset({DCAP_BACKEND}))
    assert caught.value.reason is Reason.BAD_SIGNATURE
    report = _dcap_report(nonce)
    other = dataclasses.replace(report.claims, measurement=MRSIGNER)
    with pytest.raises(Refused) as caught:
        _verify(AttestationReport(other, report.evidence), nonce, frozenset({DCAP_BACKEND}))
    assert caught.value.reason is Reason.BAD_SIGNATURE
    assert "MRENCLAVE" in caught.value.detail


def test_dcap_backend_outside_policy_is_refused_before_parsing() -> None:
    nonce = os.urandom(32)
    with pytest.raises(Refused) as caught:
        _verify(_dcap_report(nonce), nonce, frozenset({SIMULATED}))
    assert caught.value.reason is Reason.BACKEND_NOT_ALLOWED
