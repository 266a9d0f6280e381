"""AnchorLog: per-log checkpoints with strictly increasing tree sizes, written by one owner."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import custom_error
from ledger.ids import InvalidInput, name_id
from tests.conftest import Consortium
from tests.contracts.test_consortium import (
    ZERO32,
    ZERO_ADDRESS,
    normalised,
    propose,
    reverts,
    suspend,
)

LOG = name_id("log", "bank-a/evidence")


def _root(n: int) -> bytes:
    return name_id("root", str(n))


def test_first_checkpoint_creates_the_log(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    log = a.node_clients.anchors
    assert log.latest(LOG) == (0, ZERO32)
    assert log.owner(LOG) == ZERO_ADDRESS
    receipt = log.checkpoint(LOG, 5, _root(5))
    assert log.events_in(receipt, "LogCreated") == [
        {"logId": LOG, "owner": a.node.address, "ownerOrg": a.org_id}
    ]
    assert log.events_in(receipt, "Checkpointed") == [
        {"logId": LOG, "treeSize": 5, "rootHash": _root(5), "writer": a.node.address}
    ]
    assert log.latest(LOG) == (5, _root(5))
    assert log.owner(LOG) == a.node.address


def test_later_checkpoints_replace_the_latest(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    log = a.node_clients.anchors
    log.checkpoint(LOG, 1, _root(1))
    for size in (2, 10, 2**64 - 1):
        receipt = log.checkpoint(LOG, size, _root(size))
        assert log.events_in(receipt, "LogCreated") == []
        assert log.events_in(receipt, "Checkpointed") == [
            {"logId": LOG, "treeSize": size, "rootHash": _root(size), "writer": a.node.address}
        ]
        assert log.latest(LOG) == (size, _root(size))
    assert log.owner(LOG) == a.node.address


def test_tree_size_must_strictly_increase(consortium: Consortium) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    log.checkpoint(LOG, 7, _root(7))
    for size in (7, 6, 1):
        assert reverts("TreeSizeNotIncreasing", log.checkpoint, LOG, size, _root(size)) == {
            "logId": LOG,
            "previous": 7,
            "given": size,
        }
    assert log.latest(LOG) == (7, _root(7))


def test_only_the_owner_appends(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    a.node_clients.anchors.checkpoint(LOG, 1, _root(1))
    # not even the admin of the owner's organisation, nor another org's node
    for account in (a.admin, b.node, b.admin):
        log = consortium.clients_for(account).anchors
        assert reverts("NotLogOwner", log.checkpoint, LOG, 2, _root(2)) == {
            "logId": LOG,
            "caller": account.address,
        }
    assert a.clients.anchors.latest(LOG) == (1, _root(1))
    assert a.clients.anchors.owner(LOG) == a.node.address


def test_logs_are_independent(consortium: Consortium) -> None:
    a, b = consortium.orgs["bank-a"], consortium.orgs["bank-b"]
    other = name_id("log", "bank-b/evidence")
    a.node_clients.anchors.checkpoint(LOG, 10, _root(10))
    receipt = b.clients.anchors.checkpoint(other, 3, _root(3))  # smaller, other log: fine
    assert b.clients.anchors.events_in(receipt, "LogCreated") == [
        {"logId": other, "owner": b.admin.address, "ownerOrg": b.org_id}
    ]
    assert a.clients.anchors.latest(LOG) == (10, _root(10))
    assert a.clients.anchors.latest(other) == (3, _root(3))
    assert a.clients.anchors.owner(other) == b.admin.address


def test_argument_checks(consortium: Consortium) -> None:
    log = consortium.orgs["bank-a"].node_clients.anchors
    assert reverts("InvalidLogId", log.checkpoint, ZERO32, 1, _root(1)) == {}
    assert reverts("InvalidCheckpoint", log.checkpoint, LOG, 1, ZERO32) == {}
    # a zero tree size is refused by the client; sent raw, by the contract
    with pytest.raises(custom_error("InvalidCheckpoint")) as exc:
        log._transact("checkpoint", LOG, 0, _root(0))
    assert exc.value.arguments == {}
    # the log id is checked first, then the checkpoint
    assert reverts("InvalidLogId", log.checkpoint, ZERO32, 1, ZERO32) == {}
    log.checkpoint(LOG, 3, _root(3))
    assert reverts("InvalidCheckpoint", log.checkpoint, LOG, 4, ZERO32) == {}
    assert log.latest(LOG) == (3, _root(3))
    assert log.owner(ZERO32) == ZERO_ADDRESS


@pytest.mark.parametrize("size", [0, -1, 2**64])
def test_client_rejects_out_of_range_sizes(consortium: Consortium, size: int) -> None:
    block = consortium.chain.head()
    with pytest.raises(InvalidInput) as exc:
        consortium.orgs["bank-a"].node_clients.anchors.checkpoint(LOG, size, _root(1))
    assert exc.value.field == "tree_size"
    assert consortium.chain.head() == block


@pytest.mark.parametrize(
    "caller", ["outsider", "proposed-admin", "suspended-admin", "suspended-node", "revoked-node"]
)
def test_writers_must_be_active_members(consortium: Consortium, caller: str) -> None:
    b = consortium.orgs["bank-b"]
    owned = name_id("log", "bank-b")
    b.clients.anchors.checkpoint(owned, 1, _root(1))
    b.node_clients.anchors.checkpoint(LOG, 1, _root(1))
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
    assert reverts("NotActiveMember", log.checkpoint, LOG, 2, _root(2)) == who
    assert reverts("NotActiveMember", log.checkpoint, owned, 2, _root(2)) == who
    fresh = name_id("log", "fresh")
    assert reverts("NotActiveMember", log.checkpoint, fresh, 1, _root(1)) == who
    assert log.owner(fresh) == ZERO_ADDRESS
    assert (log.latest(LOG), log.latest(owned)) == ((1, _root(1)), (1, _root(1)))


def test_reinstated_owner_resumes_its_log(consortium: Consortium) -> None:
    b = consortium.orgs["bank-b"]
    b.node_clients.anchors.checkpoint(LOG, 1, _root(1))
    suspend(consortium, "bank-b", "bank-a")
    with pytest.raises(custom_error("NotActiveMember")) as exc:
        b.node_clients.anchors.checkpoint(LOG, 2, _root(2))
    assert normalised(exc.value.arguments) == {"account": b.node.address}
    consortium.orgs["bank-a"].clients.consortium.propose_reinstatement(b.org_id)
    b.node_clients.anchors.checkpoint(LOG, 2, _root(2))
    assert b.clients.anchors.latest(LOG) == (2, _root(2))


_log_ids = (name_id("log", f"prop-{i}") for i in itertools.count())


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
    log_id = next(_log_ids)  # fresh per example: the snapshot is per test
    last = 0
    for i, size in enumerate(sizes):
        root = name_id("root", f"{size}/{i}")
        if size > last:
            log.checkpoint(log_id, size, root)
            last, last_root = size, root
        else:
            assert reverts("TreeSizeNotIncreasing", log.checkpoint, log_id, size, root) == {
                "logId": log_id,
                "previous": last,
                "given": size,
            }
        assert log.latest(log_id) == (last, last_root)
