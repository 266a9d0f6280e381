"""The relay node's forwarding loop: due batches out to the key holders, answers back.

Why this module exists: ``relay.Relay`` is a pure scheduler (time passed in, no
network); someone must ask it for due batches, send each to the list's key holders'
``Evaluate`` and route their answers to the tickets. That is this loop, on the relay
node only. Every holder of the roster is asked (in parallel): the batch carries no
querier identity, and asking all of them means any ``t`` answering suffice, so up to
``n - t`` providers may be offline. Answers are routed as they came — the relay verifies
no proof, the querier does (``epoch.verified_answers`` drops and names a bad holder).

A batch no holder answered stays with the forwarder and is sent again on the next
round (``Relay.deliver`` keeps it deliverable); its queriers meanwhile see "not ready"
and give up at their own deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures

from node.crypto.threshold_oprf import ShareEvaluation
from node.lookup.relay import ForwardBatch, Relay
from node.lookup.rpc.client import LookupClient
from node.lookup.rpc.state import RelayState

__all__ = ["RelayForwarder"]

log = logging.getLogger(__name__)


class RelayForwarder:
    """Forwards the due batches of every list of ``state`` to its holders' clients.

    ``holders`` maps provider node addresses to clients. ``clock`` gives the Unix
    seconds the relay schedules by (the servicer's clock).
    """

    def __init__(
        self,
        state: RelayState,
        holders: Mapping[str, LookupClient],
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 0.05,
    ) -> None:
        self.state = state
        self.holders = dict(holders)
        self.interval = interval
        self._clock = clock
        self._pending: list[tuple[str, Relay, ForwardBatch]] = []
        self._pool = futures.ThreadPoolExecutor(8, thread_name_prefix="lookup-forward")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def forward_due(self) -> int:
        """Forward every due batch (and the ones left unanswered before); returns how
        many batches were answered and routed."""
        work, self._pending = self._pending, []
        current = self.state.relays()
        for list_name, relay in current:
            while (batch := relay.due(self._clock())) is not None:
                work.append((list_name, relay, batch))
        routed = 0
        for list_name, relay, batch in work:
            evaluations = self._ask(list_name, batch)
            if evaluations:
                # Delivered by the scheduler that forwarded it, even if the epoch rotated.
                self.state.put_answers(relay.deliver(batch.batch_id, evaluations))
                routed += 1
            elif (list_name, relay) in current:
                self._pending.append((list_name, relay, batch))
            else:
                log.warning(
                    "dropped an unanswered batch of %s's old epoch %d", list_name, batch.epoch
                )
        return routed

    def _ask(self, list_name: str, batch: ForwardBatch) -> list[ShareEvaluation]:
        roster = self.state.rosters[list_name]
        calls = {
            index: self._pool.submit(
                self.holders[node].evaluate, list_name, batch.epoch, batch.batch_id, batch.elements
            )
            for index, node in enumerate(roster.providers, start=1)
            if node in self.holders
        }
        answers = []
        for index, call in calls.items():
            try:
                evaluation = call.result()
            except Exception as exc:  # a refusal, a stale epoch, a peer not trusted now
                log.warning("holder %d of %s did not evaluate a batch: %s", index, list_name, exc)
                continue
            if evaluation.index != index:
                log.warning(
                    "holder %d of %s answered as holder %d", index, list_name, evaluation.index
                )
                continue
            answers.append(evaluation)
        return answers

    # ------------------------------------------------------------------ thread

    def start(self) -> RelayForwarder:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lookup-forward", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.shutdown(wait=False)

    def __enter__(self) -> RelayForwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                self.forward_due()
            except Exception:
                log.exception("lookup forwarding round failed")
            seen = self.state.wait_for_submission(seen, self.interval)
