"""Trail query latency at 10^5 and 10^6 indexed events (part of ``scripts.bench.auditor``).

Mining a million provnet events on anvil would take hours, so the index is filled with
a synthetic chain instead, but through the indexer's own write path: synthetic decoded
logs (the shapes ``auditor.index.decode`` produces) go through ``Projection`` (the
indexer's event-to-row mapping) and ``IndexStore.apply_page`` (``COPY`` on PostgreSQL,
``executemany`` on SQLite, one transaction per page with the cursor), so the tables,
indexes and row shapes are exactly what indexing a real chain leaves.

The chain is shaped like a busy consortium: a dozen organisations with two nodes each,
datasets and grants, and tasks started every block, each with 2 or 3 providers and
about ten steps (created, accepted with a grant use, started, inputs anchored, results
submitted, completed; one in ten fails with a node-reported reason instead). Tasks run
concurrently, so one task's rows are spread over several blocks between other tasks'
rows, as on a real chain.

The query timed is ``auditor.query.tasks.task_trail(conn, task_id)`` (the API's trail)
for random tasks; until that module exists, the equivalent ``SELECT`` on ``task_steps``
in chain order, and the report says which one ran. Beside it, on the same tasks, the
bare ``SELECT`` (``bare_select``): the floor any trail answer pays. Every answer's length
is compared with the number of steps the generator made for that task.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, text

from auditor.index import schema
from auditor.index.decode import DecodedLog, RawPosition
from auditor.index.project import Projection
from auditor.index.store import IndexStore
from scripts.bench.latency import percentile, summary_ms

TARGET_P99_MS = 50.0  # at 10^6 events (issue 13)
CHAIN_ID = 31337
PAGE_BLOCKS = 2_000
ORGS = 12
NODES_PER_ORG = 2
FAIL_ONE_IN = 10
NODE_REASONS = (100, 101, 102, 103)

TrailQuery = Callable[[Connection, bytes], list[Any]]


def trail_query() -> tuple[str, TrailQuery]:
    """QUERY-API's ``task_trail`` when it exists, else the equivalent SELECT."""
    try:
        from auditor.query.tasks import task_trail
    except ImportError:
        return "select task_steps (auditor.query.tasks not present)", _select_trail
    return "auditor.query.tasks.task_trail", task_trail


def _select_trail(conn: Connection, task_id: bytes) -> list[Any]:
    s = schema.task_steps
    return list(
        conn.execute(
            select(s).where(s.c.task_id == task_id).order_by(s.c.block_number, s.c.log_index)
        ).all()
    )


# --- the synthetic chain ----------------------------------------------------------------


@dataclass
class _Tx:
    """One transaction's events, to be emitted in one block."""

    events: list[tuple[str, str, dict[str, Any]]]  # (contract, event, args)


@dataclass
class SyntheticChain:
    """A deterministic stream of provnet events, page by page."""

    seed: int
    rng: random.Random = field(init=False)
    block: int = 0
    parent: bytes = bytes(32)
    pending: dict[int, list[_Tx]] = field(default_factory=dict)
    steps: dict[bytes, int] = field(default_factory=dict)  # task -> trail length
    addresses: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.addresses = {
            name: bytes([i + 1]) * 20
            for i, name in enumerate(
                [
                    "Consortium",
                    "AlgorithmRegistry",
                    "DatasetRegistry",
                    "AuthorizationRegistry",
                    "TaskRegistry",
                    "AnchorLog",
                ]
            )
        }
        self.orgs = [self._id() for _ in range(ORGS)]
        self.nodes = [(self._id()[:20], org) for org in self.orgs for _ in range(NODES_PER_ORG)]
        self.datasets = {org: self._id() for org in self.orgs}
        self.grants: dict[tuple[bytes, bytes], bytes] = {}
        self.uses: dict[bytes, int] = {}
        self.algorithm = self._id()
        self._preamble()

    def _id(self) -> bytes:
        return self.rng.randbytes(32)

    def _later(self, blocks: int, tx: _Tx) -> None:
        self.pending.setdefault(self.block + blocks, []).append(tx)

    def _preamble(self) -> None:
        """Members, nodes, an approved algorithm, datasets and every grant, in block 1."""
        txs = []
        for i, org in enumerate(self.orgs):
            txs.append(
                _Tx(
                    [
                        (
                            "Consortium",
                            "OrgProposed",
                            {"orgId": org, "name": f"Bank {i}", "roles": 3, "admin": org[:20]},
                        ),
                        ("Consortium", "OrgAdmitted", {"orgId": org}),
                    ]
                )
            )
        for node, org in self.nodes:
            args: dict[str, Any] = {
                "node": node,
                "orgId": org,
                "endpoint": "node.example:7443",
                "tlsCertSha256": self._id(),
                "teeMeasurement": bytes(32),
            }
            txs.append(_Tx([("Consortium", "NodeRegistered", args)]))
        algorithm = {
            "digest": self.algorithm,
            "name": "secure-stats",
            "version": "1",
            "kind": 1,
            "proposerOrg": self.orgs[0],
            "proposalId": self._id(),
        }
        txs.append(
            _Tx(
                [
                    ("AlgorithmRegistry", "AlgorithmProposed", algorithm),
                    ("AlgorithmRegistry", "AlgorithmApproved", {"digest": self.algorithm}),
                ]
            )
        )
        for org, dataset in self.datasets.items():
            txs.append(
                _Tx(
                    [
                        (
                            "DatasetRegistry",
                            "DatasetRegistered",
                            {"datasetId": dataset, "ownerOrg": org, "name": self._id()},
                        )
                    ]
                )
            )
            for grantee in self.orgs:
                if grantee == org:
                    continue
                grant = self._id()
                self.grants[(dataset, grantee)] = grant
                args = {
                    "grantId": grant,
                    "datasetId": dataset,
                    "granteeOrg": grantee,
                    "grantorOrg": org,
                    "algorithmDigest": bytes(32),
                    "purpose": self._id(),
                    "notAfter": 2**64 - 1,
                    "maxUses": 2**32 - 1,
                }
                txs.append(_Tx([("AuthorizationRegistry", "GrantCreated", args)]))
        self.pending[1] = txs

    def _start_task(self) -> None:
        """Schedule one task's whole trail over the next few blocks."""
        rng = self.rng
        creator = rng.choice(self.orgs)
        providers = [n for n in self.nodes if n[1] != creator]
        seats = []
        for node, org in rng.sample(providers, rng.choice((2, 3))):
            dataset = self.datasets[org]
            seats.append((node, dataset, self.grants[(dataset, creator)]))
        task = self._id()
        created = {
            "taskId": task,
            "creatorOrg": creator,
            "algorithmDigest": self.algorithm,
            "paramsDigest": self._id(),
            "deadline": 2_000_000_000,
            "participants": [
                {"node": n, "datasetId": d, "datasetVersion": 1, "grantId": g} for n, d, g in seats
            ],
        }
        self._later(0, _Tx([("TaskRegistry", "TaskCreated", created)]))
        at = 1 + rng.randrange(2)
        for i, (node, _dataset, grant) in enumerate(seats):
            used = self.uses[grant] = self.uses.get(grant, 0) + 1
            use = {"grantId": grant, "used": used, "maxUses": 2**32 - 1}
            events: list[tuple[str, str, dict[str, Any]]] = [
                ("AuthorizationRegistry", "GrantUsed", use),
                ("TaskRegistry", "TaskAccepted", {"taskId": task, "node": node, "grantId": grant}),
            ]
            if i == len(seats) - 1:
                events.append(("TaskRegistry", "TaskStarted", {"taskId": task}))
            self._later(at + i, _Tx(events))
        at += len(seats) + rng.randrange(3)
        for node, *_ in seats:
            self._later(at, _Tx([("TaskRegistry", "InputAnchored", self._node_arg(task, node))]))
        steps = 1 + len(seats) + 1 + len(seats)
        at += 1 + rng.randrange(3)
        if rng.randrange(FAIL_ONE_IN) == 0:
            reason = rng.choice(NODE_REASONS)
            failed = {"taskId": task, "reporter": seats[0][0], "reasonCode": reason}
            self._later(at, _Tx([("TaskRegistry", "TaskFailed", failed)]))
            self.steps[task] = steps + 1
            return
        result = self._id()
        for i, (node, *_) in enumerate(seats):
            root = self._id()
            submitted = {"taskId": task, "node": node, "resultDigest": result, "evidenceRoot": root}
            events = [("TaskRegistry", "ResultSubmitted", submitted)]
            if i == len(seats) - 1:
                done = {"taskId": task, "resultDigest": result}
                events.append(("TaskRegistry", "TaskCompleted", done))
            self._later(at + i, _Tx(events))
        self.steps[task] = steps + len(seats) + 1

    def _node_arg(self, task: bytes, node: bytes) -> dict[str, Any]:
        return {"taskId": task, "node": node, "commitment": self._id()}

    def next_page(self, blocks: int) -> tuple[list[dict[str, Any]], Projection, int]:
        """The next ``blocks`` blocks (one new task each), their rows, and their event count."""
        projection = Projection()
        headers: list[dict[str, Any]] = []
        count = 0
        for _ in range(blocks):
            self.block += 1
            if self.block > 1:
                self._start_task()
            block_hash = self._id()
            timestamp = 1_700_000_000 + self.block * 2
            log_index = 0
            for tx_index, tx in enumerate(self.pending.pop(self.block, [])):
                tx_hash = self._id()
                for contract, name, args in tx.events:
                    position = RawPosition(self.block, block_hash, tx_hash, tx_index, log_index)
                    projection.add(
                        DecodedLog(contract, name, self.addresses[contract], args, position),
                        timestamp,
                    )
                    log_index += 1
            count += log_index
            headers.append(
                {
                    "number": self.block,
                    "hash": block_hash,
                    "parent_hash": self.parent,
                    "timestamp": timestamp,
                }
            )
            self.parent = block_hash
        return headers, projection, count


def fill(stores: dict[str, IndexStore], chain: SyntheticChain, events: int) -> dict[str, float]:
    """Append synthetic pages to every store until each holds at least ``events`` events
    (the same pages to each: generated once); seconds each store spent writing pages."""
    have = _events(next(iter(stores.values())))
    seconds = dict.fromkeys(stores, 0.0)
    while have < events:
        # ~12 events per block once tasks overlap: size the last page to land close.
        blocks = max(1, min(PAGE_BLOCKS, (events - have) // 12 + 1))
        headers, projection, count = chain.next_page(blocks)
        for name, store in stores.items():
            start = time.perf_counter()
            store.apply_page(chain.block - blocks, headers, projection.rows, chain.block)
            seconds[name] += time.perf_counter() - start
        have += count
    return seconds


def _events(store: IndexStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.events)).scalar_one())


def _analyze(store: IndexStore) -> None:
    """Fresh planner statistics, as autovacuum/ANALYZE leave a long-running index."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
            conn.commit()
        else:
            conn.exec_driver_sql("ANALYZE")


def time_trails(
    store: IndexStore, chain: SyntheticChain, queries: int, seed: int
) -> dict[str, Any]:
    """``queries`` trail reads of random tasks (after a short warm-up), one connection;
    each task is also read with the bare indexed ``SELECT`` on ``task_steps`` (the
    floor: one round trip, no name resolution), alternately, so both see the same
    conditions."""
    name, query = trail_query()
    rng = random.Random(seed)
    # Only tasks whose whole trail is indexed (their last steps may be still to come).
    pending = {
        ev[2].get("taskId") for txs in chain.pending.values() for tx in txs for ev in tx.events
    }
    complete = [t for t in chain.steps if t not in pending]
    tasks = rng.choices(complete, k=queries)
    seconds: list[float] = []
    floor: list[float] = []
    wrong = 0
    with store.engine.connect() as conn:
        for task in tasks[: min(50, queries)]:
            query(conn, task)  # warm-up: connection, statement cache, hot pages
            _select_trail(conn, task)
        for task in tasks:
            start = time.perf_counter()
            trail = query(conn, task)
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            rows = _select_trail(conn, task)
            floor.append(time.perf_counter() - start)
            if len(trail) != chain.steps[task] or len(rows) != chain.steps[task]:
                wrong += 1
        conn.rollback()
    return {
        "query": name,
        "queries": queries,
        "tasks_sampled_from": len(complete),
        "wrong_lengths": wrong,
        "mean_steps": round(sum(chain.steps[t] for t in tasks) / len(tasks), 2),
        **summary_ms(seconds),
        "bare_select": summary_ms(seconds=floor),
        "p99_over_bare_select": round(percentile(seconds, 99) / percentile(floor, 99), 2),
    }


def measure(
    databases: dict[str, str], levels: list[int], queries: int, seed: int = 13
) -> dict[str, Any]:
    """Fill one index per database (name -> URL) to each level in turn, appending the
    same synthetic pages to each, and time the trail query at each level."""
    stores: dict[str, IndexStore] = {}
    chain = SyntheticChain(seed)
    out: dict[str, Any] = {name: {} for name in databases}
    try:
        for name, url in databases.items():
            stores[name] = store = IndexStore(url)
            store.bind(CHAIN_ID, bytes(32), 1, 0)
        for level in levels:
            write_seconds = fill(stores, chain, level)
            for name, store in stores.items():
                _analyze(store)
                counts = store.counts()
                figures: dict[str, Any] = {
                    "events": counts["events"],
                    "task_steps": counts["task_steps"],
                    "tasks": counts["tasks"],
                    "blocks": counts["blocks"],
                    "fill_seconds": round(write_seconds[name], 2),
                    **time_trails(store, chain, queries, seed + level),
                }
                if level == levels[-1]:
                    figures["target_p99_ms"] = TARGET_P99_MS
                    figures["p99_over_target"] = round(figures["p99_ms"] / TARGET_P99_MS, 3)
                out[name][str(level)] = figures
        return out
    finally:
        for store in stores.values():
            store.close()
