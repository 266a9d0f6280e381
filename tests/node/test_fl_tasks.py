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
Under differential privacy (datasets of classification 3) the task runs with distributed
noise, records the epsilon of each round, equals the library's noisy rounds with the same
noise draws, and every provider meters the epsilon against its grant, so a task beyond
the grant's budget is refused on chain.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from auditor.replay import task_history
from auditor.verifier import Check, ResultDisclosure, TaskHistory, verify_task
from auditor.verify.checkpoints import (
    check_fl_round_chain,
    final_model_problem,
    genesis_problem,
    links_problem,
    receipts_problem,
)
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.events import Event
from ledger.ids import InvalidInput, dataset_id_for, hex32, name_id, task_id_for
from ledger.keys import new_account
from ledger.rows import decimal_text
from ledger.task_params import ParamsEnvelope
from ledger.transactions import Sender
from node.algorithms import fl_horizontal as fl
from node.algorithms import output_policy
from node.algorithms.package import package_of
from node.crypto import dp_noise
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
    classification: int = 2,
) -> None:
    """A node of ``org`` holding ``data`` as its dataset (at ``classification``),
    granted to bank-a."""
    consortium = net.consortium
    node = net.add_node(name, org, account, clients, protocol_timeout=timeout)
    path = net.tmp / name / "slice.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_slice(path, *data, extra_column=extra_column)
    imported = import_csv(path)
    dataset_name = name_id("dataset", f"{name}/fl-slice")
    dataset_id = dataset_id_for(consortium.orgs[org].org_id, dataset_name)
    node.runner.datasets.save(dataset_id, 1, imported, classification)
    clients.datasets.register(
        dataset_name,
        DatasetVersion(
            imported.merkle_root, imported.row_count, imported.schema_digest, classification
        ),
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
    consortium: Consortium,
    tmp: Path,
    odd_one: str | None = None,
    timeout: float = 10.0,
    classification: int = 2,
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
            net,
            name,
            org,
            account,
            clients,
            part,
            extra_column=name == odd_one,
            timeout=timeout,
            classification=classification,
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

    # The auditor accepts the task (lifecycle with checkpoints, transcripts agree), and
    # its round-chain check runs every rule once given the parameters and the result.
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    history = task_history(consortium.chain, consortium.deployment, task_id)
    checks = verify_task(history, transcripts)
    assert [c.name for c in checks if not c.passed] == []
    chain_check = next(c for c in checks if c.name == "fl_round_chain")
    assert chain_check.status == "pass", chain_check
    assert chain_check.evidence["rulesPassed"] == ["numbering", "models sent between rounds"]
    assert len(chain_check.evidence["transcriptsJudged"]) == 4
    answer = net.creator.task_result(created["taskId"])
    checks = verify_task(
        history,
        transcripts,
        ParamsEnvelope.from_json(answer["params"]),
        result=ResultDisclosure.from_json(answer),
    )
    assert [c.name for c in checks if not c.passed] == []
    chain_check = next(c for c in checks if c.name == "fl_round_chain")
    assert chain_check.evidence["rulesPassed"] == [
        "numbering",
        "models sent between rounds",
        "result commitment",
        "links recomputed",
        "chain head",
        "genesis",
        "final model",
    ], chain_check
    for node in net.nodes.values():
        record = node.state.get(task_id)
        assert record is not None and record.phase == "done", (node.name, record)


def _with_checkpoints(
    history: TaskHistory, change: Callable[[list[Event]], list[Event]]
) -> TaskHistory:
    """The history with its CheckpointAnchored events replaced by ``change(them)``, at
    the first one's place: the events as a forger (or a tampered runner) would show."""
    kept = [e for e in history.all_events if e.name != "CheckpointAnchored"]
    ours = [e for e in history.all_events if e.name == "CheckpointAnchored"]
    at = history.all_events.index(ours[0])
    before = [e for e in history.all_events[:at] if e.name != "CheckpointAnchored"]
    return TaskHistory(
        history.task_id, [*before, *change(ours), *kept[len(before) :]], history.timestamps
    )


def _set(event: Event, **args: object) -> Event:
    return dataclasses.replace(event, args={**event.args, **args})


def test_the_round_chain_check_fails_on_each_alteration(
    consortium: Consortium, tmp_path: Path
) -> None:
    """`fl_round_chain` on a real run: each alteration of the checkpoints or of a
    transcript's received models fails it, naming the round."""
    net = fl_network(consortium, tmp_path)
    created = net.creator.create_task("fl-2", fl.NAME, params_json(), net.providers, 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert net.drive(task_id) == TaskState.COMPLETED
    history = task_history(consortium.chain, consortium.deployment, task_id)
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    answer = net.creator.task_result(created["taskId"])
    params = ParamsEnvelope.from_json(answer["params"])
    disclosure = ResultDisclosure.from_json(answer)
    aggregator = net.nodes["bank-a"].runner.address
    provider = net.nodes["bank-b-2"].runner.address

    def verdict(
        h: TaskHistory = history,
        given: dict[str, Any] = transcripts,
        result: ResultDisclosure | None = disclosure,
    ) -> Check:
        return check_fl_round_chain(h, given, params, result)

    assert verdict().status == "pass", verdict()

    # (a) one anchored checkpoint altered (a tampered runner anchoring another digest):
    # the recomputed link differs at that round.
    forged = _with_checkpoints(
        history,
        lambda cps: [
            _set(e, checkpointDigest=bytes(31) + b"\1") if i == 2 else e for i, e in enumerate(cps)
        ],
    )
    check = verdict(forged)
    assert check.failed and check.detail.startswith("round 2: anchored checkpoint"), check
    # Only the round's number altered: a duplicate round, then a gap.
    check = verdict(
        _with_checkpoints(history, lambda cps: [*cps[:3], _set(cps[3], round=2), cps[4]])
    )
    assert check.failed and "round 2 is anchored twice" in check.detail, check
    # Anchored by another participant's node.
    check = verdict(
        _with_checkpoints(history, lambda cps: [*cps[:1], _set(cps[1], node=provider), *cps[2:]])
    )
    assert check.failed and check.detail.startswith("round 1 was anchored by"), check

    # (b) a round missing: in the middle (gap), or the last one (too few for the
    # parameters; without them, the providers' transcripts hold a model the chain ends
    # before).
    check = verdict(_with_checkpoints(history, lambda cps: [*cps[:3], *cps[4:]]))
    assert check.failed and check.detail.startswith("round 3 is missing"), check
    short = _with_checkpoints(history, lambda cps: cps[:-1])
    check = verdict(short)
    assert check.failed and check.detail.startswith("round 4 is missing"), check
    check = check_fl_round_chain(short, transcripts)
    assert check.failed and check.detail.startswith("round 3: the aggregator sent"), check

    # (c) a transcript's received model altered: fails the transcript rule, naming the
    # round and the provider. (Through `verify_task` the altered transcript no longer
    # hashes to its anchored root: `evidence_roots_match` fails and this check leaves
    # the transcript out, so the rule is applied to it directly.)
    steps = [e.step for e in transcripts[provider]]
    at = steps.index(f"{fl.STEP_MODEL}/1")
    altered = list(transcripts[provider])
    altered[at] = dataclasses.replace(altered[at], digest=bytes(32))
    players = [p["node"] for p in net.providers]
    assert receipts_problem(aggregator, players, ROUNDS, transcripts, True) is None
    problem = receipts_problem(
        aggregator, players, ROUNDS, {**transcripts, provider: altered}, True
    )
    assert problem is not None and problem.startswith(f"round 1: {provider} recorded receiving"), (
        problem
    )
    dropped = [e for i, e in enumerate(transcripts[provider]) if i != at]
    problem = receipts_problem(
        aggregator, players, ROUNDS, {**transcripts, provider: dropped}, True
    )
    assert problem is not None and problem.startswith(f"round 1: {provider} never recorded"), (
        problem
    )
    checks = verify_task(history, {**transcripts, provider: altered}, params, result=disclosure)
    assert {c.name for c in checks if c.failed} >= {"evidence_roots_match"}
    left_out = next(c for c in checks if c.name == "fl_round_chain").evidence
    assert provider.lower() in left_out["transcriptsNotJudged"], left_out

    # The disclosed result must open the aggregator's commitment and agree with the chain.
    body = dict(disclosure.result)
    check = verdict(result=ResultDisclosure({**body, "chain_head": "00" * 32}, disclosure.salt))
    assert check.failed and check.detail.startswith("the disclosed result and salt commit"), check
    rounds = list(body["rounds"])
    models = [bytes.fromhex(r["model_digest"]) for r in rounds]
    links = [bytes.fromhex(r["round_digest"]) for r in rounds]
    genesis = bytes.fromhex(body["genesis"])
    assert links_problem(genesis, models, links) is None
    problem = links_problem(genesis, [*models[:3], bytes(32), models[4]], links)
    assert problem is not None and problem.startswith("round 3: anchored checkpoint"), problem
    problem = links_problem(bytes(32), models, links)
    assert problem is not None and problem.startswith("round 0:"), problem
    parsed = fl.FLParams.from_json(params.params)
    assert genesis_problem(parsed, task_id, players, aggregator, None, genesis) is None
    problem = genesis_problem(parsed, task_id, players, aggregator, 0.5, genesis)
    assert problem is not None and "derive" in problem, problem
    other = fl.FLParams.from_json({**params.params, "seed": 1})
    assert genesis_problem(other, task_id, players, aggregator, None, genesis) is not None
    assert final_model_problem(parsed, body, models[-1]) is None
    weights = [*body["weights"]]
    weights[0] = float(np.nextafter(weights[0], np.inf))
    problem = final_model_problem(parsed, {**body, "weights": weights}, models[-1])
    assert problem is not None and problem.startswith("the final weights hash to"), problem
    problem = final_model_problem(parsed, body, models[-2])
    assert problem is not None and problem.startswith("round 4: the final weights"), problem


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


# Differential privacy under the runner: level-3 datasets, two features, two rounds.
DP_FEATURES = ["f20", "f27"]  # worst radius, worst concave points
DP_ROUNDS = 2
NOISE_SEED = 0


def dp_params_json() -> dict[str, Any]:
    return {
        **params_json(),
        "features": DP_FEATURES,
        "rounds": DP_ROUNDS,
        "clip_norm": 2.0,  # about the norm of one provider's unclipped update here
        "threshold": 3,  # every provider must contribute: the noise is drawn for three
    }


def test_differential_privacy_noise_and_budget_per_grant(
    consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task over datasets of classification 3 (epsilon 1 per query, 5 per grant) runs
    with distributed noise: each provider adds its share of discrete-Laplace noise inside
    the secure sum, the task's epsilon split evenly over the rounds and recorded per
    round; the model equals the library's noisy rounds with the same noise draws, differs
    from the noiseless model, and every provider metered the epsilon against its grant,
    so a task beyond the grant's budget is refused on chain.

    The noise shares come from seeded generators here (``dp_noise.new_rng`` patched; a
    node draws them from the OS CSPRNG), so the run is reproducible and the in-process
    replay can draw the same shares: every provider draws one generator per round, and
    the shares are summed, so which provider gets which seed does not change the total.

    Accuracy: the unit of privacy is a provider's whole update, so with three providers
    the noise is as large as the signal. Per round (epsilon 1/2, sensitivity sqrt(3) * C
    for the three parameters) each coordinate of the averaged update gets noise of
    standard deviation sqrt(2) * 2 * sqrt(3) * C / 3 ~ 1.6 C, against an update clipped
    to norm C. Hence two features (the noise grows with sqrt(d)) and one seeded draw:
    over 500 draws of this configuration the accuracy's median is about 0.76, and fewer
    than half reach 0.80, so no useful bound holds for every draw. Asserted for this
    draw: at least 0.85, i.e. within 10 points of the noiseless model's 0.94 and far
    above the majority class's 0.63; the test shows the mechanism and its accounting,
    not that provider-level DP with three providers gives a good model.
    """
    counter = itertools.count()
    lock = threading.Lock()

    def seeded_rng() -> np.random.Generator:
        with lock:
            return np.random.default_rng([NOISE_SEED, next(counter)])

    monkeypatch.setattr(dp_noise, "new_rng", seeded_rng)
    net = fl_network(consortium, tmp_path, classification=3, timeout=5.0)
    body = dp_params_json()
    created = net.creator.create_task("fl-dp", fl.NAME, body, net.providers, 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    assert net.drive(task_id) == TaskState.COMPLETED
    result = net.creator.task_result(created["taskId"])["result"]

    # The level's epsilon, split evenly over the rounds; each round records its share.
    policy = output_policy.effective([3])
    assert policy.epsilon_per_query == 1.0 and policy.epsilon_per_grant == 5.0
    assert result["policy"] == policy.to_json()
    assert [r["epsilon"] for r in result["rounds"]] == [0.5] * DP_ROUNDS
    assert result["epsilon_spent"] == policy.epsilon_per_query
    # Weights are 1 under DP (a row count would change the sensitivity).
    assert [r["total_weight"] for r in result["rounds"]] == [3] * DP_ROUNDS

    # Exactly the library's noisy rounds with the same shares: no more, no less noise.
    params = fl.FLParams.from_json(body)
    aggregator = net.nodes["bank-a"].runner.address
    providers = [p["node"] for p in net.providers]
    idx = [FEATURES.index(f) for f in DP_FEATURES]
    data = {node: (x[:, idx], y) for node, (x, y) in slices_by_node(net).items()}
    plan = fl.plan_for(params, providers, aggregator, task_id, policy)
    assert plan.epsilon_per_round == 0.5
    current, previous = plan.initial_params(), horizontal.genesis_digest(plan)
    draws = itertools.count()
    for r in range(DP_ROUNDS):
        vectors = [
            horizontal.contribution(
                plan, r, current, x, y, name, 3, np.random.default_rng([NOISE_SEED, next(draws)])
            )
            for name, (x, y) in data.items()
        ]
        current = horizontal.apply_totals(
            plan, current, [sum(c) for c in zip(*vectors, strict=True)]
        )
        previous = horizontal.chain_digest(previous, model_digest(plan.model, current), r)
        assert result["rounds"][r]["round_digest"] == previous.hex()
    weights = np.array(result["weights"], dtype=np.float64)
    assert weights.tobytes() == current.tobytes()
    assert result["genesis"] == horizontal.genesis_digest(plan).hex()

    # Not the noiseless model, but still a usable one (see the docstring for the bound).
    noiseless, _ = fl.replay(params, data, aggregator, task_id)
    assert not np.allclose(weights, noiseless, rtol=0.05, atol=0.05), (weights, noiseless)
    split = breast_cancer()
    x_test = (quantised(split.x_test) / float(10**SCALE))[:, idx]
    acc = accuracy(plan.model.logits(weights, x_test), split.y_test)
    plain_acc = accuracy(plan.model.logits(noiseless, x_test), split.y_test)
    assert acc >= 0.85, (acc, plain_acc)
    assert plain_acc >= 0.93, plain_acc

    # The auditor accepts the task, the round chain's genesis binding the per-round epsilon.
    answer = net.creator.task_result(created["taskId"])
    transcripts = {n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()}
    history = task_history(consortium.chain, consortium.deployment, task_id)
    checks = verify_task(
        history,
        transcripts,
        ParamsEnvelope.from_json(answer["params"]),
        result=ResultDisclosure.from_json(answer),
    )
    assert [c.name for c in checks if not c.passed] == []

    # Every provider metered the task's epsilon against its grant.
    grants = {p["node"]: bytes.fromhex(p["grantId"][2:]) for p in net.providers}
    for name in ("bank-b", "bank-b-2", "regulator"):
        runner = net.nodes[name].runner
        assert runner._queries.epsilon_spent(grants[runner.address]) == 1.0, name
    # bank-b's grant has answered four earlier DP queries besides (recorded as the runner
    # records them): with this task's, the budget of 5 is spent, so the next is refused.
    bank_b = net.nodes["bank-b"].runner
    slot = next(p for p in net.providers if p["node"] == bank_b.address)
    for n in range(4):
        bank_b._queries.record(
            task_id=n.to_bytes(32, "big"),
            dataset_id=bytes.fromhex(slot["datasetId"][2:]),
            version=1,
            grantee_org=consortium.orgs["bank-a"].org_id,
            grant_id=grants[bank_b.address],
            selection=None,
            selected=len(data[bank_b.address][1]),
            epsilon=policy.epsilon_per_query,
        )
    assert bank_b._queries.epsilon_spent(grants[bank_b.address]) == policy.epsilon_per_grant
    again = net.creator.create_task("fl-dp-2", fl.NAME, body, net.providers, 3600)
    again_id = bytes.fromhex(again["taskId"][2:])
    assert net.drive(again_id) == TaskState.FAILED
    reason, reporter = net.failure(again_id)
    assert (reason, reporter.lower()) == (Reason.PRIVACY_BUDGET_EXHAUSTED, bank_b.address.lower())
    assert bank_b._queries.epsilon_spent(grants[bank_b.address]) == policy.epsilon_per_grant
    assert checkpoints(consortium, again_id) == []
