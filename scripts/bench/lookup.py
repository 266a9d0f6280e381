"""Anonymous-lookup benchmark (issue 15): union build, query latency, screening, as JSON.

Everything runs through the real libraries (``node.lookup`` and ``node.crypto``); every
measured answer is checked against a plaintext computation over the same union contents
(a hit count that differs is reported as ``"equals_plaintext": false``, never hidden).

For each (union size, provider count) a fresh subprocess (this script with ``--one``)
measures, so its peak memory (``VmHWM``) is its own:

* **threshold evaluation of the providers' own entries**: ``publisher.publish`` for a
  sample of ``--sample`` real identifiers spread over the providers (some listed by two
  of them), each provider blinding and ``t = providers // 2 + 1`` *other* providers'
  ``KeyHolder`` objects answering with proofs in-process, then verify, combine,
  finalize. Its per-entry cost (holders' share and the publisher's own share kept
  apart) is extrapolated to the full size and labelled ``extrapolated``: only this part
  depends on the threshold key, and running it for 10^6 entries would take an hour here;
* **union build**: ``union.build_union`` over the sample's real PRF values plus
  ``size - sample`` random 64-byte strings standing in for the bulk's PRF values
  (``secrets.token_bytes``; a PRF output is indistinguishable from random, and
  ``build_union`` treats them alike), spread over the providers with 10% listed twice;
  its time, the union's size (table bytes per entry, whole union with label buckets,
  what a querier downloads) and peak memory;
* **queries**: a ``Querier`` over the anchored descriptor, its ``evaluate`` hop going
  through a real ``relay.Relay`` (metered in a throwaway SQLite database, query log
  off) whose policy forwards at once (``min_batch=1, min_queriers=1``: no mixing, no
  padding, no delay — the latency floor, not the privacy-preserving setting), with the
  ``t`` holders answering in-process one after another (so a query pays all ``t``
  holders' work in sequence, pessimistic against holders answering in parallel). Single
  queries (``--queries``, half listed) with labels fetched, p50/p99 and the mean time
  spent in the relay (its meter's SQLite write) and in the holders; one batch of
  ``--batch`` identifiers with labels, throughput; and the label bucket's own cost
  (digest check and trial decryption of every record, for a miss), the one part of a
  query that grows with the union (about ``sqrt(n)`` records);
* **baselines in the same process**: the same lookups in a Python ``dict`` over the
  union's contents and as a DuckDB join (what a trusted third party holding every list
  would run).

Separately, per provider count, **bulk screening** (``Querier.screen`` in chunks of
``--screen-chunk`` rows through the same relay, with a progress callback) of
``--screen-rows`` rows against a union of ``--screen-union`` entries, once per
``--screen-modes`` mode on the same book and union: ``sequential`` (no executor: the
code before the querier's screening was parallelised), ``threads`` and ``processes``
(``Querier.screen(executor=...)`` with a thread or a forkserver process pool of one
worker per usable core: the querier's blinding, proof verification, combining and
finalizing spread over the workers, chunks pipelined). Each mode stops after
``--screen-budget`` seconds when it would run longer; the rate, its speed-up over the
sequential mode, and the time for all rows (extrapolated if stopped, and labelled so)
are reported.

The single RFC 9497 operations (blind, blind-evaluate, finalize, a holder's evaluation
with its DLEQ proof and its verification, for one element and per element of a batch
of 1,000) are timed in the same run and give a per-query cost model to read the
latencies against. Targets from issue 15 are reported, never asserted. The load
average at start and end (and per subprocess) shows a busy machine.

**Transport.** ``--transport in-process`` (default) measures as above. ``--transport
grpc`` measures the queries and the screening a second time, on the same union and the
same identifiers, with the roles as nodes: ``n`` provider nodes (``rpc.HolderState``
given the epoch's shares), the relay node (``rpc.RelayState`` serving the built union,
``rpc.RelayForwarder`` asking the first ``t`` holders) and one querying bank's node,
each a ``PeerServer`` with the ``rpc.LookupService`` on 127.0.0.1 and a TLS identity of
its own registered on an embedded eth-tester chain carrying the project's contracts
(``ChainTrust`` authenticates every call and pins every certificate, as in
``tests/node/lookup/test_rpc.py``). The querier downloads the union with ``GetEpoch``
and fetches buckets with ``GetBucket``; its evaluation hop is ``rpc.querier_evaluate``
(``Submit`` then ``Collect``). All of it runs in the case's one process (separate
processes would each need their own view of one chain, i.e. anvil; the eth-tester chain
lives in one process), so holders, relay and querier share the two cores and the GIL
as threads. The in-process figures stay in ``queries``, the gRPC ones are in
``queries_grpc`` beside them.

    .venv/bin/python -m scripts.bench.lookup [--sizes 100000 1000000] [--providers 3 10]
        [--transport in-process|grpc] [--sample 2000] [--queries 200] [--batch 1000]
        [--screen-rows 1000000] [--screen-budget 60] [--screen-modes sequential threads
        processes] [--no-screen] [--jobs 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.ids import name_id
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender
from node.crypto import oprf, threshold_oprf
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.identity import TlsIdentity, new_tls_identity
from node.lookup import inputs
from node.lookup.epoch import (
    EpochDescriptor,
    EpochKeys,
    Evaluate,
    EvaluationAnswer,
    run_dkg,
)
from node.lookup.keyholder import KeyHolder
from node.lookup.metering import Meter, MeterPolicy
from node.lookup.publisher import OwnInput, publish
from node.lookup.querier import (
    MembershipAnswer,
    Querier,
    ScreenItem,
    ScreenProgress,
    UnionDownload,
)
from node.lookup.relay import Relay, RelayPolicy
from node.lookup.rpc import (
    HolderState,
    ListRoster,
    LookupClient,
    LookupService,
    Published,
    RelayForwarder,
    RelayState,
    bucket_fetcher,
    org_label,
    querier_evaluate,
)
from node.lookup.union import (
    TABLE_ENTRY_BYTES,
    Contribution,
    Entry,
    Listing,
    Union,
    bucket_digest,
    bucket_of,
    build_union,
    open_labels,
)
from node.peer.server import PeerServer
from node.peer.trust import ChainTrust
from scripts.bench.latency import summary_ms
from scripts.bench.machine import machine
from scripts.bench.psi import run_subprocess
from scripts.bench.psi_baselines.common import current_rss_mb, peak_rss_mb, reset_peak_rss

QUICK: dict[str, Any] = {
    "sizes": [3000],
    "providers": [3],
    "sample": 60,
    "queries": 10,
    "batch": 40,
    "screen_rows": 300,
    "screen_union": 2000,
    "screen_budget": 60.0,
    "screen_chunk": 128,  # three rounds: the pipelined screen overlaps them
    "screen_modes": ["sequential", "threads"],  # a process pool's start-up would double it
    "ops_rounds": 3,
}
EXTRAPOLATE_TO = 10_000_000
EPOCH = 1
LIST = "blacklist"
KIND = "phone"
ORG, PURPOSE, GRANT = "bank-bench", "screening", b"\x07" * 32
SCREEN_CHUNK = 1_000
OPS_BATCH = 1_000
EVENT_TIME = 1_790_000_000
LABEL_SETS = (frozenset({"fraud"}), frozenset({"fraud", "mule"}), frozenset({"scam-call"}))
TARGETS = {
    "p50_ms_at_1e7_entries_10_providers": 50.0,
    "screen_1e6_seconds": 600.0,
}
TRANSPORTS = ("in-process", "grpc")
SCREEN_MODES = ("sequential", "threads", "processes")
CHAIN_FUNDING = 10**20
HOP_NOTES = {
    "in-process": (
        "relay: Relay.submit/due/deliver in this process (the meter's SQLite write); "
        "holders: the t KeyHolders one after another in this thread"
    ),
    "grpc": (
        "relay: the querier's whole Submit/Collect round trip over gRPC and mutual TLS, "
        "the relay's forwarding to the holders and their answers included; holders: "
        "the sum over the t holders' servicer time (they answer in parallel)"
    ),
}
# Forward every submission at once: the latency floor. The deployed relay mixes (64
# elements from 2 organisations, or 2 s), which adds up to max_delay to a lone query.
IMMEDIATE = RelayPolicy(min_batch=1, min_queriers=1, max_delay=2.0, max_batch=1024, max_ticket=1024)


def threshold_of(providers: int) -> int:
    """A majority threshold: any ``providers // 2 + 1`` holders answer."""
    return providers // 2 + 1


# --- identifiers and the plaintext union ----------------------------------------------


def phones(rng: random.Random, count: int, prefix: str) -> list[str]:
    """``count`` distinct mainland mobile numbers starting with ``prefix`` (3 digits)."""
    numbers = rng.sample(range(10**8), count)
    return [f"{prefix}{n:08d}" for n in numbers]


def x_of(phone: str) -> bytes:
    """The OPRF input of a blacklist phone entry, as querier and publisher both build it."""
    return inputs.membership_input(LIST, KIND, phone)


@dataclass
class Plain:
    """The union's contents in plaintext: what a trusted third party would hold.

    ``listings`` maps each identifier's OPRF input (for the bulk, its stand-in random
    PRF value) to one listing per provider listing it.
    """

    listings: dict[bytes, list[Listing]]

    def answer(self, x: bytes) -> tuple[bool, int, tuple[Listing, ...]]:
        found = self.listings.get(x)
        if found is None:
            return False, 0, ()
        return True, len(found), tuple(sorted(found))


def owners(j: int, providers: int) -> list[int]:
    """Providers listing item ``j``: one, and every tenth item a second one."""
    first = j % providers
    return [first, (first + 1) % providers] if j % 10 == 0 and providers > 1 else [first]


def listing_of(j: int, provider: int) -> tuple[frozenset[str], int]:
    return LABEL_SETS[(j + provider) % len(LABEL_SETS)], EVENT_TIME - 3_600 * (j % 500 + provider)


# --- the epoch: keys, holders, threshold-evaluated sample, bulk, union ----------------


@dataclass
class Epoch:
    keys: EpochKeys
    shares: list[KeyShare]
    holders: list[KeyHolder]
    union: Union
    plain: Plain
    listed: list[str]
    figures: dict[str, Any]


class TimedHolders:
    """The evaluation hop to ``t`` in-process holders, timing the holders' own work."""

    def __init__(self, holders: Sequence[KeyHolder]) -> None:
        self.holders = list(holders)
        self.seconds = 0.0
        self.elements = 0

    def __call__(self, epoch: int, blinded: list[bytes]) -> EvaluationAnswer:
        started = time.perf_counter()
        answers = [h.evaluate(epoch, blinded) for h in self.holders]
        self.seconds += time.perf_counter() - started
        self.elements += len(blinded)
        return answers


def threshold_sample(
    keys: EpochKeys, holders: list[KeyHolder], listed: list[str], providers: int
) -> tuple[list[Contribution], dict[bytes, list[Listing]], dict[str, Any]]:
    """Every provider publishes its share of ``listed`` through ``t`` other holders."""
    t = keys.t
    rows: list[list[OwnInput]] = [[] for _ in range(providers)]
    plain: dict[bytes, list[Listing]] = {}
    for j, phone in enumerate(listed):
        x = x_of(phone)
        for p in owners(j, providers):
            labels, when = listing_of(j, p)
            rows[p].append(OwnInput(x, labels, when))
            plain.setdefault(x, []).append(Listing(when, tuple(sorted(labels))))
    contributions: list[Contribution] = []
    holder_seconds = 0.0
    evaluated = 0
    started = time.perf_counter()
    for p in range(providers):
        others = [h for h in holders if h.index != p + 1][:t]
        hop = TimedHolders(others)
        contributions.append(publish(keys, rows[p], hop))
        holder_seconds += hop.seconds
        evaluated += hop.elements
    total = time.perf_counter() - started
    per_entry = total / max(evaluated, 1)
    holder_each = holder_seconds / max(evaluated, 1) / t
    return (
        contributions,
        plain,
        {
            "sample_entries": evaluated,
            "t": t,
            "seconds": round(total, 3),
            "us_per_entry": round(per_entry * 1e6, 1),
            "holders_us_per_entry_each": round(holder_each * 1e6, 1),
            "publisher_us_per_entry": round((total - holder_seconds) / max(evaluated, 1) * 1e6, 1),
            "how": (
                "publisher.publish, chunks of 10,000; blind, t other providers' KeyHolder "
                "evaluate with batched DLEQ proofs in-process one after another, verify, "
                "combine, finalize"
            ),
        },
    )


def bulk_contributions(
    count: int, providers: int, plain: dict[bytes, list[Listing]]
) -> list[list[Entry]]:
    """``count`` random 64-byte stand-in PRF values, spread as the sample is."""
    per: list[list[Entry]] = [[] for _ in range(providers)]
    blob = secrets.token_bytes(64 * count)
    for j in range(count):
        prf = blob[64 * j : 64 * (j + 1)]
        for p in owners(j, providers):
            labels, when = listing_of(j, p)
            per[p].append(Entry(prf, labels, when))
            plain.setdefault(prf, []).append(Listing(when, tuple(sorted(labels))))
    return per


def make_epoch(size: int, providers: int, sample: int, rng: random.Random) -> Epoch:
    """Keys by DKG, the sample through the threshold, the bulk at random, the union."""
    keys, shares = run_dkg(threshold_of(providers), providers, epoch=EPOCH, list_name=LIST)
    holders = [KeyHolder(share, keys) for share in shares]
    listed = phones(rng, min(sample, size), "138")
    contributions, plain, thr = threshold_sample(keys, holders, listed, providers)
    bulk = bulk_contributions(size - len(listed), providers, plain)
    merged = [Contribution([*contributions[p].entries, *bulk[p]]) for p in range(providers)]
    del bulk
    rss_before = current_rss_mb()
    reset_peak_rss()
    started = time.perf_counter()
    union = build_union(EPOCH, merged)
    build_seconds = time.perf_counter() - started
    peak_build = peak_rss_mb()
    rows = sum(len(c.entries) for c in merged)
    del merged
    whole = len(union.to_bytes())
    download = len(union.table_bytes) + 32 * union.bucket_count
    figures = {
        "threshold_evaluation": {
            **thr,
            "extrapolated_seconds_full_size_sequential": round(thr["us_per_entry"] * rows / 1e6, 1),
            "extrapolated_seconds_full_size_holders_parallel": round(
                (thr["publisher_us_per_entry"] + thr["holders_us_per_entry_each"]) * rows / 1e6,
                1,
            ),
            "extrapolated_note": (
                "extrapolated: per-entry cost measured on the sample times every provider's "
                "rows; 'holders_parallel' counts one holder's work per entry (t answer at once)"
            ),
        },
        "build_union": {
            "entries": len(union.table),
            "provider_rows": rows,
            "bulk_prf_values": "random 64-byte strings (secrets.token_bytes), not OPRF outputs",
            "seconds": round(build_seconds, 3),
            "us_per_entry": round(build_seconds / max(len(union.table), 1) * 1e6, 2),
            "rss_before_mb": rss_before,
            "peak_rss_mb": peak_build,
            "peak_above_start_mb": round(peak_build - rss_before, 1),
        },
        "size": {
            "table_bytes": len(union.table_bytes),
            "table_bytes_per_entry": round(len(union.table_bytes) / max(len(union.table), 1), 3),
            "table_entry_bytes": TABLE_ENTRY_BYTES,
            "bucket_count": union.bucket_count,
            "union_bytes_with_buckets": whole,
            "union_bytes_per_entry": round(whole / max(len(union.table), 1), 2),
            "querier_download_bytes": download,
            "querier_download_bytes_per_entry": round(download / max(len(union.table), 1), 3),
            "mean_bucket_bytes": round(sum(map(len, union.buckets)) / union.bucket_count),
        },
    }
    return Epoch(keys, shares, holders, union, Plain(plain), listed, figures)


# --- the querier through the relay ----------------------------------------------------


class RelayHop:
    """The querier's ``evaluate``: submit to a relay forwarding at once, ``t`` holders."""

    def __init__(self, relay: Relay, holders: Sequence[KeyHolder]) -> None:
        self.relay = relay
        self.holders = list(holders)
        self.relay_seconds = 0.0  # submit (meter charge in SQLite), due, deliver
        self.holder_seconds = 0.0  # all t holders, one after another

    def __call__(self, epoch: int, blinded: list[bytes]) -> EvaluationAnswer:
        started = time.perf_counter()
        now = time.time()
        ticket = self.relay.submit(ORG, PURPOSE, GRANT, blinded, now)
        batch = self.relay.due(now)
        if batch is None:  # pragma: no cover - IMMEDIATE forwards every submission
            raise RuntimeError("the relay held a submission under a forward-at-once policy")
        evaluating = time.perf_counter()
        evaluations = [h.evaluate(batch.epoch, batch.elements) for h in self.holders]
        delivering = time.perf_counter()
        self.holder_seconds += delivering - evaluating
        answers = self.relay.deliver(batch.batch_id, evaluations)
        self.relay_seconds += time.perf_counter() - delivering + evaluating - started
        for answer in answers:
            if answer.ticket_id == ticket.ticket_id:
                return answer.mixed_batch()
        raise RuntimeError("the relay routed no answer to this ticket")  # pragma: no cover


def open_querier(epoch: Epoch, workdir: Path, quota: int) -> tuple[Querier, Meter, RelayHop]:
    meter = Meter(f"sqlite:///{workdir / 'relay.db'}", MeterPolicy(block_size=1_000))
    meter.add_blocks(ORG, PURPOSE, GRANT, quota // 1_000 + 1, reference=bytes(32))
    relay = Relay(meter, IMMEDIATE, epoch=EPOCH)
    # The relay does not pick holders; the first t online ones answer.
    hop = RelayHop(relay, epoch.holders[: epoch.keys.t])
    anchor = EpochDescriptor(EPOCH, epoch.keys.digest, epoch.union.digest)
    buckets = epoch.union.buckets
    querier = Querier(
        epoch.keys, UnionDownload.of(epoch.union), buckets.__getitem__, hop, anchor=anchor
    )
    return querier, meter, hop


# --- the gRPC transport: the same roles as nodes over mutual TLS on 127.0.0.1 ----------


class TimedHolderRole:
    """A key holder's ``HolderRole`` that times its own evaluations (the servicer's
    thread), so the holders' share of a gRPC round trip can be told from the wire's."""

    def __init__(self, state: HolderState) -> None:
        self.state = state
        self.seconds = 0.0
        self._lock = threading.Lock()

    def receive_dealing(
        self, list_name: str, epoch: int, dealer: int, commitments: Sequence[bytes], share: bytes
    ) -> bool:
        return self.state.receive_dealing(list_name, epoch, dealer, commitments, share)

    def evaluate(self, list_name: str, epoch: int, blinded: Sequence[bytes]) -> ShareEvaluation:
        started = time.perf_counter()
        try:
            return self.state.evaluate(list_name, epoch, blinded)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - started


class GrpcHop:
    """The querier's ``evaluate`` over gRPC (``rpc.querier_evaluate``: Submit to the relay
    node, Collect the answer), timing the whole round trip; holders timed on their side."""

    def __init__(self, evaluate: Evaluate, holders: Sequence[TimedHolderRole]) -> None:
        self._evaluate = evaluate
        self.holders = list(holders)
        self.relay_seconds = 0.0  # the whole round trip, holders included
        self._holder_mark = 0.0

    @property
    def holder_seconds(self) -> float:
        return sum(h.seconds for h in self.holders) - self._holder_mark

    @holder_seconds.setter
    def holder_seconds(self, value: float) -> None:
        self._holder_mark = sum(h.seconds for h in self.holders) - value

    def __call__(self, epoch: int, blinded: list[bytes]) -> EvaluationAnswer:
        started = time.perf_counter()
        try:
            return self._evaluate(epoch, blinded)
        finally:
            self.relay_seconds += time.perf_counter() - started


@dataclass
class GrpcNodes:
    """The nodes of one gRPC bench case, all in this process: ``n`` provider nodes
    (``HolderState`` with the epoch's shares), the relay node (``RelayState`` serving the
    built union, ``RelayForwarder``) and one querying bank's node, each its own
    ``PeerServer`` on 127.0.0.1 with its own TLS identity registered on the chain."""

    querier: Querier
    hop: GrpcHop
    meter: Meter
    setup: dict[str, Any]


def bench_chain() -> tuple[Clients, bytes]:
    """An embedded (eth-tester) chain with the project's contracts and one organisation
    whose admin registers every bench node: the lightest chain ``ChainTrust`` reads."""
    chain = Chain.start_embedded()
    deployer, admin = new_account(), new_account()
    for account in (deployer, admin):
        chain.fund(account.address, CHAIN_FUNDING)
    member = GenesisMember(
        name_id("org", "bench"), "bench", int(Role.PROVIDER | Role.CONSUMER), admin.address
    )
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(50), [member])
    return Clients.bind(chain, deployment, Sender(chain, admin)), member.org_id


def open_grpc(epoch: Epoch, workdir: Path, quota: int, stack: ExitStack) -> GrpcNodes:
    """Stand the roles up as nodes over mutual TLS, as ``tests/node/lookup/test_rpc.py``
    does, with the bench's keys and union handed over by ``restore`` (no DKG or
    publication over the wire: those are not what is measured). The relay forwards to
    the first ``t`` holders, as the in-process hop asks them."""
    started = time.perf_counter()
    clients, org_id = bench_chain()
    chain_seconds = time.perf_counter() - started
    workdir.mkdir(parents=True, exist_ok=True)
    n, t = epoch.keys.n, epoch.keys.t
    accounts = {name: new_account() for name in [*(f"p{i}" for i in range(1, n + 1)), "relay", "q"]}
    providers = tuple(accounts[f"p{i}"].address for i in range(1, n + 1))
    roster = ListRoster(LIST, t, providers, accounts["relay"].address, quorum=n)
    rosters = {LIST: roster}
    meter = Meter(f"sqlite:///{workdir / 'relay.db'}", MeterPolicy(block_size=1_000))
    stack.callback(meter.close)
    org = org_label(org_id)
    meter.add_blocks(org, PURPOSE, GRANT, quota // 1_000 + 1, reference=bytes(32))
    # One chain view for every node of this process: it holds public chain data only.
    trust = ChainTrust(clients.consortium, poll_interval=30.0, fetch_timeout=2.0)
    holders: dict[str, TimedHolderRole] = {}
    identities: dict[str, TlsIdentity] = {}
    relay_state = RelayState(
        accounts["relay"].address, rosters, lambda _list, e: Relay(meter, IMMEDIATE, epoch=e)
    )
    for name, account in accounts.items():
        identity = new_tls_identity(f"bench-{name}")
        holder = None
        if name.startswith("p"):
            state = HolderState(account.address, rosters)
            share = epoch.shares[int(name[1:]) - 1]
            state.restore(LIST, share, epoch.keys)
            holder = holders[name] = TimedHolderRole(state)
        service = LookupService(
            account.address,
            trust,
            rosters,
            holder=holder,
            relay=relay_state if name == "relay" else None,
        )
        server = PeerServer(identity, account.address, trust, extra_services=[service.add_to])
        server.start()
        stack.callback(server.stop, 0)
        clients.consortium.register_node(
            account.address, f"127.0.0.1:{server.port}", identity.cert_sha256
        )
        identities[name] = identity
    published = Published(
        epoch.keys, EpochDescriptor(EPOCH, epoch.keys.digest, epoch.union.digest), epoch.union
    )
    relay_state.restore(LIST, published)
    trust.start()
    stack.callback(trust.stop)

    def client(caller: str, callee: str) -> LookupClient:
        made = LookupClient(trust, identities[caller], accounts[callee].address, timeout=60.0)
        stack.callback(made.close)
        return made

    forwarder = RelayForwarder(
        relay_state, {accounts[f"p{i}"].address: client("relay", f"p{i}") for i in range(1, t + 1)}
    )
    forwarder.start()
    stack.callback(forwarder.stop)
    relay = client("q", "relay")
    nodes_seconds = time.perf_counter() - started - chain_seconds
    downloading = time.perf_counter()
    download = relay.get_epoch(LIST, expected_digest=published.descriptor.digest)
    download_seconds = time.perf_counter() - downloading
    hop = GrpcHop(
        querier_evaluate(relay, LIST, PURPOSE, GRANT, poll=5.0, timeout=600.0),
        [holders[f"p{i}"] for i in range(1, t + 1)],
    )
    querier = Querier(
        download.keys,
        download.union,
        bucket_fetcher(relay, LIST, download.descriptor.epoch),
        hop,
        anchor=download.descriptor,
    )
    return GrpcNodes(
        querier,
        hop,
        meter,
        {
            "chain": "eth-tester (embedded py-evm) with the project's contracts; ChainTrust "
            "polls it every 30 s",
            "where": (
                f"one process: {n} provider nodes, the relay node and the querier node, each "
                "a PeerServer (gRPC, mutual TLS, own identity registered on chain) on "
                "127.0.0.1; the querier's calls and the relay's forwarder are gRPC clients "
                "pinning the chain-registered certificates"
            ),
            "holders_asked": t,
            "chain_deploy_seconds": round(chain_seconds, 2),
            "nodes_start_seconds": round(nodes_seconds, 2),
            "union_download_seconds": round(download_seconds, 3),
            "union_download_bytes": len(download.union.table_bytes)
            + 32 * len(download.union.bucket_digests),
        },
    )


def same(answer: MembershipAnswer, expected: tuple[bool, int, tuple[Listing, ...]]) -> bool:
    return (answer.listed, answer.multiplicity, answer.listings) == expected


def query_mix(rng: random.Random, listed: list[str], count: int) -> list[str]:
    """``count`` phones, half listed (from the sample), half never listed."""
    hits = [listed[rng.randrange(len(listed))] for _ in range(count // 2)]
    misses = phones(rng, count - len(hits), "139")
    mixed = hits + misses
    rng.shuffle(mixed)
    return mixed


def bucket_cost(union: Union, rng: random.Random, rounds: int = 30) -> dict[str, Any]:
    """What a label fetch costs the querier beyond the OPRF: check the fetched bucket
    against its digest and try every record in it (a miss opens none, the worst case).
    Grows with the bucket, about ``sqrt(n)`` records, so it is what grows with ``n``."""
    seconds = []
    for _ in range(rounds):
        prf = secrets.token_bytes(64)
        index = bucket_of(prf, union.epoch, union.bucket_count)
        bucket = union.buckets[index]
        started = time.perf_counter()
        if bucket_digest(bucket) != union.bucket_digests[index]:
            raise RuntimeError("bucket digest mismatch")  # pragma: no cover
        open_labels(bucket, prf, union.epoch)
        seconds.append(time.perf_counter() - started)
    records = len(union.table) / union.bucket_count
    median = statistics.median(seconds)
    return {
        "records_per_bucket": round(records, 1),
        "check_and_open_miss_ms": round(median * 1e3, 3),
        "us_per_record": round(median / max(records, 1) * 1e6, 3),
        "rounds": rounds,
    }


def measure_queries(
    epoch: Epoch,
    querier: Querier,
    hop: RelayHop | GrpcHop,
    rng: random.Random,
    queries: int,
    batch: int,
) -> dict[str, Any]:
    singles = query_mix(rng, epoch.listed, queries)
    hop.relay_seconds = hop.holder_seconds = 0.0
    seconds: list[float] = []
    wrong = 0
    single_found = 0
    for phone in singles:
        started = time.perf_counter()
        answer = querier.blacklist(KIND, phone, LIST, labels=True)
        seconds.append(time.perf_counter() - started)
        wrong += not same(answer, epoch.plain.answer(x_of(phone)))
        single_found += answer.listed
    single_relay, single_holders = hop.relay_seconds, hop.holder_seconds
    many = query_mix(rng, epoch.listed, batch)
    hop.relay_seconds = hop.holder_seconds = 0.0
    started = time.perf_counter()
    answers = querier.batch([(KIND, p) for p in many], LIST, labels=True)
    batch_seconds = time.perf_counter() - started
    batch_wrong = sum(
        not same(a, epoch.plain.answer(x_of(p))) for a, p in zip(answers, many, strict=True)
    )
    batch_found = sum(a.listed for a in answers)
    expected_hits = sum(x_of(p) in epoch.plain.listings for p in singles + many)
    return {
        "single": {
            "queries": len(singles),
            "labels_fetched": True,
            **summary_ms(seconds),
            "mean_ms": round(statistics.fmean(seconds) * 1e3, 3),
            "mean_relay_ms": round(single_relay / len(singles) * 1e3, 3),
            "mean_holders_ms_all_t": round(single_holders / len(singles) * 1e3, 3),
            "hits_found": single_found,
            "wrong_answers": wrong,
        },
        "batch": {
            "size": len(many),
            "labels_fetched": True,
            "seconds": round(batch_seconds, 3),
            "queries_per_second": round(len(many) / batch_seconds, 1),
            "ms_per_query": round(batch_seconds / len(many) * 1e3, 3),
            "relay_seconds": round(hop.relay_seconds, 3),
            "holders_seconds_all_t": round(hop.holder_seconds, 3),
            "hits_found": batch_found,
            "wrong_answers": batch_wrong,
        },
        "hits_expected_plaintext": expected_hits,
        "hits_found": single_found + batch_found,
        "equals_plaintext": wrong == 0
        and batch_wrong == 0
        and single_found + batch_found == expected_hits,
        "_phones": singles + many,
    }


def plaintext_baselines(plain: Plain, asked: list[str]) -> dict[str, Any]:
    """The same lookups as a trusted third party: a dict and a DuckDB join."""
    xs = [x_of(p) for p in asked]
    started = time.perf_counter()
    dict_hits = sum(1 for x in xs if x in plain.listings)
    dict_seconds = time.perf_counter() - started
    keys = list(plain.listings)
    union_table = pa.table(
        {
            "k": pa.array(keys, pa.binary()),
            "m": pa.array([len(plain.listings[k]) for k in keys], pa.int16()),
        }
    )
    asked_table = pa.table({"k": pa.array(xs, pa.binary())})
    con = duckdb.connect()
    started = time.perf_counter()
    con.register("u", union_table)
    con.register("q", asked_table)
    row = con.execute("SELECT count(*), coalesce(sum(u.m), 0) FROM q JOIN u USING (k)").fetchone()
    duck_seconds = time.perf_counter() - started
    con.close()
    duck_hits = int(row[0]) if row else -1
    return {
        "lookups": len(xs),
        "python_dict": {
            "seconds": round(dict_seconds, 6),
            "us_per_lookup": round(dict_seconds / max(len(xs), 1) * 1e6, 3),
            "hits": dict_hits,
        },
        "duckdb_join": {
            "seconds": round(duck_seconds, 4),
            "us_per_lookup": round(duck_seconds / max(len(xs), 1) * 1e6, 3),
            "hits": duck_hits,
            "union_rows": len(keys),
        },
        "baselines_agree": dict_hits == duck_hits,
    }


# --- one case, one screening run (each in its own subprocess) --------------------------


def transports_of(args: argparse.Namespace) -> list[str]:
    """``--transport grpc`` measures over gRPC *and* in-process, the baseline beside it."""
    return ["in-process", "grpc"] if args.transport == "grpc" else ["in-process"]


def one_case(size: int, providers: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed + size + providers)
    rss_start = current_rss_mb()
    started = time.perf_counter()
    epoch = make_epoch(size, providers, args.sample, rng)
    quota = args.queries + args.batch
    measured: dict[str, dict[str, Any]] = {}
    setup: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lookup-bench-") as workdir:
        for transport in transports_of(args):
            # The same identifiers asked over every transport.
            asking = random.Random(args.seed * 7 + size + providers)
            with ExitStack() as stack:
                hop: RelayHop | GrpcHop
                if transport == "grpc":
                    nodes = open_grpc(epoch, Path(workdir) / "grpc", quota, stack)
                    querier, hop = nodes.querier, nodes.hop
                    setup = nodes.setup
                else:
                    querier, meter, hop = open_querier(epoch, Path(workdir), quota)
                    stack.callback(meter.close)
                q = measure_queries(epoch, querier, hop, asking, args.queries, args.batch)
            q["hop_note"] = HOP_NOTES[transport]
            measured[transport] = q
    asked = measured["in-process"].pop("_phones")
    for q in measured.values():
        q.pop("_phones", None)
    base = plaintext_baselines(epoch.plain, asked)
    hits_ok = all(
        base["python_dict"]["hits"] == q["hits_expected_plaintext"] for q in measured.values()
    )
    q = measured["in-process"]
    report = {
        "entries": size,
        "providers": providers,
        "t": epoch.keys.t,
        **epoch.figures,
        "queries": q,
        "bucket": bucket_cost(epoch.union, rng),
        "plaintext": base,
        "equals_plaintext": bool(
            all(m["equals_plaintext"] for m in measured.values())
            and hits_ok
            and base["baselines_agree"]
        ),
        "p50_over_dict_lookup": round(
            q["single"]["p50_ms"] * 1e3 / max(base["python_dict"]["us_per_lookup"], 1e-3), 1
        ),
        "rss_at_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if "grpc" in measured:
        g = measured["grpc"]
        report["queries_grpc"] = g
        report["grpc_setup"] = setup
        report["grpc_over_in_process"] = {
            "single_p50": round(g["single"]["p50_ms"] / max(q["single"]["p50_ms"], 1e-6), 2),
            "single_p99": round(g["single"]["p99_ms"] / max(q["single"]["p99_ms"], 1e-6), 2),
            "batch_queries_per_second": round(
                g["batch"]["queries_per_second"] / max(q["batch"]["queries_per_second"], 1e-6), 2
            ),
        }
    return report


def screen_rows(rng: random.Random, listed: list[str], rows: int) -> tuple[list[str], int]:
    """A book of ``rows`` phones, 1% of them listed."""
    hits = [listed[rng.randrange(len(listed))] for _ in range(max(1, rows // 100))]
    book = hits + phones(rng, rows - len(hits), "137")
    rng.shuffle(book)
    return book, len(hits)


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_executor(mode: str) -> Executor | None:
    """The pool ``Querier.screen`` spreads its crypto over: none (sequential), threads
    (libsodium's scalar multiplications run without the GIL through rbcl's ctypes
    calls; the hashing around them does not), or processes (forkserver: this process
    may hold gRPC threads, which a fork would copy in an unknown state)."""
    if mode == "sequential":
        return None
    if mode == "threads":
        return ThreadPoolExecutor(workers(), thread_name_prefix="screen")
    pool = ProcessPoolExecutor(workers(), mp_context=multiprocessing.get_context("forkserver"))
    for done in [pool.submit(oprf.random_scalar) for _ in range(2 * workers())]:
        done.result()  # start the workers before the clock does
    return pool


def worker_cpu_seconds(executor: Executor | None) -> float:
    """CPU seconds (user + system) used so far by a process pool's workers, from
    ``/proc`` (0 for no pool or a thread pool, whose CPU is this process's). The pool's
    worker table is private to ``concurrent.futures``; a bench may read it."""
    processes = getattr(executor, "_processes", None) or {}
    total = 0.0
    for pid in list(processes):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def screen_once(
    epoch: Epoch,
    querier: Querier,
    book: list[str],
    budget: float,
    executor: Executor | None,
    chunk: int = SCREEN_CHUNK,
) -> dict[str, Any]:
    """``Querier.screen`` over ``book`` in chunks through the relay, until done or
    ``budget`` seconds; every answer checked against the plaintext union."""
    progress: list[tuple[float, ScreenProgress]] = []
    started = time.perf_counter()

    def report(state: ScreenProgress) -> None:
        progress.append((time.perf_counter() - started, state))
        print(
            f"\rscreened {state.rows}/{len(book)} rows, {state.listed} listed",
            end="",
            file=sys.stderr,
            flush=True,
        )

    items: Iterator[ScreenItem] = ((KIND, p) for p in book)
    cpu_process, cpu_workers = time.process_time(), worker_cpu_seconds(executor)
    done = found = wrong = 0
    stopped = False
    screen = querier.screen(
        items, list_name=LIST, chunk_size=chunk, progress=report, executor=executor
    )
    for result in screen:
        phone = book[result.position]
        expected = x_of(phone) in epoch.plain.listings
        got = result.answer is not None and result.answer.listed
        wrong += got != expected
        found += got
        done += 1
        if done % chunk == 0 and time.perf_counter() - started > budget:
            stopped = done < len(book)
            break
    seconds = time.perf_counter() - started
    cpu_process = time.process_time() - cpu_process
    cpu_workers = worker_cpu_seconds(executor) - cpu_workers
    screen.close()  # type: ignore[attr-defined]
    print(file=sys.stderr)
    expected_hits = sum(x_of(p) in epoch.plain.listings for p in book[:done])
    rate = done / seconds
    return {
        "rows_requested": len(book),
        "rows_screened": done,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rate, 1),
        "stopped_by_budget": stopped,
        "budget_seconds": budget,
        "seconds_all_rows": round(len(book) / rate, 1),
        "seconds_all_rows_is": "extrapolated" if stopped else "measured",
        "seconds_1e6_rows_extrapolated": round(1_000_000 / rate, 1),
        "progress_callbacks": len(progress),
        "hits_found": found,
        "hits_expected_plaintext": expected_hits,
        "wrong_answers": wrong,
        "equals_plaintext": wrong == 0 and found == expected_hits,
        # Load-independent: the CPU the whole screen burnt (this process's threads,
        # in-process or gRPC holders and relay included, plus the pool's workers).
        "cpu_seconds_this_process": round(cpu_process, 2),
        "cpu_seconds_pool_workers": round(cpu_workers, 2),
        "cpu_ms_per_row": round((cpu_process + cpu_workers) / max(done, 1) * 1e3, 3),
        "cores_busy_on_average": round((cpu_process + cpu_workers) / seconds, 2),
    }


def one_screen(providers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Screening per transport, each executor mode over the same book and union: the
    sequential path (before) and the pooled, pipelined one (after), in one run."""
    rng = random.Random(args.seed + providers)
    epoch = make_epoch(args.screen_union, providers, args.sample, rng)
    book, _ = screen_rows(rng, epoch.listed, args.screen_rows)
    modes = list(args.screen_modes)
    quota = args.screen_rows * len(modes)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lookup-screen-") as workdir, ExitStack() as pools:
        # Pools made once, before any gRPC thread exists, and shared by the transports.
        executors = {mode: make_executor(mode) for mode in modes}
        for executor in executors.values():
            if executor is not None:
                pools.callback(executor.shutdown, cancel_futures=True)
        for transport in transports_of(args):
            with ExitStack() as stack:
                if transport == "grpc":
                    querier: Querier = open_grpc(
                        epoch, Path(workdir) / "grpc", quota, stack
                    ).querier
                else:
                    querier, meter, _ = open_querier(epoch, Path(workdir), quota)
                    stack.callback(meter.close)
                for mode in modes:
                    figures = screen_once(
                        epoch, querier, book, args.screen_budget, executors[mode], args.screen_chunk
                    )
                    runs.append({"transport": transport, "mode": mode, **figures})
    sequential = {r["transport"]: r["rows_per_second"] for r in runs if r["mode"] == "sequential"}
    for r in runs:
        base = sequential.get(r["transport"])
        r["speedup_vs_sequential"] = round(r["rows_per_second"] / base, 2) if base else None
    return {
        "providers": providers,
        "t": epoch.keys.t,
        "union_entries": args.screen_union,
        "chunk": args.screen_chunk,
        "labels_fetched": False,
        "workers": workers(),
        "modes": {
            "sequential": "Querier.screen without an executor (the code before this change)",
            "threads": f"executor=ThreadPoolExecutor({workers()}), chunks pipelined",
            "processes": f"executor=ProcessPoolExecutor({workers()}, forkserver), pipelined",
        },
        "runs": runs,
        "equals_plaintext": all(r["equals_plaintext"] for r in runs),
        "peak_rss_mb": peak_rss_mb(),
    }


# --- single operations and the per-query model ----------------------------------------


def _median_us(op: Callable[[], object], rounds: int, per: int = 1) -> float:
    op()  # warm-up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        op()
        samples.append((time.perf_counter_ns() - started) / per / 1000.0)
    return round(statistics.median(samples), 2)


def single_op_costs(rounds: int) -> dict[str, Any]:
    """RFC 9497 operations through ``node.crypto``, microseconds, medians over rounds."""
    dealing = threshold_oprf.deal(1, 1)
    share: KeyShare = threshold_oprf.combine_dealings(
        1, {1: (dealing.commitments, dealing.shares[1])}
    )
    x = x_of("13800138000")
    r, b = oprf.blind(x)
    z = oprf.blind_evaluate(share.secret, b)
    one = threshold_oprf.evaluate_share(share, [b])
    batch = [oprf.blind(b"%d" % i)[1] for i in range(OPS_BATCH)]
    many = threshold_oprf.evaluate_share(share, batch)
    few = max(1, rounds // 3)
    return {
        "blind": _median_us(lambda: oprf.blind(x), rounds * 10),
        "blind_evaluate": _median_us(lambda: oprf.blind_evaluate(share.secret, b), rounds * 10),
        "finalize": _median_us(lambda: oprf.finalize(x, r, z), rounds * 10),
        "holder_evaluate_with_proof_1": _median_us(
            lambda: threshold_oprf.evaluate_share(share, [b]), rounds * 10
        ),
        "verify_proof_1": _median_us(
            lambda: threshold_oprf.verify_share_evaluation(share.public, [b], one), rounds * 10
        ),
        "holder_evaluate_with_proof_per_element_of_1000": _median_us(
            lambda: threshold_oprf.evaluate_share(share, batch), few, OPS_BATCH
        ),
        "verify_proof_per_element_of_1000": _median_us(
            lambda: threshold_oprf.verify_share_evaluation(share.public, batch, many),
            few,
            OPS_BATCH,
        ),
        "rounds": rounds,
    }


def query_model(ops: dict[str, Any], t: int) -> dict[str, float]:
    """Per-query microseconds from the single operations (lookup and bucket excluded).

    Sequential: this bench's in-process holders answer one after another. Parallel:
    the ``t`` holders answer at once, as separate nodes do.
    """
    client = ops["blind"] + t * ops["verify_proof_1"] + ops["finalize"]
    holders = ops["holder_evaluate_with_proof_1"]
    per_element_client = ops["blind"] + t * ops["verify_proof_per_element_of_1000"]
    per_element_client += ops["finalize"]
    return {
        "single_sequential_us": round(client + t * holders, 1),
        "single_holders_parallel_us": round(client + holders, 1),
        "batch_per_query_sequential_us": round(
            per_element_client + t * ops["holder_evaluate_with_proof_per_element_of_1000"], 1
        ),
        "batch_per_query_holders_parallel_us": round(
            per_element_client + ops["holder_evaluate_with_proof_per_element_of_1000"], 1
        ),
    }


# --- orchestration ---------------------------------------------------------------------


def extrapolation(runs: list[dict[str, Any]], target: int) -> dict[str, Any]:
    """Linear extrapolation of the largest measured size to ``target`` entries."""
    measured = [r for r in runs if "error" not in r]
    if not measured:
        return {"skipped": "no measured size to extrapolate from"}
    biggest = max(r["entries"] for r in measured)
    out: dict[str, Any] = {"from_entries": biggest, "note": "extrapolated, linear in entries"}
    for r in measured:
        if r["entries"] != biggest:
            continue
        factor = target / biggest
        build = r["build_union"]
        out[f"providers_{r['providers']}"] = {
            "build_union_seconds": round(build["seconds"] * factor, 1),
            "build_union_peak_above_start_mb": round(build["peak_above_start_mb"] * factor),
            "threshold_evaluation_seconds_sequential": round(
                r["threshold_evaluation"]["extrapolated_seconds_full_size_sequential"] * factor, 1
            ),
            "table_bytes": r["size"]["table_bytes_per_entry"] * target,
            "union_bytes": round(r["size"]["union_bytes_per_entry"] * target),
            "single_query_p50_ms": round(
                r["queries"]["single"]["p50_ms"]
                + (target**0.5 - r["bucket"]["records_per_bucket"])
                * r["bucket"]["us_per_record"]
                / 1e3,
                2,
            ),
            "single_query_p50_note": (
                "the measured p50 plus the measured per-record bucket cost times the "
                f"growth of the bucket (about sqrt(n) records: {round(target**0.5)} at "
                f"{target:g}); nothing else in a query grows with n"
            ),
        }
    return out


def child(args: argparse.Namespace, *what: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "scripts.bench.lookup", *what]
    flags = ("sample", "queries", "batch", "screen_rows", "screen_union", "screen_budget")
    for flag in (*flags, "screen_chunk"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    command += ["--seed", str(args.seed), "--transport", args.transport]
    command += ["--screen-modes", *args.screen_modes]
    started = time.perf_counter()
    load = os.getloadavg()[0]
    report = run_subprocess(command, args.timeout)
    report["wall_seconds_with_startup"] = round(time.perf_counter() - started, 2)
    report["loadavg_1min_at_start_and_end"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    return report


def run_children(args: argparse.Namespace, commands: list[list[str]]) -> list[dict[str, Any]]:
    """Each case in its own subprocess; ``--jobs`` of them at once (they then share the
    cores, which the report's load averages show)."""
    if args.jobs <= 1:
        return [child(args, *command) for command in commands]
    with ThreadPoolExecutor(args.jobs) as pool:
        return list(pool.map(lambda command: child(args, *command), commands))


def targets_of(runs: list[dict[str, Any]], screening: list[dict[str, Any]]) -> dict[str, Any]:
    targets: dict[str, Any] = {"targets": TARGETS, "asserted": False}
    measured = [r for r in runs if "error" not in r]
    for key, label in (("queries", "in_process"), ("queries_grpc", "grpc")):
        at_1e7 = [
            r for r in measured if r["entries"] == 10_000_000 and r["providers"] == 10 and key in r
        ]
        p50 = at_1e7[0][key]["single"]["p50_ms"] if at_1e7 else None
        targets[f"p50_ms_at_1e7_10_providers_{label}"] = (
            "not measured (see extrapolated)" if p50 is None else p50
        )
        if p50 is not None:
            targets[f"p50_at_1e7_10_providers_{label}_met"] = (
                p50 < TARGETS["p50_ms_at_1e7_entries_10_providers"]
            )
        targets[f"p50_ms_by_size_10_providers_{label}"] = {
            str(r["entries"]): r[key]["single"]["p50_ms"]
            for r in measured
            if r["providers"] == 10 and key in r
        }
    seconds: dict[str, dict[str, float]] = {}
    for s in screening:
        for r in s.get("runs", []):
            where = f"{s['providers']} providers, {r['transport']}"
            seconds.setdefault(where, {})[r["mode"]] = r["seconds_1e6_rows_extrapolated"]
    targets["screen_1e6_seconds"] = seconds
    targets["screen_1e6_met"] = {
        where: min(modes.values()) < TARGETS["screen_1e6_seconds"]
        for where, modes in seconds.items()
    }
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--providers", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--sample", type=int, default=2_000, help="threshold-evaluated entries")
    parser.add_argument("--queries", type=int, default=200, help="single queries per case")
    parser.add_argument("--batch", type=int, default=1_000, help="queries in the batch")
    parser.add_argument("--screen-rows", type=int, default=1_000_000)
    parser.add_argument("--screen-union", type=int, default=100_000)
    parser.add_argument(
        "--screen-budget", type=float, default=60.0, help="seconds per mode, then stop"
    )
    parser.add_argument(
        "--screen-modes", nargs="+", choices=SCREEN_MODES, default=list(SCREEN_MODES)
    )
    parser.add_argument("--screen-chunk", type=int, default=SCREEN_CHUNK, help="rows per round")
    parser.add_argument("--no-screen", action="store_true", help="measure the cases only")
    parser.add_argument("--no-cases", action="store_true", help="measure the screening only")
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="in-process",
        help="grpc: also over gRPC and mutual TLS on 127.0.0.1, in-process beside it",
    )
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--ops-rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=3600.0, help="per subprocess, s")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--one", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-screen", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_case(args.one[0], args.one[1], args), sort_keys=True))
        return
    if args.one_screen:
        print(json.dumps(one_screen(args.one_screen, args), sort_keys=True))
        return
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if (
        any(s < 2 for s in args.sizes)
        or any(not 3 <= p <= 255 for p in args.providers)
        or min(args.sample, args.queries, args.batch, args.screen_rows) < 2
        or args.batch > IMMEDIATE.max_ticket
        or args.jobs < 1
        or not 1 <= args.screen_chunk <= IMMEDIATE.max_ticket
    ):
        parser.error(
            "--sizes, --sample, --queries and --screen-rows must be >= 2; --providers in "
            "3..255 (t providers other than the publisher must answer); "
            f"--batch and --screen-chunk at most {IMMEDIATE.max_ticket}; --jobs at least 1"
        )
    load_before = os.getloadavg()
    started = time.perf_counter()
    ops = single_op_costs(args.ops_rounds)
    cases = [] if args.no_cases else [(size, p) for size in args.sizes for p in args.providers]
    runs = run_children(args, [["--one", str(size), str(p)] for size, p in cases])
    screening = (
        [] if args.no_screen else [child(args, "--one-screen", str(p)) for p in args.providers]
    )
    skipped = (
        {}
        if EXTRAPOLATE_TO in args.sizes or args.no_cases
        else {
            str(EXTRAPOLATE_TO): {
                "skipped": (
                    "not in this run: the build takes about 10 minutes and ~5 GB per case "
                    "on 2 cores; pass --sizes 10000000 to run it"
                ),
                "extrapolated": extrapolation(runs, EXTRAPOLATE_TO),
            }
        }
    )
    report = {
        "benchmark": "lookup",
        "issue": 15,
        "transport": args.transport,
        "transports_measured": transports_of(args),
        "hop_notes": {t: HOP_NOTES[t] for t in transports_of(args)},
        "sizes": [] if args.no_cases else args.sizes,
        "providers": args.providers,
        "jobs": args.jobs,
        "argv": sys.argv[1:],
        "threshold_rule": "t = providers // 2 + 1",
        "sample": args.sample,
        "relay_policy": {
            "min_batch": IMMEDIATE.min_batch,
            "min_queriers": IMMEDIATE.min_queriers,
            "max_batch": IMMEDIATE.max_batch,
            "max_ticket": IMMEDIATE.max_ticket,
            "note": "forwards every submission at once (no mixing, padding or delay)",
        },
        "single_op_us": ops,
        "model": {str(p): query_model(ops, threshold_of(p)) for p in args.providers},
        "runs": runs,
        "screening": screening,
        "skipped_sizes": skipped,
        "targets": targets_of(runs, screening),
        "all_equal_plaintext": all(r.get("equals_plaintext") is True for r in runs + screening),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb_orchestrator": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(["rbcl", "cryptography", "duckdb", "numpy", "grpcio"]),
    }
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
