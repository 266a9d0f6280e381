"""`fl_round_chain`'s rules as pure functions over bytes, each shown passing on a
consistent chain and failing, with the round named, on one alteration at a time.

The chain and transcripts here are built by hand with the library's own link function
(``node.fl.horizontal.chain_digest``); the same rules on a real FedAvg task run by the
task runner are in ``tests/node/test_fl_tasks.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from auditor.verifier import verify_task
from auditor.verify.check import Malformed
from auditor.verify.checkpoints import (
    Anchored,
    ResultDisclosure,
    check_fl_round_chain,
    commitment_problem,
    head_problem,
    links_problem,
    numbering_problem,
    receipts_problem,
    result_commitment,
)
from auditor.verify.history import TaskHistory
from ledger.canonical import digest
from ledger.transcript import Entry, Transcript
from node import runner
from node.fl.horizontal import chain_digest
from tests.auditor.verify_scenario import Completed

AGG = "0xAggregator"
PROVIDERS = ["0xProviderA", "0xProviderB"]
ROUNDS = 4
GENESIS = digest("test", b"genesis")
MODELS = [digest("test", bytes([r])) for r in range(ROUNDS)]


def links() -> list[bytes]:
    out, previous = [], GENESIS
    for r, model in enumerate(MODELS):
        previous = chain_digest(previous, model, r)
        out.append(previous)
    return out


def anchored(node: str = AGG) -> list[Anchored]:
    return [Anchored(node, r, link, 10 + r) for r, link in enumerate(links())]


def sent_digest(provider: str, r: int) -> bytes:
    return digest("test", f"{provider}/{r}".encode())


def transcripts(rounds: int = ROUNDS) -> dict[str, list[Entry]]:
    """The aggregator sends round r's model to each provider after round r; each
    provider reads it before its round r + 1."""
    agg, by_provider = Transcript(), {p: Transcript() for p in PROVIDERS}
    for r in range(rounds):
        for p, t in by_provider.items():
            t.append("sent", f"round-{r}/masked", digest("test", f"{p}{r}".encode()), AGG)
            agg.append("received", f"round-{r}/masked", digest("test", f"{p}{r}".encode()), p)
        if r + 1 < rounds:
            for p, t in by_provider.items():
                agg.append("sent", f"fl-model/{r}", sent_digest(p, r), p)
                t.append("received", f"fl-model/{r}", sent_digest(p, r), AGG)
    return {AGG: agg.entries, **{p: t.entries for p, t in by_provider.items()}}


# ---------------------------------------------------------------------------- numbering


def test_numbering_passes_on_rounds_0_to_r_minus_1_by_the_aggregator() -> None:
    assert numbering_problem(anchored(), AGG, ROUNDS, complete=True) is None
    assert numbering_problem(anchored(), AGG.lower(), None, complete=True) is None
    # A task that failed part-way may stop after any round.
    assert numbering_problem(anchored()[:2], AGG, ROUNDS, complete=False) is None


@pytest.mark.parametrize(
    ("change", "complete", "expected"),
    [
        (lambda a: [a[0], a[1], a[3]], True, "round 2 is missing"),
        (lambda a: a[1:], False, "round 0 is missing"),
        (
            lambda a: [*a[:2], dataclasses.replace(a[2], round=1), a[3]],
            True,
            "round 1 is anchored twice",
        ),
        (
            lambda a: [*a, dataclasses.replace(a[3], round=4)],
            True,
            "5 rounds anchored, the parameters ask for 4",
        ),
        (lambda a: a[:3], True, "round 3 is missing: the task completed with 3 of the 4"),
        (lambda a: [], True, "the task completed without a single round checkpoint"),
        (
            lambda a: [a[0], dataclasses.replace(a[1], node=PROVIDERS[0]), *a[2:]],
            True,
            f"round 1 was anchored by {PROVIDERS[0]}, not by the aggregator",
        ),
    ],
)
def test_numbering_fails_naming_the_round(
    change: Callable[[list[Anchored]], list[Anchored]], complete: bool, expected: str
) -> None:
    problem = numbering_problem(change(anchored()), AGG, ROUNDS, complete)
    assert problem is not None and problem.startswith(expected), problem


# -------------------------------------------------------------------------------- links


def test_links_recompute_to_the_anchored_checkpoints() -> None:
    assert links_problem(GENESIS, MODELS, links()) is None


def test_an_altered_checkpoint_or_model_breaks_the_chain_at_its_round() -> None:
    forged = links()
    forged[2] = bytes(32)
    problem = links_problem(GENESIS, MODELS, forged)
    assert problem is not None and problem.startswith("round 2: anchored checkpoint 0x00"), problem
    # Every later link was computed from the true round 2: changing round 2's model
    # alone breaks round 2, and the chain cannot be patched from there on.
    models = [*MODELS[:2], bytes(32), MODELS[3]]
    problem = links_problem(GENESIS, models, links())
    assert problem is not None and problem.startswith("round 2:"), problem
    problem = links_problem(bytes(32), MODELS, links())
    assert problem is not None and problem.startswith("round 0:") and "genesis" in problem
    problem = links_problem(GENESIS, MODELS[:3], links())
    assert problem == "the result names 3 round model(s), 4 round(s) are anchored"


def test_the_result_head_is_the_last_anchored_link() -> None:
    chain = links()
    assert head_problem(chain, chain[-1], chain) is None
    problem = head_problem([*chain[:1], bytes(32), *chain[2:]], chain[-1], chain)
    assert problem is not None and problem.startswith("round 1: the result's round digest")
    problem = head_problem(chain, chain[-2], chain)
    assert problem is not None and problem.startswith("the result's chain head"), problem
    assert head_problem(chain[:3], chain[2], chain) is not None


# --------------------------------------------------------------------------- commitment


def test_the_commitment_is_the_runners_and_opens_only_with_its_result_and_salt() -> None:
    task, salt = digest("test", b"task"), bytes(range(32))
    result = {"chain_head": links()[-1].hex(), "weights": [0.5, -1.25]}
    commitment = runner.result_commitment(task, result, salt)
    assert result_commitment(task, result, salt) == commitment
    disclosure = ResultDisclosure(result, salt)
    assert commitment_problem(task, disclosure, commitment) is None
    other = ResultDisclosure({**result, "chain_head": "00" * 32}, salt)
    assert commitment_problem(task, other, commitment) is not None
    assert commitment_problem(task, ResultDisclosure(result, bytes(32)), commitment) is not None
    assert commitment_problem(task, disclosure, None) is not None


def test_the_disclosure_is_read_from_the_task_result_answer() -> None:
    answer = {"result": {"a": 1}, "commitmentSalt": "ab" * 32, "params": {}}
    assert ResultDisclosure.from_json(answer) == ResultDisclosure({"a": 1}, b"\xab" * 32)
    with pytest.raises(Malformed):
        ResultDisclosure.from_json({"result": {"a": 1}, "commitmentSalt": "ab"})


# ----------------------------------------------------------------------------- receipts


def test_the_models_sent_between_rounds_match_the_anchored_rounds() -> None:
    assert receipts_problem(AGG, PROVIDERS, ROUNDS, transcripts(), complete=True) is None
    # Only some transcripts authenticated: the others are not judged.
    given = {PROVIDERS[0]: transcripts()[PROVIDERS[0]]}
    assert receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True) is None


def _replace(entries: list[Entry], which: str, **change: object) -> list[Entry]:
    """``entries`` with the one of step ``which`` changed (the digest chain is not redone:
    these rules read the transcripts `evidence_roots_match` authenticated)."""
    return [dataclasses.replace(e, **change) if e.step == which else e for e in entries]  # type: ignore[arg-type]


def test_an_altered_received_model_fails_naming_round_and_provider() -> None:
    given = transcripts()
    given[PROVIDERS[1]] = _replace(given[PROVIDERS[1]], "fl-model/1", digest=bytes(32))
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem is not None
    assert problem.startswith(f"round 1: {PROVIDERS[1]} recorded receiving the model as 0x00")


def test_a_missing_or_extra_model_fails() -> None:
    given = transcripts()
    given[PROVIDERS[0]] = [e for e in given[PROVIDERS[0]] if e.step != "fl-model/2"]
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem == (
        f"round 2: {PROVIDERS[0]} never recorded receiving the round's model although the "
        "task completed"
    )
    # A failed task: a provider may have stopped before reading a model.
    assert receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=False) is None
    given = transcripts()
    given[PROVIDERS[0]] = _replace(given[PROVIDERS[0]], "fl-model/2", kind="received-late")
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem is not None and problem.startswith(
        f"round 2: {PROVIDERS[0]} never read the round's model"
    ), problem
    assert receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=False) is None
    given = transcripts()
    given[AGG] = [e for e in given[AGG] if (e.step, e.peer) != ("fl-model/0", PROVIDERS[1])]
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem is not None and problem.startswith(
        f"round 0: the aggregator recorded sending its model to {PROVIDERS[1]} 0 times"
    )
    # One round fewer anchored than the transcripts show models for.
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS - 1, transcripts(), complete=True)
    assert problem is not None and problem.startswith("round 2: the aggregator sent"), problem
    assert "no model is sent after the last round" in problem
    problem = receipts_problem(AGG, PROVIDERS, 2, transcripts(), complete=False)
    assert problem is not None and "round 2 was never anchored" in problem, problem


def test_a_model_from_another_node_or_read_too_late_fails() -> None:
    given = transcripts()
    given[PROVIDERS[0]] = _replace(given[PROVIDERS[0]], "fl-model/0", peer=PROVIDERS[1])
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem is not None and "not received from the aggregator" in problem, problem
    # Provider B started round 2 before it had round 1's model.
    given = transcripts()
    entries = given[PROVIDERS[1]]
    model = next(i for i, e in enumerate(entries) if e.step == "fl-model/1")
    moved = [*entries[:model], *entries[model + 1 :]]
    moved.append(entries[model])
    given[PROVIDERS[1]] = moved
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem == (
        f"round 1: {PROVIDERS[1]} recorded messages of round 2 before receiving round 1's model"
    )
    given = transcripts()
    given[PROVIDERS[0]] = _replace(given[PROVIDERS[0]], "fl-model/1", step="fl-model/x")
    problem = receipts_problem(AGG, PROVIDERS, ROUNDS, given, complete=True)
    assert problem is not None and "names no round" in problem, problem


# ------------------------------------------------------------------- on a non-FL task


def test_a_task_without_checkpoints_is_not_judged_and_not_listed(
    completed_task: Completed,
) -> None:
    """The secure-statistics task anchors no checkpoint: not applicable, and left out of
    its report. A checkpoint slipped into its history makes the check apply."""
    done = completed_task
    check = check_fl_round_chain(done.history, done.transcripts)
    assert check.status == "not-applicable", check
    assert "fl_round_chain" not in [c.name for c in done.verify()]
    created = done.history.created()
    assert created is not None
    stray = dataclasses.replace(
        created,
        name="CheckpointAnchored",
        args={
            "taskId": done.task_id,
            "node": created.args["participants"][0]["node"],
            "round": 1,
            "checkpointDigest": bytes(range(32)),
        },
        log_index=created.log_index + 1000,
    )
    forged = TaskHistory(done.task_id, [*done.history.all_events, stray], done.history.timestamps)
    names = [c.name for c in verify_task(forged, done.transcripts)]
    assert names[-1] == "fl_round_chain"
    check = check_fl_round_chain(forged, done.transcripts)
    assert check.failed and check.detail.startswith("round 0 is missing"), check
