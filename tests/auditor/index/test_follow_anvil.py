"""The indexer against a real anvil: what it stores, reorgs, crashes, refused ranges.

Everything is compared with an independent reading of the same chain: web3's own event
decoding (``ledger.events``) for the contents, and a fresh index of the final chain for
reorgs and crashes ("zero lost, zero duplicated" means the two databases are equal).
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from auditor.index import schema
from auditor.index.follower import Follower
from auditor.index.rpc import Rpc, RpcError
from auditor.index.store import IndexStore
from auditor.replay import reader_for
from ledger import transactions
from ledger.canonical import canonical_json
from ledger.ids import name_id
from scripts.cli import main as cli
from tests.auditor.index.conftest import Live
from tests.contracts.helpers import TaskSetup, build_task

pytestmark = pytest.mark.anvil

_sizes = itertools.count(1)


def follower(
    live: Live, url: str, *, page_size: int = 50, confirmations: int = 0, rpc: Rpc | None = None
) -> Follower:
    return Follower(
        rpc or Rpc(live.url),
        IndexStore(url),
        live.consortium.deployment,
        confirmations=confirmations,
        page_size=page_size,
    )


def fresh_snapshot(live: Live, path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """A new index of the chain as it is now."""
    f = follower(live, f"sqlite:///{path}", page_size=1000)
    f.catch_up()
    snap = f.store.snapshot()
    f.store.close()
    return snap


def checkpoint(live: Live, count: int = 1) -> None:
    """`count` AnchorLog checkpoints by bank-b's node, one block each."""
    anchors = live.consortium.orgs["bank-b"].node_clients.anchors
    for _ in range(count):
        anchors.append(name_id("log", "reorg-test"), next(_sizes) * 10, name_id("root", "x"))


def rpc_call(live: Live, method: str, params: Sequence[Any]) -> Any:
    rpc = Rpc(live.url)
    try:
        return rpc.call(method, params)
    finally:
        rpc.close()


def _as_index_json(value: Any) -> Any:
    """web3's decoded values in the index's JSON form (hex bytes, lower-case addresses)."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    if isinstance(value, Mapping):
        return {str(k): _as_index_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_index_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return str(value)
    return value


@pytest.fixture(scope="module")
def indexed_task(live: Live) -> TaskSetup:
    """A two-party task run to completion on the live chain (once for the module)."""
    setup = build_task(live.consortium, name="indexed-task")
    setup.run()
    setup.submit_all()
    return setup


def test_a_whole_task_is_indexed_as_web3_decodes_it(
    live: Live, index_url: str, indexed_task: TaskSetup
) -> None:
    c = live.consortium
    setup = indexed_task
    f = follower(live, index_url, page_size=7)  # many pages, one boundary inside the task
    f.catch_up()
    expected = reader_for(c.chain, c.deployment).read(c.deployment.first_block)
    with f.store.engine.connect() as conn:
        rows = (
            conn.execute(
                select(schema.events).order_by(
                    schema.events.c.block_number, schema.events.c.log_index
                )
            )
            .mappings()
            .all()
        )
        trail = (
            conn.execute(
                select(schema.task_steps)
                .where(schema.task_steps.c.task_id == setup.task_id)
                .order_by(schema.task_steps.c.block_number, schema.task_steps.c.log_index)
            )
            .mappings()
            .all()
        )
        statuses = (
            conn.execute(
                select(schema.status_history.c.status)
                .where(schema.status_history.c.entity == "task")
                .where(schema.status_history.c.entity_id == setup.task_id)
                .order_by(schema.status_history.c.block_number, schema.status_history.c.log_index)
            )
            .scalars()
            .all()
        )
        seats = (
            conn.execute(
                select(schema.task_participants)
                .where(schema.task_participants.c.task_id == setup.task_id)
                .order_by(schema.task_participants.c.position)
            )
            .mappings()
            .all()
        )
        uses = conn.execute(select(schema.grant_uses)).mappings().all()
    assert [(r["block_number"], r["log_index"], r["contract"], r["name"]) for r in rows] == [
        (e.block_number, e.log_index, e.contract, e.name) for e in expected
    ]
    for row, event in zip(rows, expected, strict=True):
        assert json.loads(row["args"]) == _as_index_json(event.args), event.name
        assert row["args"] == canonical_json(json.loads(row["args"])).decode()  # RFC 8785
        assert bytes(row["block_hash"]) == event.block_hash
        assert bytes(row["tx_hash"]) == event.transaction_hash
    status = f.store.status()
    assert status.complete_up_to == c.chain.head()
    assert status.lag_blocks == 0
    # The typed tables answer the API's questions without touching the JSON.
    steps = [r["step"] for r in trail]
    assert steps[0] == "TaskCreated" and steps[-1] == "TaskCompleted"
    assert steps.count("TaskAccepted") == steps.count("InputAnchored") == 2
    assert steps.count("ResultSubmitted") == 2
    assert [r["block_time"] for r in trail] == sorted(r["block_time"] for r in trail)
    submitted = {bytes(r["actor_node"]) for r in trail if r["step"] == "ResultSubmitted"}
    assert submitted == {bytes.fromhex(s.address[2:]) for s in setup.seats}
    assert statuses == ["created", "running", "completed"]
    assert [bytes(s["grant_id"]) for s in seats] == [p.grant_id for p in setup.participants]
    assert [bytes(u["grant_id"]) for u in uses] == [setup.grants["bank-b"]]
    assert uses[0]["used"] == 1
    f.store.close()


def test_reorgs_of_depth_1_to_12_lose_and_duplicate_nothing(live: Live, tmp_path: Path) -> None:
    f = follower(live, f"sqlite:///{tmp_path / 'followed.db'}", page_size=5)
    for depth in range(1, 13):
        checkpoint(live, depth + 2)
        f.catch_up()
        before = f.store.counts()["checkpoints"]
        rpc_call(live, "anvil_reorg", [depth, []])  # the last `depth` blocks, emptied
        transactions.reset_nonces()
        checkpoint(live)
        steps = f.catch_up()
        assert "rolled_back" in [s.kind for s in steps], depth
        snap = f.store.snapshot()
        assert snap == fresh_snapshot(live, tmp_path / f"fresh-{depth}.db"), depth
        logs = rpc_call(
            live, "eth_getLogs", [{"fromBlock": "0x0", "address": f.decoder.address_list}]
        )
        assert len(snap["events"]) == len(logs)
        assert len(snap["checkpoints"]) == before - depth + 1
    assert f.store.state().reorgs_seen == 12
    f.store.close()


def test_a_reverted_snapshot_shortens_the_chain_and_the_index(live: Live, tmp_path: Path) -> None:
    f = follower(live, f"sqlite:///{tmp_path / 'followed.db'}")
    snapshot_id = rpc_call(live, "evm_snapshot", [])
    checkpoint(live, 4)
    f.catch_up()
    tip = f.store.state().cursor
    assert rpc_call(live, "evm_revert", [snapshot_id]) is True
    transactions.reset_nonces()
    f.catch_up()
    assert f.store.state().cursor == tip - 4
    checkpoint(live, 2)
    f.catch_up()
    assert f.store.snapshot() == fresh_snapshot(live, tmp_path / "fresh.db")
    f.store.close()


def test_confirmations_keep_a_shallow_reorg_out_of_the_index(live: Live, tmp_path: Path) -> None:
    f = follower(live, f"sqlite:///{tmp_path / 'followed.db'}", confirmations=3)
    checkpoint(live, 4)
    f.catch_up()
    head = live.consortium.chain.head()
    assert f.store.status().complete_up_to == head - 3
    assert f.store.status().lag_blocks == 3
    rpc_call(live, "anvil_reorg", [2, []])
    transactions.reset_nonces()
    f.catch_up()
    assert f.store.state().reorgs_seen == 0
    f.store.close()


class _CrashAfter(IndexStore):
    """A store whose process dies (raises) after `tables` table inserts of a page: the
    first page after the first with that many tables to fill, so the kill lands
    mid-page with earlier pages committed."""

    def __init__(self, url: str, tables: int) -> None:
        super().__init__(url)
        self.tables = tables
        self.inserted = 0
        self.page_cursor: int | None = None
        self.pages = 0

    def apply_page(self, expected_cursor: int, *args: Any, **kwargs: Any) -> bool:
        self.pages += 1
        self.inserted = 0
        self.page_cursor = expected_cursor
        return super().apply_page(expected_cursor, *args, **kwargs)

    def _insert(self, conn: Any, table: str, rows: Any) -> None:
        super()._insert(conn, table, rows)
        self.inserted += 1
        if self.pages > 1 and self.inserted == self.tables:
            raise KeyboardInterrupt("killed mid-page")


def test_an_indexer_killed_mid_page_resumes_to_the_uninterrupted_result(
    live: Live, index_url: str, tmp_path: Path
) -> None:
    c = live.consortium
    crashing = Follower(
        Rpc(live.url),
        _CrashAfter(index_url, tables=3),
        c.deployment,
        confirmations=0,
        page_size=4,
    )
    with pytest.raises(KeyboardInterrupt):
        crashing.catch_up()
    crashing.store.close()
    killed_at = crashing.store.page_cursor
    assert killed_at is not None and killed_at >= c.deployment.first_block  # pages before it
    resumed = follower(live, index_url, page_size=4)
    assert resumed.store.state().cursor == killed_at  # the killed page left nothing behind
    partial = resumed.store.snapshot()
    complete = fresh_snapshot(live, tmp_path / "fresh.db")
    for table, rows in complete.items():  # exactly the rows up to the surviving cursor
        number = 0 if table == "blocks" else table_position(table)
        assert partial[table] == [r for r in rows if r[number] <= killed_at], table
    resumed.catch_up()
    assert resumed.store.snapshot() == complete
    resumed.store.close()


def table_position(table: str) -> int:
    """The index of `block_number` in a table's rows (snapshot tuples follow the columns)."""
    return list(schema.metadata.tables[table].columns.keys()).index("block_number")


class _RangeLimitedRpc(Rpc):
    """A node that refuses log ranges above `limit` blocks, as public RPC providers do."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(url)
        self.limit = limit
        self.refused = 0

    def logs(self, addresses: Sequence[str], first: int, last: int) -> list[dict[str, Any]]:
        if last - first + 1 > self.limit:
            self.refused += 1
            raise RpcError("eth_getLogs", -32005, f"range too large, max {self.limit} blocks")
        return super().logs(addresses, first, last)


def test_the_page_shrinks_when_the_node_refuses_a_range(live: Live, tmp_path: Path) -> None:
    rpc = _RangeLimitedRpc(live.url, limit=3)
    f = follower(live, f"sqlite:///{tmp_path / 'limited.db'}", page_size=64, rpc=rpc)
    f.catch_up()
    assert rpc.refused > 0
    assert f.store.snapshot() == fresh_snapshot(live, tmp_path / "fresh.db")
    f.store.close()


def test_cli_index_once_reports_the_complete_block(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.json"
    live.consortium.deployment.save(manifest)
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["auditor", "index", "--chain", live.url, "--manifest", str(manifest)]
    assert cli([*args, "--database", database, "--confirmations", "0", "--once"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["completeUpToBlock"] == live.consortium.chain.head()
    assert status["lagBlocks"] == 0
    assert cli([*args, "--database", "mysql://x/y", "--once"]) == 2
    assert "database: unsupported database 'mysql'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli([*args, "--database", database, "--confirmations", "-1"])


def test_the_default_follows_the_chains_finalized_block(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.json"
    live.consortium.deployment.save(manifest)
    args = ["auditor", "index", "--chain", live.url, "--manifest", str(manifest), "--once"]
    assert cli([*args, "--database", f"sqlite:///{tmp_path / 'final.db'}"]) == 0
    status = json.loads(capsys.readouterr().out)
    finalized = Rpc(live.url).tagged_block("finalized")
    assert finalized is not None  # anvil offers the tag (64 blocks behind its head)
    first = live.consortium.deployment.first_block
    assert status["completeUpToBlock"] == max(finalized, first - 1)


def test_a_sigkilled_follower_process_resumes_to_the_same_database(
    live: Live, tmp_path: Path
) -> None:
    """The real `provnet auditor index` loop, killed with SIGKILL while it follows."""
    manifest = tmp_path / "manifest.json"
    live.consortium.deployment.save(manifest)
    database = f"sqlite:///{tmp_path / 'killed.db'}"
    command = [sys.executable, "-m", "scripts.cli", "auditor", "index", "--chain", live.url]
    command += ["--manifest", str(manifest), "--database", database, "--confirmations", "0"]
    process = subprocess.Popen(
        [*command, "--page-size", "2", "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[3],  # the checkout: `scripts` importable
    )
    try:
        assert process.stdout is not None
        for _ in range(3):  # a few pages committed, the process is mid-stream
            assert process.stdout.readline().startswith("indexed blocks ")
    finally:
        process.kill()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    first = live.consortium.deployment.first_block
    store = IndexStore(database)
    assert store.state().cursor >= first - 1 + 3 * 2
    store.close()
    resumed = follower(live, database)
    resumed.catch_up()
    assert resumed.store.snapshot() == fresh_snapshot(live, tmp_path / "fresh.db")
    resumed.store.close()
