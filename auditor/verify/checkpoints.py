"""`fl_round_chain`: a federated-learning task's round checkpoints form one unbroken
chain, which the result commits to and every participant's transcript agrees with.

Horizontal FedAvg (``node/fl/horizontal.py``, run by ``node/algorithms/fl_horizontal.py``)
chains one link per round,

    genesis = digest_json("fl-genesis", {plan, task, initial model digest})
    link_r  = digest("fl-round", link_{r-1} || model digest of P_{r+1} || r as 8 bytes),

and the aggregator anchors ``link_r`` with ``TaskRegistry.anchorCheckpoint(task, r, link_r)``
right after computing it, then (except after the last round) sends P_{r+1} to every
provider under step ``fl-model/<r>``. What the auditor can check depends on what it
was given, so the check is a set of pure functions, one rule each (as RFC 9162's and
Trillian's verifiers are), each returning None or a sentence naming the round and what
differs:

* from the chain alone (`numbering_problem`): checkpoints numbered 0..R-1 with no gap
  and no duplicate, every one anchored by the aggregator's node (the one participant
  without a dataset), and as many as the parameters ask for once the task completed;
* from the transcripts the evidence check authenticated (`receipts_problem`): the
  aggregator recorded sending, and every provider recorded receiving from the
  aggregator, exactly one ``fl-model/<r>`` per anchored round but the last (none for a
  round that was never anchored), with equal message digests, each received before the
  provider's next round began. A transcript holds message digests, not payloads, so it
  cannot show *which* model was sent; that the providers trained on the anchored model
  is what the protocol itself enforces (round r+1's secure-sum session binds P_{r+1}'s
  digest, so a provider holding another model fails at the first message);
* from the result the aggregator's operator discloses (``provnet task result``: the
  result and its commitment salt, `ResultDisclosure`): the disclosure opens the result
  commitment the aggregator submitted (`commitment_problem`); recomputing every link
  from the result's genesis and round model digests gives exactly the anchored
  checkpoints (`links_problem`); the result's chained digests and chain head are the
  anchored ones (`head_problem`);
* from the disclosed parameters as well (only when they open the on-chain
  ``paramsDigest``): the genesis is the one the plan (parameters, participants, task,
  initial model) derives (`genesis_problem`), and the final weights hash to the last
  round's model digest under the parameters' architecture (`final_model_problem`).

Vertical logistic regression (``node/fl/vertical.py``, run by
``node/algorithms/fl_vertical.py``) has no data-less aggregator: seat 0, the task's
creator, is the *label holder* (labels, its own feature columns, the intercept) and
every other seat a *feature holder*, each training the share of its own columns. Every
party anchors its own chain, one link per epoch, after its last epoch:

    genesis_p = digest_json("fl-vertical-genesis", {plan, party p})
    link_e    = digest("fl-round", link_{e-1} || share digest of p after epoch e || e),

with ``anchorCheckpoint(task, e, link_e)`` from its own node (the share digest hashes
the party's name and its weights). The rules (``auditor/verify/vertical_chain.py`` for
the vertical-only ones) are:

* from the chain alone (`vertical_chain.numbering_problem`): every checkpoint was
  anchored by a participant, each party's own are numbered 0..n-1 with no gap and no
  duplicate, never more than the parameters' ``epochs``; once the task completed,
  every party anchored at least one and all the same number (``epochs``, when the
  parameters are disclosed);
* from the authenticated transcripts (`vertical_chain.transcripts_problem`): each
  party's training messages (``vfl/<kind>/<epoch>/<batch>``) go the protocol's way and
  name only epochs it anchored (it anchors after training, so never one more), and, in
  a completed task, every anchored epoch has messages with each of its peers; a
  message delivered but never read (``received-late``) does not count as trained on,
  and is a problem once the task completed;
* from the label holder's disclosed result (`fl_vertical.VerticalResult`): it opens the
  label holder's result commitment (`commitment_problem`); the links recomputed from
  its genesis and per-epoch share digests are the label holder's anchored checkpoints
  (`links_problem`); its chain digests and chain head are the anchored ones
  (`head_problem`); its final weights and intercept hash, under the label holder's
  name, to its share digest and to the last epoch's (`vertical_chain.final_share_problem`);
* with the disclosed parameters as well: the genesis is the one the plan (parameters,
  seats, the result's aligned row count, task) derives for the label holder
  (`vertical_chain.genesis_problem`).

What cannot be checked: a feature holder's links, genesis and final share. Its share
(weights per epoch) is never disclosed, kept by its node for scoring and committed by
nobody, so only the numbering and the transcript rules apply to its chain; its links
are bound to its share digests, which an auditor given the share could recompute.

Not judged here: the transcripts' authenticity (``evidence_roots_match``) and the
message-level agreement of all steps (``transcripts_agree_pairwise``); a transcript
that check rejects is left out and named in this check's evidence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditor.verify import vertical_chain
from auditor.verify.check import Check, Malformed, digest32, guarded
from auditor.verify.evidence import authenticated
from auditor.verify.history import ZERO, TaskHistory, algorithm_kind, algorithm_name, hex_
from ledger.canonical import digest_json
from ledger.clients.algorithms import AlgorithmKind
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry
from node.algorithms import fl_horizontal, fl_score, fl_vertical
from node.fl import horizontal
from node.fl.models import model_digest

NAME = "fl_round_chain"

#: Approved algorithms that anchor one checkpoint per round (or epoch), and the step
#: the transcript rule reads: for horizontal FedAvg the one under which the aggregator
#: sends each round's global model (``<step>/<round>``), for vertical logistic
#: regression the prefix of every training message (``vfl/<kind>/<epoch>/<batch>``).
CHECKPOINTING: Mapping[str, str] = {
    fl_horizontal.NAME: fl_horizontal.STEP_MODEL,
    fl_vertical.NAME: vertical_chain.PREFIX.rstrip("/"),
}


@dataclass(frozen=True)
class Anchored:
    """One ``CheckpointAnchored`` event of the task, in chain order."""

    node: str
    round: int
    digest: bytes
    block: int


@dataclass(frozen=True)
class ResultDisclosure:
    """The result the aggregator committed to and the commitment's salt: what its
    operator's ``provnet task result`` answer holds (``result``, ``commitmentSalt``)."""

    result: Mapping[str, Any]
    salt: bytes

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> ResultDisclosure:
        result, salt = answer.get("result"), answer.get("commitmentSalt")
        if not isinstance(result, Mapping):
            raise Malformed("the disclosed result is not a JSON object")
        if not isinstance(salt, str) or len(salt) != 64:
            raise Malformed("the disclosed commitment salt is not 64 hex digits")
        return cls(dict(result), bytes.fromhex(salt))


def result_commitment(task_id: bytes, result: Mapping[str, Any], salt: bytes) -> bytes:
    """The hiding commitment every participant submits (``node/runner.py``'s
    ``result_commitment``; restated here so the auditor opens it with its own code)."""
    return digest_json(
        "result-commitment", {"task": task_id.hex(), "result": dict(result), "salt": salt.hex()}
    )


def opened_params(
    on_chain: object, params: ParamsEnvelope | None, evidence: dict[str, Any]
) -> Mapping[str, Any] | None:
    """The disclosed parameters when they open the task's on-chain ``paramsDigest``;
    otherwise None, and when some were given, ``evidence`` says they were not used."""
    if params is None:
        return None
    if params.digest != digest32(on_chain, "TaskCreated.paramsDigest"):
        evidence["paramsNotUsed"] = "they do not open the on-chain paramsDigest"
        return None
    return params.params


def applies(h: TaskHistory) -> bool:
    """The task's algorithm anchors round checkpoints, or the chain holds some anyway
    (checkpoints of an algorithm that declares none must still form a chain), except
    for an attested job, whose one checkpoint is the enclave's destruction receipt
    (``auditor/verify/attestation.py`` checks it), and a scoring task, whose two per
    party anchor the model it used (``auditor/verify/scoring.py``)."""
    if algorithm_kind(h) == AlgorithmKind.TEE or algorithm_name(h) == fl_score.NAME:
        return False
    return algorithm_name(h) in CHECKPOINTING or any(
        e.name == "CheckpointAnchored" for e in h.task_events
    )


def anchored_checkpoints(h: TaskHistory) -> list[Anchored]:
    """The task's checkpoints in chain order; a malformed one raises `Malformed`."""
    found = []
    for e in h.task_events:
        if e.name != "CheckpointAnchored":
            continue
        number = e.args["round"]
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise Malformed(f"a checkpoint's round is not a round number ({number!r})")
        found.append(
            Anchored(
                str(e.args["node"]),
                number,
                digest32(e.args["checkpointDigest"], f"checkpoint digest of round {number}"),
                e.block_number,
            )
        )
    return found


# ------------------------------------------------------------------- the rules, one each


def numbering_problem(
    anchored: Sequence[Anchored], aggregator: str, rounds: int | None, complete: bool
) -> str | None:
    """Checkpoints numbered 0..R-1 in chain order, no gap, no duplicate, each anchored by
    the aggregator; once the task completed, at least one, and ``rounds`` of them when
    the parameters say how many. A task that ended otherwise may stop at any round."""
    for position, a in enumerate(anchored):
        if a.node.lower() != aggregator.lower():
            return f"round {a.round} was anchored by {a.node}, not by the aggregator {aggregator}"
        if a.round < position:
            return f"round {a.round} is anchored twice (again at block {a.block})"
        if a.round > position:
            return (
                f"round {position} is missing: the checkpoint after round {position - 1} "
                f"is round {a.round} (block {a.block})"
                if position
                else f"round 0 is missing: the first checkpoint is round {a.round}"
            )
    if rounds is not None and len(anchored) > rounds:
        return f"{len(anchored)} rounds anchored, the parameters ask for {rounds}"
    if complete:
        if not anchored:
            return "the task completed without a single round checkpoint"
        if rounds is not None and len(anchored) < rounds:
            return (
                f"round {len(anchored)} is missing: the task completed with "
                f"{len(anchored)} of the {rounds} rounds its parameters ask for anchored"
            )
    return None


def links_problem(
    genesis: bytes,
    model_digests: Sequence[bytes],
    anchored: Sequence[bytes],
    *,
    unit: str = "round",
    what: str = "model",
) -> str | None:
    """Each anchored link is ``chain_digest(previous link, round's model digest, r)``,
    starting from ``genesis``, for exactly the rounds the model digests name. The
    vertical chains link the same way, per epoch, over share digests (``unit="epoch",
    what="share"``, which only change the wording)."""
    if len(model_digests) != len(anchored):
        return (
            f"the result names {len(model_digests)} {unit} {what}(s), "
            f"{len(anchored)} {unit}(s) are anchored"
        )
    previous = genesis
    for r, (model, link) in enumerate(zip(model_digests, anchored, strict=True)):
        expected = horizontal.chain_digest(previous, model, r)
        if link != expected:
            return (
                f"{unit} {r}: anchored checkpoint {hex_(link)}, but the link from "
                f"{'the genesis' if r == 0 else f'{unit} {r - 1}'} and the {unit}'s {what} "
                f"digest {hex_(model)} is {hex_(expected)}"
            )
        previous = link
    return None


def head_problem(
    round_digests: Sequence[bytes],
    chain_head: bytes,
    anchored: Sequence[bytes],
    *,
    unit: str = "round",
    field: str = "round digest",
) -> str | None:
    """The result's chained digest of each round is the anchored checkpoint, and its
    chain head is the last one (``unit``/``field``: the wording, e.g. an epoch's chain
    digest for the vertical chains)."""
    if len(round_digests) != len(anchored):
        return f"the result chains {len(round_digests)} {unit}(s), {len(anchored)} are anchored"
    for r, (claimed, link) in enumerate(zip(round_digests, anchored, strict=True)):
        if claimed != link:
            return (
                f"{unit} {r}: the result's {field} {hex_(claimed)} is not the "
                f"anchored checkpoint {hex_(link)}"
            )
    if not anchored or chain_head != anchored[-1]:
        last = hex_(anchored[-1]) if anchored else "none"
        return f"the result's chain head {hex_(chain_head)} is not the last anchored link ({last})"
    return None


def commitment_problem(
    task_id: bytes,
    disclosure: ResultDisclosure,
    submitted: bytes | None,
    who: str = "the aggregator",
) -> str | None:
    """The disclosed result and salt open the commitment ``who`` (the aggregator, or a
    vertical task's label holder) submitted."""
    if submitted is None:
        return f"a result was disclosed, but {who} submitted no result commitment"
    opened = result_commitment(task_id, disclosure.result, disclosure.salt)
    if opened != submitted:
        return (
            f"the disclosed result and salt commit to {hex_(opened)}, {who} "
            f"submitted {hex_(submitted)}"
        )
    return None


def genesis_problem(
    params: fl_horizontal.FLParams,
    task_id: bytes,
    providers: Sequence[str],
    aggregator: str,
    epsilon_per_round: float | None,
    genesis: bytes,
) -> str | None:
    """The genesis is the digest of the plan every party derived from the committed
    parameters, the task's participants and the per-round epsilon the result records
    (the plan binds it), and of the initial model the parameters' seed gives."""
    plan = fl_horizontal.plan_for(params, providers, aggregator, task_id)
    if epsilon_per_round is not None:
        plan = dataclasses.replace(plan, epsilon_per_round=epsilon_per_round)
    expected = horizontal.genesis_digest(plan)
    if genesis != expected:
        return (
            f"the result's genesis {hex_(genesis)} is not the one the committed parameters, "
            f"the participants and the task derive ({hex_(expected)})"
        )
    return None


def final_model_problem(
    params: fl_horizontal.FLParams, result: Mapping[str, Any], last_model: bytes
) -> str | None:
    """The result's model is the parameters' architecture, and its weights hash to the
    result's model digest, which is the last round's (the model the chain head binds)."""
    model = params.network()
    if dict(result["model"]) != model.to_json():
        return f"the result's model {result['model']} is not the parameters' {model.to_json()}"
    weights = np.asarray(result["weights"], dtype=np.float64)
    if weights.shape != (model.n_params,):
        return f"the result holds {weights.size} weights, the model has {model.n_params}"
    computed = model_digest(model, weights)
    claimed = _hex32(result["model_digest"], "the result's model_digest")
    if computed != claimed:
        return f"the final weights hash to {hex_(computed)}, the result says {hex_(claimed)}"
    if computed != last_model:
        last = len(result["rounds"]) - 1
        return (
            f"round {last}: the final weights hash to {hex_(computed)}, not to the round's "
            f"model digest {hex_(last_model)}"
        )
    return None


def receipts_problem(
    aggregator: str,
    providers: Sequence[str],
    rounds: int,
    transcripts: Mapping[str, Sequence[Entry]],
    complete: bool,
    step: str = fl_horizontal.STEP_MODEL,
) -> str | None:
    """The models sent between rounds, as the transcripts record them, match the
    ``rounds`` anchored checkpoints: no model of a round that was never anchored (the
    aggregator anchors a round before sending its model), nor, once the task
    completed, of its last round (nothing follows it); in a completed task exactly
    one per provider for each round 0..rounds-2, recorded as sent by the aggregator and
    as received from it by the provider with the same message digest; and a provider
    received round r's model before it sent or received anything of round r+1.
    ``transcripts`` (keyed by node, any case) are those authenticated against the chain;
    a participant without one is not judged."""
    given = {node.lower(): entries for node, entries in transcripts.items()}
    agg = aggregator.lower()
    # After the last round no model is sent; a task that ended early may have sent the
    # model of the last round it anchored before it stopped.
    expected = range(max(rounds - 1, 0)) if complete else range(rounds)
    prefix = step + "/"

    def round_of(e: Entry) -> int | None:
        if not e.step.startswith(prefix):
            return None
        tail = e.step[len(prefix) :]
        ok = tail.isascii() and tail.isdigit() and tail == str(int(tail))
        return int(tail) if ok else -1

    sent: dict[tuple[str, int], list[bytes]] = {}
    for e in given.get(agg, ()):
        r = round_of(e)
        if r is None:
            continue
        if e.kind != "sent" or e.peer.lower() not in {p.lower() for p in providers}:
            return f"the aggregator's transcript records {e.kind} {e.step!r} with {e.peer}"
        if r not in expected:
            return _unanchored(r, rounds, e.step, "the aggregator sent")
        sent.setdefault((e.peer.lower(), r), []).append(e.digest)
    for provider in providers:
        p = provider.lower()
        if agg in given:
            for r in expected:
                count = len(sent.get((p, r), []))
                if count > 1 or (complete and count == 0):
                    return (
                        f"round {r}: the aggregator recorded sending its model to {provider} "
                        f"{count} times (once expected)"
                    )
        if p not in given:
            continue
        received: dict[int, bytes] = {}
        rounds_seen: set[int] = set()
        for e in given[p]:
            if e.kind in ("sent", "received") and e.step.startswith("round-"):
                head = e.step.split("/", 1)[0][len("round-") :]
                if head.isdigit():
                    rounds_seen.add(int(head))
            r = round_of(e)
            if r is None:
                continue
            if e.kind == "received-late" and e.peer.lower() == agg and r >= 0:
                if complete:
                    return (
                        f"round {r}: {provider} never read the round's model (recorded as "
                        "delivered late) although the task completed"
                    )
                continue  # it stopped before reading it: the task did not complete
            if e.kind != "received" or e.peer.lower() != agg:
                return (
                    f"{provider}'s transcript records {e.kind} {e.step!r} with {e.peer}, "
                    f"not received from the aggregator {aggregator}"
                )
            if r not in expected:
                return _unanchored(r, rounds, e.step, f"{provider} received")
            if r in received:
                return f"round {r}: {provider} recorded receiving the round's model twice"
            if r + 1 in rounds_seen:
                return (
                    f"round {r}: {provider} recorded messages of round {r + 1} before "
                    f"receiving round {r}'s model"
                )
            received[r] = e.digest
            want = sent.get((p, r))
            if agg in given and want and want[0] != e.digest:
                return (
                    f"round {r}: {provider} recorded receiving the model as {hex_(e.digest)}, "
                    f"the aggregator recorded sending {hex_(want[0])}"
                )
        if complete:
            missing = [r for r in expected if r not in received]
            if missing:
                return (
                    f"round {missing[0]}: {provider} never recorded receiving the round's "
                    "model although the task completed"
                )
    return None


def _unanchored(r: int, rounds: int, step: str, who: str) -> str:
    if r < 0:
        return f"{who} {step!r}, which names no round"
    return (
        f"round {r}: {who} the round's model ({step!r}), but "
        + (
            f"round {r} was never anchored"
            if r >= rounds
            else "no model is sent after the last round"
        )
        + f" ({rounds} anchored)"
    )


def _hex32(value: object, what: str) -> bytes:
    """A digest the result JSON writes as bare hex (no ``0x``)."""
    return digest32("0x" + value if isinstance(value, str) else value, what)


# --------------------------------------------------------------------------- the check


@guarded(NAME)
def check_fl_round_chain(
    h: TaskHistory,
    transcripts: Mapping[str, Sequence[Entry]],
    params: ParamsEnvelope | None = None,
    result: ResultDisclosure | None = None,
) -> Check:
    """Every rule the given evidence allows (module docstring); the first broken one
    fails the check. The evidence says which rules ran, so a pass without a disclosed
    result is visibly a pass of the chain and transcript rules only."""
    created = h.created()
    if created is None:
        return Check(NAME, False, f"no such task on chain: {hex_(h.task_id)}")
    algorithm = algorithm_name(h)
    if not applies(h):
        return Check.not_applicable(
            NAME, f"{algorithm or 'the algorithm'} anchors no round checkpoints"
        )
    if algorithm == fl_vertical.NAME:
        return _check_vertical(h, transcripts, params, result)
    participants = h.participants()
    aggregators = [node for node, dataset, _v, _g in participants if dataset == ZERO]
    if len(aggregators) != 1:
        return Check(
            NAME,
            False,
            f"{len(aggregators)} participants without a dataset (one aggregator expected)",
        )
    aggregator = aggregators[0]
    providers = [node for node, dataset, _v, _g in participants if dataset != ZERO]
    anchored = anchored_checkpoints(h)
    complete = any(e.name == "TaskCompleted" for e in h.task_events)
    links = [a.digest for a in anchored]
    evidence: dict[str, Any] = {
        "algorithm": algorithm,
        "aggregator": aggregator,
        "checkpoints": [
            {"round": a.round, "digest": hex_(a.digest), "block": a.block} for a in anchored
        ],
    }
    ran: list[str] = []

    def fail(problem: str) -> Check:
        return Check(NAME, False, problem, {**evidence, "rulesPassed": ran})

    opened = opened_params(created.args["paramsDigest"], params, evidence)
    fl_params = None if opened is None else fl_horizontal.FLParams.from_json(opened)

    problem = numbering_problem(
        anchored, aggregator, None if fl_params is None else fl_params.rounds, complete
    )
    if problem:
        return fail(problem)
    ran.append("numbering")

    step = CHECKPOINTING.get(algorithm or "")
    if step is not None:
        good, left_out = authenticated(h, transcripts)
        evidence["transcriptsJudged"] = sorted(good)
        evidence["transcriptsNotJudged"] = dict(sorted(left_out.items()))
        problem = receipts_problem(aggregator, providers, len(anchored), good, complete, step)
        if problem:
            return fail(problem)
        ran.append("models sent between rounds")

    if result is not None:
        submitted = h.by_node("ResultSubmitted").get(aggregator.lower())
        problem = commitment_problem(
            h.task_id,
            result,
            None
            if submitted is None
            else digest32(submitted.args["resultDigest"], "the aggregator's resultDigest"),
        )
        if problem:
            return fail(problem)
        ran.append("result commitment")
        body = result.result
        rounds = list(body["rounds"])
        if [r["round"] for r in rounds] != list(range(len(rounds))):
            return fail(f"the result's rounds are numbered {[r['round'] for r in rounds]}")
        models = [_hex32(r["model_digest"], f"round {r['round']} model_digest") for r in rounds]
        chained = [_hex32(r["round_digest"], f"round {r['round']} round_digest") for r in rounds]
        genesis = _hex32(body["genesis"], "the result's genesis")
        problem = links_problem(genesis, models, links)
        if problem:
            return fail(problem)
        ran.append("links recomputed")
        head = _hex32(body["chain_head"], "the result's chain_head")
        problem = head_problem(chained, head, links)
        if problem:
            return fail(problem)
        ran.append("chain head")
        evidence["genesis"] = hex_(genesis)
        if fl_params is not None:
            epsilons = {r["epsilon"] for r in rounds}
            if len(epsilons) != 1:
                return fail(f"the result's rounds spend different epsilons: {list(epsilons)}")
            problem = genesis_problem(
                fl_params, h.task_id, providers, aggregator, epsilons.pop(), genesis
            )
            if problem:
                return fail(problem)
            ran.append("genesis")
            problem = final_model_problem(fl_params, body, models[-1])
            if problem:
                return fail(problem)
            ran.append("final model")
    evidence["rulesPassed"] = ran
    detail = (
        f"{len(anchored)} round checkpoint(s) numbered from 0 without gap, anchored by the "
        f"aggregator; passed: {', '.join(ran)}"
    )
    if result is None:
        detail += "; links not recomputed (no result disclosed)"
    elif fl_params is None:
        detail += "; genesis and final model not recomputed (no parameters disclosed)"
    return Check(NAME, True, detail, evidence)


def _check_vertical(
    h: TaskHistory,
    transcripts: Mapping[str, Sequence[Entry]],
    params: ParamsEnvelope | None,
    result: ResultDisclosure | None,
) -> Check:
    """`check_fl_round_chain` for ``fl-vertical``: every party's chain (module
    docstring; the vertical-only rules are in ``auditor/verify/vertical_chain.py``)."""
    created = h.created()
    assert created is not None
    seats = [node for node, _d, _v, _g in h.participants()]
    if len(seats) < 2:
        return Check(
            NAME, False, f"{len(seats)} participant(s): a label holder and feature holders expected"
        )
    label_holder, feature_holders = seats[0], seats[1:]
    anchored = anchored_checkpoints(h)
    mine = vertical_chain.by_party(anchored)
    complete = any(e.name == "TaskCompleted" for e in h.task_events)
    evidence: dict[str, Any] = {
        "algorithm": fl_vertical.NAME,
        "labelHolder": label_holder,
        "featureHolders": feature_holders,
        "checkpoints": [
            {"node": a.node, "epoch": a.round, "digest": hex_(a.digest), "block": a.block}
            for a in anchored
        ],
    }
    ran: list[str] = []

    def fail(problem: str) -> Check:
        return Check(NAME, False, problem, {**evidence, "rulesPassed": ran})

    opened = opened_params(created.args["paramsDigest"], params, evidence)
    vfl_params = None if opened is None else fl_vertical.VerticalParams.from_json(opened)

    problem = vertical_chain.numbering_problem(
        anchored, seats, None if vfl_params is None else vfl_params.epochs, complete
    )
    if problem:
        return fail(problem)
    ran.append("numbering")

    good, left_out = authenticated(h, transcripts)
    evidence["transcriptsJudged"] = sorted(good)
    evidence["transcriptsNotJudged"] = dict(sorted(left_out.items()))
    counts = {node: len(own) for node, own in mine.items()}
    problem = vertical_chain.transcripts_problem(
        label_holder, feature_holders, counts, good, complete
    )
    if problem:
        return fail(problem)
    ran.append("training messages per epoch")

    if result is not None:
        submitted = h.by_node("ResultSubmitted").get(label_holder.lower())
        problem = commitment_problem(
            h.task_id,
            result,
            None
            if submitted is None
            else digest32(submitted.args["resultDigest"], "the label holder's resultDigest"),
            who=f"the label holder {label_holder}",
        )
        if problem:
            return fail(problem)
        ran.append("result commitment")
        body = result.result
        epochs = list(body["epochs"])
        if [e["epoch"] for e in epochs] != list(range(len(epochs))):
            return fail(f"the result's epochs are numbered {[e['epoch'] for e in epochs]}")
        shares = [_hex32(e["share_digest"], f"epoch {e['epoch']} share_digest") for e in epochs]
        chained = [_hex32(e["chain_digest"], f"epoch {e['epoch']} chain_digest") for e in epochs]
        genesis = _hex32(body["genesis"], "the result's genesis")
        links = [a.digest for a in mine.get(label_holder.lower(), [])]
        problem = links_problem(genesis, shares, links, unit="epoch", what="share")
        if problem:
            return fail(f"label holder {label_holder}: {problem}")
        ran.append("links recomputed")
        head = _hex32(body["chain_head"], "the result's chain_head")
        problem = head_problem(chained, head, links, unit="epoch", field="chain digest")
        if problem:
            return fail(f"label holder {label_holder}: {problem}")
        ran.append("chain head")
        evidence["genesis"] = hex_(genesis)
        problem = vertical_chain.final_share_problem(
            label_holder,
            body,
            _hex32(body["share_digest"], "the result's share_digest"),
            shares[-1],
            len(shares) - 1,
        )
        if problem:
            return fail(f"label holder {label_holder}: {problem}")
        ran.append("final share")
        if vfl_params is not None:
            problem = vertical_chain.genesis_problem(
                vfl_params, h.task_id, label_holder, feature_holders, body["aligned_rows"], genesis
            )
            if problem:
                return fail(f"label holder {label_holder}: {problem}")
            ran.append("genesis")
    evidence["rulesPassed"] = ran
    n = len(mine.get(label_holder.lower(), []))
    detail = (
        f"{len(seats)} parties anchored their own chains ({n} epoch checkpoint(s) of the "
        f"label holder) numbered from 0 without gap; passed: {', '.join(ran)}"
    )
    if result is None:
        detail += "; links not recomputed (no result disclosed)"
    elif vfl_params is None:
        detail += "; genesis not recomputed (no parameters disclosed)"
    detail += "; the feature holders' links cannot be recomputed (their shares are never disclosed)"
    return Check(NAME, True, detail, evidence)
