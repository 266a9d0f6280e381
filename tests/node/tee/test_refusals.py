"""Every refusal reason, produced by the attack it names.

Each test plays a dishonest host (or a network attacker) against an honest data owner
running ``verify_report`` / ``verify_result`` / ``verify_receipt``, and checks the owner
refuses with exactly the named reason: a check that fires for the wrong reason would
record the wrong thing on chain.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.algorithms.package import package_of
from node.tee.provision import seal_input, verify_receipt, verify_result
from node.tee.refusal import Reason, Refused
from node.tee.report import AttestationReport, Evidence, ReportClaims
from node.tee.simulated import SimulatedBackend, simulated_measurement
from node.tee.verify import TrustPolicy, verify_report
from tests.node.tee import max_job, sum_job
from tests.node.tee.conftest import NOW, Setup


def _verify(
    setup: Setup,
    report: AttestationReport,
    nonce: bytes,
    *,
    revoked: frozenset[bytes] = frozenset(),
    policy: TrustPolicy | None = None,
    now: int = NOW,
) -> ReportClaims:
    return verify_report(
        report,
        expectation=setup.expect(nonce, revoked),
        policy=policy or setup.policy,
        verifiers={setup.verifier.backend: setup.verifier},
        now=now,
    )


def _refused(reason: Reason, action: Callable[[], object]) -> Refused:
    with pytest.raises(Refused) as caught:
        action()
    assert caught.value.reason is reason, caught.value
    return caught.value


def test_honest_report_passes(setup: Setup) -> None:
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    assert _verify(setup, report, nonce) == report.claims


def test_enclave_running_another_algorithm_is_digest_mismatch(setup: Setup) -> None:
    # The host offers a trusted enclave, but one that runs another approved job.
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, max_job).attest(nonce)
    refusal = _refused(Reason.DIGEST_MISMATCH, lambda: _verify(setup, report, nonce))
    assert package_of(sum_job).digest.hex() in refusal.detail


def test_modified_code_is_unknown_measurement(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host patches the job's code; the enclave measures what it loads.
    nonce = os.urandom(32)
    monkeypatch.setattr(sum_job, "VERSION", "1.0.0-patched")
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    _refused(Reason.UNKNOWN_MEASUREMENT, lambda: _verify(setup, report, nonce))


def test_revoked_measurement_is_refused_even_if_still_listed_trusted(setup: Setup) -> None:
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    revoked = frozenset({simulated_measurement(package_of(sum_job))})
    _refused(Reason.REVOKED_MEASUREMENT, lambda: _verify(setup, report, nonce, revoked=revoked))


def test_replayed_report_is_stale_nonce(setup: Setup) -> None:
    # A report made for an earlier challenge (or for another owner) is presented again.
    enclave = setup.backend.launch(setup.task_id, sum_job)
    old = enclave.attest(os.urandom(32))
    fresh_nonce = os.urandom(32)
    _refused(Reason.STALE_NONCE, lambda: _verify(setup, old, fresh_nonce))


def test_old_report_is_expired(setup: Setup) -> None:
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    _refused(Reason.REPORT_EXPIRED, lambda: _verify(setup, report, nonce, now=NOW + 301))
    _refused(Reason.REPORT_EXPIRED, lambda: _verify(setup, report, nonce, now=NOW - 31))


def test_backend_not_in_policy(setup: Setup) -> None:
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    hardware_only = TrustPolicy(allowed_backends=frozenset({"sgx-dcap"}))
    refusal = _refused(
        Reason.BACKEND_NOT_ALLOWED, lambda: _verify(setup, report, nonce, policy=hardware_only)
    )
    assert "simulated" in refusal.detail


def test_claims_altered_after_signing_is_bad_signature(setup: Setup) -> None:
    # A host rewrites the algorithm digest and nonce in a genuine report.
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, max_job).attest(os.urandom(32))
    forged = dataclasses.replace(
        report.claims, algorithm_digest=package_of(sum_job).digest, nonce=nonce
    )
    tampered = AttestationReport(forged, report.evidence)
    _refused(Reason.BAD_SIGNATURE, lambda: _verify(setup, tampered, nonce))


def test_flipped_report_signature_is_bad_signature(setup: Setup) -> None:
    nonce = os.urandom(32)
    report = setup.backend.launch(setup.task_id, sum_job).attest(nonce)
    data = bytearray(report.evidence.data)
    data[-1] ^= 1
    tampered = AttestationReport(report.claims, Evidence(report.evidence.format, bytes(data)))
    _refused(Reason.BAD_SIGNATURE, lambda: _verify(setup, tampered, nonce))


def test_report_from_untrusted_platform_key_is_bad_signature(setup: Setup) -> None:
    # The host runs its own "simulated platform" to sign whatever it likes.
    nonce = os.urandom(32)
    rogue = SimulatedBackend(Ed25519PrivateKey.generate(), clock=lambda: NOW)
    report = rogue.launch(setup.task_id, sum_job).attest(nonce)
    _refused(Reason.BAD_SIGNATURE, lambda: _verify(setup, report, nonce))


def test_tampered_result_signature_is_bad_signature(setup: Setup) -> None:
    nonce = os.urandom(32)
    enclave = setup.backend.launch(setup.task_id, sum_job)
    claims = _verify(setup, enclave.attest(nonce), nonce)
    enclave.provision(seal_input(claims, setup.task_id, "bank-a", b"[1, 2]"))
    result = enclave.run()
    verify_result(claims, setup.task_id, result)
    forged_output = dataclasses.replace(result, output=b"999")
    _refused(Reason.BAD_SIGNATURE, lambda: verify_result(claims, setup.task_id, forged_output))
    flipped = bytearray(result.signature)
    flipped[0] ^= 1
    bad_sig = dataclasses.replace(result, signature=bytes(flipped))
    _refused(Reason.BAD_SIGNATURE, lambda: verify_result(claims, setup.task_id, bad_sig))


def test_result_from_another_enclave_is_bad_signature(setup: Setup) -> None:
    # Same code, same task, but not the enclave the owner attested and provisioned.
    nonce = os.urandom(32)
    attested = setup.backend.launch(setup.task_id, sum_job)
    claims = _verify(setup, attested.attest(nonce), nonce)
    impostor = setup.backend.launch(setup.task_id, sum_job)
    impostor.attest(os.urandom(32))
    _refused(Reason.BAD_SIGNATURE, lambda: verify_result(claims, setup.task_id, impostor.run()))


def test_result_relabelled_with_another_algorithm_is_digest_mismatch(setup: Setup) -> None:
    nonce = os.urandom(32)
    enclave = setup.backend.launch(setup.task_id, sum_job)
    claims = _verify(setup, enclave.attest(nonce), nonce)
    relabelled = dataclasses.replace(enclave.run(), algorithm_digest=package_of(max_job).digest)
    _refused(Reason.DIGEST_MISMATCH, lambda: verify_result(claims, setup.task_id, relabelled))


def test_tampered_receipt_is_bad_signature(setup: Setup) -> None:
    nonce = os.urandom(32)
    enclave = setup.backend.launch(setup.task_id, sum_job)
    claims = _verify(setup, enclave.attest(nonce), nonce)
    enclave.provision(seal_input(claims, setup.task_id, "bank-a", b"[1]"))
    enclave.provision(seal_input(claims, setup.task_id, "bank-b", b"[2]"))
    receipt = enclave.destroy()
    verify_receipt(claims, setup.task_id, receipt)
    # Claim fewer inputs were held (hide one), or a later erasure time.
    partial = dataclasses.replace(receipt, erased_input_digests=receipt.erased_input_digests[:1])
    _refused(Reason.BAD_SIGNATURE, lambda: verify_receipt(claims, setup.task_id, partial))
    later = dataclasses.replace(receipt, erased_at=receipt.erased_at + 1)
    _refused(Reason.BAD_SIGNATURE, lambda: verify_receipt(claims, setup.task_id, later))


def test_result_for_another_task_is_refused(setup: Setup) -> None:
    nonce = os.urandom(32)
    enclave = setup.backend.launch(setup.task_id, sum_job)
    claims = _verify(setup, enclave.attest(nonce), nonce)
    _refused(Reason.MALFORMED, lambda: verify_result(claims, os.urandom(32), enclave.run()))
