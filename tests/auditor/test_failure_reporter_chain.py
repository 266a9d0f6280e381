"""`failure_reporter_authorised` on failures recorded by the real contracts (eth-tester)."""

from __future__ import annotations

from auditor.replay import task_history
from auditor.verifier import check_failure_reporter
from ledger.clients.tasks import Reason
from tests.conftest import Consortium
from tests.contracts.helpers import build_task, suspend


def test_a_participant_report_is_authorised(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    b = setup.seat("bank-b")
    b.clients.tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    check = check_failure_reporter(
        task_history(consortium.chain, consortium.deployment, setup.task_id)
    )
    assert check.passed, check.detail
    assert check.evidence["reporter"].lower() == b.address.lower()
    assert check.evidence["role"] == "an active participant node of an active org"


def test_the_creator_admin_report_is_authorised(consortium: Consortium) -> None:
    setup = build_task(consortium, ("bank-b",))
    consortium.orgs["bank-a"].clients.tasks.report_failure(setup.task_id, Reason.PROTOCOL_ERROR)
    check = check_failure_reporter(
        task_history(consortium.chain, consortium.deployment, setup.task_id)
    )
    assert check.passed, check.detail
    assert check.evidence["role"].startswith("the active creator organisation's admin")


def test_a_contract_detected_lapse_is_authorised(consortium: Consortium) -> None:
    """bank-b is suspended mid-task; bank-a's next step makes the contract fail the task."""
    setup = build_task(consortium)
    setup.run()
    suspend(consortium, "bank-b")
    a = setup.seat("bank-a")
    a.clients.tasks.submit_result(setup.task_id, b"\x05" * 32, b"\x06" * 32)
    history = task_history(consortium.chain, consortium.deployment, setup.task_id)
    failed = [e for e in history.task_events if e.name == "TaskFailed"]
    assert [int(e.args["reasonCode"]) for e in failed] == [Reason.PARTICIPANT_INACTIVE]
    check = check_failure_reporter(history)
    assert check.passed, check.detail
    assert check.evidence["lapse"] == f"participant {setup.seat('bank-b').address} was not active"
