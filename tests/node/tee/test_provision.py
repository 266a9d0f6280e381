"""HPKE provisioning: a ciphertext opens only where, when and as whom it was sealed.

``info`` binds the task, the verified report and the owner (provision.py); each test
moves a genuine ciphertext somewhere else and checks it no longer opens.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from node.tee.provision import input_info, seal_input
from node.tee.refusal import Reason, Refused
from node.tee.report import ReportClaims
from node.tee.simulated import SimulatedEnclave
from node.tee.verify import verify_report
from tests.node.tee import sum_job
from tests.node.tee.conftest import NOW, Setup


def _attested(setup: Setup, task_id: bytes) -> tuple[SimulatedEnclave, ReportClaims]:
    enclave = setup.backend.launch(task_id, sum_job)
    nonce = os.urandom(32)
    claims = verify_report(
        enclave.attest(nonce),
        expectation=setup.expect(nonce),
        policy=setup.policy,
        verifiers={setup.verifier.backend: setup.verifier},
        now=NOW,
    )
    return enclave, claims


def _refused_malformed(enclave: SimulatedEnclave, sealed: object) -> None:
    with pytest.raises(Refused) as caught:
        enclave.provision(sealed)  # type: ignore[arg-type]
    assert caught.value.reason is Reason.MALFORMED


def test_ciphertext_replayed_into_another_job_does_not_open(setup: Setup) -> None:
    enclave_1, claims_1 = _attested(setup, setup.task_id)
    other_task = os.urandom(32)
    enclave_2, claims_2 = _attested(setup, other_task)
    sealed = seal_input(claims_1, setup.task_id, "bank-a", b"[1, 2, 3]")
    enclave_1.provision(sealed)
    # Relabelled for the other job: the enclave derives info from its own task, so the
    # AEAD fails even though the fields now look right.
    relabelled = dataclasses.replace(sealed, task_id=other_task, report_digest=claims_2.digest)
    _refused_malformed(enclave_2, relabelled)
    _refused_malformed(enclave_2, sealed)  # as is: wrong task


def test_ciphertext_relabelled_as_another_owner_does_not_open(setup: Setup) -> None:
    enclave, claims = _attested(setup, setup.task_id)
    sealed = seal_input(claims, setup.task_id, "bank-a", b"[1]")
    _refused_malformed(enclave, dataclasses.replace(sealed, owner="bank-b"))
    enclave.provision(sealed)
    _refused_malformed(enclave, sealed)  # and not twice


def test_ciphertext_for_a_report_the_enclave_did_not_issue_is_refused(setup: Setup) -> None:
    enclave, claims = _attested(setup, setup.task_id)
    sealed = seal_input(claims, setup.task_id, "bank-a", b"[1]")
    _refused_malformed(enclave, dataclasses.replace(sealed, report_digest=os.urandom(32)))


def test_altered_ciphertext_does_not_open(setup: Setup) -> None:
    enclave, claims = _attested(setup, setup.task_id)
    sealed = seal_input(claims, setup.task_id, "bank-a", b"[1]")
    altered = bytearray(sealed.ciphertext)
    altered[-1] ^= 1
    _refused_malformed(enclave, dataclasses.replace(sealed, ciphertext=bytes(altered)))


def test_info_binds_task_report_and_owner() -> None:
    task, report = os.urandom(32), os.urandom(32)
    base = input_info(task, report, "bank-a")
    assert len(base) == 32
    assert input_info(os.urandom(32), report, "bank-a") != base
    assert input_info(task, os.urandom(32), "bank-a") != base
    assert input_info(task, report, "bank-b") != base
    with pytest.raises(ValueError, match="task_id"):
        input_info(b"short", report, "bank-a")


def test_destroyed_enclave_accepts_nothing(setup: Setup) -> None:
    enclave, claims = _attested(setup, setup.task_id)
    enclave.destroy()
    with pytest.raises(RuntimeError, match="destroyed"):
        enclave.provision(seal_input(claims, setup.task_id, "bank-a", b"[1]"))
    with pytest.raises(RuntimeError, match="destroyed"):
        enclave.attest(os.urandom(32))
