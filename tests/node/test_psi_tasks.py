"""PSI tasks driven by the chain through the node's runner and service (in one process).

Real chain (eth-tester), real SQLite stores and real cryptography; only the transport is
in memory. What is checked here is the task envelope around the PSI protocol: who may
sit in the requesting seat, what the creating node refuses before anything reaches the
chain, and that an approved run completes with every seat submitting the same hiding
commitment while only the requester holds the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.ids import InvalidInput, dataset_id_for, hex32, name_id, task_id_for
from ledger.task_params import ParamsEnvelope
from node.algorithms import psi, psi_fast, stats
from node.algorithms.identifiers import normalise
from node.algorithms.package import package_of
from node.dataset_store import DatasetStore
from node.datasets import import_csv
from node.evidence.store import EvidenceStore
from node.runner import TaskRunner
from node.service import NodeService
from node.state import TaskStateStore
from node.task_prechecks import pending_time
from tests.conftest import Consortium
from tests.node.runner_harness import Mesh, Network, Node

SHARED = [f"+86 139 {i:04d} {i:04d}" for i in range(12)]
ONLY_A = [f"139-{i:04d}-9999" for i in range(12, 20)]
ONLY_B = [f"(0086) 139{i:04d}8888" for i in range(20, 40)]


def _params(mode: str = "intersection", **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "identifier_kind": "phone",
        "requester_column": "phone",
        "responder_column": "phone",
        **extra,
    }


def _add(
    net: Network, name: str, phones: list[str], *, grant_to: str | None = "bank-a"
) -> dict[str, Any]:
    """A node of org ``name`` holding a `customers` dataset of ``phones``."""
    consortium = net.consortium
    org = consortium.orgs[name]
    base = net.tmp / name
    base.mkdir(parents=True, exist_ok=True)
    path = base / "customers.csv"
    path.write_text(
        "phone,exposure\n" + "".join(f"{p},{(i * 37) % 500 - 100}\n" for i, p in enumerate(phones))
    )
    data = import_csv(path, identifier_columns=["phone"])
    dataset_name = name_id("dataset", "customers")
    dataset_id = dataset_id_for(org.org_id, dataset_name)
    datasets = DatasetStore(base / "datasets")
    datasets.save(dataset_id, 1, data, 2)
    org.node_clients.datasets.register(
        dataset_name, DatasetVersion(data.merkle_root, data.row_count, data.schema_digest, 2)
    )
    slot: dict[str, Any] = {
        "node": org.node.address,
        "datasetId": hex32(dataset_id),
        "datasetVersion": 1,
    }
    if grant_to is not None and grant_to != name:
        now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])
        grant = org.clients.authorizations.grant(
            dataset_id, consortium.orgs[grant_to].org_id, name_id("purpose", "psi"),
            now + 86_400, 10,
        )  # fmt: skip
        slot["grantId"] = hex32(grant)
    state = TaskStateStore(f"sqlite:///{base / 'state.db'}")
    evidence = EvidenceStore(f"sqlite:///{base / 'evidence.db'}")
    runner = TaskRunner(
        address=org.node.address,
        clients=org.node_clients,
        datasets=datasets,
        state=state,
        evidence=evidence,
        algorithms={package_of(m).digest: m for m in (stats, psi, psi_fast)},
        open_channel=net.mesh.opener(org.node.address),
        first_block=consortium.deployment.first_block,
        protocol_timeout=20.0,
        account=org.node,
    )
    net.nodes[name] = Node(name, runner, state, evidence, org.node_clients)
    if name == "bank-a":
        net.service = NodeService(
            org.node_clients,
            org.org_id,
            datasets,
            consortium.deployment.first_block,
            state,
            {m.NAME: m for m in (stats, psi, psi_fast)},
        )
    return slot


@pytest.fixture
def net(consortium: Consortium, tmp_path: Path) -> tuple[Network, dict[str, dict[str, Any]]]:
    orgs = consortium.orgs
    for module, kind in (
        (psi, AlgorithmKind.PSI),
        (psi_fast, AlgorithmKind.PSI),
        (stats, AlgorithmKind.MPC),
    ):
        digest = package_of(module).digest
        orgs["bank-a"].clients.algorithms.propose(digest, module.NAME, module.VERSION, kind)
        orgs["bank-b"].clients.algorithms.approve(digest)
    network = Network(consortium, tmp_path, Mesh())
    slots = {
        "bank-a": _add(network, "bank-a", SHARED + ONLY_A),
        "bank-b": _add(network, "bank-b", SHARED + ONLY_B),
    }
    return network, slots


def _create(
    net: Network,
    slots: dict[str, dict[str, Any]],
    request: str,
    params: dict[str, Any],
    algorithm: str = psi.NAME,
) -> bytes:
    created = net.creator.create_task(
        request, algorithm, params, [slots["bank-b"]], 3600, dataset={"dataset": "customers"}
    )
    return bytes.fromhex(created["taskId"][2:])


def test_intersection_completes_and_only_the_requester_holds_the_result(
    net: tuple[Network, dict[str, dict[str, Any]]],
) -> None:
    network, slots = net
    task_id = _create(network, slots, "psi-1", _params())
    assert network.drive(task_id) == TaskState.COMPLETED
    expected = {normalise("phone", p) for p in SHARED}
    result = network.creator.task_result(hex32(task_id))["result"]
    assert result["intersection"] == sorted(expected)
    responder = network.nodes["bank-b"].state.get(task_id)
    assert responder is not None and responder.result_json is None
    seats = network.creator.clients.tasks.participants(task_id)
    assert seats[0].node == network.consortium.orgs["bank-a"].node.address
    assert seats[0].grant_id == bytes(32)  # its own data: no grant


def test_cardinality_below_min_group_is_suppressed(
    net: tuple[Network, dict[str, dict[str, Any]]],
) -> None:
    network, slots = net
    task_id = _create(network, slots, "psi-2", _params("cardinality", min_group_size=13))
    assert network.drive(task_id) == TaskState.COMPLETED
    result = network.creator.task_result(hex32(task_id))["result"]
    assert result["suppressed"] is True and result["cardinality"] is None
    task_id = _create(network, slots, "psi-3", _params("cardinality", min_group_size=12))
    assert network.drive(task_id) == TaskState.COMPLETED
    assert network.creator.task_result(hex32(task_id))["result"]["cardinality"] == 12


def test_requesting_seat_of_another_org_is_refused_by_the_responder(
    net: tuple[Network, dict[str, dict[str, Any]]],
) -> None:
    """bank-a puts bank-b's node in the requesting seat (straight to the contract,
    skipping its own node's checks): bank-b's node would compute a result for nobody
    who asked it, on the regulator's data granted to bank-a. It refuses on chain."""
    network, slots = net
    regulator = _add(network, "regulator", SHARED + ONLY_B)
    service = network.creator
    assert service.state is not None
    request_key = name_id("task", "psi-hijack")
    task_id = task_id_for(service.org_id, request_key)
    envelope = ParamsEnvelope(psi.PsiParams.from_json(_params()).to_json(), b"\x01" * 32)
    seats = [
        Participant(slots["bank-b"]["node"], bytes.fromhex(slots["bank-b"]["datasetId"][2:]), 1,
                    bytes.fromhex(slots["bank-b"]["grantId"][2:])),
        Participant(regulator["node"], bytes.fromhex(regulator["datasetId"][2:]), 1,
                    bytes.fromhex(regulator["grantId"][2:])),
    ]  # fmt: skip
    now = pending_time(service.clients.tasks.chain.w3)
    service.clients.tasks.create(
        request_key, package_of(psi).digest, envelope.digest, now + 3600, seats
    )
    assert network.drive(task_id, only=["bank-b", "regulator"]) == TaskState.FAILED
    reason, _ = network.failure(task_id)
    assert reason == Reason.PROTOCOL_ERROR
    record = network.nodes["bank-b"].state.get(task_id)
    assert record is not None and record.error is not None
    assert "creator organisation" in record.error.detail


def test_creation_refuses_what_the_seats_would_refuse(
    net: tuple[Network, dict[str, dict[str, Any]]],
) -> None:
    network, slots = net
    service = network.creator
    before = service.clients.tasks.chain.w3.eth.block_number
    with pytest.raises(InvalidInput, match="dataset") as missing:
        service.create_task("x1", psi.NAME, _params(), [slots["bank-b"]], 3600)
    assert missing.value.field == "dataset"
    stats_params = {
        "columns": [{"name": "phone", "type": "string", "identifier": True},
                    {"name": "exposure", "type": "integer"}],
        "value_column": "exposure",
    }  # fmt: skip
    with pytest.raises(InvalidInput) as extra:
        service.create_task("x2", stats.NAME, stats_params, [slots["bank-b"]], 3600,
                            dataset={"dataset": "customers"})  # fmt: skip
    assert extra.value.field == "dataset"
    with pytest.raises(InvalidInput) as column:
        service.create_task("x3", psi.NAME, _params(requester_column="mobile"),
                            [slots["bank-b"]], 3600, dataset={"dataset": "customers"})  # fmt: skip
    assert column.value.field == "params.requester_column"
    with pytest.raises(InvalidInput) as unknown:
        service.create_task("x4", psi.NAME, _params(), [slots["bank-b"]], 3600,
                            dataset={"dataset": "no-such-list"})  # fmt: skip
    assert unknown.value.field == "dataset.dataset"
    assert service.clients.tasks.chain.w3.eth.block_number == before  # nothing on chain


def test_a_node_without_the_fast_engine_refuses_at_acceptance(
    net: tuple[Network, dict[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """psi-rr22 where the engine's venv is missing: refused on chain before anything
    runs, naming what to install, rather than failing half-way through the protocol."""
    from node.fastpsi import driver

    monkeypatch.setenv(driver.PYTHON_ENV, "/nonexistent/python")
    network, slots = net
    task_id = _create(network, slots, "rr22-1", _params(), algorithm=psi_fast.NAME)
    assert network.drive(task_id) == TaskState.FAILED
    reason, _ = network.failure(task_id)
    assert reason == Reason.PROTOCOL_ERROR
    refused = [n.state.get(task_id) for n in network.nodes.values()]
    assert any(r is not None and r.error and "make fast-psi" in r.error.detail for r in refused)


def test_fast_mode_parameters_name_what_it_cannot_compute(
    net: tuple[Network, dict[str, dict[str, Any]]],
) -> None:
    network, slots = net
    with pytest.raises(InvalidInput) as mode:
        _create(network, slots, "rr22-2", _params("cardinality"), algorithm=psi_fast.NAME)
    assert mode.value.field == "params.mode" and "intersection only" in str(mode.value)
