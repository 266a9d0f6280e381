"""Persisted task state on SQLite and PostgreSQL: phases, idempotency markers, resume."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator

import pytest

from node.evidence import EvidenceStore
from node.state import (
    PHASES,
    TRANSITIONS,
    TaskError,
    TaskStateStore,
    checkpoint_action,
)

T1 = hashlib.sha256(b"t1").digest()
T2 = hashlib.sha256(b"t2").digest()
T3 = hashlib.sha256(b"t3").digest()
TX = hashlib.sha256(b"tx").digest()
PARAMS = {"algorithm": "psi", "rounds": 3}


@pytest.fixture
def states(db_url: str) -> Iterator[TaskStateStore]:
    with TaskStateStore(db_url) as s:
        yield s


def _walk_to(states: TaskStateStore, task: bytes, phase: str) -> None:
    """Drive a fresh task to ``phase`` along the main path."""
    path = {
        "seen": [],
        "accepted": ["accepted"],
        "refused": ["refused"],
        "input_anchored": ["accepted", "input_anchored"],
        "running": ["accepted", "input_anchored", "running"],
        "result_submitted": ["accepted", "input_anchored", "running", "result_submitted"],
        "done": ["accepted", "input_anchored", "running", "result_submitted", "done"],
        "failed": ["failed"],
    }[phase]
    for step in path:
        error = TaskError("PROTOCOL_ERROR", "x") if step in ("refused", "failed") else None
        states.advance(task, step, error=error)


def test_create_is_idempotent_and_round_trips(states: TaskStateStore) -> None:
    rec = states.create(T1, "provider", PARAMS)
    assert (rec.phase, rec.role, rec.params, rec.error, rec.result) == (
        "seen",
        "provider",
        PARAMS,
        None,
        None,
    )
    assert rec.created_at.tzinfo is not None and rec.updated_at == rec.created_at
    # Re-reading TaskCreated after a restart: same data, same record.
    assert states.create(T1, "provider", {"rounds": 3, "algorithm": "psi"}) == rec
    assert states.get(T1) == rec
    assert states.get(T2) is None
    assert states.ensure(T1, "provider") == rec  # parameters need not be repeated
    with pytest.raises(ValueError, match=r"^role: .* recorded with role 'provider'"):
        states.create(T1, "aggregator", PARAMS)
    with pytest.raises(ValueError, match=r"^params: .* other parameters"):
        states.create(T1, "provider", {"rounds": 4})


def test_parameters_may_arrive_later_but_never_change(states: TaskStateStore) -> None:
    rec = states.ensure(T1, "provider")
    assert rec.params_json is None and rec.params is None
    rec = states.create(T1, "provider", PARAMS)
    assert rec.params == PARAMS and rec.params_json == '{"algorithm":"psi","rounds":3}'
    with pytest.raises(ValueError, match=r"^params: "):
        states.create(T1, "provider", [])


def test_result_is_stored_before_submission_and_never_replaced(states: TaskStateStore) -> None:
    states.create(T1, "aggregator", PARAMS)
    _walk_to(states, T1, "running")
    rec = states.set_result(T1, '{"salt": "00", "result": {"sum": 5}}')
    assert rec.phase == "running" and rec.result == {"salt": "00", "result": {"sum": 5}}
    assert states.set_result(T1, '{"result":{"sum":5},"salt":"00"}') == rec  # same JSON
    with pytest.raises(ValueError, match=r"^result: .* different result"):
        states.set_result(T1, '{"result": {"sum": 6}, "salt": "00"}')
    with pytest.raises(ValueError, match=r"^result: .* different result"):
        states.advance(T1, "result_submitted", result={"sum": 6})
    with pytest.raises(ValueError, match=r"^result_json: not valid JSON"):
        states.set_result(T1, "{")
    states.advance(T1, "result_submitted")
    rec = states.advance(T1, "done")
    assert rec.result == {"salt": "00", "result": {"sum": 5}}
    with pytest.raises(ValueError, match=r"^task_id: .* already done"):
        states.set_result(T1, "{}")


def test_main_path_with_result(states: TaskStateStore) -> None:
    states.create(T1, "provider", PARAMS)
    for phase in ("accepted", "input_anchored", "running"):
        assert states.advance(T1, phase).phase == phase
    rec = states.advance(T1, "result_submitted", result={"digest": "0x" + TX.hex()})
    assert rec.result == {"digest": "0x" + TX.hex()}
    rec = states.advance(T1, "done")
    assert rec.phase == "done" and rec.final and rec.result == {"digest": "0x" + TX.hex()}
    assert rec.updated_at >= rec.created_at


def test_every_edge_is_allowed_and_every_other_is_refused(db_url: str) -> None:
    with TaskStateStore(db_url) as states:
        n = 0
        for src in PHASES:
            for dst in PHASES:
                n += 1
                task = hashlib.sha256(f"{src}->{dst}".encode()).digest()
                states.create(task, "provider", {})
                _walk_to(states, task, src)
                error = TaskError("GRANT_INVALID", "no") if dst in ("refused", "failed") else None
                if dst in TRANSITIONS[src]:
                    assert states.advance(task, dst, error=error).phase == dst
                else:
                    with pytest.raises(ValueError) as info:
                        states.advance(task, dst, error=error)
                    message = str(info.value)
                    assert f"0x{task.hex()}" in message
                    assert f"from {src!r} to {dst!r}" in message
                    rec = states.get(task)
                    assert rec is not None and rec.phase == src
        assert n == len(PHASES) ** 2


def test_refusal_and_failure_carry_a_reason(states: TaskStateStore) -> None:
    states.create(T1, "provider", PARAMS)
    with pytest.raises(ValueError, match=r"^error: "):
        states.advance(T1, "refused")
    with pytest.raises(ValueError, match=r"^error: "):
        states.advance(T1, "accepted", error=TaskError("X"))
    with pytest.raises(ValueError, match=r"^error.reason: "):
        states.advance(T1, "refused", error=TaskError("not a name!", ""))
    with pytest.raises(ValueError, match=r"^result: "):
        states.advance(T1, "accepted", result={"x": 1})
    with pytest.raises(ValueError, match=r"^result: "):
        states.advance(T1, "refused", error=TaskError("A"), result={"x": 1})
    with pytest.raises(ValueError, match=r"^phase: "):
        states.advance(T1, "finished")
    rec = states.advance(T1, "refused", error=TaskError("GRANT_INVALID", "grant\x00 expired"))
    assert rec.error == TaskError("GRANT_INVALID", "grant\\x00 expired")
    # A refused task stays open until its refusal is on chain.
    assert [r.task_id for r in states.open_tasks()] == [T1]
    assert states.advance(T1, "done").error == rec.error
    states.create(T2, "aggregator", {})
    states.advance(T2, "accepted")
    rec = states.fail(T2, "PEER_TIMEOUT", "x" * 10_000)
    assert rec.phase == "failed" and rec.error is not None
    assert rec.error.reason == "PEER_TIMEOUT" and len(rec.error.detail) == 4000


def test_a_chain_ending_does_not_fail_a_task_twice(states: TaskStateStore) -> None:
    """The runner reacting to TaskFailed on chain races the task's own worker failing it:
    under ``unless_final`` the first failure stands, and an open task is still failed."""
    states.create(T1, "provider", PARAMS)
    states.fail(T1, "IDENTIFIER_FILTER", "the worker's own refusal")
    rec = states.fail(T1, "CHAIN_TASKFAILED", "the chain ended the task", unless_final=True)
    assert rec.phase == "failed" and rec.error == TaskError(
        "IDENTIFIER_FILTER", "the worker's own refusal"
    )
    with pytest.raises(ValueError, match="cannot move from 'failed' to 'failed'"):
        states.fail(T1, "CHAIN_TASKFAILED", "the chain ended the task")
    states.create(T2, "provider", PARAMS)
    rec = states.fail(T2, "CHAIN_TASKFAILED", "the chain ended the task", unless_final=True)
    assert rec.phase == "failed" and rec.error is not None
    assert rec.error.reason == "CHAIN_TASKFAILED"


def test_errors_may_be_given_as_reason_text(states: TaskStateStore) -> None:
    for task in (T1, T2, T3):
        states.create(task, "provider")
    rec = states.advance(T1, "refused", error="GRANT_INVALID: grant 0x12 does not cover this use")
    assert rec.error == TaskError("GRANT_INVALID", "grant 0x12 does not cover this use")
    assert states.fail(T2, "chain: TaskExpired").error == TaskError("chain", "TaskExpired")
    assert states.fail(T3, "PEER_TIMEOUT").error == TaskError("PEER_TIMEOUT", "")
    states.create(hashlib.sha256(b"t4").digest(), "provider")
    with pytest.raises(ValueError, match=r"^error: expected 'REASON: detail'"):
        states.fail(hashlib.sha256(b"t4").digest(), "it broke: badly")


def test_bad_arguments_are_named(states: TaskStateStore) -> None:
    states.create(T1, "provider", PARAMS)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: states.create(b"short", "provider", {}), "task_id"),
        (lambda: states.create(T2, "Provider!", {}), "role"),
        (lambda: states.create(T2, "provider", {"x": float("nan")}), "params"),
        (lambda: states.create(T2, "provider", {1: 2}), "params"),
        (lambda: states.advance(T2, "accepted"), "task_id"),
        (lambda: states.mark_pending(T2, "accept"), "task_id"),
        (lambda: states.mark_pending(T1, "withdraw"), "action"),
        (lambda: states.mark_pending(T1, "checkpoint:-1"), "action"),
        (lambda: states.mark_pending(T1, "checkpoint:01"), "action"),
        (lambda: states.mark_sent(T1, "accept", TX), "action"),
        (lambda: states.mark_sent(T1, "accept", b"\x00" * 31), "tx_hash"),
        (lambda: checkpoint_action(-1), "round_index"),
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=rf"^{field}: "):
            call()
    assert states.get(T2) is None
    assert states.action_status(T1, "accept") is None


def test_markers_survive_a_restart(db_url: str) -> None:
    with TaskStateStore(db_url) as states:
        states.create(T1, "provider", PARAMS)
        assert states.mark_pending(T1, "accept") is True
        assert states.mark_pending(T1, "accept") is False  # never claimed twice
        states.mark_sent(T1, "accept", TX)
        states.mark_sent(T1, "accept", TX)  # repeating the same hash is harmless
        with pytest.raises(ValueError, match=r"^tx_hash: .*already sent"):
            states.mark_sent(T1, "accept", bytes(32))
        states.advance(T1, "accepted")
        assert states.mark_pending(T1, "anchor_input") is True
        assert states.mark_pending(T1, checkpoint_action(0)) is True
        states.mark_sent(T1, "checkpoint:0", bytes(range(32)))
        # ...crash before anchor_input's tx hash is known.

    with TaskStateStore(db_url) as states:  # the restarted node
        assert states.action_tx(T1, "accept") == TX
        assert states.action_status(T1, "accept") == "sent"
        assert states.mark_pending(T1, "accept") is False
        assert states.action_tx(T1, "checkpoint:0") == bytes(range(32))
        assert states.action_status(T1, "anchor_input") == "pending"
        assert states.action_tx(T1, "anchor_input") is None
        assert states.action_status(T1, "submit_result") is None
        assert states.pending_actions() == [(T1, "anchor_input")]
        # Never broadcast: release the claim and try again.
        states.release(T1, "anchor_input")
        assert states.action_status(T1, "anchor_input") is None
        assert states.mark_pending(T1, "anchor_input") is True
        with pytest.raises(ValueError, match=r"^action: .*already sent"):
            states.release(T1, "accept")
        rec = states.get(T1)
        assert rec is not None and rec.phase == "accepted" and rec.params == PARAMS
        assert [r.task_id for r in states.open_tasks()] == [T1]


def test_markers_are_claimed_once_under_concurrency(states: TaskStateStore) -> None:
    states.create(T1, "provider", {})
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def claim() -> None:
        barrier.wait()
        wins.append(states.mark_pending(T1, "submit_result"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_open_tasks_lists_unfinished_tasks_oldest_first(states: TaskStateStore) -> None:
    for task in (T1, T2, T3):
        states.create(task, "provider", {})
    states.advance(T1, "accepted")
    states.fail(T2, "DATASET_MISMATCH", "row count differs")
    _walk_to(states, T3, "done")
    assert [(r.task_id, r.phase) for r in states.open_tasks()] == [(T1, "accepted")]
    states.create(T2[::-1], "provider", {})
    assert [r.task_id for r in states.open_tasks()] == [T1, T2[::-1]]


def test_shares_a_database_with_the_evidence_store(db_url: str) -> None:
    with EvidenceStore(db_url) as evidence, TaskStateStore(db_url) as states:
        states.create(T1, "provider", {})
        evidence.append(T1, "input", "in", TX)
        assert states.get(T1) is not None and evidence.size(T1) == 1
