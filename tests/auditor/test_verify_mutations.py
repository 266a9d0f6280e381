"""Flip one class of evidence of a completed multi-party task at a time: exactly the
check named for it fails, and every other check keeps its verdict (issue 13, "How it
is shown"). Then feed malformed values (wrong-length digests, bad hex, wrong types)
into what each check reads: a failed check naming the problem, never an exception.

The task is real (three nodes, the secure-statistics protocol, eth-tester); the
mutations are applied to the evidence the auditor reads (decoded events, transcripts,
the code read at the manifest's addresses), as a forger would present it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from auditor.verifier import (
    CHECKS,
    TRANSCRIPT_CHECKS,
    Check,
    TaskHistory,
    check_params_commitment,
    deployment_checks,
)
from ledger.deployment_binding import check_bytecode
from ledger.events import Event
from ledger.task_params import ParamsEnvelope
from tests.auditor.verify_scenario import Completed, flip

ZERO = bytes(32)


@pytest.fixture
def done(completed_task: Completed) -> Completed:
    return completed_task


def statuses(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_the_untouched_task_passes_every_check_that_applies(done: Completed) -> None:
    checks = done.verify()
    verdicts = statuses(checks)
    assert [c.name for c in checks if c.failed] == []
    # Everything a completed three-party task has evidence for is judged, not skipped:
    # only the failure reporter has nothing to judge.
    assert {n for n, s in verdicts.items() if s == "not-applicable"} == {
        "failure_reporter_authorised"
    }, verdicts
    by_name = {c.name: c for c in checks}
    nodes = {a.lower() for a in done.transcripts}
    assert set(by_name["transcript_io_matches_chain"].evidence["compared"]) == nodes
    assert set(by_name["anchor_log_consistent"].evidence["nodes"]) == nodes


Mutation = Callable[[Completed], list[Check]]


def _transcript_entry(done: Completed) -> list[Check]:
    node = done.node("bank-b")
    entries = done.transcripts[node]
    forged = [dataclasses.replace(entries[0], digest=flip(entries[0].digest)), *entries[1:]]
    return done.verify(transcripts={**done.transcripts, node: forged})


def _evidence_root(done: Completed) -> list[Check]:
    i = done.event("ResultSubmitted", done.node("regulator"))
    root = done.history.all_events[i].args["evidenceRoot"]
    return done.verify(done.with_arg(i, "evidenceRoot", flip(root, 31)))


def _checkpoint_root(done: Completed) -> list[Check]:
    # A node without late deliveries: its checkpoint is not compared by evidence_roots_match.
    node = next(
        n for n, es in done.transcripts.items() if all(e.kind != "received-late" for e in es)
    )
    from ledger.transcript import evidence_log_id

    i = done.event("Checkpointed", logId=evidence_log_id(node, done.task_id))
    root = done.history.all_events[i].args["rootHash"]
    return done.verify(done.with_arg(i, "rootHash", flip(root, 5)))


def _completed_result(done: Completed) -> list[Check]:
    i = done.event("TaskCompleted")
    digest = done.history.all_events[i].args["resultDigest"]
    return done.verify(done.with_arg(i, "resultDigest", flip(digest, 7)))


def _aggregator_input(done: Completed) -> list[Check]:
    i = done.event("InputAnchored", done.node("bank-a"))
    commitment = done.history.all_events[i].args["commitment"]
    return done.verify(done.with_arg(i, "commitment", flip(commitment)))


def _registered_dataset(done: Completed) -> list[Check]:
    created = done.history.created()
    assert created is not None
    dataset = next(p["datasetId"] for p in created.args["participants"] if p["datasetId"] != ZERO)
    i = done.event("DatasetVersionAdded", datasetId=dataset)
    root = done.history.all_events[i].args["merkleRoot"]
    return done.verify(done.with_arg(i, "merkleRoot", flip(root)))


def _grant_timing(done: Completed) -> list[Check]:
    node = done.node("regulator")
    accepted = done.history.all_events[done.event("TaskAccepted", node)]
    grant = accepted.args["grantId"]
    i = done.event("GrantCreated", grantId=grant)
    when = done.history.timestamps[accepted.block_number]
    return done.verify(done.with_arg(i, "notAfter", when - 1))


def _participant_status(done: Completed) -> list[Check]:
    node = done.node("bank-b")
    accepted = done.history.all_events[done.event("TaskAccepted", node)]
    org = done.consortium.orgs["bank-b"].org_id
    revoked = Event(
        "Consortium",
        "NodeRevoked",
        {"node": node, "orgId": org},
        done.consortium.deployment.address("Consortium"),
        accepted.block_number - 1,
        bytes(32),
        b"\x99" * 32,
        10**6,
    )
    return done.verify(done.with_event(revoked))


def _algorithm_approval(done: Completed) -> list[Check]:
    events = [e for e in done.history.all_events if e.name != "AlgorithmApproved"]
    return done.verify(TaskHistory(done.task_id, events, done.history.timestamps))


def _params(done: Completed) -> list[Check]:
    salt = bytearray(done.params.salt)
    salt[0] ^= 1
    return done.verify(params=ParamsEnvelope(done.params.params, bytes(salt)))


def _deployed_bytecode(done: Completed) -> list[Check]:
    codes = dict(done.codes)
    # A byte of executable code outside the immutables the comparison masks.
    masked = {
        offset
        for ranges in done.artifacts["TaskRegistry"]["immutableReferences"].values()
        for r in ranges
        for offset in range(r["start"], r["start"] + r["length"])
    }
    at = next(i for i in range(40, len(codes["TaskRegistry"])) if i not in masked)
    codes["TaskRegistry"] = flip(codes["TaskRegistry"], at)
    real = done.deployment()
    forged = deployment_checks([check_bytecode(done.consortium.deployment, codes, done.artifacts)])
    return done.verify(deployment=[forged[0], *real[1:]])


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "a transcript entry": (_transcript_entry, "evidence_roots_match"),
    "an anchored evidence root": (_evidence_root, "evidence_roots_match"),
    "an AnchorLog checkpoint root": (_checkpoint_root, "anchor_log_consistent"),
    "the completed result digest": (_completed_result, "result_digests_agree"),
    "an anchored input commitment": (_aggregator_input, "transcript_io_matches_chain"),
    "a registered dataset root": (_registered_dataset, "input_commitments_match_datasets"),
    "a grant's timing": (_grant_timing, "grants_valid_and_metered"),
    "a participant's status": (_participant_status, "membership_active"),
    "the algorithm's approval": (_algorithm_approval, "algorithm_approved_at_start"),
    "the disclosed parameters' salt": (_params, "params_commitment"),
    "the deployed bytecode": (_deployed_bytecode, "deployment_bytecode"),
}


@pytest.mark.parametrize("what", list(MUTATIONS))
def test_one_mutation_fails_its_named_check_only(done: Completed, what: str) -> None:
    mutate, named = MUTATIONS[what]
    before = statuses(done.verify())
    after = statuses(mutate(done))
    assert after[named] == "fail", (what, after)
    changed = {n: (before[n], after[n]) for n in before if before[n] != after[n]}
    assert changed == {named: (before[named], "fail")}, (what, changed)


# ------------------------------------------------------------- malformed evidence

MALFORMED: list[object] = [
    b"\x01" * 31,
    b"\x01" * 33,
    b"",
    "0x" + "zz" * 32,
    "not hex at all",
    12345,
    None,
]
ALL_CHECKS: list[Callable[[Completed, TaskHistory], Check]] = [
    *[(lambda d, h, c=c: c(h)) for c in CHECKS],
    *[(lambda d, h, c=c: c(h, d.transcripts)) for c in TRANSCRIPT_CHECKS],
    lambda d, h: check_params_commitment(h, d.params),
]

#: (event, acting node or None, argument) -> the check that reads it and must fail.
FIELDS: list[tuple[str, str | None, str, str]] = [
    ("TaskCreated", None, "creatorOrg", "membership_active"),
    ("TaskCreated", None, "algorithmDigest", "algorithm_approved_at_start"),
    ("TaskCreated", None, "paramsDigest", "params_commitment"),
    ("InputAnchored", "bank-b", "commitment", "input_commitments_match_datasets"),
    ("InputAnchored", "bank-a", "commitment", "transcript_io_matches_chain"),
    ("ResultSubmitted", "regulator", "resultDigest", "result_digests_agree"),
    ("ResultSubmitted", "regulator", "evidenceRoot", "evidence_roots_match"),
    ("TaskCompleted", None, "resultDigest", "result_digests_agree"),
]


@pytest.mark.parametrize(("event", "who", "arg", "named"), FIELDS)
def test_a_malformed_digest_fails_the_check_that_reads_it(
    done: Completed, event: str, who: str | None, arg: str, named: str
) -> None:
    i = done.event(event, None if who is None else done.node(who))
    for bad in MALFORMED:
        history = done.with_arg(i, arg, bad)
        for run in ALL_CHECKS:
            assert isinstance(run(done, history), Check)  # never raises
        checks = {c.name: c for c in done.verify(history)}
        assert checks[named].status == "fail", (event, arg, bad, checks[named])


def test_malformed_registry_events_fail_their_checks(done: Completed) -> None:
    from ledger.transcript import evidence_log_id

    created = done.history.created()
    assert created is not None
    dataset = next(p["datasetId"] for p in created.args["participants"] if p["datasetId"] != ZERO)
    node = done.node("bank-b")
    cases = [
        (done.event("DatasetVersionAdded", datasetId=dataset), "merkleRoot",
         "input_commitments_match_datasets"),
        (done.event("Checkpointed", logId=evidence_log_id(node, done.task_id)), "rootHash",
         "anchor_log_consistent"),
        (done.event("Checkpointed", logId=evidence_log_id(node, done.task_id)), "treeSize",
         "anchor_log_consistent"),
    ]  # fmt: skip
    grant = done.history.all_events[done.event("TaskAccepted", node)].args["grantId"]
    cases.append(
        (done.event("GrantCreated", grantId=grant), "datasetId", "grants_valid_and_metered")
    )
    for index, arg, named in cases:
        sizes = [b"\x01" * 31, "0x" + "zz" * 32, "12", None, -1, True]
        for bad in sizes if arg == "treeSize" else MALFORMED:
            checks = {c.name: c for c in done.verify(done.with_arg(index, arg, bad))}
            assert checks[named].status == "fail", (arg, bad, checks[named])


def test_a_malformed_participant_fails_and_never_raises(done: Completed) -> None:
    i = done.event("TaskCreated")
    participants = done.history.all_events[i].args["participants"]
    for bad in MALFORMED:
        changed = [participants[0], {**participants[1], "grantId": bad}, *participants[2:]]
        history = done.with_arg(i, "participants", changed)
        for run in ALL_CHECKS:
            assert isinstance(run(done, history), Check)
        checks = {c.name: c for c in done.verify(history)}
        assert checks["grants_valid_and_metered"].status == "fail", (bad, checks)


def test_a_transcript_entry_of_the_wrong_length_fails_and_never_raises(done: Completed) -> None:
    node = done.node("regulator")
    entries = done.transcripts[node]
    for field in ("digest", "prev"):
        for bad in (b"\x02" * 31, b"\x02" * 33, b""):
            forged = [*entries[:2], dataclasses.replace(entries[2], **{field: bad}), *entries[3:]]
            checks = {
                c.name: c for c in done.verify(transcripts={**done.transcripts, node: forged})
            }
            assert checks["evidence_roots_match"].status == "fail", (field, bad)
            assert "32-byte" in checks["evidence_roots_match"].detail
            assert checks["transcripts_agree_pairwise"].status == "fail", (field, bad)
            # not judged by the checks that rely on an authenticated transcript
            assert checks["transcript_io_matches_chain"].status == "pass"
            assert checks["anchor_log_consistent"].status == "pass"


def test_check_verdicts_are_consistent() -> None:
    assert Check("x", True, "ok").status == "pass"
    assert Check("x", False, "no").status == "fail"
    skipped = Check.not_applicable("x", "nothing to judge")
    assert skipped.passed and not skipped.failed and skipped.to_json()["status"] == "not-applicable"
    with pytest.raises(ValueError, match="contradicts"):
        Check("x", True, "ok", {}, "fail")
    with pytest.raises(ValueError, match="status must be"):
        Check("x", True, "ok", {}, "maybe")
