"""The lookup node's timers: query-log checkpoints on every node, settlements on the relay.

Why this module exists: two chain writes must happen on a schedule, never next to a
query. Every node that handles blinded elements anchors its query log in ``AnchorLog``
when it grew (``QueryLog.checkpoint`` writes nothing when the chain already holds its
size), so a regulator can verify what the owner serves against the chain. The relay
turns each closed metering period into one ``settleUses`` per (organisation, purpose,
grant) with use: never one chain write per query, and dated by the period, which every
member shares, never by a query's time.

Settlement records. ``Meter.settlements(now)`` hands out each closed period once (and
records it as issued); the chain write follows. A record is kept in
``settlements.json`` before the write: the settlement's fields, the grant uses it
settles, and the relay's query-log size and root at that moment; its digest
(``"lookup-settlement-chain"``) is the ``settlement`` argument of ``settleUses``, and
``isSettled`` on it before every write makes a retry (or a restart between the write
and the record's update) settle once. Uses are the quota blocks *begun* in the period:
``ceil(after / block_size) - ceil(before / block_size)`` over the grant's cumulative
count, so a grant is charged for a block when its first query is made, as bought.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ledger.canonical import digest_json
from ledger.clients.anchor_log import AnchorLogClient
from ledger.clients.authorizations import AuthorizationRegistryClient
from node.lookup.metering import Meter, Settlement
from node.lookup.node.files import LookupFiles
from node.lookup.node.grants import PUBLISH_PURPOSE
from node.lookup.query_log import QueryLog

__all__ = ["Checkpointer", "Settler", "Ticker"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Anchors each ``(QueryLog, AnchorLog name)`` when it grew."""

    def __init__(self, anchors: AnchorLogClient, logs: Sequence[tuple[QueryLog, bytes]]) -> None:
        self.anchors = anchors
        self.logs = list(logs)

    def __call__(self) -> int:
        written = 0
        for query_log, name in self.logs:
            if query_log.checkpoint(self.anchors, name) is not None:
                written += 1
        return written


class Settler:
    """The relay's settlement of closed periods on chain (see the module docstring)."""

    def __init__(
        self,
        meter: Meter,
        query_log: QueryLog,
        authorizations: AuthorizationRegistryClient,
        files: LookupFiles,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.meter = meter
        self.query_log = query_log
        self.authorizations = authorizations
        self.files = files
        self.clock = clock
        self._lock = threading.Lock()

    def _uses(self, issued: Sequence[Settlement]) -> dict[bytes, int]:
        size = self.meter.policy.block_size
        cumulative: dict[tuple[str, str, bytes], int] = {}
        out: dict[bytes, int] = {}
        for s in sorted(issued, key=lambda s: s.period_start):
            key = (s.org, s.purpose, s.grant_id)
            before = cumulative.get(key, 0)
            cumulative[key] = before + s.count
            out[s.settlement_id] = math.ceil((before + s.count) / size) - math.ceil(before / size)
        return out

    def __call__(self) -> list[dict[str, Any]]:
        """Settle what is due; the records written on chain by this call. A record whose
        write fails stays unwritten (logged) and is tried again at the next call."""
        with self._lock:
            self.meter.settlements(self.clock())
            issued = self.meter.issued()
            uses = self._uses(issued)
            records = self.files.settlements()
            for s in issued:
                key = s.settlement_id.hex()
                if key in records or s.purpose == PUBLISH_PURPOSE:
                    continue
                size = self.query_log.size()
                root = self.query_log.root() if size else bytes(32)
                fields: dict[str, Any] = {
                    "settlement": key,
                    "org": s.org,
                    "purpose": s.purpose,
                    "grantId": "0x" + s.grant_id.hex(),
                    "periodStart": s.period_start,
                    "periodEnd": s.period_end,
                    "count": s.count,
                    "uses": uses[s.settlement_id],
                    "logSize": size,
                    "logRoot": "0x" + root.hex(),
                }
                fields["digest"] = "0x" + digest_json("lookup-settlement-chain", fields).hex()
                fields["tx"] = None
                records[key] = fields
            self.files.save_settlements(records)
            written = []
            for record in records.values():
                if record["tx"] is not None or record["uses"] == 0:
                    continue
                digest = bytes.fromhex(record["digest"][2:])
                try:
                    if self.authorizations.is_settled(digest):
                        record["tx"] = "settled before"
                    else:
                        receipt = self.authorizations.settle_uses(
                            bytes.fromhex(record["grantId"][2:]), record["uses"], digest
                        )
                        record["tx"] = "0x" + bytes(receipt["transactionHash"]).hex()
                        written.append(record)
                except Exception as exc:  # one grant's failure must not hold up the others
                    log.warning("settlement %s not written yet: %s", record["settlement"], exc)
                    continue
                self.files.save_settlements(records)
            return written


class Ticker:
    """Runs each ``(interval, job)`` in one daemon thread; a failing job is logged and
    tried again at its next tick."""

    def __init__(self, jobs: Sequence[tuple[float, str, Callable[[], object]]]) -> None:
        self.jobs = list(jobs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Ticker:
        if self._thread is None and self.jobs:
            self._thread = threading.Thread(target=self._run, name="lookup-ticker", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        due = {name: time.monotonic() + interval for interval, name, _ in self.jobs}
        while not self._stop.is_set():
            now = time.monotonic()
            for interval, name, job in self.jobs:
                if now >= due[name]:
                    try:
                        job()
                    except Exception:
                        log.exception("lookup %s failed; retrying at the next tick", name)
                    due[name] = time.monotonic() + interval
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))
