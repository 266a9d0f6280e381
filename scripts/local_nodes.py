"""Organisations' nodes run in this process, built exactly as `provnet node run` builds them.

Each node gets a directory written by `provnet node init` itself (keystore, TLS identity,
API token, `node.json`), and is then opened by `node.process.build_node`: the same
NodeService, TaskRunner, mutual-TLS PeerServer with ChainTrust and GrpcChannel as a node
process, only with its runner and peer server on threads of this process instead of a
process of its own. So the demo exercises the nodes' code path, not a copy of it; what it
leaves out is the operator REST API (the demo calls the NodeService verbs the API calls).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from ledger.clients import Clients
from node.config import NodeConfig
from node.identity import certificate_digest
from node.process import Node, build_node
from scripts.anvil import free_port
from scripts.node_command import CONFIG_NAME, node_init

#: The environment variable the local nodes' keystore password is read from; the demo
#: sets it to a random value for its own process when unset.
PASSWORD_ENV = "PROVNET_DEMO_KEY_PASSWORD"
#: How often the local nodes poll the chain: faster than a node's 1 s default, so the
#: demo's task moves through its on-chain steps without idling.
POLL_INTERVAL = 0.25
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class NodeDirectory:
    """What `provnet node init` left: the config file and the identity to register."""

    config_path: Path
    address: str
    endpoint: str
    cert_sha256: bytes


def init_node(directory: Path, name: str, chain_url: str, manifest: Path) -> NodeDirectory:
    """`provnet node init` for one organisation, its messages kept off stdout (the demo's
    `--json` output is one JSON object); the node polls every POLL_INTERVAL seconds."""
    if not os.environ.get(PASSWORD_ENV):
        os.environ[PASSWORD_ENV] = secrets.token_urlsafe(24)
    peer = f"127.0.0.1:{free_port()}"
    args = argparse.Namespace(
        dir=directory,
        name=name,
        chain=chain_url,
        manifest=manifest,
        peer_listen=peer,
        peer_endpoint=None,
        api_listen=f"127.0.0.1:{free_port()}",  # written, never served: no REST API here
        password_env=PASSWORD_ENV,
        database=None,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        node_init(args)
    config_path = directory / CONFIG_NAME
    config = NodeConfig.load(config_path)
    config = dataclasses.replace(config, poll_interval=POLL_INTERVAL)
    config.save(config_path)
    keystore = json.loads(config.keystore.read_text())
    return NodeDirectory(
        config_path,
        Web3.to_checksum_address("0x" + str(keystore["address"]).removeprefix("0x")),
        config.peer_endpoint,
        certificate_digest(config.tls_cert.read_bytes()),
    )


class LocalNode:
    """One started node: its runner on a thread, its peer server and trust view running."""

    def __init__(self, name: str, config_path: Path) -> None:
        self.name = name
        self.config_path = config_path  # the node.json (the auditor reads the regulator's)
        self.node: Node = build_node(NodeConfig.load(config_path))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.node.runner.run,
            args=(self._stop, self.node.config.poll_interval),
            name=f"task-runner {name}",
            daemon=True,
        )
        self._serving = False

    @property
    def address(self) -> str:
        return self.node.runner.address

    @property
    def clients(self) -> Clients:
        """Clients acting as this node's account."""
        return self.node.service.clients

    def serve(self) -> LocalNode:
        """Start the peer server (mutual TLS on its registered endpoint)."""
        self.node.server.start()
        self._serving = True
        return self

    def follow(self) -> LocalNode:
        """Start the trust view and the task runner, as `run_node` does; serve first, so
        the peers' certificate discovery finds this node answering."""
        self.node.trust.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """In `run_node`'s order: the runner first, so no task is half-handled by a node
        whose peer server is gone; then the server and the trust view."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT)
        if self._serving:
            self.node.server.stop()
        self.node.trust.stop()


def start_all(nodes: Iterable[LocalNode]) -> None:
    """Every peer server first, then every trust view and runner: no node looks for a
    peer that is registered but not yet answering."""
    started = list(nodes)
    for node in started:
        node.serve()
    for node in started:
        node.follow()
