"""``tee-join`` run by the task runner: two data owners, an enclave host, a hostile host.

Real chain (eth-tester), real stores, real HPKE and signatures; only the transport is
in-memory (``tests/node/runner_harness.py``) and the enclave is the ``simulated``
backend. bank-a creates the task and hosts the enclave; bank-b holds balances, the
regulator's organisation holds call counts, both keyed by account. Checked: a correct
job completes with the plaintext join's figures, the destruction receipt's digest is
anchored, the auditor's checks pass; a host whose enclave is not trusted, revoked, runs
another algorithm, replays a report or tampers with the result's signature is refused
by *every* owner, each refusal on chain with its reason, and the task fails.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auditor.replay import task_history
from auditor.verifier import verify_task
from auditor.verify.checkpoints import ResultDisclosure
from ledger.clients.tasks import Reason, TaskState
from ledger.ids import hex32
from ledger.task_params import ParamsEnvelope
from node.algorithms import tee
from node.tee import provision, wire
from node.tee.provision import SealedInput, SignedResult
from node.tee.report import AttestationReport
from node.tee.settings import TeeTrust
from node.tee.simulated import SIMULATED, SimulatedBackend, SimulatedEnclave
from node.tee.verify import TrustPolicy
from tests.conftest import Consortium
from tests.node.tee import sum_job
from tests.node.tee.jobs import (
    PARAMS,
    PLATFORM,
    assert_refused_by_every_owner,
    refusals,
    run,
    tee_network,
    trust_measurement,
)

# ------------------------------------------------------------------- a correct job


def test_a_trusted_enclave_job_completes_with_the_plaintext_figures(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, expected = tee_network(consortium, tmp_path)
    trust_measurement(consortium, tee)
    task_id, state = run(net, "tee-1")
    assert state == TaskState.COMPLETED
    answer = net.creator.task_result(hex32(task_id))
    result = answer["result"]
    assert result["output"] == expected
    assert expected["matched"] >= 10  # the policy's minimum group at level 2
    assert result["backend"] == SIMULATED
    bundle = result["attestation"]
    assert bundle["backend"] == SIMULATED
    assert sorted(bundle["reports"]) == sorted(p["node"].lower() for p in net.providers)
    for report in bundle["reports"].values():
        assert report["claims"]["type"] == "provnet/tee-report/v1+simulated"
    # The destruction receipt's digest is what the host anchored.
    history = task_history(consortium.chain, consortium.deployment, task_id)
    anchored = [e for e in history.task_events if e.name == "CheckpointAnchored"]
    receipt = wire.receipt_from_json(bundle["receipt"])
    assert [(int(e.args["round"]), bytes(e.args["checkpointDigest"])) for e in anchored] == [
        (tee.RECEIPT_CHECKPOINT, receipt.statement_digest)
    ]
    assert receipt.keys_erased and len(receipt.erased_input_digests) == 2
    assert refusals(consortium, task_id) == {}
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    params = ParamsEnvelope.from_json(answer["params"])
    checks = verify_task(history, transcripts, params, result=ResultDisclosure.from_json(answer))
    assert [c for c in checks if c.failed] == []
    assert {c.name: c.status for c in checks}["tee_attestation"] == "pass"


def test_results_not_stored_the_host_keeps_only_ciphertext(
    consortium: Consortium, tmp_path: Path
) -> None:
    """With ``result_key`` the enclave seals the output to the grantee's key: the host
    node stores and relays ciphertext, the grantee opens it offline, the audit passes."""
    net, expected = tee_network(consortium, tmp_path)
    trust_measurement(consortium, tee)
    grantee = X25519PrivateKey.generate()
    public = grantee.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    params = {**PARAMS, "result_key": public.hex()}
    task_id, state = run(net, "tee-sealed", params)
    assert state == TaskState.COMPLETED
    answer = net.creator.task_result(hex32(task_id))
    output = answer["result"]["output"]
    assert set(output) == {"sealed", "suite", "recipientKey"}
    stored = net.nodes["bank-a"].state.get(task_id)
    assert stored is not None and stored.result_json is not None
    held = json.loads(stored.result_json)["result"]
    assert held["output"] == output and "matched" not in json.dumps(held), held
    parsed = tee.Params.from_json(params)
    assert tee.open_result(grantee, parsed, output) == expected
    with pytest.raises(ValueError, match="does not open"):
        tee.open_result(X25519PrivateKey.generate(), parsed, output)
    history = task_history(consortium.chain, consortium.deployment, task_id)
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    disclosed = ResultDisclosure.from_json(answer)
    envelope = ParamsEnvelope.from_json(answer["params"])
    failed = [c for c in verify_task(history, transcripts, envelope, result=disclosed) if c.failed]
    assert failed == [], failed


def test_an_owner_without_a_trust_policy_refuses_to_take_part(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path)
    trust_measurement(consortium, tee)
    net.nodes["regulator"].runner.tee_trust = None
    task_id, state = run(net, "tee-no-policy")
    assert state == TaskState.FAILED
    assert net.failure(task_id)[0] == Reason.ATTESTATION_REFUSED


# ------------------------------------------------------------------- hostile hosts


def test_an_untrusted_measurement_is_refused_by_every_owner(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path)  # nobody voted for the enclave
    task_id, _ = run(net, "tee-unknown")
    assert_refused_by_every_owner(net, task_id, "UNKNOWN_MEASUREMENT")


def test_a_revoked_measurement_is_refused_by_every_owner(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path)
    measurement = trust_measurement(consortium, tee)
    orgs = consortium.orgs
    proposal = orgs["bank-b"].clients.consortium.propose_measurement_revocation(measurement)
    orgs["regulator"].clients.consortium.vote(proposal)
    task_id, _ = run(net, "tee-revoked")
    assert_refused_by_every_owner(net, task_id, "REVOKED_MEASUREMENT")


class OtherJobBackend(SimulatedBackend):
    """A host that launches another (itself trusted) job than the task approved."""

    def launch(self, task_id: bytes, module: ModuleType) -> SimulatedEnclave:
        return super().launch(task_id, sum_job)


def test_an_enclave_running_another_algorithm_is_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path, OtherJobBackend(PLATFORM))
    trust_measurement(consortium, tee)
    trust_measurement(consortium, sum_job)  # trusted code, but not the approved job
    task_id, _ = run(net, "tee-other-job")
    assert_refused_by_every_owner(net, task_id, "DIGEST_MISMATCH")


class ReplayingEnclave(SimulatedEnclave):
    """Answers every challenge with the report it made for the first one."""

    first: AttestationReport | None = None

    def attest(self, nonce: bytes) -> AttestationReport:
        if self.first is None:
            self.first = super().attest(bytes(32))
        return self.first


class ReplayingBackend(SimulatedBackend):
    def launch(self, task_id: bytes, module: ModuleType) -> SimulatedEnclave:
        enclave = super().launch(task_id, module)
        enclave.__class__ = ReplayingEnclave
        return enclave


def test_a_replayed_report_is_refused_as_a_stale_nonce(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path, ReplayingBackend(PLATFORM))
    trust_measurement(consortium, tee)
    task_id, _ = run(net, "tee-replay")
    assert_refused_by_every_owner(net, task_id, "STALE_NONCE")


class ForgingEnclave(SimulatedEnclave):
    """Signs the result, then changes the output it reports: a tampered signature."""

    def run(self) -> SignedResult:
        signed = super().run()
        flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
        return dataclasses.replace(signed, signature=flipped)


class ForgingBackend(SimulatedBackend):
    def launch(self, task_id: bytes, module: ModuleType) -> SimulatedEnclave:
        enclave = super().launch(task_id, module)
        enclave.__class__ = ForgingEnclave
        return enclave


def test_a_tampered_result_signature_is_refused_by_every_owner(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path, ForgingBackend(PLATFORM))
    trust_measurement(consortium, tee)
    task_id, _ = run(net, "tee-forged")
    assert_refused_by_every_owner(net, task_id, "BAD_SIGNATURE")


def test_an_unknown_platform_key_is_refused(consortium: Consortium, tmp_path: Path) -> None:
    """A host signing reports with a platform key the owners never configured."""
    net, _ = tee_network(consortium, tmp_path, SimulatedBackend(Ed25519PrivateKey.generate()))
    trust_measurement(consortium, tee)
    task_id, _ = run(net, "tee-platform")
    assert_refused_by_every_owner(net, task_id, "BAD_SIGNATURE")


def test_a_backend_the_policy_does_not_allow_is_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    net, _ = tee_network(consortium, tmp_path)
    trust_measurement(consortium, tee)
    strict = TeeTrust(TrustPolicy(frozenset({"sgx-dcap"})), {})
    for name in ("bank-b", "regulator"):
        net.nodes[name].runner.tee_trust = strict
    task_id, _ = run(net, "tee-policy")
    assert_refused_by_every_owner(net, task_id, "BACKEND_NOT_ALLOWED")


# ------------------------------------------------------------------- the enclave's job


def test_the_enclave_refuses_owners_that_sealed_different_parameters() -> None:
    def one(params: Mapping[str, Any], column: str) -> bytes:
        table = pa.table({"account": ["a", "b"], column: [1, 2]})
        return tee.encode_input(tee.InputHeader(tee.Params.from_json(params), 1), table)

    inputs = {"x": one(PARAMS, "balance"), "y": one({**PARAMS, "sum": ["calls"]}, "calls")}
    with pytest.raises(ValueError, match="different parameters"):
        tee.compute(inputs)


def test_sealed_inputs_are_bound_to_the_enclave_that_attested() -> None:
    """A ciphertext sealed for one enclave does not open in a relaunched one."""
    backend = SimulatedBackend(PLATFORM)
    task_id = bytes(range(32))
    first, second = backend.launch(task_id, tee), backend.launch(task_id, tee)
    claims = first.attest(bytes(32)).claims
    sealed = provision.seal_input(claims, task_id, "owner", b"rows")
    second.attest(bytes(32))
    with pytest.raises(Exception, match="which this enclave did not issue"):
        second.provision(SealedInput(task_id, sealed.report_digest, "owner", sealed.ciphertext))
