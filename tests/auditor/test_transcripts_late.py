"""Transcripts of protocols that finish early, and of peers that go away, as the auditor
judges them (`check_evidence`, `check_transcripts_agree`).

The transcripts are recorded by real `RecordingChannel`s over in-memory channels (the
secure statistics themselves for the threshold case); the chain histories are synthetic
event lists shaped as `ledger.events` decodes them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verifier import (
    TaskHistory,
    check_evidence,
    check_transcripts_agree,
    verify_task,
)
from ledger.canonical import digest
from ledger.events import Event
from ledger.transcript import Entry, Transcript, evidence_log_id, transcript_root
from node.algorithms import stats
from node.channel import Channel, ForwardingChannel, InMemoryNetwork, RecordingChannel
from node.crypto import secagg
from tests.node.party_keys import identity, key_ring

TASK = b"\x0b" * 32
AGG = "0x" + "a0" * 20
P1, P2, P3, P4 = ("0x" + f"{i}{i}" * 20 for i in range(1, 5))
PROVIDERS = [P1, P2, P3, P4]
AGREE = "transcripts_agree_pairwise"


class History:
    """A task's events, one per block, in chain order."""

    def __init__(self, participants: Sequence[str]) -> None:
        self.events: list[Event] = []
        self.task(
            "TaskRegistry",
            "TaskCreated",
            creatorOrg=b"\x01" * 32,
            algorithmDigest=b"\x02" * 32,
            paramsDigest=b"\x03" * 32,
            deadline=10**10,
            participants=[
                {"node": n, "datasetId": bytes(32) if n == AGG else b"\x04" * 32,
                 "datasetVersion": 0 if n == AGG else 1, "grantId": bytes(32)}
                for n in participants
            ],
        )  # fmt: skip

    def add(self, contract: str, event: str, /, **args: Any) -> History:
        n = len(self.events) + 1
        self.events.append(
            Event(contract, event, args, "0x" + "00" * 20, n, bytes(32), n.to_bytes(32, "big"), 0)
        )
        return self

    def task(self, contract: str, event: str, /, **args: Any) -> History:
        return self.add(contract, event, taskId=TASK, **args)

    def result(self, node: str, entries: Sequence[Entry]) -> History:
        """``node`` submits its result with the root of ``entries`` (the anchored prefix)."""
        return self.task(
            "TaskRegistry",
            "ResultSubmitted",
            node=node,
            resultDigest=b"\x05" * 32,
            evidenceRoot=transcript_root(entries),
        )

    def checkpoint(self, node: str, entries: Sequence[Entry]) -> History:
        """``node`` checkpoints ``entries`` in its AnchorLog log of the task."""
        return self.add(
            "AnchorLog",
            "Checkpointed",
            logId=evidence_log_id(node, TASK),
            treeSize=len(entries),
            rootHash=transcript_root(entries),
            writer=node,
        )

    def done(self, event: str = "TaskCompleted", **args: Any) -> TaskHistory:
        self.task("TaskRegistry", event, **args)
        return TaskHistory(TASK, self.events, {})


class Gate(ForwardingChannel):
    """Holds back one step's send until `release` is set: a provider slower than the rest."""

    def __init__(self, inner: Channel, step: str, release: threading.Event) -> None:
        super().__init__(inner)
        self.step, self.release = step, release

    def send(self, peer: str, step: str, payload: bytes) -> None:
        if step == self.step:
            assert self.release.wait(60), "the gate was never opened"
        self.inner.send(peer, step, payload)


def _params() -> stats.StatsParams:
    return stats.StatsParams.from_json(
        {
            "columns": [
                {"name": "amount", "type": "integer"},
                {"name": "region", "type": "string"},
            ],
            "value_column": "amount",
            "group_column": "region",
            "categories": ["north", "south"],
            "min_group_size": 1,
        }
    )


def _rows(i: int) -> list[dict[str, Any]]:
    return [{"amount": 10 * i + k, "region": ("north", "south")[k % 2]} for k in range(3)]


def _threshold_run() -> tuple[
    stats.StatsResult, dict[str, RecordingChannel], dict[str, Transcript]
]:
    """Four providers (threshold 3); P1's survivor signature comes after the aggregator
    finished with the other three, so its signature and unmask answer are never read."""
    assert secagg.minimum_threshold(4) == 3
    net = InMemoryNetwork([AGG, *PROVIDERS])
    transcripts = {n: Transcript() for n in [AGG, *PROVIDERS]}
    finished = threading.Event()
    channels: dict[str, RecordingChannel] = {}
    for n in transcripts:
        inner: Channel = net.channel(n)
        if n == P1:
            inner = Gate(inner, secagg.STEP_SIGNATURE, finished)
        channels[n] = RecordingChannel(inner, TASK, transcripts[n])
    ring = key_ring(PROVIDERS)
    errors: list[BaseException] = []

    def provide(n: str) -> None:
        try:
            stats.run_provider(channels[n], _params(), _rows(PROVIDERS.index(n)), AGG,
                               PROVIDERS, 30.0, task_id=TASK, identity=identity(n),
                               verifier=ring)  # fmt: skip
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=provide, args=(n,), daemon=True) for n in PROVIDERS]
    for t in threads:
        t.start()
    try:
        result = stats.run_aggregator(
            channels[AGG], _params(), PROVIDERS, 30.0, task_id=TASK, verifier=ring
        )
    finally:
        finished.set()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert errors == []
    return result, channels, transcripts


def _completed(transcripts: Mapping[str, Transcript], anchored: Mapping[str, int]) -> TaskHistory:
    """Every party submits the root of its first ``anchored[n]`` entries and checkpoints
    its whole transcript; the task completes."""
    h = History(list(transcripts))
    for n, t in transcripts.items():
        h.result(n, t.entries[: anchored[n]])
        h.checkpoint(n, t.entries)
    return h.done(resultDigest=b"\x05" * 32)


def _entries(transcripts: Mapping[str, Transcript]) -> dict[str, list[Entry]]:
    return {n: t.entries for n, t in transcripts.items()}


def test_a_threshold_run_verifies_once_unread_messages_are_recorded_late() -> None:
    result, channels, transcripts = _threshold_run()
    rows = [r for i in range(4) for r in _rows(i)]
    assert result == stats.plaintext_stats(_params(), rows)  # the protocol really ran
    anchored = {n: len(t.entries) for n, t in transcripts.items()}

    # What every healthy three-provider run showed: the aggregator never recorded P1's
    # last two messages, and the audit failed although every party finished.
    before = check_transcripts_agree(_completed(transcripts, anchored), _entries(transcripts))
    assert not before.passed and f"from {P1} to {AGG}" in before.detail, before

    recorded = {n: c.record_unread(seal=True) for n, c in channels.items()}
    assert recorded == {AGG: 2, P1: 0, P2: 0, P3: 0, P4: 0}
    late = [e for e in transcripts[AGG].entries if e.kind == "received-late"]
    assert [(e.peer, e.step) for e in late] == [
        (P1, secagg.STEP_SIGNATURE),
        (P1, secagg.STEP_UNMASK),
    ]
    history = _completed(transcripts, anchored)
    agree = check_transcripts_agree(history, _entries(transcripts))
    assert agree.passed, agree.detail
    assert agree.evidence["deliveredLate"] == 2 and agree.evidence["wentAway"] == []
    assert "2 of them delivered late" in agree.detail
    evidence = check_evidence(history, _entries(transcripts))
    assert evidence.passed, evidence.detail
    assert evidence.evidence["lateDeliveries"] == {AGG: 2}
    # A sealed inbox takes nothing more: the record is final.
    try:
        channels[P1].send(AGG, "after-the-end", b"x")
    except Exception as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a sealed party accepted a message")


def test_late_entries_must_be_anchored_by_the_latest_checkpoint() -> None:
    _result, channels, transcripts = _threshold_run()
    anchored = {n: len(t.entries) for n, t in transcripts.items()}
    for c in channels.values():
        c.record_unread(seal=True)
    entries = _entries(transcripts)

    h = History(list(transcripts))  # results anchored, but no checkpoint of the late part
    for n, t in transcripts.items():
        h.result(n, t.entries[: anchored[n]])
    unanchored = check_evidence(h.done(resultDigest=b"\x05" * 32), entries)
    assert not unanchored.passed and AGG in unanchored.detail
    assert "latest AnchorLog checkpoint (none)" in unanchored.detail

    # A transcript cut back to its result root, while the node checkpointed more: the
    # late deliveries it anchored are withheld.
    short = {**entries, AGG: entries[AGG][: anchored[AGG]]}
    withheld = check_evidence(_completed(transcripts, anchored), short)
    assert not withheld.passed and "anchored entries are missing" in withheld.detail


def test_a_tampered_late_entry_fails() -> None:
    _result, channels, transcripts = _threshold_run()
    anchored = {n: len(t.entries) for n, t in transcripts.items()}
    for c in channels.values():
        c.record_unread(seal=True)
    history = _completed(transcripts, anchored)
    # Rewrite the aggregator's last late entry with another digest, re-chained so the
    # hash chain itself is intact: only the anchors and the sender's record can tell.
    forged = list(transcripts[AGG].entries)
    last = forged[-1]
    forged[-1] = dataclasses.replace(last, digest=digest("test", b"forged"))
    entries = {**_entries(transcripts), AGG: forged}
    evidence = check_evidence(history, entries)
    assert not evidence.passed and AGG in evidence.detail
    agree = check_transcripts_agree(history, entries)
    # The genuine unmask answer is now unaccounted for at a receiver that finished.
    assert not agree.passed and f"'unmask' from {P1} to {AGG}" in agree.detail, agree.detail


def _scripted(*, b_reads: bool) -> tuple[dict[str, Transcript], dict[str, RecordingChannel]]:
    """AGG sends P1 "hello"; P1 reads it only if ``b_reads``; P1 sends AGG "answer"."""
    net = InMemoryNetwork([AGG, P1])
    transcripts = {AGG: Transcript(), P1: Transcript()}
    chans = {n: RecordingChannel(net.channel(n), TASK, transcripts[n]) for n in transcripts}
    chans[AGG].send(P1, "hello", b"hi")
    if b_reads:
        assert chans[P1].receive(AGG, "hello", 5.0) == b"hi"
    chans[P1].send(AGG, "answer", b"42")
    assert chans[AGG].receive(P1, "answer", 5.0) == b"42"
    return transcripts, chans


def test_a_message_never_read_by_a_peer_that_went_away_names_it() -> None:
    transcripts, _ = _scripted(b_reads=False)  # P1 went away without recording "hello"
    h = History([AGG, P1])
    h.result(AGG, transcripts[AGG].entries)
    failed = h.done("TaskFailed", reporter=AGG, reasonCode=101)
    agree = check_transcripts_agree(failed, _entries(transcripts))
    assert agree.passed, agree.detail
    assert agree.evidence["wentAway"] == [P1] and agree.evidence["undelivered"] == 1
    assert f"went away: {P1}" in agree.detail

    # The same record from a peer that submitted a result contradicts it: it stayed.
    h = History([AGG, P1])
    h.result(AGG, transcripts[AGG].entries).result(P1, transcripts[P1].entries)
    stayed = check_transcripts_agree(h.done(resultDigest=b"\x05" * 32), _entries(transcripts))
    assert not stayed.passed
    assert f"'hello' from {AGG} to {P1}" in stayed.detail and "submitted a result" in stayed.detail


def test_a_fabricated_receive_fails_naming_the_sender() -> None:
    transcripts, _ = _scripted(b_reads=True)
    # P1 claims a second message from AGG that AGG never sent.
    transcripts[P1].append("received", "extra", digest("test", b"invented"), AGG)
    h = History([AGG, P1])
    h.result(AGG, transcripts[AGG].entries).result(P1, transcripts[P1].entries)
    agree = check_transcripts_agree(h.done(resultDigest=b"\x05" * 32), _entries(transcripts))
    assert not agree.passed
    assert (
        f"'extra' from {AGG} to {P1}" in agree.detail and "never recorded sending" in agree.detail
    )


def test_a_sender_that_went_away_may_leave_only_its_last_send_unrecorded() -> None:
    transcripts, _ = _scripted(b_reads=True)
    # AGG crashed between its transport's delivery of "bye" and its own record of it.
    transcripts[P1].append("received-late", "bye", digest("test", b"bye"), AGG)
    h = History([AGG, P1])
    h.result(P1, transcripts[P1].entries[:-1]).checkpoint(P1, transcripts[P1].entries)
    history = h.done("TaskFailed", reporter=P1, reasonCode=101)
    agree = check_transcripts_agree(history, _entries(transcripts))
    assert agree.passed, agree.detail
    assert agree.evidence["wentAway"] == [AGG] and agree.evidence["unconfirmed"] == 1

    transcripts[P1].append("received-late", "more", digest("test", b"more"), AGG)
    two = check_transcripts_agree(history, _entries(transcripts))
    assert not two.passed and "its last send only" in two.detail


def test_no_transcripts_do_not_pass_when_results_were_anchored() -> None:
    transcripts, _ = _scripted(b_reads=True)
    h = History([AGG, P1])
    h.result(AGG, transcripts[AGG].entries).result(P1, transcripts[P1].entries)
    history = h.done(resultDigest=b"\x05" * 32)
    assert check_transcripts_agree(history, _entries(transcripts)).passed
    agree = check_transcripts_agree(history, {})
    assert not agree.passed and AGG in agree.detail and P1 in agree.detail
    evidence = check_evidence(history, {})
    assert not evidence.passed and "no transcript from" in evidence.detail


def test_an_unknown_task_is_named_and_nothing_else_is_checked() -> None:
    history = TaskHistory(TASK, [], {})
    checks = verify_task(history, {})
    assert [(c.name, c.passed) for c in checks] == [("task_created", False)]
    assert checks[0].detail.startswith(f"no such task on chain: 0x{TASK.hex()}")
    assert not check_transcripts_agree(history, {}).passed
    assert not check_evidence(history, {}).passed


def test_transcripts_of_non_participants_are_ignored_only_when_empty() -> None:
    transcripts, _ = _scripted(b_reads=True)
    h = History([AGG, P1])
    h.result(AGG, transcripts[AGG].entries).result(P1, transcripts[P1].entries)
    history = h.done(resultDigest=b"\x05" * 32)
    assert check_transcripts_agree(history, {**_entries(transcripts), P2: []}).passed
    outsider = Transcript()
    outsider.append("sent", "hello", digest("test", b"x"), P1)
    agree = check_transcripts_agree(history, {**_entries(transcripts), P2: outsider.entries})
    assert not agree.passed and P2 in agree.detail
