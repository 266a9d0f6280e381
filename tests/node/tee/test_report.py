"""The report data model: fixed lengths, canonical digest, strict parsing."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ledger.canonical import digest_json
from node.tee.report import AttestationReport, ReportClaims


def _claims(**overrides: Any) -> ReportClaims:
    fields: dict[str, Any] = {
        "backend": "simulated",
        "measurement": bytes(32),
        "algorithm_digest": bytes(range(32)),
        "hpke_public_key": b"\x01" * 32,
        "signing_public_key": b"\x02" * 32,
        "nonce": b"\x03" * 32,
        "issued_at": 1_800_000_000,
    }
    fields.update(overrides)
    return ReportClaims(**fields)


def test_digest_is_the_domain_separated_canonical_json() -> None:
    claims = _claims()
    assert claims.digest == digest_json("tee-report", claims.to_json())
    assert claims.to_json()["type"] == "provnet/tee-report/v1+simulated"


@pytest.mark.parametrize(
    "field", ["measurement", "algorithm_digest", "hpke_public_key", "signing_public_key", "nonce"]
)
def test_every_claim_changes_the_digest(field: str) -> None:
    assert _claims(**{field: os.urandom(32)}).digest != _claims().digest


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("measurement", bytes(31), "measurement must be exactly 32 bytes"),
        ("nonce", bytes(33), "nonce must be exactly 32 bytes"),
        ("backend", "Simulated!", "backend must be"),
        ("issued_at", -1, "issued_at"),
    ],
)
def test_malformed_claims_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _claims(**{field: value})


def test_parsing_refuses_type_that_hides_the_backend() -> None:
    doc = _claims().to_json()
    doc["type"] = "provnet/tee-report/v1+sgx-dcap"
    with pytest.raises(ValueError, match="'type'"):
        ReportClaims.from_json(doc)


def test_parsing_refuses_unknown_fields() -> None:
    doc = _claims().to_json()
    doc["extra"] = "x"
    with pytest.raises(ValueError, match="unknown"):
        ReportClaims.from_json(doc)
    with pytest.raises(ValueError, match="exactly 'claims' and 'evidence'"):
        AttestationReport.from_json({"claims": _claims().to_json()})
