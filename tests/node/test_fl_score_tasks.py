"""Batch scoring with a trained vertical model, run by the task runner
(node/algorithms/fl_score.py), after an fl-vertical training task between the same
nodes (the setting of ``tests/node/test_fl_vertical_tasks.py``: real chain, SQLite
stores, PSI and Paillier; in-memory transport).

Checked: the scores bank-a learns equal the plaintext sigmoid of both parties' kept
shares over the aligned rows; each party anchored the model it scored with, and that
anchor extends its own training chain to the link it anchored last; bank-b receives no
score. Written as a member would try to misuse it: a tampered kept share, a scoring
task whose seats are not the training task's, a training task that did not complete or
is of another algorithm: each is refused before any partial logit leaves a node.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auditor.replay import task_history
from auditor.verify.checkpoints import ResultDisclosure, result_commitment
from auditor.verify.history import TaskHistory
from auditor.verify.run import verify_task
from auditor.verify.scoring import check_scoring_model
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Reason, TaskState
from ledger.events import Event
from ledger.ids import dataset_id_for, hex32, name_id
from ledger.rows import decimal_text
from ledger.task_params import ParamsEnvelope
from node.algorithms import fl_horizontal as fl
from node.algorithms import fl_score, fl_vertical
from node.algorithms.identifiers import normalise
from node.algorithms.package import package_of
from node.datasets import import_csv
from node.fl.horizontal import chain_digest
from node.fl.models import sigmoid
from node.prior_task import gather as gather_prior_task
from tests.conftest import Consortium
from tests.node.fl.data import breast_cancer
from tests.node.runner_harness import Network
from tests.node.test_fl_tasks import FEATURES, SCALE, fl_network
from tests.node.test_fl_tasks import params_json as fl_params_json
from tests.node.test_fl_tasks import quantised as fl_quantised
from tests.node.test_fl_vertical_tasks import (
    SPLIT,
    _add,
    _create,
    _kept_share,
    net,
    quantised,
    training_sides,
    vertical_params,
)

__all__ = ["net"]  # the fixture, imported for pytest

Slots = dict[str, dict[str, Any]]


def _enable_scoring(network: Network) -> None:
    """Approve fl-score and let every node (and bank-a's service) run it."""
    orgs = network.consortium.orgs
    digest = package_of(fl_score).digest
    orgs["bank-a"].clients.algorithms.propose(
        digest, fl_score.NAME, fl_score.VERSION, fl_score.KIND
    )
    orgs["bank-b"].clients.algorithms.approve(digest)
    for node in network.nodes.values():
        node.runner.algorithms[digest] = fl_score
    network.creator.algorithms[fl_score.NAME] = fl_score  # type: ignore[index]


def _score_params(training: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "training_task": hex32(training),
        "identifier_kind": "text",
        "requester_column": "customer",
        "responder_column": "customer",
        **extra,
    }


def _score(network: Network, participants: list[dict[str, Any]], params: dict[str, Any]) -> bytes:
    created = network.creator.create_task(
        f"score-{len(network.mesh.networks)}",
        fl_score.NAME,
        params,
        participants,
        3600,
        dataset={"dataset": "customers"},
    )
    return bytes.fromhex(created["taskId"][2:])


def _anchored(network: Network, task_id: bytes) -> dict[str, list[bytes]]:
    history = task_history(network.consortium.chain, network.consortium.deployment, task_id)
    out: dict[str, list[bytes]] = {}
    for e in history.task_events:
        if e.name == "CheckpointAnchored":
            out.setdefault(str(e.args["node"]).lower(), []).append(
                bytes(e.args["checkpointDigest"])
            )
    return out


@pytest.fixture
def trained(net: tuple[Network, Slots]) -> tuple[Network, Slots, bytes]:
    network, slots = net
    training = _create(network, slots, "vfl-for-scoring", vertical_params(epochs=2))
    assert network.drive(training) == TaskState.COMPLETED
    _enable_scoring(network)
    return network, slots, training


def test_params_round_trip_and_name_bad_fields() -> None:
    good = _score_params(b"\x01" * 32)
    parsed = fl_score.ScoreParams.from_json(good)
    assert fl_score.ScoreParams.from_json(parsed.to_json()) == parsed
    bad = {
        "training_task": "0x1234",
        "identifier_kind": "shoe-size",
        "country": "999",
        "requester_column": "",
        "min_group_size": 0,
        "surprise": 1,
    }
    for name, value in bad.items():
        with pytest.raises(fl_vertical.InvalidParams) as refused:
            fl_score.ScoreParams.from_json({**good, name: value})
        assert refused.value.field == name, (name, refused.value)
    with pytest.raises(fl_vertical.InvalidParams) as missing:
        fl_score.ScoreParams.from_json({k: v for k, v in good.items() if k != "training_task"})
    assert missing.value.field == "training_task"


def test_scores_are_the_plaintext_model_over_the_aligned_rows_and_anchored(
    trained: tuple[Network, Slots, bytes],
) -> None:
    network, slots, training = trained
    task_id = _score(network, [slots["bank-b"]], _score_params(training))
    assert network.drive(task_id) == TaskState.COMPLETED
    result = network.creator.task_result(hex32(task_id))["result"]

    # Plaintext: both kept shares applied to the rows both hold, by normalised id.
    model = network.creator.task_result(hex32(training))["result"]
    b_share = _kept_share(network, "bank-b", training)
    split = breast_cancer()
    sides = training_sides()
    shared = sides.shared
    x = quantised(split.x_train)
    by_id = {normalise("text", f"Cust-{i:05d}"): i for i in shared}
    assert sorted(result["identifiers"]) == sorted(by_id)
    rows = [by_id[ident] for ident in result["identifiers"]]
    expected = sigmoid(
        x[rows, :SPLIT] @ np.array(model["weights"])
        + float(model["intercept"])
        + x[rows, SPLIT:] @ np.array(b_share["weights"])
    )
    np.testing.assert_allclose(result["scores"], expected, rtol=0, atol=1e-12)
    assert result["aligned_rows"] == len(shared)
    a_node = network.nodes["bank-a"].runner.address
    b_node = network.nodes["bank-b"].runner.address
    assert result["model"] == [
        {"party": a_node, "digest": model["share_digest"]},
        {"party": b_node, "digest": b_share["share_digest"]},
    ]

    # Each party anchored (the link its share extends, its share digest), and that
    # extends its own training chain to the last link it anchored there.
    scored, chains = _anchored(network, task_id), _anchored(network, training)
    for node in (a_node, b_node):
        extends, share = scored[node.lower()]
        links = chains[node.lower()]
        assert chain_digest(extends, share, len(links) - 1) == links[-1]
        assert extends == links[-2]
    assert scored[b_node.lower()][1].hex() == b_share["share_digest"]

    # bank-b received no score and nothing of the scoring step.
    sent = network.mesh.networks[task_id].sent
    to_b = [step for _, dst, step, _ in sent if dst == b_node]
    assert to_b and not [s for s in to_b if s.startswith("vfl-score/")], to_b


def _refused_before_scoring(network: Network, task_id: bytes) -> str:
    """The task failed on chain with PROTOCOL_ERROR, no partial logit was sent; the
    creator's recorded detail."""
    assert network.drive(task_id) == TaskState.FAILED
    reason, _ = network.failure(task_id)
    assert reason == Reason.PROTOCOL_ERROR
    sent = network.mesh.networks[task_id].sent
    assert not [
        step
        for _, _, step, payload in sent
        if step.startswith(("vfl-score/", "psi/"))
        and not (step == fl_score.STEP_MODEL and json.loads(payload).keys() == {"refused"})
    ]
    record = network.nodes["bank-a"].state.get(task_id)
    assert record is not None and record.error is not None
    return record.error.detail


def test_a_tampered_kept_share_is_refused_before_any_score(
    trained: tuple[Network, Slots, bytes],
) -> None:
    network, slots, training = trained
    # bank-b's operator edits the weights its node kept (to skew every score).
    kept = {"share": _kept_share(network, "bank-b", training)}
    kept["share"]["weights"][0] += 1.0
    with sqlite3.connect(network.tmp / "bank-b" / "state.db") as db:
        changed = db.execute(
            "UPDATE task_states SET result_json = ? WHERE task_id = ?",
            (json.dumps(kept), training),
        )
        assert changed.rowcount == 1
    task_id = _score(network, [slots["bank-b"]], _score_params(training))
    detail = _refused_before_scoring(network, task_id)
    assert "stopped the task" in detail, detail
    own = network.nodes["bank-b"].state.get(task_id)
    assert own is not None and own.error is not None
    assert "do not hash to the last epoch's share digest" in own.error.detail, own.error


def test_seats_other_than_the_training_tasks_are_refused(
    trained: tuple[Network, Slots, bytes],
) -> None:
    network, _slots, training = trained
    regulator = _add(network, "regulator", training_sides())
    network.nodes["regulator"].runner.algorithms[package_of(fl_score).digest] = fl_score
    task_id = _score(network, [regulator], _score_params(training))
    detail = _refused_before_scoring(network, task_id)
    assert "participants and seats are not this task's" in detail, detail


def test_an_alignment_below_the_minimum_group_size_scores_nothing(
    trained: tuple[Network, Slots, bytes],
) -> None:
    """A label holder asking to score fewer rows than the output policy allows (here:
    raising the minimum above the aligned count) gets no score: the task fails with
    GROUP_TOO_SMALL before any partial logit leaves the feature holder."""
    network, slots, training = trained
    aligned = len(training_sides().shared)
    params = _score_params(training, min_group_size=aligned + 1)
    task_id = _score(network, [slots["bank-b"]], params)
    assert network.drive(task_id) == TaskState.FAILED
    reason, _ = network.failure(task_id)
    assert reason == Reason.GROUP_TOO_SMALL
    sent = network.mesh.networks[task_id].sent
    assert not [step for _, _, step, _ in sent if step.startswith("vfl-score/")]
    # One row fewer than the minimum is refused; exactly the minimum is scored.
    task_id = _score(network, [slots["bank-b"]], _score_params(training, min_group_size=aligned))
    assert network.drive(task_id) == TaskState.COMPLETED
    result = network.creator.task_result(hex32(task_id))["result"]
    assert result["aligned_rows"] == aligned


def test_a_training_task_of_another_kind_or_unknown_is_refused(
    trained: tuple[Network, Slots, bytes],
) -> None:
    network, slots, training = trained
    task_id = _score(network, [slots["bank-b"]], _score_params(b"\x07" * 32))
    detail = _refused_before_scoring(network, task_id)
    assert "training task: no such task on chain" in detail, detail
    # A scoring task is not a training task: its id given as one is refused.
    first = _score(network, [slots["bank-b"]], _score_params(training))
    assert network.drive(first) == TaskState.COMPLETED
    task_id = _score(network, [slots["bank-b"]], _score_params(first))
    detail = _refused_before_scoring(network, task_id)
    assert "its algorithm is fl-score, not one of fl-vertical, fl-horizontal" in detail, detail


def _forged(history: TaskHistory, node: str, round_: int, digest: bytes) -> TaskHistory:
    """The history with ``node``'s checkpoint ``round_`` showing ``digest`` instead."""

    def change(e: Event) -> Event:
        if (
            e.name == "CheckpointAnchored"
            and str(e.args["node"]).lower() == node.lower()
            and e.args["round"] == round_
        ):
            return dataclasses.replace(e, args={**e.args, "checkpointDigest": digest})
        return e

    return TaskHistory(history.task_id, [change(e) for e in history.all_events], history.timestamps)


def test_the_auditor_checks_each_party_scored_with_its_trained_share(
    trained: tuple[Network, Slots, bytes],
) -> None:
    network, slots, training = trained
    task_id = _score(network, [slots["bank-b"]], _score_params(training))
    assert network.drive(task_id) == TaskState.COMPLETED
    answer = network.creator.task_result(hex32(task_id))
    envelope = ParamsEnvelope.from_json(answer["params"])
    disclosure = ResultDisclosure.from_json(answer)
    chain, deployment = network.consortium.chain, network.consortium.deployment
    history = task_history(chain, deployment, task_id)

    every = ["numbering", "training task", "models extend the training chains", "disclosed result"]
    good = check_scoring_model(history, envelope, disclosure)
    assert good.status == "pass" and good.evidence["rulesPassed"] == every, good
    # Without the parameters the training task is unknown: only numbering is judged.
    alone = check_scoring_model(history)
    assert alone.status == "pass" and alone.evidence["rulesPassed"] == ["numbering"], alone
    assert "--params" in alone.detail
    # The whole audit: every check passes, fl_round_chain does not apply.
    checks = {c.name: c for c in verify_task(history, {}, envelope, result=disclosure)}
    assert "fl_round_chain" not in checks
    assert checks["scoring_model"].status == "pass"

    b_node = network.nodes["bank-b"].runner.address
    a_node = network.nodes["bank-a"].runner.address
    # bank-b shows another share (one it did not train) as the one it scored with.
    other = b"\x55" * 32
    forged = check_scoring_model(_forged(history, b_node, 1, other), envelope, disclosure)
    assert forged.status == "fail" and b_node.lower() in forged.detail, forged
    assert "is not the last training link" in forged.detail
    # bank-a shows another link extended: the share no longer chains to its training.
    forged = check_scoring_model(_forged(history, a_node, 0, other), envelope, disclosure)
    assert forged.status == "fail" and a_node.lower() in forged.detail, forged

    # A disclosed result naming another share for bank-b (re-committed, as a creator
    # that lies in its own result would): its share digest is not the anchored one.
    lied = {**disclosure.result, "model": [dict(m) for m in disclosure.result["model"]]}
    lied["model"][1]["digest"] = other.hex()
    recommitted = _recommitted(history, a_node, lied, disclosure.salt)
    check = check_scoring_model(recommitted, envelope, ResultDisclosure(lied, disclosure.salt))
    assert check.status == "fail", check
    assert check.detail == f"the result's model digest of {b_node} is not the one it anchored"
    assert check.evidence["rulesPassed"] == every[:3]

    # Parameters naming another training task (here: the scoring task itself).
    params = {**envelope.params, "training_task": hex32(task_id)}
    wrong = ParamsEnvelope(params, envelope.salt)
    check = check_scoring_model(_reparametrised(history, wrong), wrong, None)
    assert (
        check.status == "fail" and "runs fl-score, not fl-vertical or fl-horizontal" in check.detail
    ), check


def _recommitted(
    history: TaskHistory, creator: str, result: dict[str, Any], salt: bytes
) -> TaskHistory:
    digest = result_commitment(history.task_id, result, salt)

    def change(e: Event) -> Event:
        if e.name == "ResultSubmitted" and str(e.args["node"]).lower() == creator.lower():
            return dataclasses.replace(e, args={**e.args, "resultDigest": digest})
        return e

    return TaskHistory(history.task_id, [change(e) for e in history.all_events], history.timestamps)


def _reparametrised(history: TaskHistory, params: ParamsEnvelope) -> TaskHistory:
    def change(e: Event) -> Event:
        if e.name == "TaskCreated" and e.args.get("taskId") == history.task_id:
            return dataclasses.replace(e, args={**e.args, "paramsDigest": params.digest})
        return e

    return TaskHistory(history.task_id, [change(e) for e in history.all_events], history.timestamps)


# ----------------------------------------------------------- a horizontal model


def _own_dataset(
    net: Network, name: str, org: str, path: Path, dataset: str, grant: bool
) -> dict[str, Any]:
    """Node ``name`` holds ``path`` as ``dataset`` (classification 2), registered on
    chain; with ``grant``, bank-a may use it. Its participant slot."""
    consortium = net.consortium
    node = net.nodes[name]
    imported = import_csv(path, identifier_columns=["customer"])
    dataset_name = name_id("dataset", dataset)
    dataset_id = dataset_id_for(consortium.orgs[org].org_id, dataset_name)
    node.runner.datasets.save(dataset_id, 1, imported, 2)
    node.clients.datasets.register(
        dataset_name,
        DatasetVersion(imported.merkle_root, imported.row_count, imported.schema_digest, 2),
    )
    slot: dict[str, Any] = {
        "node": node.runner.address,
        "datasetId": hex32(dataset_id),
        "datasetVersion": 1,
    }
    if grant:
        now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])
        slot["grantId"] = hex32(
            consortium.orgs[org].clients.authorizations.grant(
                dataset_id, consortium.orgs["bank-a"].org_id, name_id("purpose", "score"),
                now + 86_400, 5,
            )
        )  # fmt: skip
    return slot


def _write_ids(path: Path, ids: list[str], names: list[str], x: Any) -> None:
    cells = [
        [i, *(decimal_text(int(v), SCALE) for v in row)] for i, row in zip(ids, x, strict=True)
    ]
    path.write_text(
        ",".join(["customer", *names]) + "\n" + "".join(",".join(r) + "\n" for r in cells)
    )


def test_a_horizontal_model_scores_a_providers_rows_for_the_consumer(
    consortium: Consortium, tmp_path: Path
) -> None:
    """bank-a consumed an fl-horizontal training (its node aggregated); it then has
    bank-b, one of the providers, score the customers both know, with the model the
    training anchored: the scores are the plaintext model's; the provider checked the
    model against the aggregator's anchors; a forged model is refused."""
    net = fl_network(consortium, tmp_path)
    params = {**fl_params_json(), "rounds": 2}
    created = net.creator.create_task("fl-for-scoring", fl.NAME, params, net.providers, 3600)
    training = bytes.fromhex(created["taskId"][2:])
    assert net.drive(training) == TaskState.COMPLETED
    model = net.creator.task_result(created["taskId"])["result"]
    _enable_scoring(net)

    split = breast_cancer()
    held = list(range(len(split.y_test)))
    ids = [f"Client-{j:04d}" for j in held]
    x = fl_quantised(split.x_test)
    a_path, b_path = tmp_path / "wanted.csv", tmp_path / "bank-b-rows.csv"
    a_path.write_text("customer\n" + "".join(f"{i.upper()}\n" for i in ids[5:]))
    _write_ids(b_path, ids[:-7], FEATURES, x[:-7])
    _own_dataset(net, "bank-a", "bank-a", a_path, "customers", grant=False)
    provider = _own_dataset(net, "bank-b", "bank-b", b_path, "scoring-rows", grant=True)
    task_id = _score(net, [provider], _score_params(training))
    assert net.drive(task_id) == TaskState.COMPLETED, net.failure(task_id)
    result = net.creator.task_result(hex32(task_id))["result"]

    weights = np.array(model["weights"], dtype=np.float64)
    network = fl.FLParams.from_json(params).network()
    both = held[5:-7]
    by_id = {normalise("text", ids[j]): j for j in both}
    assert sorted(result["identifiers"]) == sorted(by_id)
    rows = [by_id[i] for i in result["identifiers"]]
    expected = sigmoid(network.logits(weights, x[rows] / float(10**SCALE)))
    np.testing.assert_allclose(result["scores"], expected, rtol=0, atol=1e-12)
    a_node, b_node = net.nodes["bank-a"].runner.address, provider["node"]
    assert result["training_algorithm"] == fl.NAME
    assert result["model"] == [
        {"party": a_node, "digest": model["model_digest"]},
        {"party": b_node, "digest": model["model_digest"]},
    ]
    # Both anchored (the aggregator's round-0 link, the final model's digest).
    scored = _anchored(net, task_id)
    links = _anchored(net, training)[a_node.lower()]
    for node in (a_node, b_node):
        extends, digest = scored[node.lower()]
        assert digest.hex() == model["model_digest"] and extends == links[-2]
    answer = net.creator.task_result(hex32(task_id))
    chain, deployment = consortium.chain, consortium.deployment
    check = check_scoring_model(
        task_history(chain, deployment, task_id),
        ParamsEnvelope.from_json(answer["params"]),
        ResultDisclosure.from_json(answer),
    )
    assert check.status == "pass" and len(check.evidence["rulesPassed"]) == 4, check
    # Two providers in one scoring task: refused (a horizontal model scores one
    # provider's rows at a time; a joint intersection would be another query).
    regulator = _own_dataset(net, "regulator", "regulator", b_path, "scoring-rows-r", grant=True)
    two = _score(net, [provider, regulator], _score_params(training))
    detail = _refused_before_scoring(net, two)
    assert "exactly one of its providers" in detail, detail
    # A model that is not the trained one (as a consumer running modified code would
    # send it): the provider refuses it, whatever link it claims to extend.
    facts = gather_prior_task(
        net.nodes["bank-b"].clients.tasks,
        net.nodes["bank-b"].state,
        net.nodes["bank-b"].runner.algorithms,
        training,
    )
    assert facts is not None
    sent = {
        "params": answer_params(net, training),
        "weights": (weights + 1e-9).astype(">f8").tobytes().hex(),
        "extends": links[-2].hex(),
    }
    with pytest.raises(fl_vertical.VerticalTaskError, match="last anchored round binds"):
        fl_score.provider_model(facts, [a_node, b_node], sent)
    sent["weights"] = weights.astype(">f8").tobytes().hex()
    assert (
        fl_score.provider_model(facts, [a_node, b_node], sent).digest.hex()
        == (model["model_digest"])
    )


def answer_params(net: Network, task_id: bytes) -> Any:
    return net.creator.task_result(hex32(task_id))["params"]
