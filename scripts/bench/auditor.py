"""Auditor indexing throughput, as JSON, against a plain ``eth_getLogs`` fetch in the same run.

A private anvil gets a deployment and a few thousand ``AnchorLog.Checkpointed`` events
(the cheapest provnet event to make: many transactions per block, sent in JSON-RPC
batches with automine off). Then, over the same block range:

* ``get_logs``: the floor, a plain paged ``eth_getLogs`` over the six addresses, no
  decoding, nothing stored;
* ``web3_decode``: the naive reader (``ledger.events``: web3 decodes every log), nothing
  stored;
* ``sqlite`` and ``postgresql``: the indexer from an empty database to the head
  (headers, decoding, typed rows, one transaction per page).

Figures are events per second; ``over_get_logs`` is each run's time over the floor's.
Only the indexing part of the issue's benchmark is here (lag under load, trail query
latency and verification time come with the API and the verifier).

    .venv/bin/python -m scripts.bench.auditor [--events 5000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
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
from scripts.bench.machine import machine

POSTGRES_URL = os.environ.get(
    "PROVNET_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
QUICK_EVENTS = 200
PER_BLOCK = 400  # checkpoint transactions mined per block
PAGE_SIZE = 2_000


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


def run(events: int) -> dict[str, Any]:
    with running_anvil() as url:
        chain = Chain.connect(url)
        deployment, total = make_events(chain, events)
        head = chain.head()
        report: dict[str, Any] = {
            "benchmark": "auditor-index",
            "machine": machine(["sqlalchemy", "alembic", "psycopg", "web3"]),
            "inputs": {
                "checkpoint_events": events,
                "deployment_events": total,
                "blocks": head - deployment.first_block + 1,
                "page_size": PAGE_SIZE,
            },
            "get_logs": time_get_logs(url, deployment, head),
            "web3_decode": time_web3(chain, deployment),
        }
        with tempfile.TemporaryDirectory() as tmp:
            report["sqlite"] = time_index(url, deployment, f"sqlite:///{tmp}/index.db")
        try:
            pg_url, drop = _postgres_schema_url()
        except Exception as exc:  # reported, not fatal: SQLite figures still stand
            report["postgresql"] = {"error": f"PostgreSQL at {POSTGRES_URL}: {exc}"}
        else:
            try:
                report["postgresql"] = time_index(url, deployment, pg_url)
            finally:
                drop()
    floor = report["get_logs"]["seconds"]
    for side in ("web3_decode", "sqlite", "postgresql"):
        if "seconds" in report[side] and floor > 0:
            report[side]["over_get_logs"] = report[side]["seconds"] / floor
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000, help="checkpoint events to make")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS} events (tests)")
    args = parser.parse_args()
    if args.events < 1:
        parser.error("--events must be >= 1")
    print(json.dumps(run(QUICK_EVENTS if args.quick else args.events), indent=2))


if __name__ == "__main__":
    main()
