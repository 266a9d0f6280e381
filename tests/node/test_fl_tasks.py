"""Horizontal FedAvg run by the task runner: three providers, the consumer aggregates.

Real chain (eth-tester), real stores, the real secure sum each round; only the
transport is in-memory (``tests/node/runner_harness.py``). Each provider holds a slice
of scikit-learn's breast-cancer training set (``tests/node/fl/data.py``) as a dataset of
decimal feature columns (6 digits after the point) and an integer label. Checked: the
task completes; the consumer's model equals, bit for bit, the same rounds run in-process
by ``node/fl/horizontal`` (secure sum on an in-memory network, and the plaintext sum of
the same encoded updates) on the same rows; its test accuracy is within 1 percentage
point of centralised scikit-learn; one checkpoint per round is on chain, equal to the
result's chained digests; a provider whose dataset has other columns is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from auditor.replay import task_history
from auditor.verifier import verify_task
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.ids import InvalidInput, dataset_id_for, hex32, name_id, task_id_for
from ledger.keys import new_account
from ledger.rows import decimal_text
from ledger.task_params import ParamsEnvelope
from ledger.transactions import Sender
from node.algorithms import fl_horizontal as fl
from node.algorithms.package import package_of
from node.datasets import import_csv
from node.fl import horizontal
from node.fl.models import model_digest
from node.service import NodeService
from node.task_prechecks import pending_time
from tests.conftest import FUNDING, Consortium
from tests.node.fl.data import Array, accuracy, breast_cancer, horizontal_parts
from tests.node.fl.harness import run_fedavg
from tests.node.runner_harness import Network

SCALE = 6
FEATURES = [f"f{j:02d}" for j in range(30)]
COLUMNS: list[dict[str, Any]] = [
    *({"name": f, "type": "decimal", "scale": SCALE} for f in FEATURES),
    {"name": "label", "type": "integer"},
]
ROUNDS = 5


def params_json() -> dict[str, Any]:
    return {
        "columns": COLUMNS,
        "features": FEATURES,
        "label": "label",
        "model": "logistic-regression",
        "rounds": ROUNDS,
        "local_steps": 10,
        "learning_rate": 1.0,
        "l2": breast_cancer().l2,
        "clip_norm": 10.0,
        "seed": 0,
    }


def quantised(x: Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Features as the dataset stores them: integers x 10^-SCALE."""
    return np.rint(x * 10**SCALE).astype(np.int64)


def write_slice(path: Path, x: Array, y: Array, extra_column: bool = False) -> None:
    header = [*FEATURES, "label", *(["branch"] if extra_column else [])]
    lines = [",".join(header)]
    for row, label in zip(quantised(x).tolist(), y.tolist(), strict=True):
        cells = [decimal_text(v, SCALE) for v in row] + [str(int(label))]
        lines.append(",".join(cells + (["7"] if extra_column else [])))
    path.write_text("\n".join(lines) + "\n")


def add_provider(
    net: Network,
    name: str,
    org: str,
    account: LocalAccount,
    clients: Clients,
    data: tuple[Array, Array],
    extra_column: bool = False,
    timeout: float = 10.0,
) -> None:
    """A node of ``org`` holding ``data`` as its dataset, granted to bank-a."""
    consortium = net.consortium
    node = net.add_node(name, org, account, clients, protocol_timeout=timeout)
    path = net.tmp / name / "slice.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_slice(path, *data, extra_column=extra_column)
    imported = import_csv(path)
    dataset_name = name_id("dataset", f"{name}/fl-slice")
    dataset_id = dataset_id_for(consortium.orgs[org].org_id, dataset_name)
    node.runner.datasets.save(dataset_id, 1, imported, 2)
    clients.datasets.register(
        dataset_name,
        DatasetVersion(imported.merkle_root, imported.row_count, imported.schema_digest, 2),
    )
    now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])
    grant = consortium.orgs[org].clients.authorizations.grant(
        dataset_id, consortium.orgs["bank-a"].org_id, name_id("purpose", "fl"), now + 86_400, 5
    )
    net.providers.append(
        {
            "node": account.address,
            "datasetId": hex32(dataset_id),
            "datasetVersion": 1,
            "grantId": hex32(grant),
        }
    )


def fl_network(
    consortium: Consortium, tmp: Path, odd_one: str | None = None, timeout: float = 10.0
) -> Network:
    """bank-a consumes (aggregator); bank-b's two nodes and the regulator provide."""
    digest = package_of(fl).digest
    orgs = consortium.orgs
    orgs["bank-a"].clients.algorithms.propose(digest, fl.NAME, fl.VERSION, AlgorithmKind.FL)
    orgs["bank-b"].clients.algorithms.approve(digest)
    # A second node of bank-b, so three providers come from organisations independent
    # of the consumer (the consortium fixture has three organisations).
    second = new_account()
    consortium.chain.fund(second.address, FUNDING)
    orgs["bank-b"].clients.consortium.register_node(
        second.address, "bank-b-2.example:7000", name_id("cert", "bank-b-2")
    )
    second_clients = Clients.bind(
        consortium.chain, consortium.deployment, Sender(consortium.chain, second)
    )
    net = Network(consortium, tmp)
    net.add_node(
        "bank-a",
        "bank-a",
        orgs["bank-a"].node,
        orgs["bank-a"].node_clients,
        protocol_timeout=timeout,
    )
    seats = [
        ("bank-b", "bank-b", orgs["bank-b"].node, orgs["bank-b"].node_clients),
        ("bank-b-2", "bank-b", second, second_clients),
        ("regulator", "regulator", orgs["regulator"].node, orgs["regulator"].node_clients),
    ]
    slices = horizontal_parts(breast_cancer(), len(seats))
    for (name, org, account, clients), part in zip(seats, slices, strict=True):
        add_provider(
            net, name, org, account, clients, part, extra_column=name == odd_one, timeout=timeout
        )
    for node in net.nodes.values():
        node.runner.algorithms = {digest: fl}
    net.service = NodeService(
        orgs["bank-a"].node_clients,
        orgs["bank-a"].org_id,
        net.nodes["bank-a"].runner.datasets,
        consortium.deployment.first_block,
        net.nodes["bank-a"].state,
        {fl.NAME: fl},
    )
    return net


def slices_by_node(net: Network) -> dict[str, tuple[Array, Array]]:
    """What each provider trains on: its slice as the dataset holds it."""
    parts = horizontal_parts(breast_cancer(), len(net.providers))
    return {
        p["node"]: (quantised(x) / float(10**SCALE), y)
        for p, (x, y) in zip(net.providers, parts, strict=True)
    }


def checkpoints(consortium: Consortium, task_id: bytes) -> list[tuple[str, int, bytes]]:
    history = task_history(consortium.chain, consortium.deployment, task_id)
    return [
        (str(e.args["node"]), int(e.args["round"]), bytes(e.args["checkpointDigest"]))
        for e in history.task_events
        if e.name == "CheckpointAnchored"
    ]


def test_params_round_trip_and_name_bad_fields() -> None:
    parsed = fl.FLParams.from_json(params_json())
    assert fl.FLParams.from_json(parsed.to_json()) == parsed
    assert parsed.to_json()["l2"] == breast_cancer().l2
    mlp = fl.FLParams.from_json({**params_json(), "model": "mlp", "hidden": 4})
    assert fl.FLParams.from_json(mlp.to_json()) == mlp
    assert mlp.network().n_params == 30 * 4 + 2 * 4 + 1
    bad = {
        "label": "f00",  # a decimal column
        "features": ["nope"],
        "rounds": 0,
        "learning_rate": float("nan"),
        "l2": -1.0,
        "clip_norm": 0,
        "model": "forest",
        "seed": -1,
        "hidden": 4,  # not an mlp
        "surprise": 1,
    }
    for name, value in bad.items():
        with pytest.raises(fl.InvalidParams) as refused:
            fl.FLParams.from_json({**params_json(), name: value})
        assert refused.value.field == name, (name, refused.value)
    with pytest.raises(fl.InvalidParams, match="also a feature"):
        fl.FLParams.from_json({**params_json(), "label": "label", "features": ["label"]})


def test_fedavg_task_completes_with_the_library_model(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = fl_network(consortium, tmp_path)
    created = net.creator.create_task("fl-1", fl.NAME, params_json(), net.providers, 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert net.drive(task_id) == TaskState.COMPLETED
    result = net.creator.task_result(created["taskId"])["result"]
    aggregator = net.nodes["bank-a"].runner.address

    # The library's rounds in-process on the same rows, seeds and task: bit-identical.
    params = fl.FLParams.from_json(params_json())
    data = slices_by_node(net)
    plan = fl.plan_for(params, [p["node"] for p in net.providers], aggregator, task_id)
    runs = run_fedavg(plan, data)
    expected = runs[-1].result
    weights = np.array(result["weights"], dtype=np.float64)
    assert weights.tobytes() == expected.params.tobytes()
    assert result["model_digest"] == expected.model_digest.hex()
    assert result["genesis"] == horizontal.genesis_digest(plan).hex()
    assert [r["round_digest"] for r in result["rounds"]] == [
        run.result.round_digest.hex() for run in runs
    ]
    assert result["chain_head"] == expected.round_digest.hex()
    plain, links = fl.replay(params, data, aggregator, task_id)
    assert plain.tobytes() == weights.tobytes()
    assert [link.hex() for link in links] == [r["round_digest"] for r in result["rounds"]]
    assert model_digest(plan.model, weights).hex() == result["model_digest"]
    for r in result["rounds"]:
        assert sorted(r["contributors"]) == sorted(data)
        assert r["total_weight"] == sum(len(y) for _, y in data.values())

    # As good as centralised scikit-learn on the held-out rows.
    split = breast_cancer()
    x_test = quantised(split.x_test) / float(10**SCALE)
    acc = accuracy(plan.model.logits(weights, x_test), split.y_test)
    assert abs(acc - split.baseline_accuracy) <= 0.01, (acc, split.baseline_accuracy)

    # One checkpoint per round, anchored by the aggregator: the chained digests.
    anchored = checkpoints(consortium, task_id)
    assert [(node.lower(), r) for node, r, _ in anchored] == [
        (aggregator.lower(), r) for r in range(ROUNDS)
    ]
    assert [d.hex() for _, _, d in anchored] == [r["round_digest"] for r in result["rounds"]]

    # The auditor accepts the task (lifecycle with checkpoints, transcripts agree).
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    checks = verify_task(
        task_history(consortium.chain, consortium.deployment, task_id), transcripts
    )
    assert [c.name for c in checks if not c.passed] == []
    for node in net.nodes.values():
        record = node.state.get(task_id)
        assert record is not None and record.phase == "done", (node.name, record)


def test_a_provider_with_other_columns_is_refused(consortium: Consortium, tmp_path: Path) -> None:
    net = fl_network(consortium, tmp_path, odd_one="regulator")
    odd = net.nodes["regulator"].runner.address
    # The creating node's pre-check names the provider before anything reaches the chain.
    with pytest.raises(InvalidInput, match="columns differ from the registered schema"):
        net.creator.create_task("fl-odd", fl.NAME, params_json(), net.providers, 3600)

    # A creator skipping the pre-checks: the provider's runner refuses to run on a
    # dataset whose schema is not the task's, and fails the task on chain.
    service = net.creator
    assert service.state is not None
    request_key = name_id("task", "fl-odd-unchecked")
    task_id = task_id_for(service.org_id, request_key)
    parsed = fl.FLParams.from_json(params_json())
    envelope = ParamsEnvelope(parsed.to_json(), service.params_salt(task_id))
    slots = [Participant(service.clients.account)] + [
        Participant(
            p["node"],
            bytes.fromhex(p["datasetId"][2:]),
            p["datasetVersion"],
            bytes.fromhex(p["grantId"][2:]),
        )
        for p in net.providers
    ]
    now = pending_time(service.clients.tasks.chain.w3)
    service.clients.tasks.create(
        request_key, package_of(fl).digest, envelope.digest, now + 3600, slots
    )
    service.state.ensure(task_id, role="aggregator", params=envelope.to_json())
    assert net.drive(task_id) == TaskState.FAILED
    reason, reporter = net.failure(task_id)
    assert (reason, reporter.lower()) == (Reason.DATASET_MISMATCH, odd.lower())
    assert checkpoints(consortium, task_id) == []
