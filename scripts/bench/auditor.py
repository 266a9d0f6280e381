"""The auditor's benchmark, as one JSON object: bulk indexing, lag, trail queries, verification.

``index``: bulk indexing rate against a plain ``eth_getLogs`` fetch in the same run. A
private anvil gets a deployment and 20,000 ``AnchorLog.Checkpointed`` events
(the cheapest provnet event to make: many transactions per block, sent in JSON-RPC
batches with automine off). Then, over the same block range:

* ``get_logs``: the floor, a plain paged ``eth_getLogs`` over the six addresses, no
  decoding, nothing stored;
* ``web3_decode``: the naive reader (``ledger.events``: web3 decodes every log), nothing
  stored;
* ``sqlite`` and ``postgresql``: the indexer from an empty database to the head
  (headers, decoding, typed rows, one transaction per page).

Figures are events per second; ``over_get_logs`` is each run's time over the floor's.

``lag`` (``scripts.bench.auditor_lag``): index lag under a steady transaction load;
``trail`` (``scripts.bench.auditor_trail``): a task's trail query at 10^5 and 10^6
indexed events; ``verify`` (``scripts.bench.auditor_verify``): verification time per
task with the evidence in memory. ``summary`` puts each headline figure beside the
issue's target (reported, never asserted) and its baseline where the issue names one.
Each part runs on its own anvil and its own databases (a fresh SQLite file, a fresh
PostgreSQL schema at ``PROVNET_BENCH_POSTGRES_URL``, dropped afterwards). The whole run
takes about 5 minutes on 2 cores, most of it filling the trail indexes to 10^6 events.

    .venv/bin/python -m scripts.bench.auditor [--only index|lag|trail|verify ...] [--quick]
        [--events N] [--lag-poll SECONDS] [--no-sqlite-trail]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from auditor.replay import reader_for
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import name_id
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender
from scripts.anvil import running_anvil
from scripts.bench import auditor_lag, auditor_trail, auditor_verify
from scripts.bench.machine import machine

POSTGRES_URL = os.environ.get(
    "PROVNET_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
QUICK_EVENTS = 200
PER_BLOCK = 400  # checkpoint transactions mined per block
PAGE_SIZE = 2_000
INDEX_TARGET_EVENTS_PER_S = 5_000  # into PostgreSQL (issue 13)


def make_events(chain: Chain, count: int) -> tuple[Deployment, int]:
    """A deployment with one member whose admin writes `count` checkpoints; the number
    of events the deployment holds in all."""
    deployer, admin = new_account(), new_account()
    for account in (deployer, admin):
        chain.fund(account.address, 10**21)
    org = GenesisMember(name_id("org", "bench"), "bench", int(Role.PROVIDER), admin.address)
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(50), [org])
    anchors = Clients.bind(chain, deployment, Sender(chain, admin)).anchors
    log_name = name_id("log", "bench")
    anchors.create_log(log_name, 1, name_id("root", "0"))  # two events
    log_id = anchors.own_log_id(log_name)
    contract = anchors.contract
    rpc = Rpc(chain.url)
    try:
        rpc.call("anvil_impersonateAccount", [admin.address])
        rpc.call("evm_setAutomine", [False])
        nonce = int(chain.w3.eth.get_transaction_count(admin.address))
        remaining = count - 1  # createLog's Checkpointed counts
        size = 1
        while remaining > 0:
            batch = []
            for _ in range(min(PER_BLOCK, remaining)):
                size += 1
                data = contract.encode_abi("checkpoint", [log_id, size, name_id("root", str(size))])
                batch.append(
                    [
                        {
                            "from": admin.address,
                            "to": deployment.address("AnchorLog"),
                            "data": data,
                            "gas": hex(120_000),
                            "nonce": hex(nonce),
                        }
                    ]
                )
                nonce += 1
            rpc.batch("eth_sendTransaction", batch)
            rpc.call("evm_mine", [])
            remaining -= len(batch)
        while int(rpc.call("txpool_status", [])["pending"], 16) > 0:  # a block was full
            rpc.call("evm_mine", [])
        rpc.call("evm_setAutomine", [True])
        addresses = [deployment.address(n).lower() for n in deployment.contracts]
        all_logs = rpc.logs(addresses, deployment.first_block, chain.head())
    finally:
        rpc.close()
    return deployment, len(all_logs)


def time_get_logs(url: str, deployment: Deployment, head: int) -> dict[str, Any]:
    rpc = Rpc(url)
    addresses = [deployment.address(n).lower() for n in deployment.contracts]
    start = time.perf_counter()
    count = 0
    first = deployment.first_block
    while first <= head:
        last = min(first + PAGE_SIZE - 1, head)
        count += len(rpc.logs(addresses, first, last))
        first = last + 1
    seconds = time.perf_counter() - start
    rpc.close()
    return _figures(count, seconds)


def time_web3(chain: Chain, deployment: Deployment) -> dict[str, Any]:
    start = time.perf_counter()
    events = reader_for(chain, deployment).read(deployment.first_block)
    return _figures(len(events), time.perf_counter() - start)


def time_index(url: str, deployment: Deployment, database: str) -> dict[str, Any]:
    store = IndexStore(database)  # migrations run here, outside the timed part
    rpc = Rpc(url)
    try:
        follower = Follower(rpc, store, deployment, confirmations=0, page_size=PAGE_SIZE)
        start = time.perf_counter()
        steps = follower.catch_up()
        seconds = time.perf_counter() - start
        counts = store.counts()
    finally:
        rpc.close()
        store.close()
    return {
        **_figures(counts["events"], seconds),
        "blocks": counts["blocks"],
        "pages": sum(1 for s in steps if s.kind == "indexed"),
    }


def _figures(count: int, seconds: float) -> dict[str, Any]:
    return {"events": count, "seconds": seconds, "events_per_s": count / seconds if seconds else 0}


def _postgres_schema_url() -> tuple[str, Callable[[], None]]:
    """A URL whose connections see a fresh schema, and a function that drops it."""
    schema = f"provnet_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(POSTGRES_URL)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url, drop


def measure_index(events: int) -> dict[str, Any]:
    """Bulk indexing into SQLite and PostgreSQL beside the ``eth_getLogs`` floor."""
    with running_anvil() as url:
        chain = Chain.connect(url)
        deployment, total = make_events(chain, events)
        head = chain.head()
        report: dict[str, Any] = {
            "inputs": {
                "checkpoint_events": events,
                "deployment_events": total,
                "blocks": head - deployment.first_block + 1,
                "page_size": PAGE_SIZE,
            },
            "get_logs": time_get_logs(url, deployment, head),
            "web3_decode": time_web3(chain, deployment),
        }
        with _databases() as databases:
            for name, database in databases.items():
                if isinstance(database, str):
                    report[name] = time_index(url, deployment, database)
                else:
                    report[name] = database  # the error that says why there is none
    floor = report["get_logs"]["seconds"]
    for side in ("web3_decode", "sqlite", "postgresql"):
        if "seconds" in report[side] and floor > 0:
            report[side]["over_get_logs"] = report[side]["seconds"] / floor
    if "events_per_s" in report["postgresql"]:
        report["postgresql"]["target_events_per_s"] = INDEX_TARGET_EVENTS_PER_S
        report["postgresql"]["over_target"] = round(
            report["postgresql"]["events_per_s"] / INDEX_TARGET_EVENTS_PER_S, 3
        )
    return report


@contextmanager
def _databases() -> Iterator[dict[str, str | dict[str, str]]]:
    """A fresh SQLite file and a fresh PostgreSQL schema (or the error that says why
    there is none: the SQLite figures still stand), dropped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        databases: dict[str, str | dict[str, str]] = {"sqlite": f"sqlite:///{tmp}/index.db"}
        drop: Callable[[], None] | None = None
        try:
            pg_url, drop = _postgres_schema_url()
        except Exception as exc:
            databases["postgresql"] = {"error": f"PostgreSQL at {POSTGRES_URL}: {exc}"}
        else:
            databases["postgresql"] = pg_url
        try:
            yield databases
        finally:
            if drop is not None:
                drop()


def _usable(databases: dict[str, str | dict[str, str]]) -> dict[str, str]:
    return {name: url for name, url in databases.items() if isinstance(url, str)}


def _errors(databases: dict[str, str | dict[str, str]]) -> dict[str, Any]:
    return {name: url for name, url in databases.items() if isinstance(url, dict)}


def measure_lag(scale: Scale) -> dict[str, Any]:
    with running_anvil() as url, _databases() as databases:
        report = auditor_lag.run(
            url,
            _usable(databases),
            scale.lag_rate,
            scale.lag_seconds,
            scale.block_time,
            PAGE_SIZE,
            scale.lag_poll,
        )
        return {**report, **_errors(databases)}


def measure_trail(scale: Scale) -> dict[str, Any]:
    with _databases() as databases:
        usable = _usable(databases)
        if not scale.trail_sqlite:
            usable.pop("sqlite")
        report = auditor_trail.measure(usable, list(scale.trail_levels), scale.trail_queries)
        return {"target_p99_ms": auditor_trail.TARGET_P99_MS, **report, **_errors(databases)}


def measure_verify(scale: Scale) -> dict[str, Any]:
    with running_anvil() as url:
        return auditor_verify.measure(url, scale.verify_repetitions, scale.verify_providers)


@dataclass(frozen=True)
class Scale:
    """How big each part runs: the issue's sizes, or a smoke test's."""

    events: int
    lag_rate: float
    lag_seconds: float
    block_time: int
    lag_poll: float
    trail_levels: tuple[int, ...]
    trail_queries: int
    trail_sqlite: bool
    verify_repetitions: int
    verify_providers: int


FULL = Scale(
    events=20_000,  # fixed costs (headers, first query) dominate a few thousand
    lag_rate=200.0,  # tx/s (issue 13)
    lag_seconds=20.0,
    block_time=1,
    lag_poll=auditor_lag.POLL_SECONDS,
    trail_levels=(100_000, 1_000_000),  # indexed events (issue 13)
    trail_queries=2_000,
    trail_sqlite=True,
    verify_repetitions=50,
    verify_providers=3,
)
QUICK = Scale(
    events=QUICK_EVENTS,
    lag_rate=50.0,
    lag_seconds=3.0,
    block_time=1,
    lag_poll=auditor_lag.POLL_SECONDS,
    trail_levels=(1_000, 3_000),
    trail_queries=100,
    trail_sqlite=True,
    verify_repetitions=3,
    verify_providers=2,
)
PARTS = ("index", "lag", "trail", "verify")


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Each headline figure beside its target and, where the issue names one, its baseline."""
    out: dict[str, Any] = {}
    pg = report.get("index", {}).get("postgresql", {})
    if "events_per_s" in pg:
        floor = report["index"]["get_logs"]["events_per_s"]
        out["index_postgresql_events_per_s"] = {
            "value": round(pg["events_per_s"]),
            "target_at_least": INDEX_TARGET_EVENTS_PER_S,
            "baseline_get_logs_events_per_s": round(floor),
            "time_over_get_logs": round(pg["over_get_logs"], 2),
        }
    for name, figures in report.get("lag", {}).items():
        if isinstance(figures, dict) and "lag_p95_s" in figures:
            out[f"lag_{name}_p95_s"] = {
                "value": figures["lag_p95_s"],
                "target_below": figures["target_lag_s"],
                "achieved_tx_per_s": figures["included_per_s"],
            }
    trail = report.get("trail", {})
    for name, levels in trail.items():
        if not isinstance(levels, dict) or not levels or "error" in levels:
            continue
        top = max(levels, key=int)
        if "p99_ms" in levels[top]:
            out[f"trail_{name}_p99_ms_at_{top}"] = {
                "value": levels[top]["p99_ms"],
                "target_below": auditor_trail.TARGET_P99_MS,
            }
    verify = report.get("verify", {})
    if "checks" in verify:
        out["verify_checks_median_ms"] = {
            "value": verify["checks"]["median_ms"],
            "target_below": verify["target_ms"],
        }
        out["verify_end_to_end_median_ms"] = {  # one verifier reused across tasks
            "value": verify["end_to_end"]["median_ms"],
            "target_below": verify["target_ms"],
        }
        if "end_to_end_cold" in verify:  # a new verifier for each task
            out["verify_end_to_end_cold_median_ms"] = {
                "value": verify["end_to_end_cold"]["median_ms"],
                "target_below": verify["target_ms"],
            }
    for figure in out.values():
        target = figure.get("target_below", figure.get("target_at_least"))
        met = figure["value"] < target if "target_below" in figure else figure["value"] >= target
        figure["met"] = bool(met)
    return out


def run(parts: Sequence[str], scale: Scale) -> dict[str, Any]:
    """The parts asked for, one after another (each on its own anvil and databases)."""
    report: dict[str, Any] = {
        "benchmark": "auditor",
        "machine": machine(["sqlalchemy", "alembic", "psycopg", "web3"]),
        "scale": dataclasses.asdict(scale),
    }
    seconds: dict[str, float] = {}
    measures: dict[str, Callable[[], dict[str, Any]]] = {
        "index": lambda: measure_index(scale.events),
        "lag": lambda: measure_lag(scale),
        "trail": lambda: measure_trail(scale),
        "verify": lambda: measure_verify(scale),
    }
    for part in PARTS:
        if part in parts:
            print(f"auditor benchmark: {part} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            report[part] = measures[part]()
            seconds[part] = round(time.perf_counter() - start, 1)
    report["summary"] = summary(report)
    report["seconds"] = seconds
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeat for several); default: all",
    )
    parser.add_argument("--events", type=int, help="checkpoint events to index (index part)")
    parser.add_argument("--quick", action="store_true", help="a tiny scale (the smoke test)")
    parser.add_argument(
        "--no-sqlite-trail",
        action="store_true",
        help="trail queries on PostgreSQL only (filling SQLite to 10^6 events takes minutes)",
    )
    parser.add_argument(
        "--lag-poll",
        type=float,
        help=f"the follower's idle poll in seconds during the lag run "
        f"(default {auditor_lag.POLL_SECONDS}; `provnet auditor run` polls every 1 s)",
    )
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    if args.lag_poll is not None:
        if args.lag_poll <= 0:
            parser.error("--lag-poll must be > 0")
        scale = dataclasses.replace(scale, lag_poll=args.lag_poll)
    if args.no_sqlite_trail:
        scale = dataclasses.replace(scale, trail_sqlite=False)
    if args.events is not None:
        if args.events < 1:
            parser.error("--events must be >= 1")
        scale = dataclasses.replace(scale, events=args.events)
    print(json.dumps(run(args.only or PARTS, scale), indent=2))


if __name__ == "__main__":
    main()
