"""AnchorLog: per-log checkpoints with strictly increasing tree sizes, written by one owner.

A log's id is derived on chain from its creator's account and its name
(`logIdFor(owner, name)`), so no account can create, occupy or advance another's log.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import custom_error
from ledger.ids import InvalidInput, log_id_for, name_id
from tests.conftest import Consortium
from tests.contracts.test_consortium import (
    ZERO32,
    ZERO_ADDRESS,
    normalised,
    propose,
    reinstate,
    reverts,
    suspend,
)

NAME = name_id("log", "evidence")  # the name a writer gives its log


def _root(n: int) -> bytes:
    return name_id("root", str(n))


def test_log_id_is_derived_from_the_owner_and_name(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    log = a.node_clients.anchors
    expected = log_id_for(a.node.address, NAME)
    assert log.log_id_for(a.node.address, NAME) == expected == log.own_log_id(NAME)
    assert log.log_id_on_chain(a.node.address, NAME) == expected
    assert log.log_id_on_chain(b.node.address, NAME) == log_id_for(b.node.address, NAME)
    assert log_id_for(b.node.address, NAME) != expected


def test_create_log_with_its_first_checkpoint(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    log = a.node_clients.anchors
    log_id = log.own_log_id(NAME)
    assert log.latest(log_id) == (0, ZERO32)
    assert log.owner(log_id) == ZERO_ADDRESS
    receipt = log.create_log(NAME, 5, _root(5))
    assert log.events_in(receipt, "LogCreated") == [
        {"logId": log_id, "owner": a.node.address, "ownerOrg": a.org_id, "name": NAME}
    ]
    assert log.events_in(receipt, "Checkpointed") == [
        {"logId": log_id, "treeSize": 5, "rootHash": _root(5), "writer": a.node.address}
    ]
    assert log.latest(log_id) == (5, _root(5))
    assert log.owner(log_id) == a.node.address
    assert reverts("LogAlreadyExists", log.create_log, NAME, 6, _root(6)) == {"logId": log_id}


def test_later_checkpoints_replace_the_latest(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    log = a.node_clients.anchors
    log_id = log.own_log_id(NAME)
    log.create_log(NAME, 1, _root(1))
    for size in (2, 10, 2**64 - 1):
        receipt = log.checkpoint(log_id, size, _root(size))
        assert log.events_in(receipt, "LogCreated") == []
        assert log.events_in(receipt, "Checkpointed") == [
            {"logId": log_id, "treeSize": size, "rootHash": _root(size), "writer": a.node.address}
        ]
        assert log.latest(log_id) == (size, _root(size))
    assert log.owner(log_id) == a.node.address


def test_append_creates_then_checkpoints(consortium: Consortium) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    first = log.append(NAME, 1, _root(1))
    assert len(log.events_in(first, "LogCreated")) == 1
    second = log.append(NAME, 2, _root(2))
    assert log.events_in(second, "LogCreated") == []
    assert log.latest(log.own_log_id(NAME)) == (2, _root(2))


def test_tree_size_must_strictly_increase(consortium: Consortium) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    log_id = log.own_log_id(NAME)
    log.create_log(NAME, 7, _root(7))
    for size in (7, 6, 1):
        assert reverts("TreeSizeNotIncreasing", log.checkpoint, log_id, size, _root(size)) == {
            "logId": log_id,
            "previous": 7,
            "given": size,
        }
    assert log.latest(log_id) == (7, _root(7))


def test_only_the_owner_appends(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    a.node_clients.anchors.create_log(NAME, 1, _root(1))
    log_id = log_id_for(a.node.address, NAME)
    # not even the admin of the owner's organisation, nor another org's node
    for account in (a.admin, b.node, b.admin):
        log = consortium.clients_for(account).anchors
        for size in (2, 2**64 - 1):  # the attack: a huge size would mask later checkpoints
            assert reverts("NotLogOwner", log.checkpoint, log_id, size, _root(2)) == {
                "logId": log_id,
                "caller": account.address,
            }
    assert a.clients.anchors.latest(log_id) == (1, _root(1))
    assert a.clients.anchors.owner(log_id) == a.node.address


def test_another_member_cannot_take_a_log_first(consortium: Consortium) -> None:
    """bank-b creates a log under bank-a's node's log name first, with a huge tree size:
    it only creates its own log; bank-a's node then creates and advances its own."""
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    victim = log_id_for(a.node.address, NAME)
    receipt = b.node_clients.anchors.create_log(NAME, 2**64 - 1, _root(99))
    (created,) = b.clients.anchors.events_in(receipt, "LogCreated")
    assert created["logId"] == log_id_for(b.node.address, NAME) != victim
    assert a.clients.anchors.latest(victim) == (0, ZERO32)
    # checkpointing a log that does not exist yet is refused too: it cannot be claimed
    log = b.node_clients.anchors
    assert reverts("UnknownLog", log.checkpoint, victim, 2**64 - 1, _root(99)) == {"logId": victim}
    mine = a.node_clients.anchors
    mine.create_log(NAME, 1, _root(1))
    mine.checkpoint(victim, 2, _root(2))
    assert mine.latest(victim) == (2, _root(2))
    assert mine.owner(victim) == a.node.address


def test_logs_are_independent(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    other = name_id("log", "bank-b/evidence")
    a.node_clients.anchors.create_log(NAME, 10, _root(10))
    receipt = b.clients.anchors.create_log(other, 3, _root(3))  # smaller, other log: fine
    other_id = log_id_for(b.admin.address, other)
    assert b.clients.anchors.events_in(receipt, "LogCreated") == [
        {"logId": other_id, "owner": b.admin.address, "ownerOrg": b.org_id, "name": other}
    ]
    assert a.clients.anchors.latest(log_id_for(a.node.address, NAME)) == (10, _root(10))
    assert a.clients.anchors.latest(other_id) == (3, _root(3))
    assert a.clients.anchors.owner(other_id) == b.admin.address


def test_argument_checks(consortium: Consortium) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    log_id = log.own_log_id(NAME)
    assert reverts("InvalidLogName", log.create_log, ZERO32, 1, _root(1)) == {}
    assert reverts("InvalidCheckpoint", log.create_log, NAME, 1, ZERO32) == {}
    # a zero tree size is refused by the client; sent raw, by the contract
    for fn, target in (("createLog", NAME), ("checkpoint", log_id)):
        with pytest.raises(custom_error("InvalidCheckpoint")) as exc:
            log._transact(fn, target, 0, _root(0))
        assert exc.value.arguments == {}
    # the name is checked first, then the checkpoint
    assert reverts("InvalidLogName", log.create_log, ZERO32, 1, ZERO32) == {}
    assert reverts("UnknownLog", log.checkpoint, ZERO32, 1, _root(1)) == {"logId": ZERO32}
    log.create_log(NAME, 3, _root(3))
    assert reverts("InvalidCheckpoint", log.checkpoint, log_id, 4, ZERO32) == {}
    assert log.latest(log_id) == (3, _root(3))
    assert log.owner(ZERO32) == ZERO_ADDRESS


@pytest.mark.parametrize("size", [0, -1, 2**64])
def test_client_rejects_out_of_range_sizes(consortium: Consortium, size: int) -> None:
    block = consortium.chain.head()
    log = consortium.orgs["bank-a"].node_clients.anchors
    for send in (log.create_log, log.checkpoint):
        with pytest.raises(InvalidInput) as exc:
            send(NAME, size, _root(1))
        assert exc.value.field == "tree_size"
    assert consortium.chain.head() == block


@pytest.mark.parametrize(
    "caller", ["outsider", "proposed-admin", "suspended-admin", "suspended-node", "revoked-node"]
)
def test_writers_must_be_active_members(consortium: Consortium, caller: str) -> None:
    b = consortium.orgs["bank-b"]
    owned_name = name_id("log", "bank-b")
    b.clients.anchors.create_log(owned_name, 1, _root(1))
    b.node_clients.anchors.create_log(NAME, 1, _root(1))
    owned = log_id_for(b.admin.address, owned_name)
    node_log = log_id_for(b.node.address, NAME)
    if caller == "outsider":
        account = consortium.new_funded_account()
    elif caller == "proposed-admin":
        account = propose(consortium, "bank-d")[0].admin
    elif caller == "suspended-admin":
        suspend(consortium, "bank-b", "bank-a")
        account = b.admin
    elif caller == "suspended-node":
        suspend(consortium, "bank-b", "bank-a")
        account = b.node
    else:
        b.clients.consortium.revoke_node(b.node.address)
        account = b.node
    log = consortium.clients_for(account).anchors
    who = {"account": account.address}
    # refused even for a log it owns, and for a new log
    mine = log_id_for(account.address, owned_name if account == b.admin else NAME)
    assert reverts("NotActiveMember", log.checkpoint, mine, 2, _root(2)) == who
    fresh = name_id("log", "fresh")
    assert reverts("NotActiveMember", log.create_log, fresh, 1, _root(1)) == who
    assert log.owner(log_id_for(account.address, fresh)) == ZERO_ADDRESS
    assert (log.latest(node_log), log.latest(owned)) == ((1, _root(1)), (1, _root(1)))


def test_reinstated_owner_resumes_its_log(consortium: Consortium) -> None:
    b = consortium.orgs["bank-b"]
    log = b.node_clients.anchors
    log_id = log.own_log_id(NAME)
    log.create_log(NAME, 1, _root(1))
    suspend(consortium, "bank-b", "bank-a")
    with pytest.raises(custom_error("NotActiveMember")) as exc:
        log.checkpoint(log_id, 2, _root(2))
    assert normalised(exc.value.arguments) == {"account": b.node.address}
    reinstate(consortium, "bank-b", "bank-a")
    log.checkpoint(log_id, 2, _root(2))
    assert b.clients.anchors.latest(log_id) == (2, _root(2))


_log_names = (name_id("log", f"prop-{i}") for i in itertools.count())


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_checkpoint_accepted_iff_tree_size_strictly_increases(
    consortium: Consortium, sizes: list[int]
) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    name = next(_log_names)  # fresh per example: the snapshot is per test
    log_id = log.own_log_id(name)
    last = 0
    for i, size in enumerate(sizes):
        root = name_id("root", f"{size}/{i}")
        if size > last:
            log.append(name, size, root)
            last, last_root = size, root
        else:
            assert reverts("TreeSizeNotIncreasing", log.checkpoint, log_id, size, root) == {
                "logId": log_id,
                "previous": last,
                "given": size,
            }
        assert log.latest(log_id) == (last, last_root)
