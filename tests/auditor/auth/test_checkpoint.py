"""The query log's roots land in AnchorLog on a real chain (anvil), as the auditor's
index then sees them, and consistency between anchored roots verifies.

The regulator's admin key is the auditor's key here (AnchorLog takes checkpoints from
active members only). Each backend's run uses its own log name: the chain is shared.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from auditor.auth.principal import Principal
from auditor.index import schema
from auditor.index.store import IndexStore
from auditor.querylog.checkpoint import Checkpointer, LogDiverged, query_log_name
from auditor.querylog.log import QueryLog
from ledger import merkle
from ledger.errors import ContractRevert
from ledger.ids import log_id_for
from tests.auditor.auth.conftest import Indexed, World


def principal(world: World) -> Principal:
    reg = world.consortium.orgs["regulator"]
    return Principal(reg.admin.address, reg.org_id, "regulator", True, 0)


def test_checkpoints_land_on_chain_and_match_the_log(
    world: World, indexed: Indexed, empty_store: IndexStore
) -> None:
    log = QueryLog(empty_store)
    anchors = world.consortium.orgs["regulator"].clients.anchors
    checkpointer = Checkpointer(log, anchors, name=f"query-log-{indexed.backend}")
    owner = world.consortium.orgs["regulator"].admin.address
    assert checkpointer.log_id == log_id_for(owner, query_log_name(f"query-log-{indexed.backend}"))
    assert checkpointer.log_id == anchors.log_id_on_chain(owner, checkpointer.name)

    assert checkpointer.checkpoint_once() is None  # nothing logged: nothing to anchor
    who = principal(world)
    for i in range(3):
        log.append(who, "GET", f"/v1/tasks?page={i}")
    first = checkpointer.checkpoint_once()
    assert first is not None and first["treeSize"] == 3
    assert anchors.latest(checkpointer.log_id) == (3, log.root(3))
    assert checkpointer.checkpoint_once() is None  # not grown: no transaction

    for i in range(4):
        log.append(who, "GET", f"/v1/orgs?page={i}")
    second = checkpointer.checkpoint_once()
    assert second is not None and second["treeSize"] == 7
    assert anchors.latest(checkpointer.log_id) == (7, log.root(7))
    assert [c["treeSize"] for c in log.checkpoints()] == [3, 7]

    # The auditor's index reads the same roots from the chain's Checkpointed events,
    # with the transaction hashes the checkpointer recorded.
    indexed.catch_up()
    c = schema.checkpoints
    with empty_store.engine.connect() as conn:
        rows = conn.execute(
            select(c.c.tree_size, c.c.root_hash, c.c.tx_hash)
            .where(c.c.log_id == checkpointer.log_id)
            .order_by(c.c.tree_size)
        ).all()
    on_chain = [(int(s), bytes(r), "0x" + bytes(t).hex()) for s, r, t in rows]
    assert on_chain == [
        (3, log.root(3), first["txHash"]),
        (7, log.root(7), second["txHash"]),
    ]
    # Consistency between the two anchored roots, checked against the chain's values.
    proof = log.consistency(3, 7)
    assert merkle.verify_consistency(3, 7, on_chain[0][1], on_chain[1][1], proof)
    for index in range(7):
        assert merkle.verify_inclusion(
            log.leaf_hash(index), index, 7, log.inclusion(index, 7), on_chain[1][1]
        )

    # An entry altered in the database: the next checkpoint refuses to anchor over it.
    with empty_store.engine.begin() as conn:
        conn.execute(
            update(schema.query_log)
            .where(schema.query_log.c.seq == 1)
            .values(leaf='{"tampered":true}')
        )
    log.append(who, "GET", "/v1/status")
    with pytest.raises(LogDiverged, match="altered"):
        Checkpointer(
            QueryLog(empty_store), anchors, name=f"query-log-{indexed.backend}"
        ).checkpoint_once()
    assert anchors.latest(checkpointer.log_id)[0] == 7

    # A database started afresh under the same key and log name is refused too.
    with empty_store.engine.begin() as conn:
        conn.execute(delete(schema.query_log))
    restarted = QueryLog(empty_store)
    restarted.append(who, "GET", "/v1/status")
    with pytest.raises(LogDiverged, match="replaced or truncated"):
        Checkpointer(restarted, anchors, name=f"query-log-{indexed.backend}").checkpoint_once()


def test_only_an_active_member_key_can_anchor(
    world: World, indexed: Indexed, empty_store: IndexStore
) -> None:
    log = QueryLog(empty_store)
    log.append(principal(world), "GET", "/v1/orgs")
    suspended = world.consortium.orgs["bank-b"].clients.anchors  # bank-b is suspended
    with pytest.raises(ContractRevert):
        Checkpointer(log, suspended, name=f"denied-{indexed.backend}").checkpoint_once()
    assert log.checkpoints() == []
