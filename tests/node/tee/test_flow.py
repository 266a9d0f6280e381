"""The whole attested job on the simulated backend, as data owners and a consumer see it.

report -> verify -> seal -> enclave opens -> run -> signed result verified -> destroy ->
signed receipt verified; the result must equal the plaintext computation.
"""

from __future__ import annotations

import json
import os

from node.algorithms.package import package_of
from node.tee.provision import seal_input, verify_receipt, verify_result
from node.tee.report import AttestationReport
from node.tee.simulated import SimulatedBackend, simulated_measurement
from node.tee.verify import verify_report
from tests.node.tee import sum_job
from tests.node.tee.conftest import NOW, Setup

ROWS = {"bank-a": [5, 7, 11], "bank-b": [100, -3], "carrier-c": [42]}


def test_attested_sum_equals_plaintext_sum(setup: Setup) -> None:
    enclave = setup.backend.launch(setup.task_id, sum_job)
    sealed_digests = []
    for owner, rows in ROWS.items():
        nonce = os.urandom(32)  # each owner challenges the enclave itself
        report = enclave.attest(nonce)
        claims = verify_report(
            report,
            expectation=setup.expect(nonce),
            policy=setup.policy,
            verifiers={setup.verifier.backend: setup.verifier},
            now=NOW + 10,
        )
        sealed = seal_input(claims, setup.task_id, owner, json.dumps(rows).encode())
        assert json.dumps(rows).encode() not in sealed.ciphertext
        enclave.provision(sealed)
        sealed_digests.append(sealed.digest)

    result = enclave.run()
    verify_result(claims, setup.task_id, result)
    plaintext_sum = sum(sum(rows) for rows in ROWS.values())
    assert json.loads(result.output) == plaintext_sum == sum_job_direct()
    assert sorted(result.input_digests) == sorted(sealed_digests)
    assert result.algorithm_digest == package_of(sum_job).digest

    receipt = enclave.destroy()
    verify_receipt(claims, setup.task_id, receipt)
    assert sorted(receipt.erased_input_digests) == sorted(sealed_digests)
    assert receipt.keys_erased and receipt.erased_at == NOW


def sum_job_direct() -> int:
    return int(json.loads(sum_job.compute({o: json.dumps(r).encode() for o, r in ROWS.items()})))


def test_simulated_is_in_backend_type_and_every_serialized_report(setup: Setup) -> None:
    assert "simulated" in type(setup.backend).__name__.lower()
    assert setup.backend.name == "simulated"
    enclave = setup.backend.launch(setup.task_id, sum_job)
    assert "simulated" in type(enclave).__name__.lower()
    for _ in range(3):
        report = enclave.attest(os.urandom(32))
        doc = report.to_json()
        assert doc["claims"]["type"] == "provnet/tee-report/v1+simulated"
        assert doc["claims"]["backend"] == "simulated"
        assert doc["evidence"]["format"] == "simulated-ed25519"
        assert b"simulated" in report.to_bytes()


def test_report_round_trips_through_its_canonical_bytes(setup: Setup) -> None:
    report = setup.backend.launch(setup.task_id, sum_job).attest(os.urandom(32))
    again = AttestationReport.from_json(json.loads(report.to_bytes()))
    assert again == report
    assert again.digest == report.digest


def test_measurement_covers_the_code_that_runs(setup: Setup) -> None:
    enclave = setup.backend.launch(setup.task_id, sum_job)
    assert enclave.measurement == simulated_measurement(package_of(sum_job))
    assert enclave.measurement != package_of(sum_job).digest  # runtime is measured too
    other = SimulatedBackend().launch(os.urandom(32), sum_job)
    assert other.measurement == enclave.measurement  # code, not host or task
