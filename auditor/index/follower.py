"""Follow the chain into the index: confirmed pages, reorg detection, rollback.

Each step does exactly one thing and commits it:

1. Check the indexed tip: if the block stored at the cursor is no longer the chain's
   block at that height (or the chain no longer has that height), walk back to the
   newest block both agree on, and roll back to it.
2. Otherwise read the next page of confirmed blocks: their headers (one batched
   request), the deployment's logs (one ``eth_getLogs`` over all six addresses), then
   the page's last header once more. The headers must extend the indexed tip and link
   to each other, the last one must not have changed during the log read, and every
   log's block hash must be its header's, or the chain moved under the read and the
   step retries.
3. Decode, project, and apply the page with the cursor in one transaction.

"Confirmed" is the chain's ``finalized`` block when no confirmation depth is configured
and the node offers that tag, else ``head - confirmations``. The page shrinks (halves)
when the node refuses a log range, and grows back after successes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.index.decode import LogDecoder, deployment_digest
from auditor.index.project import Projection
from auditor.index.rpc import Rpc, RpcError
from auditor.index.store import CursorMoved, IndexStatus, IndexStore
from ledger.deployment import Deployment
from ledger.errors import ChainError

log = logging.getLogger(__name__)

DEFAULT_PAGE = 2_000
DEFAULT_CONFIRMATIONS = 12  # when the chain offers no `finalized` tag
_WALK_BACK = 64  # headers compared per request while looking for a fork point
_MAX_RACES = 50  # consecutive inconsistent reads before catch_up gives up


@dataclass(frozen=True)
class Step:
    """What one step did: ``indexed`` blocks first..last, ``rolled_back`` to a fork
    block, ``idle`` (caught up), or ``raced`` (the chain moved during the read)."""

    kind: str
    first: int = 0
    last: int = 0
    events: int = 0


class Follower:
    def __init__(
        self,
        rpc: Rpc,
        store: IndexStore,
        deployment: Deployment,
        *,
        confirmations: int | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> None:
        if confirmations is not None and confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        if page_size < 1:
            raise ValueError(f"page size must be >= 1, got {page_size}")
        chain_id = rpc.chain_id()
        if chain_id != deployment.chain_id:
            raise ChainError(
                f"the manifest is for chain id {deployment.chain_id}, the node at {rpc.url} "
                f"is chain id {chain_id}"
            )
        self.rpc = rpc
        self.store = store
        self.decoder = LogDecoder(deployment)
        self.confirmations = confirmations
        self.max_page = page_size
        self.page = page_size
        self._use_finalized = confirmations is None and rpc.tagged_block("finalized") is not None
        store.bind(chain_id, deployment_digest(deployment), deployment.first_block, confirmations)

    # --- the confirmed head ------------------------------------------------------------

    def confirmed_head(self) -> tuple[int, int]:
        """(head, newest block to index)."""
        head = self.rpc.head()
        if self._use_finalized:
            finalized = self.rpc.tagged_block("finalized")
            if finalized is not None:
                return head, min(finalized, head)
        depth = DEFAULT_CONFIRMATIONS if self.confirmations is None else self.confirmations
        return head, head - depth

    def status(self) -> IndexStatus:
        return self.store.status()

    # --- one step ---------------------------------------------------------------------

    def step(self) -> Step:
        state = self.store.state()
        head, target = self.confirmed_head()
        cursor = state.cursor
        if state.cursor_hash is not None:
            tip = self.rpc.headers(cursor, cursor)[0]
            if tip is None or _bytes(tip["hash"]) != state.cursor_hash:
                return self._roll_back(cursor)
        if target <= cursor:
            self.store.note_head(head)
            return Step("idle", last=cursor)
        first = cursor + 1
        last = min(first + self.page - 1, target)
        # Headers first, logs second, then the page's last header again: if it is
        # unchanged the logs were read from the same chain as the headers (a fork that
        # merely *lacks* logs would otherwise pass every per-log hash check).
        headers = self.rpc.headers(first, last)
        while True:
            try:
                raw_logs = self.rpc.logs(self.decoder.address_list, first, last)
                break
            except RpcError as exc:
                if self.page == 1:
                    raise
                self.page = max(self.page // 2, 1)
                log.info("node refused logs %d..%d (%s): page now %d", first, last, exc, self.page)
                last = min(first + self.page - 1, target)
                headers = headers[: last - first + 1]
        again, tail = self.rpc.headers(last, last)[0], headers[-1]
        if again is None or tail is None or again["hash"] != tail["hash"]:
            return Step("raced", first, last)
        blocks: list[dict[str, Any]] = []
        parent = state.cursor_hash
        for number, header in zip(range(first, last + 1), headers, strict=True):
            if header is None:
                return Step("raced", first, last)
            block: dict[str, Any] = {
                "number": number,
                "hash": _bytes(header["hash"]),
                "parent_hash": _bytes(header["parentHash"]),
                "timestamp": int(header["timestamp"], 16),
            }
            if parent is not None and block["parent_hash"] != parent:
                if number == first:  # the tip we hold was replaced since we checked it
                    return self._roll_back(cursor)
                return Step("raced", first, last)
            parent = block["hash"]
            blocks.append(block)
        by_number = {b["number"]: b for b in blocks}
        projection = Projection()
        for raw in raw_logs:
            if raw.get("removed"):
                return Step("raced", first, last)
            decoded = self.decoder.decode(raw)
            holder = by_number.get(decoded.position.block_number)
            if holder is None or holder["hash"] != decoded.position.block_hash:
                return Step("raced", first, last)
            projection.add(decoded, holder["timestamp"])
        try:
            self.store.apply_page(cursor, blocks, projection.rows, head)
        except CursorMoved as exc:
            log.info("page %d..%d not applied: %s", first, last, exc)
            return Step("raced", first, last)
        if self.page < self.max_page:
            self.page = min(self.page * 2, self.max_page)
        return Step("indexed", first, last, len(raw_logs))

    def _roll_back(self, cursor: int) -> Step:
        """Find the newest block the index and the chain agree on and roll back to it."""
        state = self.store.state()
        low_limit = state.first_block - 1
        top = cursor
        fork = low_limit
        while top > low_limit:
            bottom = max(top - _WALK_BACK + 1, low_limit + 1)
            stored = self.store.block_hashes(bottom, top)
            chain = self.rpc.headers(bottom, top)
            found = None
            for number in range(top, bottom - 1, -1):
                header = chain[number - bottom]
                if header is not None and stored.get(number) == _bytes(header["hash"]):
                    found = number
                    break
            if found is not None:
                fork = found
                break
            top = bottom - 1
        depth = self.store.rollback(fork)
        log.warning("reorg: rolled back %d blocks to block %d", depth, fork)
        return Step("rolled_back", fork + 1, cursor)

    # --- loops ------------------------------------------------------------------------

    def catch_up(self, max_steps: int = 1_000_000) -> list[Step]:
        """Step until the index reaches the confirmed head (``--once``)."""
        steps: list[Step] = []
        raced = 0
        for _ in range(max_steps):
            step = self.step()
            steps.append(step)
            if step.kind == "idle":
                return steps
            raced = raced + 1 if step.kind == "raced" else 0
            if raced >= _MAX_RACES:
                raise ChainError(
                    f"the chain changed under {raced} reads in a row at block {step.first}: "
                    "is the node serving a consistent view?"
                )
        raise RuntimeError(f"index did not catch up within {max_steps} steps")

    def run(
        self,
        stop: threading.Event,
        poll_seconds: float = 1.0,
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        """Follow until ``stop`` is set: step without pause while behind, poll when idle;
        a chain that stops answering is retried, not fatal."""
        while not stop.is_set():
            try:
                step = self.step()
            except ChainError as exc:
                log.warning("chain unavailable: %s; retrying", exc)
                stop.wait(poll_seconds)
                continue
            if on_step is not None:
                on_step(step)
            if step.kind in ("idle", "raced"):
                stop.wait(poll_seconds)


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:])
