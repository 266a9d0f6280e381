"""The chain-driven task runner, three nodes in one process over in-memory channels.

Real chain (eth-tester), real SQLite evidence and state stores, real secure-statistics
protocol; only the transport is in-memory. The aggregate must equal the plaintext
computation, the task must complete on chain, and the auditor's verifier must accept
the transcripts the nodes recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditor.replay import task_history
from auditor.verifier import verify_task
from ledger.clients import Clients
from ledger.clients.tasks import Reason, TaskState
from node.algorithms import output_policy, stats
from node.service import NodeService
from tests.conftest import Consortium
from tests.node.runner_harness import COLUMNS, Node, standard_network

PARAMS: dict[str, Any] = {
    "columns": COLUMNS,
    "value_column": "balance",
    "group_column": "segment",
    "categories": ["retail", "business", "private"],
}


@pytest.fixture
def network(consortium: Consortium, tmp_path: Path) -> dict[str, Any]:
    net = standard_network(consortium, tmp_path, rows_each=80)
    return {
        "net": net,
        "nodes": net.nodes,
        "service": net.creator,
        "rows": net.rows,
        "providers": net.providers,
    }


def drive(nodes: dict[str, Node], task_id: bytes, clients: Clients, rounds: int = 60) -> TaskState:
    for _ in range(rounds):
        for node in nodes.values():
            node.runner.poll_once()
        state = clients.tasks.state(task_id)
        if state not in (TaskState.CREATED, TaskState.RUNNING):
            break
        for node in nodes.values():
            node.runner.join(0.2)
    for node in nodes.values():
        node.runner.join()
        node.runner.poll_once()
    return clients.tasks.state(task_id)


def test_stats_task_completes_and_verifies(network: dict[str, Any], consortium: Consortium) -> None:
    nodes: dict[str, Node] = network["nodes"]
    service: NodeService = network["service"]
    created = service.create_task("req-1", stats.NAME, PARAMS, network["providers"], 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert created["state"] == "CREATED"
    # A retried request finds the same task, and creates nothing new.
    head = consortium.chain.head()
    assert service.create_task("req-1", stats.NAME, PARAMS, network["providers"], 3600) == created
    assert consortium.chain.head() == head

    assert drive(nodes, task_id, service.clients) == TaskState.COMPLETED
    result = service.task_result(created["taskId"])["result"]
    expected = stats.plaintext_stats(
        stats.StatsParams.from_json(PARAMS), network["rows"], output_policy.effective([2])
    )
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.to_json().items() if k != "contributors"
    }
    assert sorted(result["contributors"]) == sorted(p["node"] for p in network["providers"])
    for node in nodes.values():
        record = node.state.get(task_id)
        assert record is not None and record.phase == "done", (node.name, record)

    transcripts = {node.runner.address: node.evidence.entries(task_id) for node in nodes.values()}
    checks = verify_task(
        task_history(consortium.chain, consortium.deployment, task_id), transcripts
    )
    assert [c.name for c in checks if not c.passed] == []
    pairwise = next(c for c in checks if c.name == "transcripts_agree_pairwise")
    assert pairwise.evidence["messages"] > 6
    # Each node's transcript is also checkpointed into AnchorLog.
    for node in nodes.values():
        from ledger.transcript import evidence_log_id

        size, root = node.clients.anchors.latest(evidence_log_id(node.runner.address, task_id))
        assert (size, root) == (node.evidence.size(task_id), node.evidence.root(task_id))


def test_a_node_with_other_data_refuses_on_chain(
    network: dict[str, Any], consortium: Consortium, tmp_path: Path
) -> None:
    nodes: dict[str, Node] = network["nodes"]
    # bank-b loses its local copy: it must refuse with DATASET_MISMATCH, on chain.
    dataset_dir = nodes["bank-b"].runner.datasets.root
    for path in sorted(dataset_dir.rglob("rows.parquet")):
        table = pq.read_table(path)
        accounts = table.column("account").to_pylist()
        accounts[0] = "XYZ" + accounts[0]
        pq.write_table(table.set_column(0, "account", pa.array(accounts)), path)
    service: NodeService = network["service"]
    created = service.create_task("req-2", stats.NAME, PARAMS, network["providers"], 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert nodes["bank-b"].runner.consider(task_id) is False
    assert service.clients.tasks.state(task_id) == TaskState.FAILED
    history = task_history(consortium.chain, consortium.deployment, task_id)
    failed = [e for e in history.task_events if e.name == "TaskFailed"]
    assert [int(e.args["reasonCode"]) for e in failed] == [Reason.DATASET_MISMATCH]
    assert str(failed[0].args["reporter"]) == nodes["bank-b"].runner.address


def test_refusal_is_recorded_with_a_reason(network: dict[str, Any], consortium: Consortium) -> None:
    nodes: dict[str, Node] = network["nodes"]
    service: NodeService = network["service"]
    nodes["regulator"].runner.algorithms = {}  # its code no longer hashes to the approved digest
    created = service.create_task("req-3", stats.NAME, PARAMS, network["providers"], 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert drive(nodes, task_id, service.clients) == TaskState.FAILED
    history = task_history(consortium.chain, consortium.deployment, task_id)
    failed = [e for e in history.task_events if e.name == "TaskFailed"]
    assert [int(e.args["reasonCode"]) for e in failed] == [Reason.ALGORITHM_DIGEST_MISMATCH]
    record = nodes["regulator"].state.get(task_id)
    assert record is not None and record.error is not None
    assert record.error.reason == "ALGORITHM_DIGEST_MISMATCH"


def test_overdue_tasks_are_expired_not_left_running(
    network: dict[str, Any], consortium: Consortium
) -> None:
    nodes: dict[str, Node] = network["nodes"]
    service: NodeService = network["service"]
    created = service.create_task("req-4", stats.NAME, PARAMS, network["providers"], 60)
    task_id = bytes.fromhex(created["taskId"][2:])
    # Only bank-a's node is up: the providers never accept.
    nodes["bank-a"].runner.poll_once()
    assert service.clients.tasks.state(task_id) == TaskState.CREATED
    tester = consortium.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.time_travel(created["deadline"] + 1)
    nodes["bank-a"].runner.poll_once()  # its poll notices the deadline passed
    assert service.clients.tasks.state(task_id) == TaskState.EXPIRED
    nodes["bank-a"].runner.poll_once()  # and records the chain's verdict locally
    record = nodes["bank-a"].state.get(task_id)
    assert record is not None and record.phase == "failed"
    assert record.error is not None and "EXPIRED" in record.error.reason


def test_a_stalled_peer_fails_the_task_with_a_named_reason(
    network: dict[str, Any], consortium: Consortium
) -> None:
    """The regulator accepts, then never speaks: the others give up with PEER_TIMEOUT."""
    nodes: dict[str, Node] = network["nodes"]
    for node in nodes.values():
        node.runner.protocol_timeout = 1.5
    service: NodeService = network["service"]
    created = service.create_task("req-5", stats.NAME, PARAMS, network["providers"], 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert nodes["regulator"].runner.consider(task_id) is True  # accepts, then stalls
    active = {n: nodes[n] for n in ("bank-a", "bank-b")}
    assert drive(active, task_id, service.clients) == TaskState.FAILED
    history = task_history(consortium.chain, consortium.deployment, task_id)
    failed = [e for e in history.task_events if e.name == "TaskFailed"]
    assert [Reason(int(e.args["reasonCode"])) for e in failed] == [Reason.PEER_TIMEOUT]
    for name in active:
        record = nodes[name].state.get(task_id)
        assert record is not None and record.phase == "failed"


def test_parameters_for_another_schema_are_refused(
    network: dict[str, Any], consortium: Consortium
) -> None:
    nodes: dict[str, Node] = network["nodes"]
    service: NodeService = network["service"]
    for node in nodes.values():
        node.runner.protocol_timeout = 6.0  # the aggregator waits in vain for inputs
    params = {**PARAMS, "columns": [*COLUMNS, {"name": "region", "type": "string"}]}
    # The creating node refuses it (tests/node/test_task_prechecks.py); a creator that
    # skips that check still meets each provider's own refusal.
    task_id = network["net"].create_unchecked("req-6", params)
    assert drive(nodes, task_id, service.clients) == TaskState.FAILED
    history = task_history(consortium.chain, consortium.deployment, task_id)
    failed = [e for e in history.task_events if e.name == "TaskFailed"]
    assert [Reason(int(e.args["reasonCode"])) for e in failed] == [Reason.DATASET_MISMATCH]
