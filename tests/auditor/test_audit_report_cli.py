"""`provnet audit verify --sign-key --report --prov` against the demo's task on anvil:
the summary on stderr has a line per check, the signed report verifies with the
auditor's public key, the PROV file re-reads, and a forged transcript turns the exit
status and the report's verdict to failed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from prov.model import ProvDocument

from auditor.report import dsse
from ledger.canonical import digest
from ledger.chain import Chain
from ledger.deployment import Deployment
from scripts.cli import main
from scripts.demo import run_scenario


def test_verify_writes_a_signed_report_and_prov(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_url: str
) -> None:
    scenario = run_scenario(Chain.connect(anvil_url), lambda _: None)
    manifest = tmp_path / "manifest.json"
    Deployment.from_json(scenario.report["deployment"]).save(manifest)
    transcripts = tmp_path / "transcripts"
    transcripts.mkdir()
    for node, entries in scenario.transcripts.items():
        (transcripts / f"{node}.json").write_text(json.dumps([e.to_json() for e in entries]))
    key = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "auditor.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = dsse.public_key(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    task = scenario.report["task"]
    common = ["--chain", anvil_url, "--manifest", str(manifest), task]
    report, prov = tmp_path / "report.json", tmp_path / "prov.json"
    argv = ["audit", "verify", "--transcripts", str(transcripts), "--sign-key", str(pem),
            "--report", str(report), "--prov", str(prov), *common]  # fmt: skip

    assert main(argv) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["verified"] is True and shown["report"] == str(report)
    lines = err.splitlines()
    for check in shown["checks"]:
        verdict = {"pass": "PASS", "fail": "FAIL", "not-applicable": "n/a"}[check["status"]]
        assert any(line.split()[:2] == [verdict, check["name"]] for line in lines), (check, err)
    assert lines[-1].startswith("verified:")
    statement = dsse.verify(json.loads(report.read_text()), public)
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert [c["name"] for c in statement["predicate"]["checks"]] == [
        c["name"] for c in shown["checks"]
    ]
    assert statement["predicate"]["chain"]["chainId"] == shown["chainId"]
    doc = ProvDocument.deserialize(content=prov.read_text(), format="json")
    assert any(str(r.identifier) == f"provnet:task_{task}" for r in doc.get_records())

    # A forged transcript: the exit status, the summary and the signed verdict say so.
    node, entries = next(iter(scenario.transcripts.items()))
    forged = [dataclasses.replace(entries[0], digest=digest("test", b"forged")), *entries[1:]]
    (transcripts / f"{node}.json").write_text(json.dumps([e.to_json() for e in forged]))
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert any(line.split()[:2] == ["FAIL", "evidence_roots_match"] for line in err.splitlines())
    assert "NOT verified: 1 check(s) failed (evidence_roots_match)" in err
    statement = dsse.verify(json.loads(report.read_text()), public)
    assert statement["predicate"]["verificationResult"] == "FAILED"
    assert statement["predicate"]["failedChecks"] == ["evidence_roots_match"]

    # Whoever receives the report checks it with the auditor's public key.
    pub = tmp_path / "auditor.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["audit", "check-report", str(report), "--public-key", str(pub)]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["signatureVerified"] is True and checked["task"] == task
    assert checked["verificationResult"] == "FAILED"
    assert checked["failedChecks"] == ["evidence_roots_match"]
    envelope = json.loads(report.read_text())
    envelope["payloadType"] = "text/plain"
    report.write_text(json.dumps(envelope))
    assert main(["audit", "check-report", str(report), "--public-key", str(pub)]) == 1
    assert "report not verified: payload type" in capsys.readouterr().err

    # A key without a report to sign (or the reverse) is refused before any work.
    assert main(["audit", "verify", "--sign-key", str(pem), *common]) == 2
    assert capsys.readouterr().err.startswith("provnet: error: report: ")
