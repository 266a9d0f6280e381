"""Query logs of anonymous lookups, attacked as a member or a careless owner would.

Rules under test: the log never holds a blinded element or an unkeyed hash of one; the
regulator's per-org, per-day counts equal a plaintext tally; checkpoints go through the
real ``AnchorLog`` contract (eth-tester EVM), are idempotent and only advance when the
log grew; a tampered, truncated or rewritten log fails against the anchored checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.ids import name_id
from node.crypto import oprf
from node.lookup.query_log import (
    AnchoredRootMismatch,
    Checkpoint,
    InconsistentCheckpoints,
    InvalidLogInput,
    LogBehindAnchor,
    LogRootMismatch,
    LogTruncated,
    QueryLog,
    QueryRecord,
    count_per_org_day,
    log_root,
    verify_consistency,
    verify_inclusion,
    verify_log,
)
from tests.conftest import Consortium

DAY = 86_400
T0 = 1_790_000_000 - 1_790_000_000 % DAY
NAME = name_id("log", "relay-query-log")


def blinded(n: int) -> list[bytes]:
    return [oprf.blind(f"+86 138 0000 {i:04d}".encode())[1] for i in range(n)]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def test_records_hold_a_keyed_digest_and_never_the_element(db_url: str) -> None:
    log = QueryLog(db_url, "relay")
    elements = blinded(4)
    records = log.append("bank-a", "account-opening", elements, T0 + 4000.5, epoch=3)
    salt = log.salt(3)
    assert salt is not None and len(salt) == 32
    for record, element in zip(records, elements, strict=True):
        assert record.element_digest == hmac.new(salt, element, hashlib.sha256).digest()
        assert record.time_bucket == T0 + 3600  # start of the hour, not the query time
        assert (record.querier_org, record.purpose, record.epoch) == (
            "bank-a",
            "account-opening",
            3,
        )
    assert log.records() == records

    # Dump every cell of every table: no element, no hex of one, no unkeyed hash of one.
    cells: list[bytes] = []
    with log.db.engine.connect() as conn:
        for table in ("lookup_query_logs", "lookup_query_log_salts", "lookup_query_log_records"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                cells += [
                    bytes(c) if isinstance(c, bytes | memoryview) else str(c).encode() for c in row
                ]
    dump = b"\x00".join(cells)
    assert len(cells) >= 4 * 7  # the scan saw every record's fields
    for element in elements:
        for value in (element, hashlib.sha256(element).digest(), hashlib.sha512(element).digest()):
            assert value not in dump and value.hex().encode() not in dump.lower()
    # A new salt epoch gives unlinkable digests of the same element.
    again = log.append("bank-a", "account-opening", elements[:1], T0 + 4000.5, epoch=4)
    assert again[0].element_digest != records[0].element_digest
    assert log.salt(4) != salt
    log.close()


def test_regulator_counts_per_org_and_day_like_a_plaintext_tally(url: str) -> None:
    log = QueryLog(url, "relay")
    rng = random.Random(7)
    events = []
    for _ in range(60):
        org = rng.choice(["bank-a", "bank-b", "bank-c"])
        moment = T0 + rng.uniform(0, 4 * DAY)
        n = rng.randint(1, 3)
        events.append((org, moment, n))
        log.append(org, rng.choice(["account-opening", "screening"]), blinded(n), moment, epoch=1)
    expected: Counter[tuple[str, object]] = Counter()
    for org, moment, n in events:
        expected[(org, datetime.fromtimestamp(moment, UTC).date())] += n
    assert count_per_org_day(log.records()) == dict(expected)
    # A provider's log knows no org: everything counts under "".
    provider = QueryLog(url, "provider-1")
    provider.append("", "", blinded(5), T0 + 10, epoch=1)
    assert count_per_org_day(provider.records()) == {
        ("", datetime.fromtimestamp(T0, UTC).date()): 5
    }
    log.close()
    provider.close()


def test_checkpoints_through_the_evm_are_idempotent_and_only_advance_when_grown(
    consortium: Consortium, url: str
) -> None:
    anchors = consortium.orgs["bank-a"].node_clients.anchors
    log = QueryLog(url, "relay")
    assert log.checkpoint(anchors, NAME) is None  # an empty log anchors nothing
    log.append("bank-a", "screening", blinded(3), T0, epoch=1)
    first = log.checkpoint(anchors, NAME)
    assert first is not None and first.tree_size == 3
    log_id = anchors.own_log_id(NAME)
    assert anchors.latest(log_id) == (3, log_root(log.records()))
    assert first.root == log_root(log.records())

    block = consortium.chain.w3.eth.block_number
    assert log.checkpoint(anchors, NAME) is None  # nothing grew: no transaction
    assert consortium.chain.w3.eth.block_number == block

    log.append("bank-b", "screening", blinded(4), T0 + 60, epoch=1)
    second = log.checkpoint(anchors, NAME)
    assert second is not None and second.tree_size == 7
    assert anchors.latest(log_id) == (7, second.root)
    assert log.checkpoints() == [first, second]

    # The regulator: records served by the owner against the anchored heads.
    size, root = anchors.latest(log_id)
    anchored = Checkpoint(log_id, size, root)
    records = log.records()
    verify_log(records, anchored, previous=first)
    verify_consistency(first, anchored, log.consistency_proof(3))
    for seq, record in enumerate(records):
        verify_inclusion(record, seq, anchored, log.inclusion_proof(seq))
        if seq < first.tree_size:
            verify_inclusion(record, seq, first, log.inclusion_proof(seq, first.tree_size))
    log.close()


def test_tampered_truncated_and_rewritten_logs_fail_against_the_chain(
    consortium: Consortium, tmp_path: Path
) -> None:
    anchors = consortium.orgs["bank-b"].node_clients.anchors
    log = QueryLog(f"sqlite:///{tmp_path / 'a.db'}", "relay")
    log.append("bank-a", "screening", blinded(3), T0, epoch=1)
    first = log.checkpoint(anchors, NAME)
    log.append("bank-b", "account-opening", blinded(3), T0 + 7200, epoch=1)
    second = log.checkpoint(anchors, NAME)
    assert first is not None and second is not None
    records = log.records()

    # Tampered: a record's org, purpose, time or digest changed, or two records swapped.
    for changed in (
        {"querier_org": "bank-c"},
        {"purpose": "screening"},
        {"time_bucket": T0 + 3600},
        {"element_digest": bytes(32)},
    ):
        forged = list(records)
        forged[4] = replace(records[4], **changed)
        with pytest.raises(LogRootMismatch):
            verify_log(forged, second)
        with pytest.raises(LogRootMismatch):
            verify_inclusion(forged[4], 4, second, log.inclusion_proof(4))
    with pytest.raises(LogRootMismatch):
        verify_log([records[1], records[0], *records[2:]], second)
    # Truncated: a record dropped from the end, or from the middle.
    with pytest.raises(LogTruncated):
        verify_log(records[:-1], second)
    with pytest.raises(LogRootMismatch):
        verify_log(records[:2] + records[3:] + records[:1], second)

    # Rewritten history: the owner anchors a different log over the same on-chain log.
    rewritten = QueryLog(f"sqlite:///{tmp_path / 'b.db'}", "relay")
    rewritten.append("bank-b", "screening", blinded(8), T0 + 9000, epoch=1)
    with pytest.raises(AnchoredRootMismatch):  # the library refuses to anchor over it...
        rewritten.checkpoint(anchors, NAME)
    other = rewritten.records()
    anchors.checkpoint(second.log_id, 8, log_root(other))  # ...a cheating owner bypasses it
    size, root = anchors.latest(second.log_id)
    third = Checkpoint(second.log_id, size, root)
    verify_log(other, third)  # consistent with itself...
    with pytest.raises(InconsistentCheckpoints):  # ...but not with the earlier checkpoint
        verify_log(other, third, previous=second)
    with pytest.raises(InconsistentCheckpoints):
        verify_consistency(second, third, rewritten.consistency_proof(6))
    with pytest.raises(LogRootMismatch):  # and the honest records do not reach it
        verify_log([*records, *other[:2]], third)

    # A log that lost records behind its anchor refuses to checkpoint.
    shorter = QueryLog(f"sqlite:///{tmp_path / 'c.db'}", "relay")
    shorter.append("bank-a", "screening", blinded(2), T0, epoch=1)
    with pytest.raises(LogBehindAnchor):
        shorter.checkpoint(anchors, NAME)
    for opened in (log, rewritten, shorter):
        opened.close()


def test_log_tables_are_append_only_and_input_is_checked(url: str) -> None:
    log = QueryLog(url, "relay")
    log.append("bank-a", "screening", blinded(2), T0, epoch=1)
    for sql in (
        "UPDATE lookup_query_log_records SET querier_org = 'bank-z'",
        "DELETE FROM lookup_query_log_records",
        "UPDATE lookup_query_log_salts SET salt = x'00'",
        "DELETE FROM lookup_query_log_salts",
    ):
        with pytest.raises(DBAPIError, match="append-only"), log.db.engine.begin() as conn:
            conn.execute(text(sql))
    for args, field in [
        (("bank\n", "screening", blinded(1), T0, 1), "querier_org"),
        (("bank-a", "screening", [], T0, 1), "blinded_elements"),
        (("bank-a", "screening", [b""], T0, 1), "blinded_elements"),
        (("bank-a", "screening", blinded(1), -1, 1), "now"),
        (("bank-a", "screening", blinded(1), T0, -1), "epoch"),
    ]:
        with pytest.raises(InvalidLogInput, match=field):
            log.append(*args)
    assert log.size() == 2
    with pytest.raises(InvalidLogInput, match="time_bucket"):
        QueryRecord("bank-a", T0 + 1, "screening", 1, bytes(32))
    with pytest.raises(InvalidLogInput, match="tree_size"):
        verify_log(log.records(), Checkpoint(bytes(32), 0, bytes(32)))
    log.close()
