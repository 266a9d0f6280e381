"""Deadlines and expiry on an idle chain, found as a newcomer on anvil finds them.

A dev chain mines only when a transaction arrives, so the last block can be minutes
old. Judged by that block, a 120 s validity became 93 s, a 60 s one reverted with no
reason after 100 s idle, and an overdue task was never expired (the gas estimate for
`expire` ran against the old block, which was before the deadline). Both are judged by
the pending block now, the one the transaction will join.

The idle time is made with `evm_increaseTime` (chain time moves on, no block is mined),
which is what minutes of idleness look like to the chain, without the wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.task_params import ParamsEnvelope
from node.algorithms import stats
from tests.conftest import Consortium, build_consortium
from tests.node.runner_harness import COLUMNS, Network, standard_network

PARAMS: dict[str, Any] = {"columns": COLUMNS, "value_column": "balance"}
IDLE = 300  # seconds the chain sat without a block


@pytest.fixture
def net(anvil_url: str, tmp_path: Path) -> Iterator[Network]:
    from ledger import transactions

    transactions.reset_nonces()
    consortium: Consortium = build_consortium(Chain.connect(anvil_url))
    yield standard_network(consortium, tmp_path, rows_each=40)
    transactions.reset_nonces()


def idle(chain: Chain, seconds: int) -> None:
    """Let `seconds` of chain time pass without mining a block."""
    chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]


def test_validity_is_the_requested_one_after_the_chain_sat_idle(net: Network) -> None:
    chain = net.consortium.chain
    idle(chain, IDLE)
    last = int(chain.w3.eth.get_block("latest")["timestamp"])
    status = net.creator.submit_task("idle-1", stats.NAME, PARAMS, net.providers, 120).status
    created_at = int(chain.w3.eth.get_block("latest")["timestamp"])
    assert created_at >= last + IDLE  # the creating block carries the idle time
    # At most the few seconds it took to mine, never the idle time.
    assert 120 - 5 <= status["deadline"] - created_at <= 120


def test_a_short_validity_after_idleness_does_not_revert(net: Network) -> None:
    idle(net.consortium.chain, 100)
    status = net.creator.submit_task("idle-2", stats.NAME, PARAMS, net.providers, 60).status
    assert status["state"] == "CREATED"


def test_an_overdue_task_is_expired_on_an_idle_chain(net: Network) -> None:
    chain = net.consortium.chain
    aggregator = net.nodes["bank-a"]
    task_id = net.create("overdue", PARAMS, valid_for=60)
    # A record of a task that never reached the chain (left by an older node whose
    # creating transaction reverted): it must neither stop expiry nor loop forever.
    ghost = bytes(31) + b"\x01"
    aggregator.state.ensure(
        ghost, role="aggregator", params=ParamsEnvelope({"x": 1}, bytes(32)).to_json()
    )
    aggregator.runner.poll_once()  # sees TaskCreated; the providers are down: no one accepts
    assert net.creator.clients.tasks.state(task_id) == TaskState.CREATED
    idle(chain, 120)  # the deadline passes while no block is mined
    head = chain.head()
    aggregator.runner.poll_once()
    assert chain.head() == head + 1  # the expire transaction itself, nothing else mined
    assert net.creator.clients.tasks.state(task_id) == TaskState.EXPIRED
    stale = aggregator.state.get(ghost)
    assert stale is not None and stale.phase == "failed"
    assert stale.error is not None and stale.error.reason == "NOT_ON_CHAIN"
    aggregator.runner.poll_once()  # the chain's verdict is recorded locally too
    record = aggregator.state.get(task_id)
    assert record is not None and record.phase == "failed"
    status = net.creator.task_status("overdue")
    assert status["failure"]["reason"] == "EXPIRED"
    assert status["failure"]["reportedBy"] == aggregator.runner.address
