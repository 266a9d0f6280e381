"""`fl_round_chain` on a real ``fl-vertical`` task: a genuine run passes every rule, and
each alteration an attacker (or a tampered runner) could make fails the check, naming
the party and the epoch.

One small task is run once for the module (``tests/node/test_fl_vertical_tasks.py``'s
datasets and harness: bank-a the label holder, bank-b the one feature holder, 1024-bit
Paillier keys, 3 epochs of Taylor steps) on the session's in-process chain, rolled back
when the module ends. Altered histories are built as ``tests/node/test_fl_tasks.py``
builds them: the CheckpointAnchored events replaced, a ResultSubmitted's resultDigest
or TaskCreated's paramsDigest re-pointed at what the forger commits to. An altered
transcript no longer authenticates (`evidence_roots_match` leaves it out), so the
transcript rule is also applied directly to altered transcripts, as the horizontal
tests do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from auditor.replay import task_history
from auditor.verifier import verify_task
from auditor.verify.check import Check
from auditor.verify.checkpoints import (
    CHECKPOINTING,
    Anchored,
    ResultDisclosure,
    applies,
    check_fl_round_chain,
    result_commitment,
)
from auditor.verify.history import TaskHistory
from auditor.verify.vertical_chain import (
    final_share_problem,
    genesis_problem,
    numbering_problem,
    transcripts_problem,
)
from ledger.canonical import digest
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.tasks import TaskState
from ledger.events import Event
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry
from node.algorithms import fl_vertical
from node.algorithms.package import package_of
from node.fl import vertical
from tests.conftest import Consortium
from tests.node.runner_harness import Mesh, Network
from tests.node.test_fl_vertical_tasks import _add, _create, training_sides, vertical_params

EPOCHS = 3
ALL_RULES = [
    "numbering",
    "training messages per epoch",
    "result commitment",
    "links recomputed",
    "chain head",
    "final share",
    "genesis",
]


@dataclass(frozen=True)
class Run:
    task_id: bytes
    history: TaskHistory
    transcripts: dict[str, list[Entry]]
    params: ParamsEnvelope
    disclosure: ResultDisclosure
    label_holder: str
    feature_holder: str


@pytest.fixture(scope="module")
def run(
    _embedded_consortium: Consortium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """One completed fl-vertical task, rolled back with the chain when the module ends."""
    consortium = _embedded_consortium
    tester = consortium.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    snapshot = tester.take_snapshot()
    try:
        package = package_of(fl_vertical).digest
        orgs = consortium.orgs
        orgs["bank-a"].clients.algorithms.propose(
            package, fl_vertical.NAME, fl_vertical.VERSION, AlgorithmKind.FL
        )
        orgs["bank-b"].clients.algorithms.approve(package)
        network = Network(consortium, tmp_path_factory.mktemp("vfl-chain"), Mesh())
        sides = training_sides()
        slots = {name: _add(network, name, sides) for name in ("bank-a", "bank-b")}
        task_id = _create(
            network, slots, "vfl-chain", vertical_params(epochs=EPOCHS, residual="taylor", l2=0.0)
        )
        assert network.drive(task_id) == TaskState.COMPLETED
        answer = network.creator.task_result("0x" + task_id.hex())
        yield Run(
            task_id,
            task_history(consortium.chain, consortium.deployment, task_id),
            {n.runner.address: n.evidence.entries(task_id) for n in network.nodes.values()},
            ParamsEnvelope.from_json(answer["params"]),
            ResultDisclosure.from_json(answer),
            network.nodes["bank-a"].runner.address,
            network.nodes["bank-b"].runner.address,
        )
    finally:
        tester.revert_to_snapshot(snapshot)
        from ledger import transactions

        transactions.reset_nonces()


def verdict(
    run: Run,
    h: TaskHistory | None = None,
    transcripts: dict[str, list[Entry]] | None = None,
    params: ParamsEnvelope | None = None,
    result: ResultDisclosure | None = None,
    *,
    bare: bool = False,
) -> Check:
    """The check with the run's evidence unless told otherwise (``bare``: chain and
    transcripts only)."""
    return check_fl_round_chain(
        run.history if h is None else h,
        run.transcripts if transcripts is None else transcripts,
        None if bare else (run.params if params is None else params),
        None if bare else (run.disclosure if result is None else result),
    )


def failed_with(check: Check, start: str) -> bool:
    return check.failed and check.detail.startswith(start)


# ---------------------------------------------------------------- forged histories


def _set(event: Event, **args: object) -> Event:
    return dataclasses.replace(event, args={**event.args, **args})


def with_checkpoints(
    h: TaskHistory, change: Callable[[list[Event], list[Event]], list[Event]], run: Run
) -> TaskHistory:
    """``h`` with its CheckpointAnchored events replaced by ``change(label holder's,
    feature holder's)`` (each in chain order), at the first one's place."""
    ours = [e for e in h.all_events if e.name == "CheckpointAnchored"]
    lh = [e for e in ours if str(e.args["node"]).lower() == run.label_holder.lower()]
    fh = [e for e in ours if str(e.args["node"]).lower() == run.feature_holder.lower()]
    at = h.all_events.index(ours[0])
    rest = [e for e in h.all_events if e.name != "CheckpointAnchored"]
    before = [e for e in h.all_events[:at] if e.name != "CheckpointAnchored"]
    return TaskHistory(h.task_id, [*before, *change(lh, fh), *rest[len(before) :]], h.timestamps)


def with_event(h: TaskHistory, name: str, node: str | None, **args: object) -> TaskHistory:
    """``h`` with the args of its ``name`` event (of ``node``, when given) changed."""

    def hit(e: Event) -> bool:
        return e.name == name and (node is None or str(e.args["node"]).lower() == node.lower())

    return TaskHistory(
        h.task_id, [_set(e, **args) if hit(e) else e for e in h.all_events], h.timestamps
    )


def without(h: TaskHistory, name: str) -> TaskHistory:
    return TaskHistory(h.task_id, [e for e in h.all_events if e.name != name], h.timestamps)


def forged_result(
    run: Run, change: Callable[[dict[str, Any]], None]
) -> tuple[TaskHistory, ResultDisclosure]:
    """A result the label holder's node changed *before* committing: its commitment is
    the one on chain, so the disclosure opens it and the other rules must catch it."""
    body = {**run.disclosure.result, "epochs": [dict(e) for e in run.disclosure.result["epochs"]]}
    change(body)
    salt = run.disclosure.salt
    h = with_event(
        run.history,
        "ResultSubmitted",
        run.label_holder,
        resultDigest=result_commitment(run.task_id, body, salt),
    )
    return h, ResultDisclosure(body, salt)


def other_params(run: Run, **change: Any) -> tuple[TaskHistory, ParamsEnvelope]:
    """Parameters the task was (as the forged history shows) created with."""
    envelope = ParamsEnvelope({**run.params.params, **change}, run.params.salt)
    return with_event(run.history, "TaskCreated", None, paramsDigest=envelope.digest), envelope


# ------------------------------------------------------------------------- genuine run


def test_a_genuine_run_passes_every_rule(run: Run) -> None:
    assert applies(run.history) and fl_vertical.NAME in CHECKPOINTING
    check = verdict(run)
    assert check.status == "pass", check
    assert check.evidence["rulesPassed"] == ALL_RULES, check
    assert check.evidence["labelHolder"] == run.label_holder
    assert check.evidence["featureHolders"] == [run.feature_holder]
    assert sorted(check.evidence["transcriptsJudged"]) == sorted(
        [run.label_holder.lower(), run.feature_holder.lower()]
    )
    by_node = [(c["node"], c["epoch"]) for c in check.evidence["checkpoints"]]
    assert sorted(by_node) == sorted(
        (node, e) for node in (run.label_holder, run.feature_holder) for e in range(EPOCHS)
    )
    # Chain and transcripts only; without parameters no genesis; parameters that do not
    # open the on-chain digest are not used.
    bare = verdict(run, bare=True)
    assert bare.status == "pass" and bare.evidence["rulesPassed"] == ALL_RULES[:2], bare
    check = verdict(run, params=ParamsEnvelope(run.params.params, bytes(32)))
    assert check.status == "pass" and check.evidence["rulesPassed"] == ALL_RULES[:-1], check
    assert "paramsNotUsed" in check.evidence
    # Through the verifier: reported, and passing with the rest.
    checks = verify_task(run.history, run.transcripts, run.params, result=run.disclosure)
    assert [c.name for c in checks if c.failed] == []
    chain_check = next(c for c in checks if c.name == "fl_round_chain")
    assert chain_check.status == "pass" and chain_check.evidence["rulesPassed"] == ALL_RULES


# ----------------------------------------------------------------- checkpoints altered


def test_an_altered_label_holder_checkpoint_breaks_its_recomputed_chain(run: Run) -> None:
    forged = with_checkpoints(
        run.history,
        lambda lh, fh: [*lh[:1], _set(lh[1], checkpointDigest=bytes(31) + b"\1"), *lh[2:], *fh],
        run,
    )
    check = verdict(run, forged)
    assert failed_with(
        check, f"label holder {run.label_holder}: epoch 1: anchored checkpoint 0x00"
    ), check
    # Without the result the link cannot be recomputed: numbering alone passes.
    assert verdict(run, forged, bare=True).status == "pass"


def test_an_altered_feature_holder_checkpoint_cannot_be_recomputed(run: Run) -> None:
    """The documented limit: a feature holder's share is never disclosed, so its links
    are judged by numbering and transcripts only."""
    forged = with_checkpoints(
        run.history,
        lambda lh, fh: [*lh, *fh[:1], _set(fh[1], checkpointDigest=bytes(32)), *fh[2:]],
        run,
    )
    check = verdict(run, forged)
    assert check.status == "pass" and "cannot be recomputed" in check.detail, check


@pytest.mark.parametrize("party", ["label holder", "feature holder"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda own: [own[0], own[2]], "{party}: epoch 1 is missing: its checkpoint after"),
        (lambda own: own[1:], "{party}: epoch 0 is missing: its first checkpoint is epoch 1"),
        (
            lambda own: [own[0], _set(own[1], round=0), own[2]],
            "{party}: epoch 0 is anchored twice",
        ),
        (lambda own: [own[1], own[0], own[2]], "{party}: epoch 0 is missing"),
        (lambda own: [*own, _set(own[2], round=3)], "{party}: 4 epochs anchored, the parameters"),
    ],
    ids=["dropped", "first-dropped", "duplicated", "out-of-order", "one-too-many"],
)
def test_a_party_checkpoint_dropped_duplicated_or_reordered_fails_naming_it(
    run: Run, party: str, change: Callable[[list[Event]], list[Event]], expected: str
) -> None:
    node = run.label_holder if party == "label holder" else run.feature_holder

    def alter(lh: list[Event], fh: list[Event]) -> list[Event]:
        return [*change(lh), *fh] if party == "label holder" else [*lh, *change(fh)]

    check = verdict(run, with_checkpoints(run.history, alter, run))
    assert failed_with(check, expected.format(party=node)), check


def test_a_checkpoint_from_a_non_participant_fails(run: Run) -> None:
    stranger = "0x" + "ab" * 20
    forged = with_checkpoints(
        run.history, lambda lh, fh: [*lh, *fh, _set(fh[0], node=stranger)], run
    )
    check = verdict(run, forged, bare=True)
    assert failed_with(check, f"epoch 0 was anchored by {stranger}, which is not a participant")


def test_a_feature_holder_that_anchored_one_epoch_fewer_fails(run: Run) -> None:
    short = with_checkpoints(run.history, lambda lh, fh: [*lh, *fh[:-1]], run)
    fh = run.feature_holder
    # With the parameters: fewer than they ask for.
    check = verdict(run, short)
    assert failed_with(
        check, f"{fh}: epoch 2 is missing: the task completed with 2 of the 3 epochs"
    ), check
    # Without: fewer than the label holder anchored.
    check = verdict(run, short, bare=True)
    assert failed_with(
        check, f"{fh}: epoch 2 is missing: the task completed with 2 of its epochs anchored, "
        f"{run.label_holder} anchored 3",
    ), check  # fmt: skip
    # None at all.
    check = verdict(run, with_checkpoints(run.history, lambda lh, fh: lh, run), bare=True)
    assert failed_with(check, f"{fh}: the task completed without a single epoch checkpoint")
    # A task that did not complete may stop anywhere, but its transcript shows it
    # trained an epoch it never anchored.
    unfinished = without(short, "TaskCompleted")
    check = verdict(run, unfinished, bare=True)
    assert failed_with(check, f"epoch 2: {fh} recorded training messages of the epoch"), check
    assert "anchored 2 epoch checkpoint(s)" in check.detail


# ----------------------------------------------------------------- transcripts altered


def _counts(run: Run, n: int = EPOCHS) -> dict[str, int]:
    return {run.label_holder.lower(): n, run.feature_holder.lower(): n}


def _rule(run: Run, transcripts: dict[str, list[Entry]], complete: bool = True) -> str | None:
    return transcripts_problem(
        run.label_holder, [run.feature_holder], _counts(run), transcripts, complete
    )


def _edit(entries: list[Entry], which: str, **change: object) -> list[Entry]:
    """``entries`` with the one of step ``which`` changed (the hash chain is not redone:
    the rule reads transcripts `evidence_roots_match` authenticated)."""
    return [dataclasses.replace(e, **change) if e.step == which else e for e in entries]  # type: ignore[arg-type]


def test_the_transcript_rule_on_the_real_transcripts(run: Run) -> None:
    assert _rule(run, run.transcripts) is None
    # One party's transcript only: the other is not judged.
    assert _rule(run, {run.feature_holder: run.transcripts[run.feature_holder]}) is None
    # The label holder anchored one epoch more than either trained.
    problem = transcripts_problem(
        run.label_holder, [run.feature_holder], _counts(run, 4), run.transcripts, True
    )
    assert problem is not None and problem.startswith(
        f"epoch 3: {run.label_holder} anchored the epoch's checkpoint but recorded no "
        f"training message of it with {run.feature_holder}"
    ), problem


def test_a_transcript_without_an_anchored_epoch_or_with_an_extra_one_fails(run: Run) -> None:
    fh, lh = run.feature_holder, run.label_holder
    given = dict(run.transcripts)
    given[fh] = [e for e in given[fh] if not e.step.startswith("vfl/") or "/1/" not in e.step]
    assert _rule(run, given) == (
        f"epoch 1: {fh} anchored the epoch's checkpoint but recorded no training message "
        f"of it with {lh}"
    )
    # A task that did not complete: not required.
    assert _rule(run, given, complete=False) is None
    given = dict(run.transcripts)
    given[lh] = _edit(given[lh], "vfl/residual/2/0", step="vfl/residual/3/0")
    problem = _rule(run, given, complete=False)
    assert problem is not None and problem.startswith(
        f"epoch 3: {lh} recorded training messages of the epoch (sent 'vfl/residual/3/0')"
    ), problem


def test_a_transcript_message_the_wrong_way_or_malformed_fails(run: Run) -> None:
    fh, lh = run.feature_holder, run.label_holder
    given = dict(run.transcripts)
    given[fh] = _edit(given[fh], "vfl/partial/0/0", kind="received")
    problem = _rule(run, given)
    assert problem is not None and problem.startswith(
        f"{fh}'s transcript records received 'vfl/partial/0/0' with {lh}; the protocol "
        "has it sent to the label holder"
    ), problem
    given = dict(run.transcripts)
    given[lh] = _edit(given[lh], "vfl/opened-gradient/1/0", peer="0x" + "cd" * 20)
    problem = _rule(run, given)
    assert problem is not None and "vfl/opened-gradient/1/0" in problem, problem
    given = dict(run.transcripts)
    given[fh] = _edit(given[fh], "vfl/residual/1/0", step="vfl/residual/01/0")
    problem = _rule(run, given)
    assert problem is not None and "names no epoch of the protocol" in problem, problem


def test_a_training_message_never_read_fails_once_the_task_completed(run: Run) -> None:
    fh = run.feature_holder
    given = dict(run.transcripts)
    given[fh] = _edit(given[fh], "vfl/opened-gradient/2/0", kind="received-late")
    problem = _rule(run, given)
    assert problem is not None and problem.startswith(
        f"epoch 2: {fh} never read 'vfl/opened-gradient/2/0'"
    ), problem
    assert _rule(run, given, complete=False) is None


def test_an_altered_transcript_is_left_out_not_judged(run: Run) -> None:
    fh = run.feature_holder
    altered = _edit(run.transcripts[fh], "vfl/partial/1/0", digest=bytes(32))
    check = verdict(run, transcripts={**run.transcripts, fh: altered})
    assert check.status == "pass", check
    assert fh.lower() in check.evidence["transcriptsNotJudged"], check.evidence


# ----------------------------------------------------------------------- result forged


def _epoch(i: int, **change: Any) -> Callable[[dict[str, Any]], None]:
    def alter(body: dict[str, Any]) -> None:
        body["epochs"][i] = {**body["epochs"][i], **change}

    return alter


def test_a_result_that_does_not_open_the_commitment_fails(run: Run) -> None:
    body = {**run.disclosure.result, "chain_head": "00" * 32}
    check = verdict(run, result=ResultDisclosure(body, run.disclosure.salt))
    assert failed_with(check, "the disclosed result and salt commit to"), check
    assert f"the label holder {run.label_holder} submitted" in check.detail


def test_a_committed_result_with_an_altered_epoch_fails_naming_it(run: Run) -> None:
    lh = f"label holder {run.label_holder}: "
    h, forged = forged_result(run, _epoch(1, share_digest="11" * 32))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "epoch 1: anchored checkpoint"), check
    assert "from epoch 0 and the epoch's share digest 0x1111" in check.detail
    h, forged = forged_result(run, _epoch(2, chain_digest="22" * 32))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "epoch 2: the result's chain digest 0x2222"), check
    h, forged = forged_result(run, lambda b: b.update(chain_head=b["epochs"][1]["chain_digest"]))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "the result's chain head"), check
    h, forged = forged_result(run, lambda b: b.update(genesis="33" * 32))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "epoch 0: anchored checkpoint"), check
    assert "from the genesis" in check.detail
    h, forged = forged_result(run, lambda b: b.update(epochs=b["epochs"][:2]))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "the result names 2 epoch share(s), 3 epoch(s)"), check


def test_a_committed_result_with_other_weights_fails(run: Run) -> None:
    lh = f"label holder {run.label_holder}: "

    def nudge(body: dict[str, Any]) -> None:
        weights = list(body["weights"])
        weights[0] = float(np.nextafter(weights[0], np.inf))
        body["weights"] = weights

    h, forged = forged_result(run, nudge)
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "the final weights and intercept hash to"), check
    assert "the result's share digest" in check.detail

    # Weights and their share digest forged together: the last epoch's share is not them.
    def swap(body: dict[str, Any]) -> None:
        nudge(body)
        weights = np.array([*body["weights"], body["intercept"]], dtype=np.float64)
        body["share_digest"] = vertical.share_digest(run.label_holder, weights).hex()

    h, forged = forged_result(run, swap)
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "epoch 2: the final weights and intercept hash to"), check
    h, forged = forged_result(run, lambda b: b.update(intercept=b["intercept"] + 1.0))
    assert failed_with(verdict(run, h, result=forged), lh + "the final weights"), check
    h, forged = forged_result(run, lambda b: b.update(weights=b["weights"][:-1]))
    check = verdict(run, h, result=forged)
    assert failed_with(check, lh + "the result holds 9 weight(s) and an intercept for 10"), check


def test_a_committed_result_with_another_aligned_count_fails_the_genesis(run: Run) -> None:
    h, forged = forged_result(run, lambda b: b.update(aligned_rows=b["aligned_rows"] - 1))
    check = verdict(run, h, result=forged)
    assert failed_with(check, f"label holder {run.label_holder}: the result's genesis"), check
    assert check.evidence["rulesPassed"] == ALL_RULES[:-1]
    # Without the parameters the genesis is not recomputed.
    assert verdict(
        run, h, params=ParamsEnvelope(run.params.params, bytes(32)), result=forged
    ).passed


# -------------------------------------------------------------------- parameters differ


def test_parameters_that_disagree_with_the_chain_fail(run: Run) -> None:
    lh = run.label_holder
    h, params = other_params(run, epochs=EPOCHS + 1)
    check = verdict(run, h, params=params)
    assert failed_with(
        check, f"{lh}: epoch 3 is missing: the task completed with 3 of the 4 epochs"
    ), check
    h, params = other_params(run, epochs=EPOCHS - 1)
    check = verdict(run, h, params=params)
    assert failed_with(check, f"{lh}: 3 epochs anchored, the parameters ask for 2"), check
    # Same epochs, another schedule seed: the plan, so the genesis, differs.
    h, params = other_params(run, seed=7)
    check = verdict(run, h, params=params)
    assert failed_with(check, f"label holder {lh}: the result's genesis"), check


# ------------------------------------------------------------------ the pure rules, k = 2


A, B, C = "0xLabel", "0xFeatureB", "0xFeatureC"


def _anchored(node: str, n: int, block: int = 10) -> list[Anchored]:
    return [Anchored(node, e, digest("t", f"{node}{e}".encode()), block + e) for e in range(n)]


def test_numbering_with_two_feature_holders() -> None:
    chains = [*_anchored(A, 2), *_anchored(B, 2), *_anchored(C, 2)]
    assert numbering_problem(chains, [A, B, C], 2, complete=True) is None
    assert numbering_problem(chains, [A, B, C], None, complete=True) is None
    short = [*_anchored(A, 2), *_anchored(B, 2), *_anchored(C, 1)]
    assert numbering_problem(short, [A, B, C], 2, complete=False) is None
    problem = numbering_problem(short, [A, B, C], None, complete=True)
    assert problem is not None and problem.startswith(f"{C}: epoch 1 is missing"), problem
    assert numbering_problem([], [A, B, C], None, complete=False) is None


def test_the_final_share_and_genesis_rules_by_hand() -> None:
    weights = np.array([0.5, -0.25, 0.125])
    share = vertical.share_digest(A, weights)
    body = {"features": ["x", "y"], "weights": [0.5, -0.25], "intercept": 0.125}
    assert final_share_problem(A, body, share, share, 1) is None
    problem = final_share_problem(B, body, share, share, 1)
    assert problem is not None and problem.startswith("the final weights and intercept hash")
    params = fl_vertical.VerticalParams.from_json(vertical_params(epochs=2, residual="taylor"))
    task = digest("t", b"task")
    plan = fl_vertical.plan_for(params, A, [B, C], 100, task)
    good = vertical.genesis(plan, A)
    assert genesis_problem(params, task, A, [B, C], 100, good) is None
    assert genesis_problem(params, task, A, [C, B], 100, good) is not None  # seat order
    assert genesis_problem(params, task, A, [B, C], 101, good) is not None
    assert genesis_problem(params, task, A, [B, C], 0, good) is not None
    assert genesis_problem(params, bytes(32), A, [B, C], 100, good) is not None
    # The label holder's genesis, not a feature holder's.
    assert genesis_problem(params, task, A, [B, C], 100, vertical.genesis(plan, B)) is not None


def test_two_feature_holders_each_need_their_messages_with_the_label_holder() -> None:
    def entries(me: str, peers: list[str], epochs: int) -> list[Entry]:
        out: list[Entry] = []
        for e in range(epochs):
            for peer in peers:
                mine = me == A
                for kind, from_lh in (("partial", False), ("residual", True)):
                    sent = from_lh == mine
                    out.append(
                        Entry(
                            len(out),
                            "sent" if sent else "received",
                            f"vfl/{kind}/{e}/0",
                            peer,
                            digest("t", f"{me}{peer}{kind}{e}".encode()),
                            bytes(32),
                        )
                    )
        return out

    given = {A: entries(A, [B, C], 2), B: entries(B, [A], 2), C: entries(C, [A], 2)}
    counts = {A.lower(): 2, B.lower(): 2, C.lower(): 2}
    assert transcripts_problem(A, [B, C], counts, given, True) is None
    # The label holder trained epoch 1 with B only.
    given[A] = [e for e in given[A] if not (e.peer == C and "/1/" in e.step)]
    problem = transcripts_problem(A, [B, C], counts, given, True)
    assert problem == (
        f"epoch 1: {A} anchored the epoch's checkpoint but recorded no training message "
        f"of it with {C}"
    )
