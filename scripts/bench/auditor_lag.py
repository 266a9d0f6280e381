"""Index lag under a steady transaction load on anvil (part of ``scripts.bench.auditor``).

Several member accounts each own an ``AnchorLog`` log; a load process sends their
``checkpoint`` transactions (the cheapest provnet transaction, one event each) at a
steady rate for a fixed time, while anvil mines a block every ``block_time`` seconds
and the ``Follower`` (confirmations 0, short poll) indexes in a thread of this process,
as ``provnet auditor run`` runs it.

Lag of one transaction = the wall-clock moment its row was committed to the index
(the follower's page that holds its block, timed when the page's transaction has
committed) minus the moment its block was first seen on the node (a watcher polls the
head every 10 ms; the block's own timestamp has one-second resolution). The sender and
the watcher run in their own process, so the follower has this one to itself. At the
end, every checkpoint the chain holds in the load's range must be in the index.

``sent_per_s`` is the offered rate (the sender's pacing); ``included_per_s`` the
achieved one: transactions included per second from the first send until the last
block holding one of them was seen (so over up to one block time more than the load).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_utils.crypto import keccak
from sqlalchemy import func, select

from auditor.index import schema
from auditor.index.follower import Follower, Step
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import name_id
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender
from scripts.bench.latency import percentile

TARGET_P95_S = 2.0  # "lag under 2 s" (issue 13)
SENDERS = 4
POLL_SECONDS = 0.1  # the follower's idle poll (the service's default is 1 s)
WATCH_SECONDS = 0.01
SETTLE_TIMEOUT = 60.0
_CHECKPOINT = keccak(text="checkpoint(bytes32,uint64,bytes32)")[:4]


@dataclass(frozen=True)
class Account:
    """One sender: its address, its log, the log's current size, its next nonce."""

    address: str
    log_id: bytes
    size: int
    nonce: int


def prepare(chain: Chain) -> tuple[Deployment, list[Account]]:
    """A deployment whose SENDERS member admins each own a log (created here, automine on)."""
    deployer = new_account()
    admins = [new_account() for _ in range(SENDERS)]
    for account in (deployer, *admins):
        chain.fund(account.address, 10**21)
    members = [
        GenesisMember(name_id("org", f"load {i}"), f"load {i}", int(Role.PROVIDER), a.address)
        for i, a in enumerate(admins)
    ]
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(50), members)
    accounts = []
    for admin in admins:
        anchors = Clients.bind(chain, deployment, Sender(chain, admin)).anchors
        name = name_id("log", "load")
        anchors.create_log(name, 1, _root(admin.address, 1))
        nonce = int(chain.w3.eth.get_transaction_count(admin.address))
        accounts.append(Account(admin.address, anchors.own_log_id(name), 1, nonce))
    return deployment, accounts


def _root(address: str, size: int) -> bytes:
    return hashlib.sha256(f"{address}:{size}".encode()).digest()


def _tx(to: str, account: Account, size: int, nonce: int) -> dict[str, str]:
    data = _CHECKPOINT + account.log_id + size.to_bytes(32, "big") + _root(account.address, size)
    return {
        "from": account.address,
        "to": to,
        "data": "0x" + data.hex(),
        "gas": hex(120_000),
        "nonce": hex(nonce),
    }


def load(
    url: str,
    anchor_log: str,
    accounts: list[Account],
    rate: float,
    seconds: float,
    out: Any,  # multiprocessing.Queue
) -> None:
    """The load process: send ``rate`` tx/s round-robin over ``accounts`` for
    ``seconds`` (a batch when the schedule is behind), and watch the head meanwhile."""
    observed: dict[int, float] = {}
    stop, watching = threading.Event(), threading.Event()

    def watch() -> None:
        with httpx.Client(timeout=10) as client:
            last: int | None = None
            while not stop.is_set():
                answer = client.post(
                    url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
                ).json()
                head, now = int(answer["result"], 16), time.time()
                if last is None:
                    last = head
                    watching.set()  # every block from here on is timed
                for number in range(last + 1, head + 1):
                    observed[number] = now
                last = max(last, head)
                stop.wait(WATCH_SECONDS)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if not watching.wait(30):
        raise RuntimeError(f"the head watcher got no answer from {url} in 30 s")
    rpc = Rpc(url)
    sizes = {a.address: a.size for a in accounts}
    nonces = {a.address: a.nonce for a in accounts}
    sent = errors = 0
    total = int(rate * seconds)
    late = 0.0
    start = time.time()
    while sent < total:
        due = min(int((time.time() - start) * rate) + 1, total) - sent
        if due <= 0:
            time.sleep(max(start + (sent + 1) / rate - time.time(), 0))
            continue
        late = max(late, time.time() - (start + sent / rate))
        batch = []
        for i in range(due):
            account = accounts[(sent + i) % len(accounts)]
            sizes[account.address] += 1
            size, nonce = sizes[account.address], nonces[account.address]
            batch.append([_tx(anchor_log, account, size, nonce)])
            nonces[account.address] += 1
        try:
            rpc.batch("eth_sendTransaction", batch)
        except Exception:  # counted and reported: the figures then say what went wrong
            errors += len(batch)
        sent += len(batch)
    end = time.time()
    # Until the pool drains (the last block holding our transactions is mined and seen).
    deadline = time.time() + SETTLE_TIMEOUT
    while int(rpc.call("txpool_status", [])["pending"], 16) > 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(WATCH_SECONDS * 5)
    stop.set()
    watcher.join()
    rpc.close()
    out.put(
        {
            "sent": sent,
            "errors": errors,
            "start": start,
            "end": end,
            "max_send_late_s": late,
            "observed": observed,
        }
    )


def measure(
    url: str,
    chain: Chain,
    deployment: Deployment,
    accounts: list[Account],
    database: str,
    rate: float,
    seconds: float,
    page_size: int,
    poll: float = POLL_SECONDS,
) -> dict[str, Any]:
    """One load run against a follower writing to ``database``, polling every ``poll``
    seconds when idle."""
    store = IndexStore(database)
    rpc = Rpc(url)
    follower = Follower(rpc, store, deployment, confirmations=0, page_size=page_size)
    follower.catch_up()  # the deployment's own blocks, before the clock starts
    first_block = chain.head() + 1
    indexed_at: dict[int, float] = {}

    def record(step: Step) -> None:
        if step.kind == "indexed":
            now = time.time()
            for number in range(step.first, step.last + 1):
                indexed_at[number] = now

    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop, poll, record), daemon=True)
    thread.start()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=load,
        args=(url, deployment.address("AnchorLog"), accounts, rate, seconds, queue),
    )
    process.start()
    try:
        result = queue.get(timeout=seconds + SETTLE_TIMEOUT + 60)
        process.join()
        last_block = max(result["observed"], default=first_block)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while store.state().cursor < last_block and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        if process.is_alive():
            process.terminate()
            process.join()
    try:
        return _figures(result, store, rpc, deployment, first_block, last_block, indexed_at, rate)
    finally:
        rpc.close()
        store.close()


def _figures(
    result: dict[str, Any],
    store: IndexStore,
    rpc: Rpc,
    deployment: Deployment,
    first_block: int,
    last_block: int,
    indexed_at: dict[int, float],
    rate: float,
) -> dict[str, Any]:
    c = schema.checkpoints
    with store.engine.connect() as conn:
        per_block: dict[int, int] = {
            int(number): int(count)
            for number, count in conn.execute(
                select(c.c.block_number, func.count())
                .where(c.c.block_number >= first_block, c.c.block_number <= last_block)
                .group_by(c.c.block_number)
            ).all()
        }
    on_chain = len(rpc.logs([deployment.address("AnchorLog").lower()], first_block, last_block))
    observed: dict[int, float] = result["observed"]
    lags: list[float] = []
    unobserved = 0
    for number, count in per_block.items():
        if number not in observed or number not in indexed_at:
            unobserved += count
            continue
        lags += [indexed_at[number] - observed[number]] * count
    included = sum(per_block.values())
    blocks_with_load = sorted(per_block)
    # Achieved rate: transactions included per second from the first send to the moment
    # the last block holding one of them was seen.
    span = 0.0
    if blocks_with_load and blocks_with_load[-1] in observed:
        span = observed[blocks_with_load[-1]] - result["start"]
    send_seconds = result["end"] - result["start"]
    figures: dict[str, Any] = {
        "target_rate_tx_per_s": rate,
        "sent": result["sent"],
        "send_errors": result["errors"],
        "sent_per_s": round(result["sent"] / send_seconds, 1) if send_seconds else None,
        "max_send_late_s": round(result["max_send_late_s"], 3),
        "included_on_chain": on_chain,
        "indexed": included,
        "index_complete": included == on_chain == result["sent"] - result["errors"],
        "blocks": len(blocks_with_load),
        "included_per_s": round(included / span, 1) if span else None,
        "lag_samples": len(lags),
        "lag_unmatched": unobserved,
    }
    if lags:
        figures |= {
            "lag_p50_s": round(percentile(lags, 50), 3),
            "lag_p95_s": round(percentile(lags, 95), 3),
            "lag_max_s": round(max(lags), 3),
            "lag_min_s": round(min(lags), 3),
            "target_lag_s": TARGET_P95_S,
            "p95_over_target": round(percentile(lags, 95) / TARGET_P95_S, 3),
        }
    return figures


def start_interval_mining(url: str, block_time: int) -> None:
    """Anvil mines every ``block_time`` seconds from now on (automine off)."""
    rpc = Rpc(url)
    try:
        rpc.call("evm_setAutomine", [False])
        rpc.call("evm_setIntervalMining", [block_time])
    finally:
        rpc.close()


def impersonate(url: str, accounts: list[Account]) -> None:
    """Let anvil sign the load's ``eth_sendTransaction`` calls for these accounts."""
    rpc = Rpc(url)
    try:
        for account in accounts:
            rpc.call("anvil_impersonateAccount", [account.address])
    finally:
        rpc.close()


def refresh(chain: Chain, deployment: Deployment, accounts: list[Account]) -> list[Account]:
    """The accounts with their logs' sizes and nonces as the chain has them now (a
    second run continues where the first left off)."""
    anchors = Clients.bind(chain, deployment).anchors
    return [
        Account(
            a.address,
            a.log_id,
            anchors.latest(a.log_id)[0],
            int(chain.w3.eth.get_transaction_count(a.address, "pending")),  # type: ignore[arg-type]
        )
        for a in accounts
    ]


def run(
    url: str,
    databases: dict[str, str],
    rate: float,
    seconds: float,
    block_time: int,
    page_size: int,
    poll: float = POLL_SECONDS,
) -> dict[str, Any]:
    """The load once per database (name -> URL), on one anvil, one after the other."""
    chain = Chain.connect(url)
    deployment, accounts = prepare(chain)
    impersonate(url, accounts)
    start_interval_mining(url, block_time)
    out: dict[str, Any] = {
        "block_time_s": block_time,
        "senders": len(accounts),
        "seconds": seconds,
        "follower_poll_s": poll,
        "confirmations": 0,
    }
    for name, database in databases.items():
        time.sleep(block_time)  # the previous run's last blocks are mined
        accounts = refresh(chain, deployment, accounts)
        out[name] = measure(
            url, chain, deployment, accounts, database, rate, seconds, page_size, poll
        )
    return out
