"""A completed multi-party task on anvil whose evidence a regulator's node can fetch over
gRPC + mutual TLS, and the auditor's index of that chain: the shared material of the
auditor service, API and pages tests.

Cheap by design: the task itself runs over the in-memory transport of
`tests/node/runner_harness.py` (bank-a aggregates, bank-b and the regulator provide);
afterwards every node gets a real `PeerServer` serving its own evidence store, registered
on chain with its real endpoint and certificate, exactly what `provnet node run` serves.
The regulator's node also gets a `node.json` (keystore, TLS identity) so `provnet audit
verify --config` and `auditor.service` can fetch as it. Build it once per package with
the `service_scenario` fixture (tests/auditor/service/conftest.py), or `build_scenario`.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from ledger import transactions
from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry
from node.config import NodeConfig
from node.identity import TlsIdentity, new_tls_identity
from node.peer.server import PeerServer
from node.peer.trust import ChainTrust
from tests.anvil import running_anvil
from tests.auditor.verify_scenario import PARAMS
from tests.conftest import Consortium, build_consortium
from tests.node.runner_harness import Network, standard_network

#: The regulator node's keystore password is read from this variable (set by the builder).
PASSWORD_ENV = "PROVNET_TEST_REGULATOR_PASSWORD"


@dataclass
class Served:
    """One node's peer server, serving its evidence store."""

    name: str
    address: str
    identity: TlsIdentity
    trust: ChainTrust
    server: PeerServer
    port: int


@dataclass
class Scenario:
    url: str  # anvil JSON-RPC
    consortium: Consortium
    net: Network
    task_id: bytes
    params: ParamsEnvelope  # the creator's disclosed parameters and salt
    result_answer: dict[str, Any]  # bank-a's `task result` answer (holds params)
    manifest: Path
    regulator_config: Path  # the regulator's node.json
    index: IndexStore  # SQLite, caught up with the chain at build time
    index_url: str
    served: dict[str, Served] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        return self.consortium.chain

    def transcripts(self) -> dict[str, list[Entry]]:
        """Every participant's transcript read straight from its own store."""
        return {n.runner.address: n.evidence.entries(self.task_id) for n in self.net.nodes.values()}

    def address(self, name: str) -> str:
        return self.net.nodes[name].runner.address

    def catch_up(self) -> None:
        """Index whatever the chain gained since (tests that add transactions call it)."""
        rpc = Rpc(self.url)
        try:
            Follower(rpc, self.index, self.consortium.deployment, confirmations=0).catch_up()
        finally:
            rpc.close()

    @contextmanager
    def stopped(self, name: str) -> Iterator[None]:
        """``name``'s peer server down for the block, then serving again on its port."""
        served = self.served[name]
        served.server.stop(0)
        try:
            yield
        finally:
            served.server = _serve(self.net, name, served.identity, served.trust, served.port)


def _serve(
    net: Network, name: str, identity: TlsIdentity, trust: ChainTrust, port: int
) -> PeerServer:
    node = net.nodes[name]
    return PeerServer(
        identity, node.runner.address, trust, f"127.0.0.1:{port}", evidence=node.evidence
    ).start()


def _regulator_config(
    base: Path, scenario_url: str, manifest: Path, served: Served, account: Any
) -> Path:
    """A `node.json` for the regulator's node as `provnet node init` would lay it out."""
    base.mkdir(parents=True, exist_ok=True)
    password = os.environ.setdefault(PASSWORD_ENV, secrets.token_urlsafe(16))
    # A real keystore, with a cheap scrypt cost: decrypting it is on every fetch test's path.
    keystore = Account.encrypt(account.key, password, kdf="scrypt", iterations=2**10)
    (base / "keystore.json").write_text(json.dumps(keystore))
    (base / "tls.key").write_bytes(served.identity.key_pem)
    (base / "tls.crt").write_bytes(served.identity.cert_pem)
    (base / "api.token").write_text(secrets.token_urlsafe(16))
    config = NodeConfig(
        name="regulator",
        chain_url=scenario_url,
        manifest=manifest,
        keystore=base / "keystore.json",
        password_env=PASSWORD_ENV,
        tls_key=base / "tls.key",
        tls_cert=base / "tls.crt",
        database_url=f"sqlite:///{base / 'node.db'}",
        peer_listen=f"127.0.0.1:{served.port}",
        peer_endpoint=f"127.0.0.1:{served.port}",
        api_listen="127.0.0.1:0",
        api_token_file=base / "api.token",
        data_dir=base,
    )
    path = base / "node.json"
    config.save(path)
    return path


def _stop_server(entry: Served) -> None:
    entry.server.stop(0)  # the current server: `stopped` may have replaced it


@contextmanager
def build_scenario(tmp: Path) -> Iterator[Scenario]:
    """The scenario on a fresh anvil; everything stopped when the block exits."""
    transactions.reset_nonces()
    with ExitStack() as stack:
        url = stack.enter_context(running_anvil())
        stack.callback(transactions.reset_nonces)
        consortium = build_consortium(Chain.connect(url))
        net = standard_network(consortium, tmp / "nodes", rows_each=40)
        task_id = net.create("service-scenario", PARAMS)
        state = net.drive(task_id)
        assert state == TaskState.COMPLETED, state
        answer = net.creator.task_result("0x" + task_id.hex())
        manifest = tmp / "manifest.json"
        consortium.deployment.save(manifest)

        served: dict[str, Served] = {}
        for name, node in net.nodes.items():
            org = consortium.orgs[name]
            identity = new_tls_identity(name)
            trust = ChainTrust(org.node_clients.consortium, poll_interval=0.2, fetch_timeout=1.0)
            server = PeerServer(identity, node.runner.address, trust, evidence=node.evidence)
            server.start()
            entry = Served(name, node.runner.address, identity, trust, server, server.port)
            stack.callback(_stop_server, entry)
            org.clients.consortium.update_node(
                node.runner.address, f"127.0.0.1:{server.port}", identity.cert_sha256
            )
            served[name] = entry
        for entry in served.values():
            entry.trust.start()
            stack.callback(entry.trust.stop)

        regulator = consortium.orgs["regulator"]
        config = _regulator_config(
            tmp / "regulator", url, manifest, served["regulator"], regulator.node
        )
        index_url = f"sqlite:///{tmp / 'index.db'}"
        index = IndexStore(index_url)
        stack.callback(index.close)
        scenario = Scenario(
            url=url,
            consortium=consortium,
            net=net,
            task_id=task_id,
            params=ParamsEnvelope.from_json(answer["params"]),
            result_answer=answer,
            manifest=manifest,
            regulator_config=config,
            index=index,
            index_url=index_url,
            served=served,
        )
        scenario.catch_up()
        yield scenario
