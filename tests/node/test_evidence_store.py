"""The evidence store on SQLite and PostgreSQL (see `db_url` in conftest.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from ledger import merkle
from ledger.transcript import GENESIS_PREV, Entry, Transcript, chain_intact, transcript_root
from node.evidence import EvidenceCorrupted, EvidenceStore, StoreUnavailable
from node.evidence.models import AppendOnlyError, EntryRow
from node.evidence.store import utc_now

TASK = hashlib.sha256(b"task-1").digest()
OTHER = hashlib.sha256(b"task-2").digest()
PEER = "0x" + "ab" * 20


def d(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


@pytest.fixture
def store(db_url: str) -> Iterator[EvidenceStore]:
    with EvidenceStore(db_url) as s:
        yield s


def fill(store: EvidenceStore, task: bytes, n: int) -> list[Entry]:
    kinds = ("input", "sent", "received", "output")
    out = []
    for i in range(n):
        kind = kinds[i % 4]
        peer = PEER if kind in ("sent", "received") else ""
        out.append(store.append(task, kind, f"step-{i}", d(i), peer=peer))
    return out


def test_round_trip_matches_ledger_transcript(store: EvidenceStore) -> None:
    appended = fill(store, TASK, 9)
    reference = Transcript()
    for e in appended:
        reference.append(e.kind, e.step, e.digest, e.peer)

    entries = store.entries(TASK)
    assert entries == appended == reference.entries
    assert [e.seq for e in entries] == list(range(9))
    assert entries[0].prev == GENESIS_PREV
    assert chain_intact(entries)
    assert store.size(TASK) == 9
    assert store.root(TASK) == transcript_root(entries) == reference.root()
    assert store.root(TASK, tree_size=4) == transcript_root(entries[:4])
    assert store.entries(OTHER) == [] and store.size(OTHER) == 0
    assert store.root(OTHER) == transcript_root([])
    assert store.tasks() == [TASK]


def test_tasks_are_independent_chains(store: EvidenceStore) -> None:
    fill(store, TASK, 3)
    other = store.append(OTHER, "input", "in", d(99))
    assert other.seq == 0 and other.prev == GENESIS_PREV
    assert store.size(TASK) == 3 and store.size(OTHER) == 1
    assert sorted(store.tasks()) == sorted([TASK, OTHER])


def test_proofs_verify_with_ledger_merkle(store: EvidenceStore) -> None:
    entries = fill(store, TASK, 13)
    n = len(entries)
    root = store.root(TASK)
    for seq, entry in enumerate(entries):
        proof = store.inclusion_proof(TASK, seq)
        assert merkle.verify_inclusion(merkle.leaf_hash(entry.encoded()), seq, n, proof, root)
    # Against an earlier (anchored) tree size.
    old_root = store.root(TASK, tree_size=6)
    proof = store.inclusion_proof(TASK, 5, tree_size=6)
    assert merkle.verify_inclusion(merkle.leaf_hash(entries[5].encoded()), 5, 6, proof, old_root)
    for old in range(1, n + 1):
        proof = store.consistency_proof(TASK, old)
        assert merkle.verify_consistency(old, n, store.root(TASK, old), root, proof)
    proof = store.consistency_proof(TASK, 3, new_size=7)
    assert merkle.verify_consistency(3, 7, store.root(TASK, 3), store.root(TASK, 7), proof)


def test_concurrent_appends_from_threads_form_one_chain(store: EvidenceStore) -> None:
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                store.append(TASK, "sent", f"t{t}-{i}", d(t * 1000 + i), peer=PEER)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    entries = store.entries(TASK)
    assert [e.seq for e in entries] == list(range(threads * per_thread))
    assert chain_intact(entries)
    assert len({e.step for e in entries}) == threads * per_thread


def _append_in_process(url: str, worker: int, count: int) -> None:
    with EvidenceStore(url) as s:
        for i in range(count):
            s.append(TASK, "received", f"p{worker}-{i}", d(worker * 1000 + i), peer=PEER)


def test_concurrent_appends_from_processes_form_one_chain(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_in_process, args=(db_url, w, 15)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with EvidenceStore(db_url) as s:
        entries = s.entries(TASK)
    assert [e.seq for e in entries] == list(range(45))
    assert chain_intact(entries)


def test_reopened_store_continues_the_chain(db_url: str) -> None:
    with EvidenceStore(db_url) as s:
        fill(s, TASK, 3)
        s.record_anchor(TASK, "checkpoint", 3, s.root(TASK), d(500))
    with EvidenceStore(db_url) as s:
        s.append(TASK, "output", "result", d(3))
        entries = s.entries(TASK)
        assert [e.seq for e in entries] == [0, 1, 2, 3] and chain_intact(entries)
        assert [a.tree_size for a in s.anchors(TASK)] == [3]


def test_anchors(store: EvidenceStore) -> None:
    fill(store, TASK, 5)
    cp = store.record_anchor(TASK, "checkpoint", 3, store.root(TASK, 3), d(100))
    res = store.record_anchor(TASK, "result", 5, store.root(TASK), d(101))
    assert (cp.kind, cp.tree_size, cp.tx_hash) == ("checkpoint", 3, d(100))
    assert cp.recorded_at.tzinfo is not None
    # Repeating an identical anchor (a restarted runner) is a no-op.
    assert store.record_anchor(TASK, "result", 5, store.root(TASK), d(101)) == res
    assert store.anchors(TASK) == [cp, res]
    assert store.anchors(OTHER) == []
    assert res.to_json()["txHash"] == "0x" + d(101).hex()

    with pytest.raises(ValueError, match=r"tx_hash: .* different anchor"):
        store.record_anchor(TASK, "result", 4, store.root(TASK, 4), d(101))
    with pytest.raises(ValueError, match=r"root: does not match"):
        store.record_anchor(TASK, "result", 5, store.root(TASK, 4), d(102))
    with pytest.raises(ValueError, match=r"tree_size: 6 exceeds"):
        store.record_anchor(TASK, "result", 6, store.root(TASK), d(103))
    with pytest.raises(ValueError, match=r"task_id: no evidence"):
        store.record_anchor(OTHER, "result", 1, store.root(TASK, 1), d(104))
    assert store.anchors(TASK) == [cp, res]
    assert store.tasks() == [TASK]


def _bad_calls() -> list[tuple[str, Callable[[EvidenceStore], Any], str]]:
    root = bytes(32)
    return [
        ("short task", lambda s: s.append(TASK[:31], "input", "in", d(1)), "task_id"),
        ("str task", lambda s: s.append(TASK.hex(), "input", "in", d(1)), "task_id"),
        ("kind", lambda s: s.append(TASK, "deleted", "in", d(1)), "kind"),
        ("empty step", lambda s: s.append(TASK, "input", "", d(1)), "step"),
        ("NUL in step", lambda s: s.append(TASK, "input", "a\x00b", d(1)), "step"),
        ("long step", lambda s: s.append(TASK, "input", "x" * 201, d(1)), "step"),
        ("surrogate", lambda s: s.append(TASK, "input", "a\ud800", d(1)), "step"),
        ("short digest", lambda s: s.append(TASK, "input", "in", b"\x01" * 31), "digest"),
        ("long digest", lambda s: s.append(TASK, "input", "in", b"\x01" * 33), "digest"),
        ("sent no peer", lambda s: s.append(TASK, "sent", "m", d(1)), "peer"),
        ("input with peer", lambda s: s.append(TASK, "input", "in", d(1), peer=PEER), "peer"),
        ("peer type", lambda s: s.append(TASK, "sent", "m", d(1), peer=None), "peer"),
        ("anchor kind", lambda s: s.record_anchor(TASK, "final", 1, root, d(1)), "kind"),
        ("anchor size 0", lambda s: s.record_anchor(TASK, "result", 0, root, d(1)), "tree_size"),
        (
            "anchor size bool",
            lambda s: s.record_anchor(TASK, "result", True, root, d(1)),
            "tree_size",
        ),
        ("anchor root", lambda s: s.record_anchor(TASK, "result", 1, root[:5], d(1)), "root"),
        ("anchor tx", lambda s: s.record_anchor(TASK, "result", 1, root, b""), "tx_hash"),
        ("proof seq", lambda s: s.inclusion_proof(TASK, 3), "seq"),
        ("proof seq neg", lambda s: s.inclusion_proof(TASK, -1), "seq"),
        ("proof size", lambda s: s.inclusion_proof(TASK, 0, tree_size=9), "tree_size"),
        ("consistency 0", lambda s: s.consistency_proof(TASK, 0), "old_size"),
        ("consistency big", lambda s: s.consistency_proof(TASK, 4), "old_size"),
        ("root size", lambda s: s.root(TASK, tree_size=4), "tree_size"),
        ("entries task", lambda s: s.entries(b"x"), "task_id"),
        ("size task", lambda s: s.size(b"x"), "task_id"),
    ]


def test_bad_arguments_are_named_and_write_nothing(store: EvidenceStore) -> None:
    entries = fill(store, TASK, 3)
    for label, call, field in _bad_calls():
        with pytest.raises(ValueError, match=rf"^{field}: ") as info:
            call(store)
        assert getattr(info.value, "field", None) == field, label
    assert store.entries(TASK) == entries
    assert store.anchors(TASK) == []
    assert store.tasks() == [TASK]


def test_failure_mid_transaction_leaves_nothing(
    store: EvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def flaky_now() -> Any:
        calls.append(1)
        if len(calls) == 2:  # after the task row is inserted, before the entry is
            raise RuntimeError("disk on fire")
        return utc_now()

    monkeypatch.setattr("node.evidence.store.utc_now", flaky_now)
    with pytest.raises(RuntimeError, match=r"disk on fire"):
        store.append(TASK, "input", "in", d(1))
    monkeypatch.undo()
    assert store.tasks() == [] and store.size(TASK) == 0
    assert store.append(TASK, "input", "in", d(1)).seq == 0


def test_updates_and_deletes_are_rejected(store: EvidenceStore) -> None:
    entries = fill(store, TASK, 2)
    store.record_anchor(TASK, "result", 2, store.root(TASK), d(7))
    engine = store.db.engine
    for sql in (
        "UPDATE evidence_entries SET step = 'forged'",
        "DELETE FROM evidence_entries",
        "UPDATE evidence_anchors SET tree_size = 1",
        "DELETE FROM evidence_anchors",
        "DELETE FROM evidence_tasks",
    ):
        with pytest.raises(DBAPIError, match=r"append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    if store.db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match=r"append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE evidence_entries CASCADE"))

    # The ORM refuses too, before anything reaches the database.
    with pytest.raises(AppendOnlyError), store.session(write=True) as session:
        row = session.scalars(select(EntryRow)).first()
        assert row is not None
        row.step = "forged"
    with pytest.raises(AppendOnlyError), store.session(write=True) as session:
        session.delete(session.scalars(select(EntryRow)).first())
    with pytest.raises(AppendOnlyError), store.session(write=True) as session:
        session.execute(update(EntryRow).values(step="forged"))

    assert store.entries(TASK) == entries
    assert len(store.anchors(TASK)) == 1


def test_entries_written_around_the_store_are_detected(store: EvidenceStore) -> None:
    fill(store, TASK, 2)
    with store.session(write=True) as session:  # inserting is possible, but breaks the chain
        session.add(
            EntryRow(
                task_id=TASK,
                seq=2,
                kind="output",
                step="forged",
                peer="",
                digest=d(9),
                prev=bytes(32),
                recorded_at=utc_now(),
            )
        )
    assert not chain_intact(store.entries(TASK))
    with pytest.raises(EvidenceCorrupted):
        store.root(TASK)
    with pytest.raises(EvidenceCorrupted):
        store.record_anchor(TASK, "result", 2, bytes(32), d(1))


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "mysql://localhost/x",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+asyncpg://127.0.0.1/test",
    ],
)
def test_bad_urls_are_named(url: str) -> None:
    with pytest.raises(ValueError, match=r"^url: "):
        EvidenceStore(url)


def test_unreachable_database_is_reported(tmp_path: Any) -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot open database"):
        EvidenceStore("postgresql+psycopg://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreUnavailable, match=r"cannot open database"):
        EvidenceStore(f"sqlite:///{tmp_path}/missing-dir/evidence.db")
