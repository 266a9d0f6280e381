"""TaskRegistry.recordAttestationRefusal: a data owner's node records why it refused an
enclave's report; only an active participant node of a live task may, and the task's
state does not change."""

from __future__ import annotations

import pytest

from ledger.clients.tasks import (
    ATTESTATION_REFUSAL_CODES,
    Reason,
    TaskState,
    attestation_refusal_code,
    attestation_refusal_name,
)
from ledger.errors import custom_error
from ledger.ids import InvalidInput, name_id
from tests.conftest import Consortium
from tests.contracts.helpers import (  # _fast_senders: autouse fixture
    ZERO32,
    _fast_senders,  # noqa: F401
    add_node,
    build_task,
    revert_args,
    suspend,
)

REPORT = name_id("report", "enclave-report")


def test_participant_records_a_refusal_with_every_field(consortium: Consortium) -> None:
    setup = build_task(consortium)
    b = setup.seat("bank-b")
    receipt = b.clients.tasks.record_attestation_refusal(
        setup.task_id, REPORT, "REVOKED_MEASUREMENT"
    )
    assert b.clients.tasks.events_in(receipt, "AttestationRefused") == [
        {"taskId": setup.task_id, "node": b.address, "reportDigest": REPORT, "reason": 2}
    ]
    assert b.clients.tasks.state(setup.task_id) == TaskState.CREATED  # only recorded
    setup.accept_all()
    receipt = b.clients.tasks.record_attestation_refusal(setup.task_id, REPORT, "STALE_NONCE")
    assert b.clients.tasks.events_in(receipt, "AttestationRefused")[0]["reason"] == 3
    assert b.clients.tasks.state(setup.task_id) == TaskState.RUNNING


def test_non_participants_cannot_record(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    outsider = c.orgs["regulator"].node_clients.tasks  # active node of a member, not seated
    with pytest.raises(custom_error("NotParticipant")) as exc:
        outsider.record_attestation_refusal(setup.task_id, REPORT, "UNKNOWN_MEASUREMENT")
    assert revert_args(exc) == {
        "taskId": setup.task_id,
        "account": c.orgs["regulator"].node.address,
    }
    extra = add_node(c, "bank-b")  # another node of a participant organisation
    with pytest.raises(custom_error("NotParticipant")):
        extra.clients.tasks.record_attestation_refusal(setup.task_id, REPORT, "MALFORMED")
    admin = c.orgs["bank-b"].clients.tasks  # the participant organisation's admin
    with pytest.raises(custom_error("NotParticipant")):
        admin.record_attestation_refusal(setup.task_id, REPORT, "MALFORMED")
    stranger = c.clients_for(c.new_funded_account()).tasks  # not a member at all
    with pytest.raises(custom_error("NotParticipant")):
        stranger.record_attestation_refusal(setup.task_id, REPORT, "MALFORMED")
    with pytest.raises(custom_error("UnknownTask")):
        setup.seat("bank-b").clients.tasks.record_attestation_refusal(
            name_id("task", "nope"), REPORT, "MALFORMED"
        )


def test_revoked_participant_node_cannot_record(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    c.orgs["bank-b"].clients.consortium.revoke_node(c.orgs["bank-b"].node.address)
    with pytest.raises(custom_error("NodeNotActive")) as exc:
        setup.seat("bank-b").clients.tasks.record_attestation_refusal(
            setup.task_id, REPORT, "DIGEST_MISMATCH"
        )
    assert revert_args(exc) == {"node": c.orgs["bank-b"].node.address}


def test_node_of_suspended_org_cannot_record(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    suspend(c, "bank-b")
    with pytest.raises(custom_error("NodeNotActive")):
        setup.seat("bank-b").clients.tasks.record_attestation_refusal(
            setup.task_id, REPORT, "BACKEND_NOT_ALLOWED"
        )


def test_finished_task_and_bad_input_are_refused(consortium: Consortium) -> None:
    setup = build_task(consortium)
    b = setup.seat("bank-b").clients.tasks
    with pytest.raises(custom_error("InvalidDigest")):
        b.record_attestation_refusal(setup.task_id, ZERO32, "MALFORMED")
    with pytest.raises(custom_error("InvalidRefusalReason")):
        b._transact("recordAttestationRefusal", setup.task_id, REPORT, 0)
    with pytest.raises(InvalidInput):
        b.record_attestation_refusal(setup.task_id, REPORT, "NOT_A_REASON")
    b.refuse(setup.task_id, Reason.PROTOCOL_ERROR)
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        b.record_attestation_refusal(setup.task_id, REPORT, "MALFORMED")
    assert revert_args(exc)["actual"] == TaskState.FAILED


def test_reason_codes_round_trip() -> None:
    assert sorted(ATTESTATION_REFUSAL_CODES.values()) == list(range(1, 10))
    for name, code in ATTESTATION_REFUSAL_CODES.items():
        assert attestation_refusal_code(name) == code
        assert attestation_refusal_name(code) == name
    assert attestation_refusal_name(200) == "UNKNOWN_REASON_200"
