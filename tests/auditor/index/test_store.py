"""The index store on SQLite and PostgreSQL: migrations, atomic pages, rollback, status.

These drive the store directly with hand-made pages, the way the follower does, and
look at the database the way the API will: by SQL.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from auditor.index import schema
from auditor.index.store import MIGRATIONS, CursorMoved, IndexMismatch, IndexStore, migrate
from ledger.ids import InvalidInput

DIGEST = hashlib.sha256(b"deployment").digest()
FIRST = 10


def block(number: int, fork: str = "a") -> dict[str, Any]:
    """Block `number` of chain `fork`: hashes derived from both, parents linked."""
    return {
        "number": number,
        "hash": _hash(number, fork),
        "parent_hash": _hash(number - 1, fork),
        "timestamp": 1_700_000_000 + 12 * number,
    }


def _hash(number: int, fork: str) -> bytes:
    # Blocks below FIRST + 3 are shared by every fork, so forks meet there.
    label = "a" if number < FIRST + 3 else fork
    return hashlib.sha256(f"{label}:{number}".encode()).digest()


def event_row(number: int, log_index: int, fork: str = "a") -> dict[str, Any]:
    return {
        "block_number": number,
        "log_index": log_index,
        "block_time": 1_700_000_000 + 12 * number,
        "block_hash": _hash(number, fork),
        "tx_hash": hashlib.sha256(f"tx:{fork}:{number}:{log_index}".encode()).digest(),
        "tx_index": 0,
        "contract": "AnchorLog",
        "address": bytes(20),
        "name": "Checkpointed",
        "args": "{}",
    }


def checkpoint_row(number: int, log_index: int, size: int) -> dict[str, Any]:
    return {
        "block_number": number,
        "log_index": log_index,
        "block_time": 1_700_000_000 + 12 * number,
        "log_id": bytes(32),
        "tree_size": size,
        "root_hash": bytes([size % 256]) * 32,
        "writer": bytes(20),
        "tx_hash": bytes(32),
    }


def page(first: int, last: int, fork: str = "a") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    blocks = [block(n, fork) for n in range(first, last + 1)]
    rows = {
        "events": [event_row(n, 0, fork) for n in range(first, last + 1)],
        "checkpoints": [checkpoint_row(n, 0, n) for n in range(first, last + 1)],
    }
    return blocks, rows


def bound(url: str) -> IndexStore:
    store = IndexStore(url)
    store.bind(31337, DIGEST, FIRST, 0)
    return store


def test_migrations_build_exactly_the_declared_schema_and_rerun_as_no_ops(index_url: str) -> None:
    store = IndexStore(index_url)
    migrate(store.engine)  # a second upgrade (every restart) changes nothing
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diff == []
    store.close()


def test_pages_move_the_cursor_and_status_reports_lag(index_url: str) -> None:
    store = bound(index_url)
    assert store.status().complete_up_to == FIRST - 1
    blocks, rows = page(FIRST, FIRST + 4)
    assert store.apply_page(FIRST - 1, blocks, rows, head=FIRST + 20)
    status = store.status()
    assert status.complete_up_to == FIRST + 4
    assert status.complete_up_to_hash == "0x" + blocks[-1]["hash"].hex()
    assert status.lag_blocks == 16
    assert store.counts()["events"] == 5
    assert store.counts()["blocks"] == 5
    store.close()


def test_a_page_applied_twice_inserts_nothing_the_second_time(index_url: str) -> None:
    store = bound(index_url)
    blocks, rows = page(FIRST, FIRST + 4)
    assert store.apply_page(FIRST - 1, blocks, rows, head=FIRST + 4)
    before = store.snapshot()
    assert not store.apply_page(FIRST - 1, blocks, rows, head=FIRST + 4)
    assert store.snapshot() == before
    store.close()


def test_events_are_unique_by_block_hash_and_log_index(index_url: str) -> None:
    """The backstop behind the cursor: even a raw duplicate insert is refused."""
    store = bound(index_url)
    blocks, rows = page(FIRST, FIRST)
    store.apply_page(FIRST - 1, blocks, rows, head=FIRST)
    duplicate = {**rows["events"][0], "block_number": FIRST + 1}  # same hash and index
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(schema.events.insert(), [duplicate])
    assert store.counts()["events"] == 1
    store.close()


def test_a_page_that_does_not_extend_the_tip_writes_nothing(index_url: str) -> None:
    store = bound(index_url)
    blocks, rows = page(FIRST, FIRST + 4)
    store.apply_page(FIRST - 1, blocks, rows, head=FIRST + 4)
    before = store.snapshot()
    other, other_rows = page(FIRST + 5, FIRST + 6, fork="b")  # parent is b's, tip is a's
    with pytest.raises(CursorMoved, match="does not extend"):
        store.apply_page(FIRST + 4, other, other_rows, head=FIRST + 6)
    with pytest.raises(CursorMoved, match="cursor is at"):
        store.apply_page(FIRST + 2, *page(FIRST + 3, FIRST + 6, fork="b"), head=FIRST + 6)
    assert store.snapshot() == before
    assert store.state().cursor == FIRST + 4
    store.close()


def test_rollback_deletes_every_row_above_the_fork_in_every_table(index_url: str) -> None:
    store = bound(index_url)
    store.apply_page(FIRST - 1, *page(FIRST, FIRST + 2), head=FIRST + 2)
    kept = store.snapshot()
    store.apply_page(FIRST + 2, *page(FIRST + 3, FIRST + 7), head=FIRST + 7)
    assert store.rollback(FIRST + 2) == 5
    assert store.snapshot() == kept
    state = store.state()
    assert (state.cursor, state.cursor_hash, state.reorgs_seen) == (
        FIRST + 2,
        _hash(FIRST + 2, "a"),
        1,
    )
    with store.engine.connect() as conn:
        reorg = conn.execute(select(schema.reorgs)).mappings().one()
    assert (reorg["old_cursor"], reorg["fork_block"], reorg["depth"]) == (FIRST + 7, FIRST + 2, 5)
    # The other fork now extends the index, and the result is that fork's rows only.
    store.apply_page(FIRST + 2, *page(FIRST + 3, FIRST + 5, fork="b"), head=FIRST + 5)
    with store.engine.connect() as conn:
        hashes = conn.execute(select(schema.events.c.block_hash)).scalars().all()
    assert sorted(bytes(h) for h in hashes) == sorted(
        [_hash(n, "a") for n in range(FIRST, FIRST + 3)]
        + [_hash(n, "b") for n in range(FIRST + 3, FIRST + 6)]
    )
    store.close()


def test_rollback_below_the_first_block_empties_the_index(index_url: str) -> None:
    store = bound(index_url)
    store.apply_page(FIRST - 1, *page(FIRST, FIRST + 3), head=FIRST + 3)
    store.rollback(0)
    assert set(store.counts().values()) == {0}
    assert (store.state().cursor, store.state().cursor_hash) == (FIRST - 1, None)
    store.close()


def test_a_database_of_another_chain_or_deployment_is_refused(index_url: str) -> None:
    store = bound(index_url)
    with pytest.raises(IndexMismatch, match="chain id 31337"):
        store.bind(1, DIGEST, FIRST, 0)
    with pytest.raises(IndexMismatch, match="another deployment") as info:
        store.bind(31337, hashlib.sha256(b"other").digest(), FIRST, 0)
    assert info.value.field == "manifest"
    store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "expected a database URL"),
        ("not a url", "not a database URL"),
        ("mysql://localhost/x", "unsupported database 'mysql'"),
        ("sqlite://", "in-memory SQLite"),
    ],
)
def test_a_bad_database_url_is_named(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as info:
        IndexStore(url)
    assert info.value.field == "database"
