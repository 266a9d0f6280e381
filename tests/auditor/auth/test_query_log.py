"""QueryLog on SQLite and PostgreSQL: append-only leaves, RFC 9162 proofs that verify
with ledger.merkle's verifiers, and that stop verifying when a leaf is altered.

Expectations are computed independently: leaves with the ``rfc8785`` package and
``hashlib`` directly, roots with a textbook recursive RFC 9162 MTH written here.
"""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
import rfc8785
from sqlalchemy import update

from auditor.auth.principal import Principal
from auditor.index import schema
from auditor.index.store import IndexStore
from auditor.querylog.log import QueryLog
from ledger import merkle
from tests.auditor.auth.conftest import Clock

REGULATOR = Principal("0x" + "AB" * 20, b"\x07" * 32, "regulator", True, 0)
OTHER = Principal("0x" + "CD" * 20, b"\x08" * 32, "regulator-2", True, 0)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, recursively, straight from the text."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def expected_leaf(seq: int, at: int, p: Principal, method: str, target: str) -> bytes:
    entry = {
        "seq": seq,
        "at": at,
        "address": p.address,
        "org": "0x" + p.org_id.hex(),
        "method": method,
        "target": target,
    }
    return bytes(rfc8785.dumps(entry))


REQUESTS = [
    (REGULATOR, "GET", "/v1/tasks?org=bank-a&limit=10"),
    (REGULATOR, "get", "/v1/tasks/0x" + "11" * 32 + "/trail"),
    (OTHER, "POST", "/v1/tasks/0x" + "22" * 32 + "/verification"),
    (REGULATOR, "GET", "/v1/usage?period=week&org=ünïcode"),
    (OTHER, "GET", "/v1/query-log?offset=0"),
    (REGULATOR, "GET", "/v1/grants?purpose=aml"),
    (REGULATOR, "GET", "/v1/orgs"),
]


@pytest.fixture
def filled(empty_store: IndexStore) -> tuple[QueryLog, list[bytes]]:
    clock = Clock(1_800_000_000)
    log = QueryLog(empty_store, clock=clock)
    leaves = []
    for seq, (p, method, target) in enumerate(REQUESTS):
        clock.now += 7
        assert log.append(p, method, target) == seq
        leaves.append(expected_leaf(seq, int(clock.now), p, method.upper(), target))
    return log, leaves


def test_entries_are_the_rfc8785_leaves_in_order(filled: tuple[QueryLog, list[bytes]]) -> None:
    log, leaves = filled
    assert log.size() == len(leaves)
    entries = log.entries(0, 100)
    assert [json.loads(leaf) for leaf in leaves] == [
        {k: v for k, v in e.items() if k != "leafHash"} for e in entries
    ]
    for e, leaf in zip(entries, leaves, strict=True):
        assert e["leafHash"] == "0x" + hashlib.sha256(b"\x00" + leaf).hexdigest()
    assert log.entries(5, 1) == entries[5:6]
    assert log.entries(len(leaves), 10) == []


def test_appending_never_changes_earlier_roots(filled: tuple[QueryLog, list[bytes]]) -> None:
    log, leaves = filled
    before = [log.root(n) for n in range(len(leaves) + 1)]
    assert before == [mth(leaves[:n]) for n in range(len(leaves) + 1)]
    log.append(REGULATOR, "GET", "/v1/status")
    assert [log.root(n) for n in range(len(leaves) + 1)] == before
    assert log.root(len(leaves) + 1) != before[-1]
    # A second reader (another process) sees the same log from the database alone.
    assert QueryLog(log.engine).root(len(leaves) + 1) == log.root(len(leaves) + 1)


def test_inclusion_proofs_verify_for_every_entry_and_size(
    filled: tuple[QueryLog, list[bytes]],
) -> None:
    log, leaves = filled
    for size in range(1, len(leaves) + 1):
        root = mth(leaves[:size])
        for index in range(size):
            proof = log.inclusion(index, size)
            leaf = hashlib.sha256(b"\x00" + leaves[index]).digest()
            assert merkle.verify_inclusion(leaf, index, size, proof, root)
            # An altered leaf, another position or another root does not verify.
            altered = leaves[index].replace(b'"GET"', b'"PUT"').replace(b'"POST"', b'"GET"')
            bad = hashlib.sha256(b"\x00" + altered).digest()
            assert not merkle.verify_inclusion(bad, index, size, proof, root)
            if size > 1:
                assert not merkle.verify_inclusion(leaf, (index + 1) % size, size, proof, root)
            assert not merkle.verify_inclusion(leaf, index, size, proof, mth(leaves[: size - 1]))


def test_consistency_proofs_verify_for_every_pair(filled: tuple[QueryLog, list[bytes]]) -> None:
    log, leaves = filled
    n = len(leaves)
    for old in range(1, n + 1):
        for new in range(old, n + 1):
            proof = log.consistency(old, new)
            old_root, new_root = mth(leaves[:old]), mth(leaves[:new])
            assert merkle.verify_consistency(old, new, old_root, new_root, proof)
            if old < new:
                forged = mth([leaves[0] + b" ", *leaves[1:old]])
                assert not merkle.verify_consistency(old, new, forged, new_root, proof)


def test_a_row_altered_in_the_database_changes_the_root(
    filled: tuple[QueryLog, list[bytes]],
) -> None:
    log, leaves = filled
    anchored = log.root(len(leaves))
    proof = log.inclusion(2, len(leaves))
    with log.engine.begin() as conn:
        forged = leaves[2].replace(b"verification", b"health")
        conn.execute(
            update(schema.query_log).where(schema.query_log.c.seq == 2).values(leaf=forged.decode())
        )
    fresh = QueryLog(log.engine)  # what a restarted auditor computes
    assert fresh.root(len(leaves)) != anchored
    assert not merkle.verify_inclusion(fresh.leaf_hash(2), 2, len(leaves), proof, anchored)
    # Entries before the altered one are still provably in the anchored tree.
    earlier = log.inclusion(1, len(leaves))
    assert merkle.verify_inclusion(fresh.leaf_hash(1), 1, len(leaves), earlier, anchored)


def test_out_of_range_requests_are_value_errors(filled: tuple[QueryLog, list[bytes]]) -> None:
    log, leaves = filled
    n = len(leaves)
    for call in (
        lambda: log.root(n + 1),
        lambda: log.inclusion(n, n),
        lambda: log.inclusion(0, n + 1),
        lambda: log.inclusion(-1, n),
        lambda: log.consistency(0, n),
        lambda: log.consistency(3, 2),
        lambda: log.consistency(1, n + 1),
        lambda: log.entries(-1, 5),
    ):
        with pytest.raises(ValueError):
            call()


def test_concurrent_appends_get_dense_unique_sequence_numbers(empty_store: IndexStore) -> None:
    logs = [QueryLog(empty_store) for _ in range(4)]  # four "processes" (own locks, caches)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(8):
                logs[i].append(REGULATOR, "GET", f"/v1/worker/{i}/{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = logs[0].entries(0, 100)
    assert [e["seq"] for e in entries] == list(range(32))
    assert sorted(e["target"] for e in entries) == sorted(
        f"/v1/worker/{i}/{j}" for i in range(4) for j in range(8)
    )


def test_a_huge_target_is_cut_and_says_so(empty_store: IndexStore) -> None:
    log = QueryLog(empty_store)
    log.append(REGULATOR, "GET", "/v1/tasks?text=" + "a" * 10_000)
    target = log.entries(0, 1)[0]["target"]
    assert len(target) < 4200
    assert target.endswith("more characters]")
