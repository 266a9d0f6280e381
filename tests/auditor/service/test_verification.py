"""`TaskVerifier` with the real evidence fetch (a regulator's node over gRPC + mutual TLS)
against the checks computed independently from the nodes' own stores; a participant
that cannot be reached; `provnet audit verify --config` end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.replay import deployment_checks, task_history
from auditor.report import dsse
from auditor.service.verification import TaskVerifier
from auditor.verify.run import verify_task
from scripts.audit_fetch_command import RegulatorNode
from scripts.cli import main
from tests.auditor.service_scenario import Scenario


def _independent(s: Scenario) -> list[dict[str, object]]:
    chain, deployment = s.chain, s.consortium.deployment
    checks = verify_task(
        task_history(chain, deployment, s.task_id),
        s.transcripts(),
        s.params,
        deployment=deployment_checks(chain, deployment),
    )
    return [c.to_json() for c in checks]


def _verifier(s: Scenario, timeout: float = 5.0) -> TaskVerifier:
    regulator = RegulatorNode(s.regulator_config, timeout=timeout, settle=5.0)
    return TaskVerifier(regulator.chain, regulator.deployment, regulator)


def test_fetched_evidence_verifies_like_the_nodes_own_transcripts(
    service_scenario: Scenario,
) -> None:
    s = service_scenario
    regulator = RegulatorNode(s.regulator_config, timeout=5.0, settle=5.0)
    participants = [s.address(n) for n in ("bank-a", "bank-b", "regulator")]
    fetched = regulator(s.task_id, participants)
    assert fetched.problems == {}
    assert fetched.transcripts == s.transcripts()

    result = TaskVerifier(regulator.chain, regulator.deployment, regulator).verify(
        s.task_id, s.params
    )
    assert result.verified and result.found and result.evidence_problems == {}
    assert [c.to_json() for c in result.checks] == _independent(s)
    assert result.envelope is None and result.report_digest is None
    assert result.outcome == {"state": "COMPLETED"}
    assert json.loads(result.prov or "{}")["activity"]


def test_a_stopped_participant_is_named_and_only_its_evidence_checks_fail(
    service_scenario: Scenario,
) -> None:
    s = service_scenario
    verifier = _verifier(s, timeout=2.0)
    bank_b = s.address("bank-b")
    with s.stopped("bank-b"):
        result = verifier.verify(s.task_id, s.params)
    assert not result.verified
    assert list(result.evidence_problems) == [bank_b]
    expected = {c["name"]: c["status"] for c in _independent(s)}
    got = {c.name: c.status for c in result.checks}
    changed = {name for name in got if got[name] != expected[name]}
    # The missing transcript fails `evidence_roots_match`, and `transcripts_agree_pairwise`
    # too: the landed check refuses to pass a finished node's messages on nothing
    # (tests/auditor/test_transcripts_late.py). Every other verdict is unchanged.
    assert changed == {"evidence_roots_match", "transcripts_agree_pairwise"}
    for c in result.checks:
        if c.name in changed:
            assert bank_b in c.detail, (c.name, c.detail)
    # Served again after the block: the next verification passes.
    assert verifier.verify(s.task_id, s.params).verified


def test_audit_verify_with_a_regulator_config_fetches_signs_and_exits_by_verdict(
    service_scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = service_scenario
    key = tmp_path / "auditor.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "result.json").write_text(json.dumps(s.result_answer))
    report = tmp_path / "report.json"
    task = "0x" + s.task_id.hex()
    argv = ["audit", "verify", task, "--config", str(s.regulator_config), "--timeout", "5"]
    signed = [
        *argv, "--params", str(tmp_path / "result.json"),
        "--sign-key", str(key), "--report", str(report),
    ]  # fmt: skip
    capsys.readouterr()
    assert main(signed) == 0
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["verified"] is True and answer["evidenceProblems"] == {}
    assert answer["reportDigest"] == "sha256:" + hashlib.sha256(report.read_bytes()).hexdigest()
    assert err.splitlines()[-1].startswith("verified:")
    statement = dsse.verify(
        json.loads(report.read_text()),
        dsse.public_key(dsse.public_key_pem(dsse.load_signer(key))),
    )
    assert statement["predicate"]["verificationResult"] == "PASSED"

    # Without the disclosed parameters their commitment is not applicable, still verified;
    # with a participant down the exit status says so, naming it.
    with s.stopped("bank-b"):
        assert main([*argv, "--timeout", "2"]) == 1
    out, err = capsys.readouterr()
    failed = json.loads(out)["failedChecks"]
    assert sorted(failed) == ["evidence_roots_match", "transcripts_agree_pairwise"]
    assert f"evidence of {s.address('bank-b')} not fetched" in err
