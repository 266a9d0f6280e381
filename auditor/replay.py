"""Gather a task's history from the chain for the verifier.

The auditor reads every event of the deployment (it needs membership, algorithm,
dataset and grant history, not just the task's own events) and the timestamps of the
blocks the task touched, behind the configured confirmation depth.

No topic filter is applied, on purpose. The checks (`auditor.verify`) replay every
Consortium event (node and org activity of any participant, its org's admin, the
creator's org), AlgorithmRegistry events by digest, DatasetRegistry versions,
AuthorizationRegistry grant events (matched to the task through the *transaction* of
an acceptance, not through the task id), AnchorLog checkpoints and the task's own
TaskRegistry events; several of these name no task, grant or org id in an indexed topic
that a filter could select on, so no filter was proven to keep every event a check
reads. What makes a long chain affordable instead is `ChainView`: a reused verifier
reads and decodes only the blocks it has not seen (the first read of a long chain still
decodes everything once; `ledger.events` decodes ~1,400 events/s).

`task_history` and `deployment_checks` read everything afresh on each call. A
long-running verifier (`auditor.service.verification.TaskVerifier`) uses `ChainView`,
which keeps what cannot change while the blocks holding it stay canonical, and checks
that they do before every use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from hexbytes import HexBytes

from auditor.verifier import Check, TaskHistory
from auditor.verifier import deployment_checks as as_checks
from ledger import rpc_batch
from ledger.artifacts import CONTRACT_NAMES, abi
from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.deployment_binding import CreationCache, verify_deployment
from ledger.events import Event, EventReader, Source


def reader_for(chain: Chain, deployment: Deployment, confirmations: int = 0) -> EventReader:
    sources = [Source(n, deployment.address(n), abi(n)) for n in CONTRACT_NAMES]
    return EventReader(chain, sources, confirmations=confirmations)


def task_blocks(events: Iterable[Event], task_id: bytes) -> dict[int, bytes]:
    """{block number: block hash} of the blocks holding the task's own events."""
    return {
        e.block_number: e.block_hash
        for e in events
        if e.contract == "TaskRegistry" and bytes(e.args.get("taskId", b"")) == task_id
    }


def task_history(
    chain: Chain, deployment: Deployment, task_id: bytes, confirmations: int = 0
) -> TaskHistory:
    """The task's history read afresh (nothing kept): every event of the deployment up to
    the confirmed head, and the timestamps of the blocks holding the task's events,
    looked up by those blocks' hashes in one batch."""
    view = ChainView(chain, deployment, confirmations)
    return view.task_history(task_id, view.head())


def deployment_checks(
    chain: Chain,
    deployment: Deployment,
    confirmations: int = 0,
    *,
    block: int | None = None,
    creations: CreationCache | None = None,
) -> list[Check]:
    """`deployment_bytecode`, `deployment_origin` and `deployment_links`: the code, creation
    and wiring at the manifest's addresses, read at the confirmed head the events are
    read up to (or at ``block`` when the caller fixed that head already)."""
    if block is None:
        block = max(reader_for(chain, deployment, confirmations).safe_head(), 0)
    return as_checks(verify_deployment(chain, deployment, block, creations))


def block_hashes(chain: Chain, numbers: Sequence[int]) -> dict[int, bytes | None]:
    """The canonical hash of each block number now (None: no such block), in one batch
    over HTTP."""
    answers = rpc_batch.batch(chain, [("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    if answers is None:
        out: dict[int, bytes | None] = {}
        for n in numbers:
            try:
                out[n] = bytes(chain.w3.eth.get_block(n)["hash"])
            except Exception:  # web3 raises BlockNotFound past the head
                out[n] = None
        return out
    return {
        n: rpc_batch.hex_bytes(a.get("hash")) if isinstance(a, dict) else None
        for n, a in zip(numbers, answers, strict=True)
    }


def block_timestamps(chain: Chain, hashes: Sequence[bytes]) -> dict[bytes, int | None]:
    """The timestamp of each block, looked up by hash (None: the node does not know it)."""
    calls = [("eth_getBlockByHash", ["0x" + h.hex(), False]) for h in hashes]
    answers = rpc_batch.batch(chain, calls)
    if answers is None:
        out: dict[bytes, int | None] = {}
        for h in hashes:
            try:
                out[h] = int(chain.w3.eth.get_block(HexBytes(h))["timestamp"])
            except Exception:  # BlockNotFound: reorged away
                out[h] = None
        return out
    return {
        h: int(str(a["timestamp"]), 16) if isinstance(a, dict) and "timestamp" in a else None
        for h, a in zip(hashes, answers, strict=True)
    }


class ChainView:
    """A long-running verifier's memory of one deployment's chain, never served stale.

    It keeps (a) every event of the deployment up to a block N, with N's hash, (b) block
    timestamps by block hash, and (c) contract creation facts (`CreationCache`).

    Why each is sound:

    * Events up to N: a block's hash commits to its parent's, so while the canonical
      block N still has the stored hash, no block at or below N changed and neither did
      their logs. `events` is given the head H it must read up to as (number, hash):
      when that is exactly (N, stored hash) the events are those of that very block's
      ancestry and are served as they are. Otherwise it re-reads the canonical hash at
      N; any difference, or an H below N (a reorg to a shorter chain, `evm_revert`),
      drops every cached event and reads from the deployment's first block again. Only
      blocks (N, H] are then read and decoded.
    * While the new blocks are read the chain could reorganise; the hash of H is
      therefore read before (`head`) and after the logs, and the events are kept only
      when both agree (otherwise this one read is used, uncached, exactly as the
      uncached path would have used it).
    * A timestamp is a field of the block its hash names: keyed by hash it is a constant.
    * Creations: see `CreationCache` (checked against the canonical hash every time).

    Code and contract links are never cached (code can change at an address; links are
    storage): `deployment_checks` reads them at H every time, in one batch.

    Memory grows with the deployment's event count (the decoded events are kept), as
    the index holds them too; a verifier of a very long chain could instead be fed from
    the index, which is outside this class.
    """

    def __init__(self, chain: Chain, deployment: Deployment, confirmations: int = 0) -> None:
        self.chain = chain
        self.deployment = deployment
        self.reader = reader_for(chain, deployment, confirmations)
        self.creations = CreationCache()
        self._events: list[Event] = []
        self._up_to: tuple[int, bytes] | None = None  # (N, hash of N) the events cover
        self._timestamps: dict[bytes, int] = {}
        self._lock = threading.Lock()  # the events and the block they cover change together

    def head(self) -> tuple[int, bytes]:
        """The confirmed head (number, hash) a verification reads up to."""
        number = max(self.reader.safe_head(), 0)
        return number, self._hash_at(number)

    def _hash_at(self, number: int) -> bytes:
        found = block_hashes(self.chain, [number])[number]
        if found is None:
            raise LookupError(f"block {number} vanished while reading it (chain reorganised?)")
        return found

    def events(self, head: tuple[int, bytes]) -> list[Event]:
        """Every event of the deployment in blocks up to ``head`` (number, hash), in chain
        order. The list is new on every call: a history handed out is never mutated."""
        with self._lock:
            return self._events_locked(head)

    def _events_locked(self, head: tuple[int, bytes]) -> list[Event]:
        number, head_hash = head
        cached = self._up_to
        if cached == head:  # nothing new: the head's hash was just read by `head()`
            return list(self._events)
        if cached is not None:
            if cached[0] > number:
                cached = None
            else:
                now = block_hashes(self.chain, [cached[0]])[cached[0]]
                if now != cached[1]:
                    cached = None
        if cached is None:
            self._events, self._up_to = [], None
            start = self.deployment.first_block
        else:
            start = cached[0] + 1
        new = self.reader.read(start, number) if start <= number else []
        events = [*self._events, *new]
        if block_hashes(self.chain, [number])[number] == head_hash:  # no reorg while reading
            self._events, self._up_to = events, (number, head_hash)
        return events

    def timestamps(self, blocks: dict[int, bytes]) -> dict[int, int]:
        """{block number: timestamp} for blocks given as {number: hash}."""
        missing = [h for h in blocks.values() if h not in self._timestamps]
        for h, ts in block_timestamps(self.chain, missing).items():
            if ts is not None:
                self._timestamps[h] = ts
        out: dict[int, int] = {}
        for number, h in blocks.items():
            if h in self._timestamps:
                out[number] = self._timestamps[h]
            else:  # reorged away meanwhile: the block now at that height, as uncached
                out[number] = int(self.chain.w3.eth.get_block(number)["timestamp"])
        return out

    def task_history(self, task_id: bytes, head: tuple[int, bytes]) -> TaskHistory:
        """As `task_history`, up to ``head``, reading only what is not known yet."""
        events = self.events(head)
        return TaskHistory(task_id, events, self.timestamps(task_blocks(events, task_id)))

    def deployment_checks(self, head: tuple[int, bytes]) -> list[Check]:
        """As `deployment_checks`, at ``head``, with creations from the cache."""
        return deployment_checks(
            self.chain, self.deployment, block=head[0], creations=self.creations
        )
