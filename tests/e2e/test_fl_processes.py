"""Horizontal FedAvg between real node processes on anvil, audited by `provnet audit verify`.

bank-b and the regulator each upload a slice of scikit-learn's breast-cancer training
set over REST (decimal feature columns, 6 digits after the point, and an integer label;
built by the in-process test's helpers, ``tests/node/test_fl_tasks.py``) and grant
bank-a its use; bank-a creates an ``fl-horizontal`` task over REST and its node
aggregates, anchoring one round checkpoint per round. Checked:

* the task completes, and the model bank-a's API returns equals bit for bit the
  library's plaintext replay of the same rounds on the same rows (``fl.replay``: the
  encoded updates summed in the clear), round digests included; its test accuracy is
  within 1 point of centralised scikit-learn;
* the regulator's `provnet audit verify`, given the transcripts and bank-a's disclosed
  ``provnet task result`` answer, exits 0 with ``fl_round_chain`` passing every rule;
* the same answer with one round's ``round_digest`` altered fails it (exit 1): the
  altered result no longer opens the aggregator's commitment, which is the rule that
  fails first; applied to the anchored checkpoints the audit reported, the chain-head
  rule names the altered round too.

Kept lean (3 rounds of 10 full-batch steps): the task itself takes a few seconds.
Two providers from two organisations meet classification 2's output policy (at least
two provider organisations, ten rows each; ``node/algorithms/output_policy.py``).

Vertical logistic regression (``fl-vertical``) on the same cluster: bank-a, the label
holder, uploads its own labelled rows and the first provider shares the other columns
(the in-process test's data and parameters, ``tests/node/test_fl_vertical_tasks.py``).
Checked: the alignment is the plaintext intersection of the normalised ids; A's share
(from its result) with B's (from B's own node) is within 1 point of centralised
scikit-learn on the aligned rows; each party anchored epochs 0..E-1 of its own chain,
as its result or kept share says; B's transcript shows only the training steps its
role allows; the audit passes, and fails once the disclosed result is altered.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from auditor.replay import task_history
from auditor.verify.checkpoints import head_problem
from node.algorithms import fl_horizontal as fl
from node.algorithms import fl_score
from node.algorithms import fl_vertical as flv
from node.algorithms.identifiers import normalise
from node.fl import vertical
from node.fl.models import model_digest
from tests.e2e.cluster import Cluster, running_cluster
from tests.node.fl.data import Array, accuracy, breast_cancer, horizontal_parts
from tests.node.test_fl_tasks import FEATURES, SCALE, params_json, quantised, write_slice
from tests.node.test_fl_vertical_tasks import (
    A_FEATURES,
    B_FEATURES,
    SPLIT,
    training_sides,
    vertical_params,
    write_feature_holder,
    write_label_holder,
    write_scoring_rows,
)
from tests.node.test_fl_vertical_tasks import quantised as vertical_quantised

ROUNDS = 3
SCORING_RULES = [
    "numbering",
    "training task",
    "models extend the training chains",
    "disclosed result",
]
ALL_RULES = [
    "numbering",
    "models sent between rounds",
    "result commitment",
    "links recomputed",
    "chain head",
    "genesis",
    "final model",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("fl")
    with running_anvil() as url, running_cluster(url, tmp, approve=(fl, flv, fl_score)) as running:
        yield running


def share_slices(cluster: Cluster) -> dict[str, tuple[Array, Array]]:
    """Each provider uploads its slice and grants bank-a its use (over REST); returns
    what each provider's node trains on, by node address, in the providers' order."""
    parts = horizontal_parts(breast_cancer(), len(cluster.provider_names))
    data = {}
    for name, (x, y) in zip(cluster.provider_names, parts, strict=True):
        path = cluster.tmp / f"{name}-fl-slice.csv"
        write_slice(path, x, y)
        provider = cluster.share(name, path, "fl-slice", "fl-breast-cancer")
        cluster.providers.append(provider)
        data[provider["node"]] = (quantised(x) / float(10**SCALE), y)
    return data


def upload_own(cluster: Cluster, path: Path, dataset: str) -> None:
    """bank-a uploads its own dataset (classification 2) over REST."""
    with cluster.nodes["bank-a"].api() as api, path.open("rb") as fh:
        uploaded = api.post(
            "/datasets",
            data={"name": dataset, "classification": "2"},
            files={"file": (path.name, fh, "text/csv")},
        )
        assert uploaded.status_code == 201, uploaded.text


def score_and_audit(
    cluster: Cluster, training: str, dataset: str, provider: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    """bank-a scores its own ``dataset``'s ids with the model of ``training`` and the
    provider's rows (an ``fl-score`` task over REST); the regulator's audit, given the
    transcripts and bank-a's disclosed answer, passes with ``scoring_model`` by all of
    its rules, and fails once the disclosed result names another model digest. Bank-a's
    result; the provider received nothing of the scores (a horizontal model's provider
    receives the model)."""
    with cluster.nodes["bank-a"].api() as api:
        created = api.post(
            "/tasks",
            json={
                "requestId": f"score-{training[2:10]}",
                "algorithm": fl_score.NAME,
                "params": {
                    "training_task": training,
                    "identifier_kind": "text",
                    "requester_column": "customer",
                    "responder_column": "customer",
                },
                "dataset": {"dataset": dataset},
                "providers": [provider],
                "validForSeconds": 900,
            },
        )
        assert created.status_code == 201, created.text
        task = str(created.json()["taskId"])
    status = cluster.wait_terminal(task, timeout=300)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with cluster.nodes["bank-a"].api() as api:
        answered = api.get(f"/tasks/{task}/result")
        assert answered.status_code == 200, answered.text
        answer: dict[str, Any] = answered.json()
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, tmp / "transcripts")
    steps = json.loads((transcripts / f"{provider['node']}.json").read_text())
    received = {e["step"] for e in steps if e["kind"].startswith("received")}
    assert {s for s in received if s.startswith("vfl-score/")} <= {fl_score.STEP_MODEL}, received
    disclosed = tmp / "result.json"
    disclosed.write_text(json.dumps(answer))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(disclosed)
    )
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, [c for c in report["checks"] if c["status"] == "fail"]
    assert "fl_round_chain" not in checks
    assert checks["scoring_model"]["status"] == "pass", checks["scoring_model"]
    assert checks["scoring_model"]["evidence"]["rulesPassed"] == SCORING_RULES
    lied = copy.deepcopy(answer)
    lied["result"]["model"][-1]["digest"] = "00" * 32
    disclosed.write_text(json.dumps(lied))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(disclosed)
    )
    failed = {c["name"]: c for c in report["checks"]}["scoring_model"]
    assert code != 0 and failed["status"] == "fail", failed
    result: dict[str, Any] = answer["result"]
    return result


def test_fedavg_between_processes_equals_the_replay_and_is_audited(
    cluster: Cluster, tmp_path: Path
) -> None:
    data = share_slices(cluster)
    params_body = {**params_json(), "rounds": ROUNDS, "local_steps": 10}
    with cluster.nodes["bank-a"].api() as api:
        created = api.post(
            "/tasks",
            json={
                "requestId": "fl-e2e",
                "algorithm": fl.NAME,
                "params": params_body,
                "providers": cluster.providers,
                "validForSeconds": 600,
            },
        )
        assert created.status_code == 201, created.text
        task = str(created.json()["taskId"])
    status = cluster.wait_terminal(task)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with cluster.nodes["bank-a"].api() as api:
        answered = api.get(f"/tasks/{task}/result")
        assert answered.status_code == 200, answered.text
        answer = answered.json()
    result = answer["result"]

    # Bit for bit the library's plaintext replay of the same rounds on the same rows.
    params = fl.FLParams.from_json(params_body)
    task_id = bytes.fromhex(task.removeprefix("0x"))
    plain, links = fl.replay(params, data, cluster.nodes["bank-a"].address, task_id)
    weights = np.array(result["weights"], dtype=np.float64)
    assert weights.tobytes() == plain.tobytes()
    assert result["model_digest"] == model_digest(params.network(), plain).hex()
    assert [r["round_digest"] for r in result["rounds"]] == [link.hex() for link in links]
    assert result["chain_head"] == links[-1].hex()
    for r in result["rounds"]:
        assert sorted(r["contributors"]) == sorted(data), r
        assert r["total_weight"] == sum(len(y) for _, y in data.values())
        assert r["epsilon"] is None
    assert result["epsilon_spent"] is None
    assert result["policy"]["classification"] == 2

    # As good as centralised scikit-learn on the held-out rows.
    split = breast_cancer()
    x_test = quantised(split.x_test) / float(10**SCALE)
    acc = accuracy(params.network().logits(weights, x_test), split.y_test)
    assert abs(acc - split.baseline_accuracy) <= 0.01, (acc, split.baseline_accuracy)

    # The regulator's audit, given the transcripts and the disclosed result: every
    # check passes, the round chain by all of its rules.
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, tmp_path / "transcripts")
    disclosed = tmp_path / "result.json"
    disclosed.write_text(json.dumps(answer))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(disclosed)
    )
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, [c for c in report["checks"] if c["status"] == "fail"]
    chain = checks["fl_round_chain"]
    assert chain["status"] == "pass", chain
    assert chain["evidence"]["rulesPassed"] == ALL_RULES, chain
    assert len(chain["evidence"]["transcriptsJudged"]) == 1 + len(data), chain
    anchored = [c["digest"].removeprefix("0x") for c in chain["evidence"]["checkpoints"]]
    assert anchored == [link.hex() for link in links]

    # One round's chained digest altered in the disclosed result: the audit fails.
    forged = copy.deepcopy(answer)
    forged["result"]["rounds"][1]["round_digest"] = "00" * 32
    altered = tmp_path / "forged-result.json"
    altered.write_text(json.dumps(forged))
    code, report = cluster.audit(task, "--transcripts", str(transcripts), "--params", str(altered))
    checks = {c["name"]: c for c in report["checks"]}
    chain = checks["fl_round_chain"]
    assert code != 0 and chain["status"] == "fail", chain
    # Any change to the result stops it opening the commitment bank-a's node submitted,
    # so that rule fails first, after the two that need no disclosure passed.
    assert chain["detail"].startswith("the disclosed result and salt commit to"), chain
    assert chain["evidence"]["rulesPassed"] == ALL_RULES[:2], chain
    # Past the commitment, the altered chain would fail on the anchored checkpoints.
    problem = head_problem(
        [bytes.fromhex(r["round_digest"]) for r in forged["result"]["rounds"]],
        bytes.fromhex(forged["result"]["chain_head"]),
        [bytes.fromhex(d) for d in anchored],
    )
    assert problem is not None and problem.startswith("round 1: the result's round digest"), problem

    # Batch scoring with the global model: bank-a (the consumer) has the first provider
    # score the held-out customers both know (ids in other case and order at bank-a).
    held = list(range(len(split.y_test)))
    ids = [f"Client-{j:04d}" for j in held]
    wanted = cluster.tmp / "bank-a-wanted.csv"
    wanted.write_text("customer\n" + "".join(f"{i.upper()}\n" for i in ids[5:][::-1]))
    upload_own(cluster, wanted, "fl-wanted")
    name = cluster.provider_names[0]
    rows_path = cluster.tmp / f"{name}-fl-score-rows.csv"
    write_scoring_rows(rows_path, ids[:-7], FEATURES, split.x_test[:-7])
    provider = cluster.share(name, rows_path, "fl-score-rows", "fl-scoring")
    scores = score_and_audit(cluster, task, "fl-wanted", provider, tmp_path / "scoring")
    by_id = {normalise("text", ids[j]): j for j in held[5:-7]}
    assert sorted(scores["identifiers"]) == sorted(by_id)
    rows = [by_id[i] for i in scores["identifiers"]]
    logits = params.network().logits(weights, x_test[rows])
    np.testing.assert_allclose(scores["scores"], 1.0 / (1.0 + np.exp(-logits)), rtol=0, atol=1e-12)
    assert [m["digest"] for m in scores["model"]] == [result["model_digest"]] * 2


# ------------------------------------------------------------------ vertical (fl-vertical)

# The steps a feature holder may take part in during training (``node/fl/vertical.py``):
# everything it receives and everything it sends, by kind (``vfl/<kind>/<epoch>/<batch>``).
VFL_RECEIVED = {"vfl/public-key", "vfl/residual", "vfl/opened-gradient"}
VFL_SENT = {"vfl/partial", "vfl/masked-gradient"}
# ``fl_round_chain``'s rules for a vertical task given the transcripts, the result and
# the parameters (``auditor/verify/checkpoints.py``), in the order they run.
VERTICAL_RULES = [
    "numbering",
    "training messages per epoch",
    "result commitment",
    "links recomputed",
    "chain head",
    "final share",
    "genesis",
]


def _vfl_kind(step: str) -> str:
    return "/".join(step.split("/")[:2])


def test_vertical_lr_between_processes_is_accurate_and_audited(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``fl-vertical`` across processes: bank-a (the label holder, the task's creator)
    uploads its own labelled rows (ids ``Cust-xxxxx``, the label, features 0-9); the
    first provider shares the feature-holder side (ids ``cust-xxxxx``, features 10-29),
    each with rows the other lacks; the in-process test's data and parameters
    (``tests/node/test_fl_vertical_tasks.py``: 1024-bit Paillier keys, 8 epochs of
    sigmoid-residual mini-batches, which the 1-point accuracy bound needs whatever the
    task id's row order: 2 epochs fall 1-2 points short on most orders)."""
    started = time.monotonic()
    sides = training_sides()
    holder = cluster.provider_names[0]
    a_path = cluster.tmp / "bank-a-vfl-customers.csv"
    write_label_holder(a_path, sides)
    with cluster.nodes["bank-a"].api() as api, a_path.open("rb") as fh:
        uploaded = api.post(
            "/datasets",
            data={"name": "vfl-customers", "classification": "2", "identifierColumns": "customer"},
            files={"file": (a_path.name, fh, "text/csv")},
        )
        assert uploaded.status_code == 201, uploaded.text
    b_path = cluster.tmp / f"{holder}-vfl-features.csv"
    write_feature_holder(b_path, sides)
    provider = cluster.share(holder, b_path, "vfl-features", "vfl-breast-cancer")
    params_body = vertical_params()
    with cluster.nodes["bank-a"].api() as api:
        created = api.post(
            "/tasks",
            json={
                "requestId": "vfl-e2e",
                "algorithm": flv.NAME,
                "params": params_body,
                "dataset": {"dataset": "vfl-customers"},
                "providers": [provider],
                "validForSeconds": 900,
            },
        )
        assert created.status_code == 201, created.text
        task = str(created.json()["taskId"])
    status = cluster.wait_terminal(task, timeout=300)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    trained = time.monotonic()
    with cluster.nodes["bank-a"].api() as api:
        answered = api.get(f"/tasks/{task}/result")
        assert answered.status_code == 200, answered.text
        answer = answered.json()
    result = answer["result"]
    # The feature holder's own node keeps its share, and answers it to its own operator.
    a_node, b_node = cluster.nodes["bank-a"].address, provider["node"]
    with cluster.nodes[holder].api() as api:
        kept = api.get(f"/tasks/{task}/result")
        assert kept.status_code == 200, kept.text
        kept_answer = kept.json()
    assert set(kept_answer) == {"taskId", "state", "share", "params"}, kept_answer
    assert "result" not in kept_answer and "commitmentSalt" not in kept_answer
    b_share = kept_answer["share"]
    assert b_share["party"] == b_node
    assert b_share["features"] == B_FEATURES

    # Alignment: exactly the plaintext intersection of the normalised ids.
    ids_a = {normalise("text", f"Cust-{i:05d}") for i in sides.a_rows}
    ids_a |= {normalise("text", f"OnlyA-{j:03d}") for j in range(9)}
    ids_b = {normalise("text", f"cust-{i:05d}") for i in sides.b_rows}
    ids_b |= {normalise("text", f"OnlyB-{j:03d}") for j in range(13)}
    assert result["aligned_rows"] == len(ids_a & ids_b) == len(sides.shared)
    assert result["requester_items"] == len(ids_a)
    assert result["responder_items"] == [len(ids_b)]
    epochs = int(params_body["epochs"])
    assert result["key_bits"] == params_body["key_bits"] and len(result["epochs"]) == epochs
    assert result["feature_holders"] == [{"party": b_node, "features": B_FEATURES}]

    # The model, A's share and B's kept one, against centralised scikit-learn fitted on
    # the same aligned rows, on the held-out rows.
    wa = np.array(result["weights"], dtype=np.float64)
    intercept = float(result["intercept"])
    wb = np.array(b_share["weights"], dtype=np.float64)
    assert result["share_digest"] == vertical.share_digest(a_node, np.array([*wa, intercept])).hex()
    assert b_share["share_digest"] == vertical.share_digest(b_node, wb).hex()
    split = breast_cancer()
    x_test = vertical_quantised(split.x_test)
    acc = accuracy(x_test[:, :SPLIT] @ wa + intercept + x_test[:, SPLIT:] @ wb, split.y_test)
    shared = sides.shared
    clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=5000)
    clf.fit(vertical_quantised(split.x_train[shared]), split.y_train[shared])
    baseline = float(clf.score(x_test, split.y_test))
    assert abs(acc - baseline) <= 0.01, (acc, baseline)

    # Every party anchored its own chain, epochs 0..E-1, as A's result and B's kept
    # share say; the two chains differ.
    task_id = bytes.fromhex(task.removeprefix("0x"))
    anchored: dict[str, list[tuple[int, str]]] = {}
    for event in task_history(cluster.chain, cluster.deployment, task_id).task_events:
        if event.name == "CheckpointAnchored":
            anchored.setdefault(str(event.args["node"]).lower(), []).append(
                (int(event.args["round"]), bytes(event.args["checkpointDigest"]).hex())
            )
    a_chain = [(e["epoch"], e["chain_digest"]) for e in result["epochs"]]
    b_chain = [(e["epoch"], e["chain_digest"]) for e in b_share["epochs"]]
    assert [e for e, _ in a_chain] == [e for e, _ in b_chain] == list(range(epochs))
    assert anchored == {a_node.lower(): a_chain, b_node.lower(): b_chain}
    assert result["chain_head"] == a_chain[-1][1] != b_chain[-1][1]

    # What the feature holder's transcript shows it took part in: the runner's steps
    # (the parameters, A's hiding result commitment), PSI, the task's own
    # readiness/alignment steps, and of training only the steps its role allows; never
    # a partial logit received (nor a residual or opened gradient sent), and every
    # training step in an epoch of the anchored count.
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, tmp_path / "transcripts")
    entries = json.loads((transcripts / f"{b_node}.json").read_text())
    vfl = [e for e in entries if e["step"].startswith("vfl/")]
    received = {_vfl_kind(e["step"]) for e in vfl if e["kind"].startswith("received")}
    sent = {_vfl_kind(e["step"]) for e in vfl if e["kind"] == "sent"}
    assert received == VFL_RECEIVED, received
    assert sent == VFL_SENT, sent
    assert all(e["peer"] == a_node for e in vfl), {e["peer"] for e in vfl}
    assert {int(e["step"].split("/")[2]) for e in vfl if e["step"].count("/") == 3} == set(
        range(epochs)
    )
    other = {
        e["step"].split("/")[0]
        for e in entries
        if e["kind"] in ("sent", "received", "received-late") and not e["step"].startswith("vfl/")
    }
    assert other == {"params", "psi", "vfl-task", "result-commitment"}, other

    # The regulator's audit, given the transcripts and bank-a's disclosed result: every
    # check passes, the per-party epoch chains by every rule the evidence allows.
    disclosed = tmp_path / "result.json"
    disclosed.write_text(json.dumps(answer))
    code, report = cluster.audit(
        task, "--transcripts", str(transcripts), "--params", str(disclosed)
    )
    checks = {c["name"]: c for c in report["checks"]}
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    chain = checks["fl_round_chain"]
    assert chain["status"] == "pass", chain
    assert code == 0 and not failed, failed
    assert chain["evidence"]["rulesPassed"] == VERTICAL_RULES, chain
    judged = {node.lower() for node in chain["evidence"]["transcriptsJudged"]}
    assert judged == {a_node.lower(), b_node.lower()}, chain
    listed: dict[str, list[tuple[int, str]]] = {}
    for c in chain["evidence"]["checkpoints"]:
        listed.setdefault(c["node"].lower(), []).append((c["epoch"], c["digest"][2:]))
    assert listed == anchored, chain

    # One epoch's chained digest altered in the disclosed result: the audit fails.
    forged = copy.deepcopy(answer)
    forged["result"]["epochs"][1]["chain_digest"] = "00" * 32
    altered = tmp_path / "forged-result.json"
    altered.write_text(json.dumps(forged))
    code, report = cluster.audit(task, "--transcripts", str(transcripts), "--params", str(altered))
    chain = {c["name"]: c for c in report["checks"]}["fl_round_chain"]
    assert code != 0 and chain["status"] == "fail", chain
    # It no longer opens the label holder's commitment: that rule fails first, after
    # the two that need no disclosure passed.
    assert chain["detail"].startswith("the disclosed result and salt commit to"), chain
    assert chain["evidence"]["rulesPassed"] == VERTICAL_RULES[:2], chain
    # Past the commitment, the altered chain would fail on A's anchored checkpoints.
    problem = head_problem(
        [bytes.fromhex(e["chain_digest"]) for e in forged["result"]["epochs"]],
        bytes.fromhex(forged["result"]["chain_head"]),
        [bytes.fromhex(d) for _, d in anchored[a_node.lower()]],
        unit="epoch",
        field="chain digest",
    )
    assert problem is not None and problem.startswith("epoch 1: the result's chain digest"), problem

    # Batch scoring with the trained model, over rows neither party trained on (the
    # held-out split, under new ids; bank-a's rows come in another order, and each side
    # holds a few rows the other lacks): bank-a learns exactly the plaintext model's
    # scores of the aligned rows; the audit finds each party scored with its own
    # anchored share.
    scored_ids = [f"Test-{j:04d}" for j in range(len(split.y_test))]
    a_rows = list(range(len(scored_ids) - 4))[::-1]
    b_rows = list(range(3, len(scored_ids)))
    a_score_path = cluster.tmp / "bank-a-vfl-score.csv"
    write_scoring_rows(
        a_score_path, [scored_ids[j] for j in a_rows], A_FEATURES, split.x_test[a_rows, :SPLIT]
    )
    upload_own(cluster, a_score_path, "vfl-score-rows")
    b_score_path = cluster.tmp / f"{holder}-vfl-score.csv"
    write_scoring_rows(
        b_score_path,
        [scored_ids[j].lower() for j in b_rows],
        B_FEATURES,
        split.x_test[b_rows, SPLIT:],
    )
    scoring_provider = cluster.share(holder, b_score_path, "vfl-score-rows", "vfl-scoring")
    scores = score_and_audit(
        cluster, task, "vfl-score-rows", scoring_provider, tmp_path / "vertical-scoring"
    )
    both = sorted(set(a_rows) & set(b_rows))
    by_id = {normalise("text", scored_ids[j]): j for j in both}
    assert sorted(scores["identifiers"]) == sorted(by_id)
    rows = [by_id[i] for i in scores["identifiers"]]
    plain = 1.0 / (
        1.0 + np.exp(-(x_test[rows, :SPLIT] @ wa + intercept + x_test[rows, SPLIT:] @ wb))
    )
    np.testing.assert_allclose(scores["scores"], plain, rtol=0, atol=1e-12)
    assert scores["model"] == [
        {"party": a_node, "digest": result["share_digest"]},
        {"party": b_node, "digest": b_share["share_digest"]},
    ]
    print(
        f"vertical e2e: accuracy {acc:.4f} (sklearn {baseline:.4f}); task "
        f"{trained - started:.1f}s, scoring {len(rows)} rows included, total "
        f"{time.monotonic() - started:.1f}s"
    )
