"""`failure_reporter_authorised`: who recorded a TaskFailed was allowed to, at that block.

The histories are synthetic event lists, in chain order, shaped as `ledger.events`
decodes them; each test changes one fact about the reporter or the lapse.
"""

from __future__ import annotations

from typing import Any

import pytest

from auditor.verifier import TaskHistory, check_failure_reporter, verify_task
from ledger.clients.tasks import Reason
from ledger.events import Event

TASK = b"\x0a" * 32
BANK_A, BANK_B, OUTSIDER = b"\xa1" * 32, b"\xb1" * 32, b"\xc1" * 32
NODE_A, NODE_B = "0x" + "aa" * 20, "0x" + "bb" * 20
NODE_C = "0x" + "cc" * 20  # a node of the outsider org: active, but not a participant
ADMIN_A, ADMIN_B = "0x" + "a0" * 20, "0x" + "b0" * 20
ALGORITHM, GRANT = b"\xd1" * 32, b"\xe1" * 32
NAME = "failure_reporter_authorised"


class History:
    """Builds events one per block, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, contract: str, event: str, /, **args: Any) -> History:
        n = len(self.events) + 1
        self.events.append(
            Event(contract, event, args, "0x" + "00" * 20, n, bytes(32), n.to_bytes(32, "big"), 0)
        )
        return self

    def task(self, contract: str, event: str, /, **args: Any) -> History:
        return self.add(contract, event, taskId=TASK, **args)

    def failed(self, reporter: str, code: int) -> TaskHistory:
        self.task("TaskRegistry", "TaskFailed", reporter=reporter, reasonCode=code)
        return TaskHistory(TASK, self.events, {e.block_number: 0 for e in self.events})


def _running() -> History:
    """bank-a creates a task with its own node and bank-b's (under a grant); both accepted."""
    h = History()
    for org, admin, node in ((BANK_A, ADMIN_A, NODE_A), (BANK_B, ADMIN_B, NODE_B),
                             (OUTSIDER, "0x" + "c0" * 20, NODE_C)):  # fmt: skip
        h.add("Consortium", "OrgProposed", orgId=org, name="x", roles=3, admin=admin)
        h.add("Consortium", "OrgAdmitted", orgId=org)
        h.add("Consortium", "NodeRegistered", node=node, orgId=org, endpoint="e", certDigest=b"")
    h.add("AlgorithmRegistry", "AlgorithmApproved", digest=ALGORITHM)
    h.add("AuthorizationRegistry", "GrantCreated", grantId=GRANT, datasetId=b"\x01" * 32,
          granteeOrg=BANK_A, algorithmDigest=bytes(32), notAfter=10**10)  # fmt: skip
    participants = [
        {"node": NODE_A, "datasetId": bytes(32), "datasetVersion": 0, "grantId": bytes(32)},
        {"node": NODE_B, "datasetId": b"\x01" * 32, "datasetVersion": 1, "grantId": GRANT},
    ]
    h.task("TaskRegistry", "TaskCreated", creatorOrg=BANK_A, algorithmDigest=ALGORITHM,
           paramsDigest=b"\x02" * 32, deadline=10**10, participants=participants)  # fmt: skip
    h.task("TaskRegistry", "TaskAccepted", node=NODE_A, grantId=bytes(32))
    h.task("TaskRegistry", "TaskAccepted", node=NODE_B, grantId=GRANT)
    h.task("TaskRegistry", "TaskStarted")
    return h


def test_a_task_that_did_not_fail_passes() -> None:
    h = _running()
    h.task("TaskRegistry", "TaskCompleted", resultDigest=b"\x03" * 32)
    check = check_failure_reporter(TaskHistory(TASK, h.events, {}))
    assert check.passed and check.name == NAME


@pytest.mark.parametrize("reporter", [NODE_A, NODE_B, ADMIN_A])
def test_node_reported_by_an_active_participant_or_the_creator(reporter: str) -> None:
    check = check_failure_reporter(_running().failed(reporter, Reason.PEER_TIMEOUT))
    assert check.passed, check.detail
    assert check.evidence["reporter"] == reporter


def test_node_reported_by_a_non_participant_fails() -> None:
    for outsider in (NODE_C, ADMIN_B, "0x" + "99" * 20):
        check = check_failure_reporter(_running().failed(outsider, Reason.PROTOCOL_ERROR))
        assert not check.passed
        assert check.detail.startswith(f"{outsider} reported code 103 at block ")


def test_node_reported_by_a_revoked_or_suspended_participant_fails() -> None:
    revoked = _running().add("Consortium", "NodeRevoked", node=NODE_B, orgId=BANK_B)
    assert not check_failure_reporter(revoked.failed(NODE_B, Reason.PEER_TIMEOUT)).passed
    suspended = _running().add("Consortium", "OrgSuspended", orgId=BANK_B)
    check = check_failure_reporter(suspended.failed(NODE_B, Reason.PEER_TIMEOUT))
    assert not check.passed and "not an active participant node" in check.detail
    # Once reinstated it may report again.
    suspended.events.pop()
    suspended.add("Consortium", "OrgReinstated", orgId=BANK_B)
    assert check_failure_reporter(suspended.failed(NODE_B, Reason.PEER_TIMEOUT)).passed


def test_the_creator_admin_cannot_report_while_its_org_is_suspended() -> None:
    h = _running().add("Consortium", "OrgSuspended", orgId=BANK_A)
    assert not check_failure_reporter(h.failed(ADMIN_A, Reason.PEER_TIMEOUT)).passed


def test_contract_detected_inactivity_may_name_the_inactive_participant() -> None:
    """The suspended node's own step trips the lapse: it is the recorded reporter."""
    h = _running().add("Consortium", "OrgSuspended", orgId=BANK_B)
    check = check_failure_reporter(h.failed(NODE_B, Reason.PARTICIPANT_INACTIVE))
    assert check.passed, check.detail
    assert check.evidence["role"] == "the participant whose step the contract failed"
    assert check.evidence["lapse"] == f"participant {NODE_B} was not active"


def test_contract_detected_codes_need_their_lapse() -> None:
    for code in (Reason.GRANT_REVOKED, Reason.PARTICIPANT_INACTIVE, Reason.ALGORITHM_DEPRECATED):
        check = check_failure_reporter(_running().failed(NODE_A, code))
        assert not check.passed, code
        assert check.detail.startswith(f"contract-detected code {int(code)} at block ")
    assert not check_failure_reporter(_running().failed(NODE_A, 7)).passed  # no such lapse
    lapses = {
        Reason.GRANT_REVOKED: ("AuthorizationRegistry", "GrantRevoked", {"grantId": GRANT}),
        Reason.PARTICIPANT_INACTIVE: ("Consortium", "OrgSuspended", {"orgId": BANK_A}),
        Reason.ALGORITHM_DEPRECATED: ("AlgorithmRegistry", "AlgorithmDeprecated",
                                      {"digest": ALGORITHM}),
    }  # fmt: skip
    for code, (contract, name, args) in lapses.items():
        h = _running().add(contract, name, **args)
        check = check_failure_reporter(h.failed(NODE_A, code))
        assert check.passed, (code, check.detail)


def test_contract_detected_code_by_an_outsider_fails() -> None:
    h = _running().add("AuthorizationRegistry", "GrantRevoked", grantId=GRANT)
    assert not check_failure_reporter(h.failed(NODE_C, Reason.GRANT_REVOKED)).passed


def test_the_check_is_part_of_every_verification() -> None:
    h = _running().add("Consortium", "NodeRevoked", node=NODE_B, orgId=BANK_B)
    checks = {c.name: c for c in verify_task(h.failed(NODE_B, Reason.PEER_TIMEOUT), {})}
    assert not checks[NAME].passed
