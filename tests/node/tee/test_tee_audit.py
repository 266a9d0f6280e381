"""The auditor's ``tee_attestation`` check on a real ``tee-join`` run, and on its forgeries.

One correct job runs (``tests/node/tee/jobs.py``); the check passes on what the host
disclosed, names the backend ``simulated``, and fails when a report or the receipt is
altered: as a whole (the disclosed result no longer opens the host's on-chain
commitment) and step by step, for a host that would also re-commit (each pure step
finds its own forgery).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from auditor.replay import task_history
from auditor.verify import attestation
from auditor.verify.check import Malformed
from auditor.verify.checkpoints import ResultDisclosure
from auditor.verify.history import TaskHistory
from ledger.canonical import canonical_json
from ledger.ids import hex32
from ledger.transcript import Entry
from node.algorithms import tee
from node.tee import wire
from node.tee.report import AttestationReport
from tests.conftest import Consortium
from tests.node.tee.jobs import run, tee_network, trust_measurement


@pytest.fixture
def job(
    consortium: Consortium, tmp_path: Path
) -> tuple[TaskHistory, dict[str, list[Entry]], dict[str, Any]]:
    net, _ = tee_network(consortium, tmp_path)
    trust_measurement(consortium, tee)
    task_id, _ = run(net, "tee-audit")
    answer = net.creator.task_result(hex32(task_id))
    history = task_history(consortium.chain, consortium.deployment, task_id)
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    return history, transcripts, answer


def check(h: TaskHistory, transcripts: dict[str, list[Entry]], answer: dict[str, Any]) -> Any:
    return attestation.check_tee_attestation(h, transcripts, ResultDisclosure.from_json(answer))


def test_the_check_passes_and_names_the_simulated_backend(job: Any) -> None:
    history, transcripts, answer = job
    assert attestation.applies(history)
    verdict = check(history, transcripts, answer)
    assert verdict.status == "pass", verdict.detail
    assert "simulated" in verdict.detail
    assert verdict.evidence["backend"] == "simulated"
    assert verdict.evidence["isolation"] == "none"
    owners = [p[0] for p in history.participants() if p[1] != bytes(32)]
    assert sorted(verdict.evidence["reportsBoundTo"]) == sorted(owners)


def test_a_disclosed_result_altered_anywhere_fails(job: Any) -> None:
    history, transcripts, answer = job
    for path in (("reports",), ("receipt", "erasedAt"), ("result", "outputDigest")):
        forged = copy.deepcopy(answer)
        bundle = forged["result"]["attestation"]
        if path == ("reports",):
            owner = sorted(bundle["reports"])[0]
            bundle["reports"][owner]["claims"]["issuedAt"] += 1
        elif path[0] == "receipt":
            bundle["receipt"]["erasedAt"] += 1
        else:
            bundle["result"]["outputDigest"] = "00" * 32
        verdict = check(history, transcripts, forged)
        assert verdict.failed and "commitment" in verdict.detail, (path, verdict.detail)


def test_without_a_disclosed_result_the_check_is_not_applicable(job: Any) -> None:
    history, transcripts, _ = job
    verdict = attestation.check_tee_attestation(history, transcripts, None)
    assert verdict.status == "not-applicable"


# -- each step on its own, as if the host had re-committed a forged bundle


def bundle_of(answer: dict[str, Any]) -> dict[str, Any]:
    return dict(answer["result"]["attestation"])


def test_an_altered_report_is_not_the_one_the_transcripts_record(job: Any) -> None:
    history, transcripts, answer = job
    host = history.participants()[0][0]
    owner, doc = sorted(bundle_of(answer)["reports"].items())[0]
    raw = canonical_json(doc)
    assert attestation.report_recorded(history.task_id, host, owner, raw, transcripts)
    forged = copy.deepcopy(doc)
    forged["claims"]["issuedAt"] += 1
    with pytest.raises(Malformed, match="not the 'tee-report' message"):
        attestation.report_recorded(
            history.task_id, host, owner, canonical_json(forged), transcripts
        )
    # ... and its platform signature no longer verifies either.
    with pytest.raises(Malformed, match="evidence"):
        attestation.evidence_verifies(AttestationReport.from_json(forged))


def test_an_altered_receipt_fails_its_signature_and_its_anchor(job: Any) -> None:
    history, _, answer = job
    bundle = bundle_of(answer)
    host = history.participants()[0][0]
    report = AttestationReport.from_json(next(iter(bundle["reports"].values())))
    statement = wire.statement_from_json(bundle["result"])
    receipt = wire.receipt_from_json(bundle["receipt"])
    attestation.signed_and_erased(report.claims, history.task_id, statement, receipt, 2)
    attestation.receipt_anchored(history, host, receipt)
    altered = wire.receipt_from_json({**bundle["receipt"], "erasedAt": receipt.erased_at + 1})
    with pytest.raises(Malformed, match="signature"):
        attestation.signed_and_erased(report.claims, history.task_id, statement, altered, 2)
    with pytest.raises(Malformed, match="not the checkpoint"):
        attestation.receipt_anchored(history, host, altered)


def test_a_report_for_other_code_or_an_untrusted_measurement_fails(job: Any) -> None:
    history, _, answer = job
    report = AttestationReport.from_json(next(iter(bundle_of(answer)["reports"].values())))
    approved = report.claims.algorithm_digest
    attestation.binds_approved_code(history, report.claims, approved)
    with pytest.raises(Malformed, match="the task approved"):
        attestation.binds_approved_code(history, report.claims, bytes(32))
    other = json.loads(json.dumps(report.to_json()))
    other["claims"]["measurement"] = "11" * 32
    with pytest.raises(Malformed, match="not trusted"):
        attestation.binds_approved_code(
            history, AttestationReport.from_json(other).claims, approved
        )


def test_reports_from_two_enclaves_fail(job: Any) -> None:
    _, _, answer = job
    reports = [AttestationReport.from_json(r) for r in bundle_of(answer)["reports"].values()]
    attestation.one_enclave([r.claims for r in reports])
    other = json.loads(json.dumps(reports[1].to_json()))
    other["claims"]["signingPublicKey"] = "22" * 32
    with pytest.raises(Malformed, match="2 enclaves"):
        attestation.one_enclave([reports[0].claims, AttestationReport.from_json(other).claims])
