"""TaskRegistry: every lifecycle step's effects and every revert, lapses and terminal states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from ledger.artifacts import load_artifact
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, Reason, TaskRegistryClient, TaskState
from ledger.errors import custom_error
from ledger.ids import name_id, task_id_for
from ledger.transactions import Sender, raise_decoded
from tests.conftest import Consortium
from tests.contracts.helpers import (  # _fast_senders: autouse fixture
    ALGO,
    ALGO_2,
    EVIDENCE,
    HOUR,
    PARAMS,
    RESULT_1,
    RESULT_2,
    ZERO32,
    TaskSetup,
    _fast_senders,  # noqa: F401
    add_node,
    approve_algorithm,
    build_task,
    dataset_root,
    deprecate_algorithm,
    make_grant,
    now,
    propose_algorithm,
    revert_args,
    suspend,
    travel_to,
)

CHECKPOINT = name_id("checkpoint", "round")


def as_tuple(p: Participant) -> tuple[str, bytes, int, bytes]:
    return (p.node, p.dataset_id, p.dataset_version, p.grant_id)


def failed_events(setup: TaskSetup, receipt: TxReceipt) -> list[dict[str, Any]]:
    return setup.creator.clients.tasks.events_in(receipt, "TaskFailed")


# ------------------------------------------------------------------------- createTask


@pytest.mark.parametrize("by", ["admin", "node"])
def test_create_task_records_everything(consortium: Consortium, by: str) -> None:
    c = consortium
    setup = build_task(c, ("bank-a", "bank-b", "regulator"), create=False)
    bank_a = c.orgs["bank-a"]
    if by == "node":
        setup.creator = bank_a  # same org; create through its node below
        receipt = bank_a.node_clients.tasks.create(
            setup.request_id, ALGO, PARAMS, setup.deadline, setup.participants
        )
    else:
        receipt = setup.create()
    tasks = bank_a.clients.tasks
    (event,) = tasks.events_in(receipt, "TaskCreated")
    assert event["taskId"] == setup.task_id
    assert event["creatorOrg"] == bank_a.org_id
    assert event["algorithmDigest"] == ALGO
    assert event["paramsDigest"] == PARAMS
    assert event["deadline"] == setup.deadline
    assert [
        (p["node"], p["datasetId"], p["datasetVersion"], p["grantId"])
        for p in event["participants"]
    ] == [as_tuple(p) for p in setup.participants]
    info = tasks.info(setup.task_id)
    assert (info.creator_org, info.algorithm_digest, info.params_digest, info.deadline) == (
        bank_a.org_id,
        ALGO,
        PARAMS,
        setup.deadline,
    )
    assert (info.state, info.participant_count, info.accepted_count, info.result_count) == (
        TaskState.CREATED,
        3,
        0,
        0,
    )
    assert tasks.state(setup.task_id) == TaskState.CREATED
    assert tasks.participants(setup.task_id) == setup.participants
    assert setup.participants[1].grant_id == setup.grants["bank-b"]
    for seat in setup.seats:
        status = tasks.participant_status(setup.task_id, seat.address)
        assert (status.accepted, status.input_anchored, status.result_submitted) == (
            False,
            False,
            False,
        )
        assert status.result_digest == ZERO32


def test_unknown_task_views(consortium: Consortium) -> None:
    tasks = consortium.orgs["bank-a"].clients.tasks
    unknown = name_id("task", "nope")
    assert tasks.state(unknown) == TaskState.NONE
    for view in (tasks.info, tasks.participants):
        with pytest.raises(custom_error("UnknownTask")) as exc:
            view(unknown)
        assert revert_args(exc) == {"taskId": unknown}


def test_participant_status_of_non_participant_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium, ("bank-a",))
    stranger = consortium.orgs["regulator"].node.address
    with pytest.raises(custom_error("NotParticipant")) as exc:
        setup.creator.clients.tasks.participant_status(setup.task_id, stranger)
    assert revert_args(exc) == {"taskId": setup.task_id, "account": stranger}


def test_participant_without_dataset_and_zero_params(consortium: Consortium) -> None:
    c = consortium
    approve_algorithm(c)
    request_id = name_id("task", "aggregator")
    task_id = task_id_for(c.orgs["bank-a"].org_id, request_id)
    aggregator = Participant(c.orgs["regulator"].node.address)  # no dataset, no grant
    c.orgs["bank-a"].clients.tasks.create(request_id, ALGO, ZERO32, now(c) + HOUR, [aggregator])
    tasks = c.orgs["bank-a"].clients.tasks
    assert tasks.participants(task_id) == [aggregator]
    assert tasks.info(task_id).params_digest == ZERO32


def test_create_task_with_max_participants(consortium: Consortium) -> None:
    c = consortium
    approve_algorithm(c)
    tasks = c.orgs["bank-a"].clients.tasks
    assert tasks.max_participants() == 16
    nodes = [str(o.node.address) for o in c.orgs.values()]
    nodes += [add_node(c, "bank-b").address for _ in range(16 - len(nodes))]
    task_id = task_id_for(c.orgs["bank-a"].org_id, name_id("task", "big"))
    participants = [Participant(n) for n in nodes]
    tasks.create(name_id("task", "big"), ALGO, PARAMS, now(c) + HOUR, participants)
    assert tasks.info(task_id).participant_count == 16
    with pytest.raises(custom_error("InvalidParticipantCount")) as exc:
        tasks.create(
            name_id("task", "too-big"),
            ALGO,
            PARAMS,
            now(c) + HOUR,
            [*participants, Participant(c.new_funded_account().address)],
        )
    assert revert_args(exc) == {"count": 17}


def test_create_task_with_no_participants_reverts(consortium: Consortium) -> None:
    c = consortium
    approve_algorithm(c)
    with pytest.raises(custom_error("InvalidParticipantCount")) as exc:
        c.orgs["bank-a"].clients.tasks.create(name_id("task", "x"), ALGO, PARAMS, now(c) + HOUR, [])
    assert revert_args(exc) == {"count": 0}


def test_create_task_by_non_member_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    outsider = c.new_funded_account()
    with pytest.raises(custom_error("NotActiveMember")) as exc:
        c.clients_for(outsider).tasks.create(
            setup.request_id, ALGO, PARAMS, setup.deadline, setup.participants
        )
    assert revert_args(exc) == {"account": outsider.address}


def test_create_task_by_suspended_org_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-b",), create=False)
    suspend(c, "bank-a")
    with pytest.raises(custom_error("NotActiveMember")):
        setup.create()


@pytest.mark.parametrize("by", ["admin", "node"])
def test_create_task_without_consumer_role_reverts(consortium: Consortium, by: str) -> None:
    c = consortium
    setup = build_task(c, ("regulator",), create=False)
    regulator = c.orgs["regulator"]
    clients = regulator.clients if by == "admin" else regulator.node_clients
    with pytest.raises(custom_error("MissingRole")) as exc:
        clients.tasks.create(setup.request_id, ALGO, PARAMS, setup.deadline, setup.participants)
    assert revert_args(exc) == {"orgId": regulator.org_id, "role": 2}


def test_create_task_with_zero_id_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium, create=False)
    setup.request_id = ZERO32
    with pytest.raises(custom_error("InvalidRequestId")):
        setup.create()


def test_create_task_with_duplicate_id_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    with pytest.raises(custom_error("TaskAlreadyExists")) as exc:
        c.orgs["bank-a"].node_clients.tasks.create(
            setup.request_id, ALGO, PARAMS, setup.deadline + 5, setup.participants[:1]
        )
    assert revert_args(exc) == {"taskId": setup.task_id}
    assert c.orgs["bank-a"].clients.tasks.info(setup.task_id).participant_count == 2


@pytest.mark.parametrize("status", ["unknown", "proposed", "deprecated"])
def test_create_task_with_unapproved_algorithm_reverts(consortium: Consortium, status: str) -> None:
    c = consortium
    setup = build_task(c, create=False)
    setup.algorithm = ALGO_2
    if status == "proposed":
        propose_algorithm(c, ALGO_2)
    elif status == "deprecated":
        approve_algorithm(c, ALGO_2, "v2")
        deprecate_algorithm(c, ALGO_2)
    with pytest.raises(custom_error("AlgorithmNotApproved")) as exc:
        setup.create()
    assert revert_args(exc) == {"digest": ALGO_2}


@pytest.mark.parametrize("offset", [-HOUR, 0, 1])
def test_create_task_deadline_must_be_in_the_future(consortium: Consortium, offset: int) -> None:
    c = consortium
    setup = build_task(c, create=False)
    setup.deadline = now(c) + 1 + offset  # the creating block is mined at now + 1
    if offset > 0:
        setup.create()
        assert setup.creator.clients.tasks.info(setup.task_id).deadline == setup.deadline
        return
    with pytest.raises(custom_error("InvalidDeadline")) as exc:
        setup.create()
    assert revert_args(exc) == {"deadline": setup.deadline}


def test_create_task_with_duplicate_participant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    node = c.orgs["bank-a"].node.address
    setup.seats.append(setup.seats[0])  # the same node again
    with pytest.raises(custom_error("DuplicateParticipant")) as exc:
        setup.create()
    assert revert_args(exc) == {"node": node}
    # also when the duplicate names nothing
    with pytest.raises(custom_error("DuplicateParticipant")):
        setup.creator.clients.tasks.create(
            setup.request_id, ALGO, PARAMS, setup.deadline, [Participant(node), Participant(node)]
        )


def _inactive_node(c: Consortium, kind: str) -> str:
    if kind == "unregistered":
        return str(c.new_funded_account().address)
    if kind == "admin-account":
        return str(c.orgs["bank-b"].admin.address)
    if kind == "revoked":
        node = add_node(c, "bank-b")
        c.orgs["bank-b"].clients.consortium.revoke_node(node.address)
        return node.address
    suspend(c, "bank-b")  # "suspended-org"
    return str(c.orgs["bank-b"].node.address)


@pytest.mark.parametrize("kind", ["unregistered", "admin-account", "revoked", "suspended-org"])
def test_create_task_with_inactive_node_reverts(consortium: Consortium, kind: str) -> None:
    c = consortium
    approve_algorithm(c)
    node = _inactive_node(c, kind)
    with pytest.raises(custom_error("NodeNotActive")) as exc:
        c.orgs["bank-a"].clients.tasks.create(
            name_id("task", "x"),
            ALGO,
            PARAMS,
            now(c) + HOUR,
            [Participant(c.orgs["bank-a"].node.address), Participant(node)],
        )
    assert revert_args(exc) == {"node": node}


def test_create_task_with_dataset_of_another_orgs_node_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    a_node = c.orgs["bank-a"].node.address
    ds_b, grant = setup.datasets["bank-b"], setup.grants["bank-b"]
    setup.seats[0].participant = Participant(a_node, ds_b.dataset_id, 1, grant)
    with pytest.raises(custom_error("WrongDatasetOwner")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": ds_b.dataset_id, "node": a_node}


@pytest.mark.parametrize("version", [0, 2])
def test_create_task_with_unknown_dataset_version_reverts(
    consortium: Consortium, version: int
) -> None:
    c = consortium
    setup = build_task(c, create=False)
    ds = setup.datasets["bank-b"]
    seat = setup.seat("bank-b")
    seat.participant = Participant(seat.address, ds.dataset_id, version, setup.grants["bank-b"])
    with pytest.raises(custom_error("UnknownDatasetVersion")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": ds.dataset_id, "version": version}


def test_create_task_with_version_but_no_dataset_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    seat = setup.seat("bank-b")
    seat.participant = Participant(seat.address, ZERO32, 1)
    with pytest.raises(custom_error("UnknownDatasetVersion")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": ZERO32, "version": 1}


def test_create_task_with_unknown_dataset_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    seat = setup.seat("bank-b")
    unknown = name_id("dataset", "nope")
    seat.participant = Participant(seat.address, unknown, 1, setup.grants["bank-b"])
    with pytest.raises(custom_error("UnknownDatasetVersion")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": unknown, "version": 1}


def test_create_task_with_retired_dataset_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    ds = setup.datasets["bank-b"]
    c.orgs["bank-b"].clients.datasets.retire(ds.dataset_id)
    with pytest.raises(custom_error("DatasetIsRetired")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": ds.dataset_id}


def test_create_task_without_needed_grant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    seat = setup.seat("bank-b")
    ds = setup.datasets["bank-b"]
    seat.participant = Participant(seat.address, ds.dataset_id, 1)
    with pytest.raises(custom_error("GrantRequired")) as exc:
        setup.create()
    assert revert_args(exc) == {"datasetId": ds.dataset_id}


def test_create_task_with_grant_but_no_dataset_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, create=False)
    seat = setup.seat("bank-b")
    seat.participant = Participant(seat.address, grant_id=setup.grants["bank-b"])
    with pytest.raises(custom_error("UnexpectedGrant")) as exc:
        setup.create()
    assert revert_args(exc) == {"node": seat.address}


# ------------------------------------------------------------------------- acceptTask


def test_accept_task_until_it_starts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    tasks = setup.creator.clients.tasks

    receipt = a.clients.tasks.accept(setup.task_id)
    assert tasks.events_in(receipt, "TaskAccepted") == [
        {"taskId": setup.task_id, "node": a.address, "grantId": ZERO32}
    ]
    assert tasks.events_in(receipt, "TaskStarted") == []
    assert tasks.state(setup.task_id) == TaskState.CREATED
    assert tasks.info(setup.task_id).accepted_count == 1
    assert tasks.participant_status(setup.task_id, a.address).accepted is True
    assert tasks.participant_status(setup.task_id, b.address).accepted is False

    receipt = b.clients.tasks.accept(setup.task_id)
    assert tasks.events_in(receipt, "TaskAccepted") == [
        {"taskId": setup.task_id, "node": b.address, "grantId": setup.grants["bank-b"]}
    ]
    assert tasks.events_in(receipt, "TaskStarted") == [{"taskId": setup.task_id}]
    info = tasks.info(setup.task_id)
    assert (info.state, info.accepted_count) == (TaskState.RUNNING, 2)


def test_accept_by_non_participant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    for account in (c.orgs["regulator"].node, c.orgs["bank-a"].admin):
        with pytest.raises(custom_error("NotParticipant")) as exc:
            c.clients_for(account).tasks.accept(setup.task_id)
        assert revert_args(exc) == {"taskId": setup.task_id, "account": account.address}


def test_accept_unknown_task_reverts(consortium: Consortium) -> None:
    unknown = name_id("task", "nope")
    with pytest.raises(custom_error("UnknownTask")) as exc:
        consortium.orgs["bank-a"].node_clients.tasks.accept(unknown)
    assert revert_args(exc) == {"taskId": unknown}


def test_accept_twice_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    a = setup.seat("bank-a")
    a.clients.tasks.accept(setup.task_id)
    with pytest.raises(custom_error("AlreadyAccepted")) as exc:
        a.clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {"taskId": setup.task_id, "node": a.address}
    assert a.clients.tasks.info(setup.task_id).accepted_count == 1


def test_accept_when_running_reverts_wrong_state(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        setup.seats[0].clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {
        "taskId": setup.task_id,
        "expected": TaskState.CREATED,
        "actual": TaskState.RUNNING,
    }
    assert consortium.orgs["bank-a"].clients.authorizations.info(setup.grants["bank-b"]).used == 1


def test_accept_at_deadline_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    travel_to(c, setup.deadline - 1)
    a.clients.tasks.accept(setup.task_id)  # mined one second before the deadline
    with pytest.raises(custom_error("DeadlinePassed")) as exc:
        b.clients.tasks.accept(setup.task_id)  # mined at the deadline
    assert revert_args(exc) == {"taskId": setup.task_id, "deadline": setup.deadline}
    assert a.clients.tasks.state(setup.task_id) == TaskState.CREATED


def test_accept_by_revoked_node_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-a",), create=False)
    extra = add_node(c, "bank-b")
    setup.seats[0].participant = Participant(setup.seats[0].address)
    setup.creator.clients.tasks.create(
        setup.request_id,
        ALGO,
        PARAMS,
        setup.deadline,
        [setup.seats[0].participant, Participant(extra.address)],
    )
    c.orgs["bank-b"].clients.consortium.revoke_node(extra.address)
    with pytest.raises(custom_error("NodeNotActive")) as exc:
        extra.clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {"node": extra.address}


def test_accept_after_algorithm_deprecated_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    deprecate_algorithm(c)
    with pytest.raises(custom_error("AlgorithmNotApproved")) as exc:
        setup.seats[0].clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {"digest": ALGO}


def test_accept_after_creator_suspended_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-b", "regulator"))
    suspend(c, "bank-a")
    with pytest.raises(custom_error("OrgNotActive")) as exc:
        setup.seat("bank-b").clients.tasks.accept(setup.task_id)
    assert revert_args(exc) == {"orgId": c.orgs["bank-a"].org_id}


# ------------------------------------------------------------------------- refuseTask


def test_refuse_fails_the_task_with_reason(consortium: Consortium) -> None:
    setup = build_task(consortium)
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    a.clients.tasks.accept(setup.task_id)
    receipt = b.clients.tasks.refuse(setup.task_id, Reason.DATASET_MISMATCH)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": b.address, "reasonCode": 101}
    ]
    assert b.clients.tasks.state(setup.task_id) == TaskState.FAILED
    # nothing was consumed: the refusing participant never accepted
    assert b.clients.authorizations.info(setup.grants["bank-b"]).used == 0


def test_refuse_by_non_participant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    with pytest.raises(custom_error("NotParticipant")) as exc:
        c.orgs["bank-a"].clients.tasks.refuse(setup.task_id, Reason.PEER_TIMEOUT)
    assert revert_args(exc) == {"taskId": setup.task_id, "account": c.orgs["bank-a"].admin.address}
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.CREATED


def test_refuse_when_running_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        setup.seats[1].clients.tasks.refuse(setup.task_id, Reason.PROTOCOL_ERROR)
    assert revert_args(exc)["actual"] == TaskState.RUNNING
    assert revert_args(exc)["expected"] == TaskState.CREATED


# ------------------------------------------------------------------------ anchorInput


def test_anchor_input_with_registered_root(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    b = setup.seat("bank-b")
    receipt = b.clients.tasks.anchor_input(setup.task_id, b.commitment)
    assert b.clients.tasks.events_in(receipt, "InputAnchored") == [
        {"taskId": setup.task_id, "node": b.address, "commitment": b.commitment}
    ]
    assert b.clients.tasks.participant_status(setup.task_id, b.address).input_anchored is True
    other = setup.seat("bank-a")
    assert b.clients.tasks.participant_status(setup.task_id, other.address).input_anchored is False


def test_anchor_input_mismatch_reports_expected_and_actual(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    setup.accept_all()
    b = setup.seat("bank-b")
    wrong = name_id("merkle-root", "something-else")
    with pytest.raises(custom_error("InputCommitmentMismatch")) as exc:
        b.clients.tasks.anchor_input(setup.task_id, wrong)
    assert revert_args(exc) == {
        "taskId": setup.task_id,
        "node": b.address,
        "expected": b.commitment,
        "actual": wrong,
    }
    assert b.clients.tasks.participant_status(setup.task_id, b.address).input_anchored is False


def test_anchor_input_binds_the_named_version(consortium: Consortium) -> None:
    """A participant that named version 1 must anchor version 1's root, not the latest."""
    c = consortium
    setup = build_task(c)
    b = setup.seat("bank-b")

    v2_root = dataset_root("bank-b-data", 2)
    c.orgs["bank-b"].clients.datasets.add_version(
        setup.datasets["bank-b"].dataset_id, DatasetVersion(v2_root, 5, PARAMS, 2)
    )
    setup.accept_all()
    with pytest.raises(custom_error("InputCommitmentMismatch")) as exc:
        b.clients.tasks.anchor_input(setup.task_id, v2_root)
    assert revert_args(exc)["expected"] == b.commitment
    b.clients.tasks.anchor_input(setup.task_id, b.commitment)


def test_anchor_input_without_dataset_needs_non_zero(consortium: Consortium) -> None:
    c = consortium
    approve_algorithm(c)
    task_id = task_id_for(c.orgs["bank-a"].org_id, name_id("task", "own"))
    node = c.orgs["regulator"].node_clients.tasks
    c.orgs["bank-a"].clients.tasks.create(
        name_id("task", "own"),
        ALGO,
        PARAMS,
        now(c) + HOUR,
        [Participant(c.orgs["regulator"].node.address)],
    )
    node.accept(task_id)
    with pytest.raises(custom_error("InvalidDigest")):
        node.anchor_input(task_id, ZERO32)
    own = name_id("commitment", "anything")
    receipt = node.anchor_input(task_id, own)
    assert node.events_in(receipt, "InputAnchored")[0]["commitment"] == own


def test_anchor_input_twice_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    a = setup.seat("bank-a")
    a.clients.tasks.anchor_input(setup.task_id, a.commitment)
    with pytest.raises(custom_error("InputAlreadyAnchored")) as exc:
        a.clients.tasks.anchor_input(setup.task_id, a.commitment)
    assert revert_args(exc) == {"taskId": setup.task_id, "node": a.address}


def test_anchor_input_before_running_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    a = setup.seat("bank-a")
    a.clients.tasks.accept(setup.task_id)
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        a.clients.tasks.anchor_input(setup.task_id, a.commitment)
    assert revert_args(exc) == {
        "taskId": setup.task_id,
        "expected": TaskState.RUNNING,
        "actual": TaskState.CREATED,
    }


def test_anchor_input_by_non_participant_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    setup.accept_all()
    other = c.orgs["regulator"].node
    with pytest.raises(custom_error("NotParticipant")) as exc:
        c.orgs["regulator"].node_clients.tasks.anchor_input(
            setup.task_id, setup.seats[0].commitment
        )
    assert revert_args(exc) == {"taskId": setup.task_id, "account": other.address}


def test_running_steps_at_deadline_revert(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    setup.accept_all()
    a = setup.seat("bank-a")
    a.clients.tasks.anchor_input(setup.task_id, a.commitment)
    travel_to(c, setup.deadline)
    b = setup.seat("bank-b")
    steps: list[Callable[[], object]] = [
        lambda: b.clients.tasks.anchor_input(setup.task_id, b.commitment),
        lambda: a.clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT),
        lambda: a.clients.tasks.submit_result(setup.task_id, RESULT_1, EVIDENCE),
    ]
    for step in steps:
        with pytest.raises(custom_error("DeadlinePassed")) as exc:
            step()
        assert revert_args(exc) == {"taskId": setup.task_id, "deadline": setup.deadline}
    assert a.clients.tasks.state(setup.task_id) == TaskState.RUNNING


# ------------------------------------------------------------------- anchorCheckpoint


def test_checkpoint_rounds_strictly_increase_per_participant(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    tasks = a.clients.tasks
    receipt = tasks.anchor_checkpoint(setup.task_id, 5, CHECKPOINT)  # any first round
    assert tasks.events_in(receipt, "CheckpointAnchored") == [
        {"taskId": setup.task_id, "node": a.address, "round": 5, "checkpointDigest": CHECKPOINT}
    ]
    for bad in (5, 4, 0):
        with pytest.raises(custom_error("CheckpointOutOfOrder")) as exc:
            tasks.anchor_checkpoint(setup.task_id, bad, CHECKPOINT)
        assert revert_args(exc) == {
            "taskId": setup.task_id,
            "node": a.address,
            "lastRound": 5,
            "round": bad,
        }
    tasks.anchor_checkpoint(setup.task_id, 6, CHECKPOINT)
    tasks.anchor_checkpoint(setup.task_id, 9, CHECKPOINT)  # gaps are fine
    # the other participant's rounds are its own
    b.clients.tasks.anchor_checkpoint(setup.task_id, 0, CHECKPOINT)
    with pytest.raises(custom_error("CheckpointOutOfOrder")) as exc:
        b.clients.tasks.anchor_checkpoint(setup.task_id, 0, CHECKPOINT)
    assert revert_args(exc)["lastRound"] == 0
    b.clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT)
    with pytest.raises(custom_error("CheckpointOutOfOrder")) as exc:
        tasks.anchor_checkpoint(setup.task_id, 9, CHECKPOINT)
    assert revert_args(exc)["lastRound"] == 9


def test_checkpoint_at_max_round_then_nothing_more(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    tasks = setup.seats[0].clients.tasks
    top = 2**32 - 1
    tasks.anchor_checkpoint(setup.task_id, top, CHECKPOINT)
    with pytest.raises(custom_error("CheckpointOutOfOrder")) as exc:
        tasks.anchor_checkpoint(setup.task_id, top, CHECKPOINT)
    assert revert_args(exc)["lastRound"] == top


def test_checkpoint_zero_digest_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    with pytest.raises(custom_error("InvalidDigest")):
        setup.seats[0].clients.tasks.anchor_checkpoint(setup.task_id, 1, ZERO32)
    # the failed call consumed no round
    setup.seats[0].clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT)


def test_checkpoint_before_running_and_by_outsider_revert(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        setup.seats[0].clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT)
    assert revert_args(exc)["actual"] == TaskState.CREATED
    setup.accept_all()
    with pytest.raises(custom_error("NotParticipant")):
        c.orgs["bank-a"].clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT)


# ----------------------------------------------------------------------- submitResult


def test_submit_result_before_own_input_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.accept_all()
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    a.clients.tasks.anchor_input(setup.task_id, a.commitment)  # the other's input is not b's
    with pytest.raises(custom_error("InputNotAnchored")) as exc:
        b.clients.tasks.submit_result(setup.task_id, RESULT_1, EVIDENCE)
    assert revert_args(exc) == {"taskId": setup.task_id, "node": b.address}


def test_submit_result_twice_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    setup.run()
    a = setup.seat("bank-a")
    receipt = a.clients.tasks.submit_result(setup.task_id, RESULT_1, EVIDENCE)
    assert a.clients.tasks.events_in(receipt, "ResultSubmitted") == [
        {
            "taskId": setup.task_id,
            "node": a.address,
            "resultDigest": RESULT_1,
            "evidenceRoot": EVIDENCE,
        }
    ]
    status = a.clients.tasks.participant_status(setup.task_id, a.address)
    assert (status.result_submitted, status.result_digest) == (True, RESULT_1)
    assert a.clients.tasks.info(setup.task_id).result_count == 1
    with pytest.raises(custom_error("ResultAlreadySubmitted")) as exc:
        a.clients.tasks.submit_result(setup.task_id, RESULT_2, EVIDENCE)
    assert revert_args(exc) == {"taskId": setup.task_id, "node": a.address}
    assert a.clients.tasks.participant_status(setup.task_id, a.address).result_digest == RESULT_1


@pytest.mark.parametrize(
    ("result", "evidence"), [(ZERO32, EVIDENCE), (RESULT_1, ZERO32), (ZERO32, ZERO32)]
)
def test_submit_result_zero_digests_revert(
    consortium: Consortium, result: bytes, evidence: bytes
) -> None:
    setup = build_task(consortium)
    setup.run()
    tasks = setup.seats[0].clients.tasks
    with pytest.raises(custom_error("InvalidDigest")):
        tasks.submit_result(setup.task_id, result, evidence)
    assert tasks.info(setup.task_id).result_count == 0


def test_submit_result_before_running_reverts(consortium: Consortium) -> None:
    setup = build_task(consortium)
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        setup.seats[0].clients.tasks.submit_result(setup.task_id, RESULT_1, EVIDENCE)
    assert revert_args(exc)["actual"] == TaskState.CREATED


def test_equal_results_complete_the_task(consortium: Consortium) -> None:
    setup = build_task(consortium, ("bank-a", "bank-b", "regulator"))
    setup.run()
    receipts = setup.submit_all([RESULT_2] * 3)
    tasks = setup.creator.clients.tasks
    assert [tasks.events_in(r, "TaskCompleted") for r in receipts] == [
        [],
        [],
        [{"taskId": setup.task_id, "resultDigest": RESULT_2}],
    ]
    assert tasks.events_in(receipts[-1], "TaskDisputed") == []
    info = tasks.info(setup.task_id)
    assert (info.state, info.result_count) == (TaskState.COMPLETED, 3)


@pytest.mark.parametrize(
    "digests",
    [
        (RESULT_1, RESULT_2, RESULT_2),  # the first differs from the last two
        (RESULT_1, RESULT_1, RESULT_2),  # the last differs
        (RESULT_1, RESULT_2, RESULT_1),  # the middle differs
    ],
)
def test_differing_results_dispute_the_task(
    consortium: Consortium, digests: tuple[bytes, bytes, bytes]
) -> None:
    setup = build_task(consortium, ("bank-a", "bank-b", "regulator"))
    setup.run()
    receipts = setup.submit_all(digests)
    tasks = setup.creator.clients.tasks
    assert tasks.events_in(receipts[-1], "TaskDisputed") == [{"taskId": setup.task_id}]
    assert tasks.events_in(receipts[-1], "TaskCompleted") == []
    assert tasks.state(setup.task_id) == TaskState.DISPUTED


# ---------------------------------------------------------------------- reportFailure


@pytest.mark.parametrize("running", [False, True])
def test_report_failure_by_participant(consortium: Consortium, running: bool) -> None:
    setup = build_task(consortium)
    if running:
        setup.accept_all()
    b = setup.seat("bank-b")
    receipt = b.clients.tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": b.address, "reasonCode": 104}
    ]
    assert b.clients.tasks.state(setup.task_id) == TaskState.FAILED


@pytest.mark.parametrize("by", ["admin", "other-node"])
def test_report_failure_by_creator_org(consortium: Consortium, by: str) -> None:
    c = consortium
    setup = build_task(c, ("bank-b",))
    setup.accept_all()
    account: LocalAccount = c.orgs["bank-a"].admin
    if by == "other-node":
        account = c.orgs["bank-a"].node  # a creator-org node that is not a participant
    tasks = c.clients_for(account).tasks
    receipt = tasks.report_failure(setup.task_id, Reason.PROTOCOL_ERROR)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": account.address, "reasonCode": 103}
    ]
    assert tasks.state(setup.task_id) == TaskState.FAILED


@pytest.mark.parametrize("who", ["participant-org-admin", "outsider", "revoked-creator-node"])
def test_report_failure_by_others_reverts(consortium: Consortium, who: str) -> None:
    c = consortium
    setup = build_task(c)
    if who == "participant-org-admin":
        account = c.orgs["bank-b"].admin  # its node participates, its admin does not
        error = "NotParticipant"
    elif who == "outsider":
        account = c.new_funded_account()
        error = "NotParticipant"
    else:
        node = add_node(c, "bank-a")
        c.orgs["bank-a"].clients.consortium.revoke_node(node.address)
        account = node.account
        error = "NotActiveMember"
    with pytest.raises(custom_error(error)) as exc:
        c.clients_for(account).tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    if error == "NotParticipant":
        assert revert_args(exc) == {"taskId": setup.task_id, "account": account.address}
    else:
        assert revert_args(exc) == {"account": account.address}
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.CREATED


def test_report_failure_by_suspended_creator_admin_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-b",))
    suspend(c, "bank-a")
    with pytest.raises(custom_error("NotActiveMember")):
        c.orgs["bank-a"].clients.tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    # a participant still can
    setup.seats[0].clients.tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    assert setup.seats[0].clients.tasks.state(setup.task_id) == TaskState.FAILED


# ----------------------------------------------------------------------------- expire


def test_expire_before_deadline_reverts(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c)
    travel_to(c, setup.deadline - 1)
    with pytest.raises(custom_error("DeadlineNotReached")) as exc:
        c.orgs["regulator"].clients.tasks.expire(setup.task_id)
    assert revert_args(exc) == {"taskId": setup.task_id, "deadline": setup.deadline}
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.CREATED


@pytest.mark.parametrize("running", [False, True])
def test_expire_from_deadline_by_anyone(consortium: Consortium, running: bool) -> None:
    c = consortium
    setup = build_task(c)
    if running:
        setup.accept_all()
    travel_to(c, setup.deadline)
    tasks = c.clients_for(c.new_funded_account()).tasks
    receipt = tasks.expire(setup.task_id)  # mined exactly at the deadline
    assert tasks.events_in(receipt, "TaskExpired") == [{"taskId": setup.task_id}]
    assert tasks.state(setup.task_id) == TaskState.EXPIRED


def test_expire_unknown_task_reverts(consortium: Consortium) -> None:
    with pytest.raises(custom_error("UnknownTask")):
        consortium.orgs["bank-a"].clients.tasks.expire(name_id("task", "nope"))


# ----------------------------------------------------------------------------- lapses


def _step(setup: TaskSetup, kind: str) -> TxReceipt:
    """One anchoring step by bank-a's node (its input is already anchored for the last two)."""
    a = setup.seat("bank-a")
    if kind == "input":
        return setup.seat("bank-b").clients.tasks.anchor_input(
            setup.task_id, setup.seat("bank-b").commitment
        )
    if kind == "checkpoint":
        return a.clients.tasks.anchor_checkpoint(setup.task_id, 1, CHECKPOINT)
    return a.clients.tasks.submit_result(setup.task_id, RESULT_1, EVIDENCE)


def _running_with_a_input(c: Consortium, orgs: tuple[str, ...] = ("bank-a", "bank-b")) -> TaskSetup:
    setup = build_task(c, orgs)
    setup.accept_all()
    a = setup.seat("bank-a")
    a.clients.tasks.anchor_input(setup.task_id, a.commitment)
    return setup


def _assert_failed_by_step(setup: TaskSetup, kind: str, reason: Reason) -> None:
    tasks = setup.creator.clients.tasks
    receipt = _step(setup, kind)  # does not revert
    caller = setup.seat("bank-b" if kind == "input" else "bank-a").address
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": caller, "reasonCode": int(reason)}
    ]
    for event in ("InputAnchored", "CheckpointAnchored", "ResultSubmitted"):
        assert tasks.events_in(receipt, event) == []
    info = tasks.info(setup.task_id)
    assert (info.state, info.result_count) == (TaskState.FAILED, 0)
    # and the task is over
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        _step(setup, kind)
    assert revert_args(exc)["actual"] == TaskState.FAILED


@pytest.mark.parametrize("kind", ["input", "checkpoint", "result"])
def test_grant_revoked_while_running_fails_at_next_step(consortium: Consortium, kind: str) -> None:
    c = consortium
    setup = _running_with_a_input(c)
    c.orgs["bank-b"].clients.authorizations.revoke(setup.grants["bank-b"])
    _assert_failed_by_step(setup, kind, Reason.GRANT_REVOKED)


@pytest.mark.parametrize("kind", ["input", "checkpoint", "result"])
def test_participant_org_suspended_while_running(consortium: Consortium, kind: str) -> None:
    c = consortium
    setup = _running_with_a_input(c, ("bank-a", "bank-b", "regulator"))
    suspend(c, "regulator")  # a participant that is neither caller nor creator
    _assert_failed_by_step(setup, kind, Reason.PARTICIPANT_INACTIVE)


def test_participant_node_revoked_while_running(consortium: Consortium) -> None:
    c = consortium
    setup = _running_with_a_input(c, ("bank-a", "bank-b", "regulator"))
    regulator = c.orgs["regulator"]
    regulator.clients.consortium.revoke_node(regulator.node.address)
    _assert_failed_by_step(setup, "checkpoint", Reason.PARTICIPANT_INACTIVE)


def test_creator_org_suspended_while_running(consortium: Consortium) -> None:
    c = consortium
    setup = build_task(c, ("bank-b", "regulator"))
    setup.accept_all()
    suspend(c, "bank-a")  # the creator, not a participant
    b = setup.seat("bank-b")
    receipt = b.clients.tasks.anchor_input(setup.task_id, b.commitment)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": b.address, "reasonCode": 2}
    ]
    assert b.clients.tasks.state(setup.task_id) == TaskState.FAILED


@pytest.mark.parametrize("kind", ["input", "checkpoint", "result"])
def test_algorithm_deprecated_while_running(consortium: Consortium, kind: str) -> None:
    c = consortium
    setup = _running_with_a_input(c)
    deprecate_algorithm(c)
    _assert_failed_by_step(setup, kind, Reason.ALGORITHM_DEPRECATED)


def test_revoked_grant_is_reported_before_other_lapses(consortium: Consortium) -> None:
    c = consortium
    setup = _running_with_a_input(c)
    deprecate_algorithm(c)
    c.orgs["bank-b"].clients.authorizations.revoke(setup.grants["bank-b"])
    _assert_failed_by_step(setup, "checkpoint", Reason.GRANT_REVOKED)


def test_grant_revoked_between_acceptances_means_the_task_never_starts(
    consortium: Consortium,
) -> None:
    """The grant's participant accepted before the revocation: the last acceptance fails
    the task with GRANT_REVOKED instead of starting it (DESIGN §3: it cannot start)."""
    c = consortium
    setup = build_task(c)
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    b.clients.tasks.accept(setup.task_id)  # consumes the use while the grant is good
    c.orgs["bank-b"].clients.authorizations.revoke(setup.grants["bank-b"])
    receipt = a.clients.tasks.accept(setup.task_id)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": a.address, "reasonCode": 1}
    ]
    assert a.clients.tasks.events_in(receipt, "TaskStarted") == []
    assert len(a.clients.tasks.events_in(receipt, "TaskAccepted")) == 1
    assert a.clients.tasks.state(setup.task_id) == TaskState.FAILED
    with pytest.raises(custom_error("InvalidTaskState")):
        a.clients.tasks.anchor_input(setup.task_id, a.commitment)


def test_grant_expiry_while_running_is_not_a_lapse(consortium: Consortium) -> None:
    """The use was consumed at acceptance; only revocation stops a running task."""
    c = consortium
    setup = build_task(c, create=False)
    ds = setup.datasets["bank-b"]
    not_after = now(c) + 50
    grant_id = make_grant(c, "bank-b", ds.dataset_id, not_after=not_after)
    setup.seat("bank-b").participant = Participant(
        setup.seat("bank-b").address, ds.dataset_id, 1, grant_id
    )
    setup.grants["bank-b"] = grant_id
    setup.create()
    setup.accept_all()
    travel_to(c, not_after + 2)  # views read the latest block, mined at not_after + 1
    assert c.orgs["bank-a"].clients.authorizations.is_usable(grant_id) is False
    setup.anchor_all_inputs()
    setup.submit_all()
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.COMPLETED


def test_lapse_reverted_by_reinstatement_is_not_reported(consortium: Consortium) -> None:
    """Only the state at the step counts: a suspended and reinstated org is active again."""
    c = consortium
    setup = _running_with_a_input(c)
    suspend(c, "bank-b")
    proposal = c.orgs["bank-a"].clients.consortium.propose_reinstatement(c.orgs["bank-b"].org_id)
    if not c.orgs["bank-a"].clients.consortium.proposal_executed(proposal):
        c.orgs["regulator"].clients.consortium.vote(proposal)
    receipt = _step(setup, "checkpoint")
    assert failed_events(setup, receipt) == []
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.RUNNING


# -------------------------------------------------------------------- terminal states


def _drive_to(c: Consortium, terminal: TaskState) -> TaskSetup:
    setup = build_task(c)
    if terminal == TaskState.EXPIRED:
        setup.accept_all()
        travel_to(c, setup.deadline)
        setup.creator.clients.tasks.expire(setup.task_id)
    elif terminal == TaskState.FAILED:
        setup.accept_all()
        setup.seats[0].clients.tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    else:
        setup.run()
        digests = [RESULT_1, RESULT_1 if terminal == TaskState.COMPLETED else RESULT_2]
        setup.submit_all(digests)
    assert setup.creator.clients.tasks.state(setup.task_id) == terminal
    return setup


@pytest.mark.parametrize(
    "terminal",
    [TaskState.COMPLETED, TaskState.DISPUTED, TaskState.FAILED, TaskState.EXPIRED],
    ids=lambda s: s.name.lower(),
)
def test_terminal_states_refuse_every_step(consortium: Consortium, terminal: TaskState) -> None:
    c = consortium
    setup = _drive_to(c, terminal)
    task_id = setup.task_id
    a, b = setup.seat("bank-a"), setup.seat("bank-b")
    before = setup.creator.clients.tasks.info(task_id)
    steps: dict[str, Callable[[], object]] = {
        "accept": lambda: b.clients.tasks.accept(task_id),
        "refuse": lambda: b.clients.tasks.refuse(task_id, Reason.PEER_TIMEOUT),
        "input": lambda: b.clients.tasks.anchor_input(task_id, b.commitment),
        "checkpoint": lambda: a.clients.tasks.anchor_checkpoint(task_id, 7, CHECKPOINT),
        "result": lambda: a.clients.tasks.submit_result(task_id, RESULT_2, EVIDENCE),
        "report": lambda: a.clients.tasks.report_failure(task_id, Reason.PROTOCOL_ERROR),
        "report-creator": lambda: setup.creator.clients.tasks.report_failure(
            task_id, Reason.PROTOCOL_ERROR
        ),
        "expire": lambda: setup.creator.clients.tasks.expire(task_id),
    }
    for name, step in steps.items():
        with pytest.raises(custom_error("InvalidTaskState")) as exc:
            step()
        assert revert_args(exc)["actual"] == terminal, name
    assert setup.creator.clients.tasks.info(task_id) == before


# ----------------------------------------------------- attacks: ids, reporters, deadlines


def test_task_id_is_derived_from_the_creator_org_and_request_id(consortium: Consortium) -> None:
    c = consortium
    a, b = c.orgs["bank-a"], c.orgs["bank-b"]
    request = name_id("task", "front-run-me")
    tasks = a.clients.tasks
    expected = task_id_for(a.org_id, request)
    assert tasks.task_id_for(a.org_id, request) == expected
    assert tasks.task_id_on_chain(a.org_id, request) == expected
    assert task_id_for(b.org_id, request) != expected
    assert tasks.task_id_on_chain(b.org_id, request) == task_id_for(b.org_id, request)


def test_another_org_cannot_take_a_task_id_first(consortium: Consortium) -> None:
    """bank-b sees bank-a's request id (e.g. in its mempool) and creates a task with it first:
    it gets a task of its own under another id, and bank-a's creation still succeeds."""
    c = consortium
    setup = build_task(c, create=False)
    a, b = c.orgs["bank-a"], c.orgs["bank-b"]
    squat = b.node_clients.tasks.create(
        setup.request_id, ALGO, PARAMS, setup.deadline, [Participant(b.node.address)]
    )
    (squatted,) = b.clients.tasks.events_in(squat, "TaskCreated")
    assert squatted["taskId"] == task_id_for(b.org_id, setup.request_id) != setup.task_id
    assert squatted["creatorOrg"] == b.org_id
    assert a.clients.tasks.state(setup.task_id) == TaskState.NONE

    receipt = setup.create()
    assert a.clients.tasks.created_id(receipt) == setup.task_id
    info = a.clients.tasks.info(setup.task_id)
    assert (info.creator_org, info.participant_count) == (a.org_id, 2)
    assert a.clients.tasks.participants(setup.task_id) == setup.participants
    # the squatter's task is untouched and separate
    assert b.clients.tasks.info(squatted["taskId"]).creator_org == b.org_id
    # a retry by bank-a (e.g. its node after a crash) finds its own task
    with pytest.raises(custom_error("TaskAlreadyExists")) as exc:
        a.node_clients.tasks.create(
            setup.request_id, ALGO, PARAMS, setup.deadline, setup.participants
        )
    assert revert_args(exc) == {"taskId": setup.task_id}


@pytest.mark.parametrize("how", ["suspended-org", "revoked-node"])
@pytest.mark.parametrize("step", ["refuse", "report"])
def test_inactive_participant_cannot_refuse_or_fail_a_task(
    consortium: Consortium, how: str, step: str
) -> None:
    c = consortium
    setup = build_task(c, ("bank-a", "bank-b"), create=False)
    b_node = setup.seat("bank-b")
    if how == "revoked-node":
        extra = add_node(c, "bank-b")
        ds = setup.datasets["bank-b"]
        b_node.participant = Participant(extra.address, ds.dataset_id, 1, setup.grants["bank-b"])
        b_node.clients, b_node.address = extra.clients, str(extra.address)
    setup.create()
    if how == "suspended-org":
        suspend(c, "bank-b")
    else:
        c.orgs["bank-b"].clients.consortium.revoke_node(b_node.address)
    tasks = b_node.clients.tasks
    with pytest.raises(custom_error("NodeNotActive")) as exc:
        if step == "refuse":
            tasks.refuse(setup.task_id, Reason.DATASET_MISMATCH)
        else:
            tasks.report_failure(setup.task_id, Reason.PEER_TIMEOUT)
    assert revert_args(exc) == {"node": b_node.address}
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.CREATED


@pytest.mark.parametrize("code", [0, 1, 2, 3, 99])
@pytest.mark.parametrize("step", ["refuse", "report", "report-creator"])
def test_reserved_reason_codes_are_refused(consortium: Consortium, code: int, step: str) -> None:
    setup = build_task(consortium)
    b = setup.seat("bank-b")
    with pytest.raises(custom_error("ReservedReasonCode")) as exc:
        if step == "refuse":
            b.clients.tasks.refuse(setup.task_id, code)
        elif step == "report":
            b.clients.tasks.report_failure(setup.task_id, code)
        else:
            setup.creator.clients.tasks.report_failure(setup.task_id, code)
    assert revert_args(exc) == {"reasonCode": code}
    assert setup.creator.clients.tasks.state(setup.task_id) == TaskState.CREATED
    assert setup.creator.clients.tasks.events_in(setup.created, "TaskFailed") == []


def test_reserved_reason_is_recorded_only_as_the_contract_detects_it(
    consortium: Consortium,
) -> None:
    """A node may report a contract-level lapse it noticed first (a peer cut off); the
    contract records the lapse it detects itself, not the code the caller chose."""
    c = consortium
    setup = build_task(c, ("bank-a", "bank-b"))
    setup.accept_all()
    c.orgs["bank-b"].clients.authorizations.revoke(setup.grants["bank-b"])
    a = setup.seat("bank-a")
    receipt = a.clients.tasks.report_failure(setup.task_id, Reason.PARTICIPANT_INACTIVE)
    assert failed_events(setup, receipt) == [
        {"taskId": setup.task_id, "reporter": a.address, "reasonCode": Reason.GRANT_REVOKED}
    ]


@pytest.mark.parametrize("code", [100, 105, 110, 2**16 - 1])
def test_node_reported_codes_from_100_are_accepted(consortium: Consortium, code: int) -> None:
    setup = build_task(consortium)
    b = setup.seat("bank-b")
    receipt = b.clients.tasks.refuse(setup.task_id, code)
    assert failed_events(setup, receipt)[0]["reasonCode"] == code


def test_deadline_is_capped(consortium: Consortium) -> None:
    c = consortium
    tasks = c.orgs["bank-a"].clients.tasks
    cap = tasks.max_task_duration()
    assert cap == 7 * 24 * HOUR
    setup = build_task(c, create=False)
    start = now(c) + 100
    travel_to(c, start)
    setup.deadline = start + cap + 1
    with pytest.raises(custom_error("DeadlineTooFar")) as exc:
        setup.create()
    assert revert_args(exc) == {"deadline": start + cap + 1, "latest": start + cap}
    setup.deadline = 2**64 - 1
    with pytest.raises(custom_error("DeadlineTooFar")):
        setup.create()
    setup.deadline = start + cap  # exactly at the cap is fine
    setup.create()
    assert tasks.info(setup.task_id).deadline == start + cap


def test_max_task_duration_must_be_non_zero(consortium: Consortium) -> None:
    c = consortium
    artifact = load_artifact("TaskRegistry")
    factory = c.chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    args = [
        c.deployment.address(name)
        for name in ("Consortium", "AlgorithmRegistry", "DatasetRegistry", "AuthorizationRegistry")
    ]
    sender = Sender(c.chain, c.deployer)
    with pytest.raises(custom_error("InvalidMaxTaskDuration")):
        try:
            sender.transact(factory.constructor(*args, 0))
        except Exception as exc:
            raise_decoded(exc, "TaskRegistry")
            raise
    receipt = sender.transact(factory.constructor(*args, 60))
    deployed = TaskRegistryClient(c.chain, str(receipt["contractAddress"]))
    assert deployed.max_task_duration() == 60
