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
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from auditor.verify.checkpoints import head_problem
from node.algorithms import fl_horizontal as fl
from node.fl.models import model_digest
from tests.e2e.cluster import Cluster, running_cluster
from tests.node.fl.data import Array, accuracy, breast_cancer, horizontal_parts
from tests.node.test_fl_tasks import SCALE, params_json, quantised, write_slice

ROUNDS = 3
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
    with running_anvil() as url, running_cluster(url, tmp, approve=(fl,)) as running:
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
