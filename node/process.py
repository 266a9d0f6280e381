"""`provnet node run`: one organisation's long-running node process.

It wires the parts together and owns their lifecycle: the chain-bound trust view, the
mutual-TLS peer server, the chain-driven task runner (a thread), the anonymous-lookup
roles when the config has a ``lookup`` section (``node/lookup/node/``), and the operator
REST API (uvicorn, in the main thread). SIGTERM/SIGINT stop the API first, then the runner, then
the peer server, so no task is left half-handled by a process still accepting calls.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import uvicorn

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.measurements import read_measurement_sets
from ledger.clients.tasks import Reason
from ledger.deployment import Deployment
from ledger.deployment_binding import require_bound
from ledger.ids import InvalidInput
from ledger.keys import password_from, read_keystore
from ledger.transactions import Sender
from node.admission import TaskRefused
from node.algorithms import fl_horizontal, fl_score, fl_vertical, psi, psi_fast, stats, tee
from node.algorithms.package import package_of
from node.api import create_app
from node.channel import Channel
from node.config import NodeConfig, parse_host_port
from node.dataset_store import DatasetStore
from node.evidence.store import EvidenceStore
from node.identity import TlsIdentity
from node.lookup.node.roles import LookupNode
from node.peer.channel import GrpcChannel
from node.peer.direct_link import DirectLink
from node.peer.server import Inbox, InboxAtCapacity, PeerServer
from node.peer.trust import ChainTrust
from node.runner import TaskRunner
from node.service import NodeService
from node.state import TaskStateStore
from node.tee.simulated import SimulatedBackend
from node.tee.status import TeeStatus

log = logging.getLogger("provnet.node")

#: The algorithms this build can run; their digests are recomputed from the code.
ALGORITHMS: tuple[ModuleType, ...] = (
    stats,
    psi,
    psi_fast,
    fl_horizontal,
    fl_vertical,
    fl_score,
    tee,
)


@dataclass
class Node:
    config: NodeConfig
    service: NodeService
    runner: TaskRunner
    server: PeerServer
    trust: ChainTrust
    lookup: LookupNode | None = None
    tee: TeeStatus | None = None


def inbox_opener(inbox: Inbox) -> Callable[[bytes, list[str]], None]:
    """The runner's `prepare_transport`: a task the inbox has no room for is refused on
    chain as NODE_AT_CAPACITY instead of being accepted."""

    def open_inbox(task_id: bytes, participants: list[str]) -> None:
        try:
            inbox.open_task(task_id, participants)
        except InboxAtCapacity as exc:
            raise TaskRefused(Reason.NODE_AT_CAPACITY, str(exc)) from None

    return open_inbox


def build_node(config: NodeConfig) -> Node:
    """Open everything a node needs, refusing clearly if its identity is not on chain."""
    account = read_keystore(config.keystore, password_from(config.password_env, prompt=False))
    identity = TlsIdentity(config.tls_key.read_bytes(), config.tls_cert.read_bytes())
    chain = Chain.connect(config.chain_url)
    deployment = Deployment.load(config.manifest)
    deployment.check_artifacts()
    clients = Clients.bind(chain, deployment, Sender(chain, account))
    # The manifest's claims are not enough: a TaskRegistry address of another deployment
    # (or of AnchorLog) would run silently and fail every poll. Check the chain's code,
    # origin and wiring, as the auditor does, and refuse to start naming the contract.
    require_bound(chain, deployment)
    if not clients.consortium.is_active_node(account.address):
        raise InvalidInput(
            "node", f"{account.address} is not an active node on chain: run `provnet node register`"
        )
    info = clients.consortium.node_info(account.address)
    if info.tls_cert_sha256 != identity.cert_sha256:
        raise InvalidInput("tls_cert", "certificate differs from the digest registered on chain")
    state = TaskStateStore(config.database_url)
    evidence = EvidenceStore(config.database_url)
    datasets = DatasetStore(config.data_dir / "datasets")
    trust = ChainTrust(clients.consortium, poll_interval=config.poll_interval)
    lookup = (
        None
        if config.lookup is None
        else LookupNode(
            config.lookup,
            address=account.address,
            org_id=info.org_id,
            identity=identity,
            trust=trust,
            clients=clients,
            database_url=config.database_url,
            data_dir=config.data_dir,
            first_block=deployment.first_block,
        )
    )
    server = PeerServer(
        identity,
        account.address,
        trust,
        listen=config.peer_listen,
        evidence=evidence,
        max_message_bytes=config.peer_max_message_bytes,
        max_task_bytes=config.inbox_max_task_bytes,
        max_total_bytes=config.inbox_max_total_bytes,
        rate_messages=config.peer_rate_messages,
        rate_burst=config.peer_rate_burst,
        rate_bytes=config.peer_rate_bytes,
        extra_services=[] if lookup is None else [lookup.service.add_to],
    )

    def open_channel(task_id: bytes, peers: list[str]) -> Channel:
        return GrpcChannel(
            task_id,
            account.address,
            peers,
            server,
            trust,
            identity,
            send_timeout=config.protocol_timeout,
        )

    runner = TaskRunner(
        address=account.address,
        clients=clients,
        datasets=datasets,
        state=state,
        evidence=evidence,
        algorithms={package_of(m).digest: m for m in ALGORITHMS},
        open_channel=open_channel,
        first_block=deployment.first_block,
        confirmations=config.confirmations,
        protocol_timeout=config.protocol_timeout,
        prepare_transport=inbox_opener(server.inbox),
        release_transport=server.inbox.close_task,
        account=account,
        accept_tasks_from=config.org_allow_list(),
        compute_processes=config.compute_processes or os.cpu_count() or 1,
        direct_link=DirectLink(
            config.tls_cert,
            config.tls_key,
            parse_host_port(config.peer_listen, "config.peer_listen")[0],
            trust.peer,
        ),
        tee_backend=None if config.tee is None else config.tee.host(bytes(account.key)),
        tee_trust=None if config.tee is None else config.tee.trust(),
    )
    service = NodeService(
        clients,
        info.org_id,
        datasets,
        deployment.first_block,
        state,
        {m.NAME: m for m in ALGORITHMS},
    )
    consortium = clients.consortium
    tee_backend = runner.tee_backend
    tee_status = TeeStatus(
        config.tee,
        tee_backend.platform_public_key if isinstance(tee_backend, SimulatedBackend) else None,
        [m for m in ALGORITHMS if getattr(m, "ATTESTED", False)],
        lambda: read_measurement_sets(
            consortium.chain, consortium.address, confirmations=config.confirmations
        ),
    )
    return Node(config, service, runner, server, trust, lookup, tee_status)


def api_server_config(config: NodeConfig, app: Any, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the operator API: HTTPS when the config names a key pair."""
    tls: dict[str, Any] = {}
    if config.api_tls_cert is not None and config.api_tls_key is not None:
        tls = {"ssl_certfile": str(config.api_tls_cert), "ssl_keyfile": str(config.api_tls_key)}
    return uvicorn.Config(app, host=host, port=port, log_level="warning", **tls)


def run_node(config: NodeConfig) -> int:
    node = build_node(config)
    stop = threading.Event()
    node.trust.start()
    node.server.start()
    if node.lookup is not None:
        node.lookup.start()
    runner_thread = threading.Thread(
        target=node.runner.run, args=(stop, config.poll_interval), name="task-runner"
    )
    runner_thread.start()
    host, port = parse_host_port(config.api_listen, "config.api_listen")
    app = create_app(
        node.service,
        config.api_token(),
        config.data_dir / "uploads",
        max_upload_bytes=config.api_max_upload_bytes,
        lookup=node.lookup,
        trust=node.trust,
        tee=node.tee,
    )
    server = uvicorn.Server(api_server_config(config, app, host, port))

    # uvicorn turns SIGTERM/SIGINT into a graceful exit of `server.run()`, then restores
    # the previous handlers and re-raises the signal: these handlers receive it, so the
    # clean-up below runs and the process exits 0 instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    print(
        f"node {node.runner.address} running: "
        f"peers on {node.server.listen}, API on "
        f"{'https' if config.api_tls_cert else 'http'}://{config.api_listen}",
        flush=True,
    )
    try:
        server.run()
    finally:
        stop.set()
        runner_thread.join(timeout=30)
        if node.lookup is not None:
            node.lookup.stop()
        node.server.stop()
        node.trust.stop()
    return 0
