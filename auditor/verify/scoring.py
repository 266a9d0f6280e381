"""`scoring_model`: a batch-scoring task (``fl-score``) used, party by party, the model
its training task anchored.

Each party of an ``fl-score`` task anchors two checkpoints under its own seat
(``node/algorithms/fl_score.py``): round 0 = the training link its model extends,
round 1 = the digest of the model (or model share) it scored with. Training chains link
round (or epoch) r as ``chain_digest(link_{r-1}, model digest after r, r)``: for a
vertical model (``fl-vertical``) each party's own chain, for a horizontal one
(``fl-horizontal``) the aggregator's, which both scoring parties extend. So the model
scored with is the trained one exactly when ``chain_digest(round 0, round 1, R - 1)`` is
the last link of that chain (R links), and round 0 is link R - 2 when R >= 2 (the
genesis, for one round, is bound by the hash alone). All of that is on chain; only
*which* task trained the model is not: the scoring task's parameters name it, so the
rules past the first need them.

Rules, one per function, each returning None or a sentence naming the party:

* `numbering_problem` (chain alone): once the task completed, every participant
  anchored exactly rounds 0 and 1; nobody else anchored anything;
* `training_problem` (with the parameters): the training task is an ``fl-vertical`` or
  ``fl-horizontal`` task that completed before this task was created; vertical: with
  the same participants in the same seats; horizontal: seat 0 is its aggregator and
  seat 1 one of its providers;
* `extends_problem` (with the parameters): every party's two anchors extend the
  training chain it scored from to that chain's last link;
* `disclosed_problem` (with the creator's disclosed result, which must open its result
  commitment): the result names the parameters' training task and, per party in seat
  order, the digest that party anchored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verify.check import Check, Malformed, digest32, guarded
from auditor.verify.checkpoints import ResultDisclosure, opened_params, result_commitment
from auditor.verify.history import ZERO, TaskHistory, algorithm_name, hex_
from ledger.task_params import ParamsEnvelope
from node.algorithms import fl_horizontal, fl_score, fl_vertical
from node.fl.horizontal import chain_digest

NAME = "scoring_model"

Anchors = Mapping[str, Sequence[bytes]]  # node (lower case) -> digests, in round order


def applies(h: TaskHistory) -> bool:
    return algorithm_name(h) == fl_score.NAME


def anchors(h: TaskHistory) -> dict[str, list[tuple[int, bytes]]]:
    """Each node's (round, digest) checkpoints of the task, in chain order."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    for e in h.task_events:
        if e.name == "CheckpointAnchored":
            number = e.args["round"]
            if not isinstance(number, int) or isinstance(number, bool):
                raise Malformed(f"a checkpoint's round is not a number ({number!r})")
            digest = digest32(e.args["checkpointDigest"], f"checkpoint {number}")
            out.setdefault(str(e.args["node"]).lower(), []).append((number, digest))
    return out


def numbering_problem(
    participants: Sequence[str], anchored: Mapping[str, Sequence[tuple[int, bytes]]], complete: bool
) -> str | None:
    seats = [p.lower() for p in participants]
    for node in anchored:
        if node not in seats:
            return f"{node} anchored a checkpoint but is not a participant"
    for node, mine in anchored.items():
        if [r for r, _ in mine] != list(range(len(mine))) or len(mine) > 2:
            return f"{node} anchored rounds {[r for r, _ in mine]}, not 0 and 1"
    if complete:
        for node in seats:
            if len(anchored.get(node, ())) != 2:
                return (
                    f"{node} anchored {len(anchored.get(node, ()))} checkpoint(s) of the "
                    "model it scored with; the task completed, so 2 are due"
                )
    return None


def training_problem(
    training: TaskHistory, participants: Sequence[str], created_at: tuple[int, int]
) -> str | None:
    task = hex_(training.task_id)
    if training.created() is None:
        return f"the training task {task} is not on chain"
    name = algorithm_name(training)
    if name not in fl_score.TRAINING_ALGORITHMS:
        return (
            f"the training task {task} runs {name}, not {' or '.join(fl_score.TRAINING_ALGORITHMS)}"
        )
    completed = [e for e in training.task_events if e.name == "TaskCompleted"]
    if not completed or completed[0].position > created_at:
        return f"the training task {task} had not completed when this one was created"
    seats = training.participants()
    theirs = [node.lower() for node, *_ in seats]
    ours = [p.lower() for p in participants]
    if name == fl_vertical.NAME and theirs != ours:
        return "the training task's participants and seats are not this task's"
    if name == fl_horizontal.NAME:
        aggregators = [node.lower() for node, dataset, *_ in seats if dataset == ZERO]
        providers = [node.lower() for node, dataset, *_ in seats if dataset != ZERO]
        if len(ours) != 2 or aggregators != ours[:1] or ours[1] not in providers:
            return (
                "seat 0 is not the horizontal training's aggregator, or seat 1 not one of "
                "its providers"
            )
    return None


def chains_scored_from(training: TaskHistory, participants: Sequence[str]) -> dict[str, str]:
    """Per scoring party, whose training chain its model extends: its own (vertical)
    or the aggregator's (horizontal)."""
    if algorithm_name(training) == fl_horizontal.NAME:
        aggregator = [node for node, dataset, *_ in training.participants() if dataset == ZERO]
        return {p.lower(): aggregator[0].lower() for p in participants}
    return {p.lower(): p.lower() for p in participants}


def extends_problem(
    participants: Sequence[str],
    scored: Mapping[str, Sequence[tuple[int, bytes]]],
    trained: Mapping[str, Sequence[tuple[int, bytes]]],
    chain_of: Mapping[str, str],
) -> str | None:
    for party in (p.lower() for p in participants):
        mine = list(scored.get(party, ()))
        links = [d for _, d in trained.get(chain_of[party], ())]
        if len(mine) != 2:
            continue  # a task that stopped early: numbering judged it
        if not links:
            return f"{party}'s model extends no anchored training link ({chain_of[party]})"
        extends, model = mine[0][1], mine[1][1]
        last = len(links) - 1
        if chain_digest(extends, model, last) != links[-1]:
            return (
                f"{party}'s scored model {hex_(model)} extending {hex_(extends)} is not the "
                f"last training link {hex_(links[-1])} (round {last}) of {chain_of[party]}"
            )
        if last >= 1 and extends != links[-2]:
            return (
                f"{party}'s anchored link {hex_(extends)} is not the training link of "
                f"round {last - 1} of {chain_of[party]}"
            )
    return None


def disclosed_problem(
    result: Mapping[str, Any],
    training_task: bytes,
    participants: Sequence[str],
    scored: Mapping[str, Sequence[tuple[int, bytes]]],
) -> str | None:
    if result.get("training_task") != "0x" + training_task.hex():
        return (
            f"the result names training task {result.get('training_task')}, the "
            f"parameters {hex_(training_task)}"
        )
    model = result.get("model")
    if not isinstance(model, list) or len(model) != len(participants):
        return "the result does not name one share digest per participant"
    for seat, (entry, party) in enumerate(zip(model, participants, strict=True)):
        anchored = scored.get(party.lower(), ())
        if not isinstance(entry, Mapping) or str(entry.get("party", "")).lower() != party.lower():
            return f"the result's model entry {seat} is not {party}'s"
        if len(anchored) != 2 or entry.get("digest") != anchored[1][1].hex():
            return f"the result's model digest of {party} is not the one it anchored"
    return None


@guarded(NAME)
def check_scoring_model(
    h: TaskHistory,
    params: ParamsEnvelope | None = None,
    result: ResultDisclosure | None = None,
) -> Check:
    created = h.created()
    if created is None:
        return Check(NAME, False, f"no such task on chain: {hex_(h.task_id)}")
    if not applies(h):
        return Check.not_applicable(NAME, "not a scoring task")
    participants = [node for node, *_ in h.participants()]
    scored = anchors(h)
    complete = any(e.name == "TaskCompleted" for e in h.task_events)
    evidence: dict[str, Any] = {
        "anchors": {n: [hex_(d) for _, d in mine] for n, mine in scored.items()}
    }
    ran: list[str] = []

    def fail(problem: str) -> Check:
        return Check(NAME, False, problem, {**evidence, "rulesPassed": ran})

    problem = numbering_problem(participants, scored, complete)
    if problem:
        return fail(problem)
    ran.append("numbering")
    opened = opened_params(created.args["paramsDigest"], params, evidence)
    if opened is None:
        evidence["rulesPassed"] = ran
        why = "no parameters given" if params is None else "the parameters do not open paramsDigest"
        return Check(
            NAME,
            True,
            f"each party anchored its model; which training task it extends is named by the "
            f"parameters only ({why}: give the creator's `provnet task result` with --params)",
            evidence,
        )
    training_task = fl_score.ScoreParams.from_json(opened).training_task
    evidence["trainingTask"] = hex_(training_task)
    training = TaskHistory(training_task, h.all_events, h.timestamps)
    problem = training_problem(training, participants, created.position)
    if problem:
        return fail(problem)
    ran.append("training task")
    problem = extends_problem(
        participants, scored, anchors(training), chains_scored_from(training, participants)
    )
    if problem:
        return fail(problem)
    ran.append("models extend the training chains")
    if result is not None:
        submitted = h.by_node("ResultSubmitted").get(participants[0].lower())
        if submitted is None or result_commitment(
            h.task_id, result.result, result.salt
        ) != digest32(submitted.args["resultDigest"], "the creator's resultDigest"):
            return fail("the disclosed result and salt do not open the creator's result commitment")
        problem = disclosed_problem(result.result, training_task, participants, scored)
        if problem:
            return fail(problem)
        ran.append("disclosed result")
    evidence["rulesPassed"] = ran
    return Check(
        NAME,
        True,
        f"every party scored with the model its training task {hex_(training_task)} anchored; "
        f"passed: {', '.join(ran)}",
        evidence,
    )
