"""The auditor as one process: the indexer, the query-log checkpointer and the API+pages.

`AuditorService` wires the parts around one index database:

* a thread running `Follower.run` (the chain into the index, N confirmations behind);
* a thread calling `Checkpointer.checkpoint_once` every ``checkpoint_interval`` seconds
  (the regulators' query log anchored in AnchorLog by the regulator node's account);
* uvicorn serving ``create_app(ctx)`` (the ``/v1`` API and the pages) on ``listen``.

What needs `node` (the evidence fetch over gRPC) is injected as an `EvidenceSource`, and
the AnchorLog client with its sender is built by the caller (`scripts/auditor_command.py`
or the demo), so this module imports `ledger` and `auditor` only. `stop()` ends all
three and waits for them; a second call is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from auditor.api.app import create_app
from auditor.api.context import ServiceContext
from auditor.auth.sessions import SessionStore
from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from auditor.querylog.checkpoint import Checkpointer
from auditor.querylog.log import QueryLog
from auditor.report.statement import verifier_version
from auditor.service.config import AuditorConfig
from auditor.service.verification import EvidenceSource, TaskVerifier
from ledger.chain import Chain
from ledger.clients.anchor_log import AnchorLogClient
from ledger.deployment import Deployment

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 15.0


class AuditorService:
    """One auditor: build it, `start()`, read `url`, `stop()`."""

    def __init__(
        self,
        config: AuditorConfig,
        chain: Chain,
        deployment: Deployment,
        *,
        evidence: EvidenceSource | None,
        signer: CryptoSigner | None,
        anchors: AnchorLogClient | None,
    ) -> None:
        self.config = config
        self.store = IndexStore(config.database_url)
        self.rpc = Rpc(config.chain_url)
        self.follower = Follower(
            self.rpc, self.store, deployment, confirmations=config.confirmations
        )
        self.query_log = QueryLog(self.store)
        self.sessions = SessionStore(
            self.store,
            chain.chain_id,
            deployment.address("Consortium"),
            audience=config.base_url,
            ttl=config.session_ttl,
        )
        self.verifier = TaskVerifier(chain, deployment, evidence, signer, config.confirmations)
        self.checkpointer = (
            None
            if anchors is None
            else Checkpointer(self.query_log, anchors, config.query_log_name)
        )
        self.last_checkpoint: dict[str, Any] | None = None
        self.checkpoint_error: str | None = None
        self.index_error: str | None = None
        self.ctx = ServiceContext(
            store=self.store,
            sessions=self.sessions,
            query_log=self.query_log,
            verifier=self.verifier,
            chain_id=chain.chain_id,
            consortium_address=deployment.address("Consortium"),
            version=verifier_version(),
        )
        self.app = create_app(self.ctx)
        host, port = config.host_port
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return self.config.base_url

    def start(self) -> AuditorService:
        """Index, checkpoint and serve, each on a thread; returns once the API answers."""
        self._spawn("auditor-index", self._index_loop)
        if self.checkpointer is not None:
            self._spawn("auditor-checkpoint", self._checkpoint_loop)
        self._spawn("auditor-http", self.server.run)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                self.stop()
                raise OSError(f"the auditor's API did not start on {self.config.listen}")
            time.sleep(0.02)
        return self

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _index_loop(self) -> None:
        """`Follower.run` retries a chain that stops answering; anything else (the
        database gone, say) is logged and retried too, so the API keeps answering with
        the lag it reports rather than the indexer dying silently."""
        while not self._stop.is_set():
            try:
                self.follower.run(self._stop, self.config.poll_interval)
                self.index_error = None
            except Exception as exc:
                self.index_error = str(exc)
                log.warning("indexer failed: %s; retrying", exc)
                self._stop.wait(max(self.config.poll_interval, 1.0))

    def checkpoint_once(self) -> dict[str, Any] | None:
        """Anchor the query log now if it grew (also what the loop calls)."""
        if self.checkpointer is None:
            return None
        done = self.checkpointer.checkpoint_once()
        if done is not None:
            self.last_checkpoint = done
        return done

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.config.checkpoint_interval):
            try:
                self.checkpoint_once()
                self.checkpoint_error = None
            except Exception as exc:  # a chain outage or a diverged log: keep serving, say so
                self.checkpoint_error = str(exc)
                log.warning("query-log checkpoint failed: %s", exc)

    def wait_indexed(self, block: int, timeout: float = 30.0) -> None:
        """Until the index is complete up to ``block`` (for the demo and tests)."""
        deadline = time.monotonic() + timeout
        while self.store.status().complete_up_to < block:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the index did not reach block {block} within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=15.0)
        self._threads.clear()
        self.rpc.close()
        self.store.close()

    def __enter__(self) -> AuditorService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
