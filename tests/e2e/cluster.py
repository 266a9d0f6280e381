"""A local consortium of real node processes on a real anvil, for end-to-end tests.

Each node is its own `provnet node run` process with its own keys, TLS identity and
SQLite file; tests drive them only through their REST APIs, the chain and signals.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import hex32, name_id
from ledger.keys import new_account, read_keystore
from ledger.roles import Role
from ledger.transactions import Sender
from node.algorithms import stats
from node.algorithms.package import package_of
from node.config import NodeConfig
from node.evidence.store import EvidenceStore
from node.peer.trust import MAX_FETCH_BACKOFF
from node.runner import CRASH_ENV
from scripts.cli import main
from tests.anvil import free_port

PASSWORD = "node-password"
# The cluster's keystores (the admins', and each node's once `node init` wrote it) use
# scrypt with n = 2**14 instead of eth-account's default 2**18: the same standard keystore
# format, unlocked by the same code, in milliseconds instead of about a second of CPU.
# Every `node register` unlocks two and every node start one (a crash test restarts a
# node twice per case): at the default cost, unlocking was most of a cluster's set-up.
# `provnet node init`'s default-cost keystores run end to end in test_readme.py.
TEST_SCRYPT_N = 2**14
ORGS = (
    ("bank-a", int(Role.PROVIDER | Role.CONSUMER)),
    ("bank-b", int(Role.PROVIDER | Role.CONSUMER)),
    ("regulator", int(Role.REGULATOR | Role.PROVIDER)),
)
PROVIDERS = ("bank-b", "regulator")
# Providers beyond the default two, in the order a cluster of more providers adds them.
EXTRA_PROVIDERS = ("bank-c", "bank-d", "bank-e", "bank-f", "bank-g")


def provider_names(count: int) -> tuple[str, ...]:
    """The provider banks of a cluster with ``count`` providers (2, the default, keeps
    the original bank-b and regulator)."""
    names = (*PROVIDERS, *EXTRA_PROVIDERS)
    if not 2 <= count <= len(names):
        raise ValueError(f"providers: between 2 and {len(names)}, got {count}")
    return names[:count]


def orgs_for(providers: int) -> tuple[tuple[str, int], ...]:
    """The organisations (name, roles) of a cluster with ``providers`` provider banks."""
    extra = provider_names(providers)[len(PROVIDERS) :]
    return (*ORGS, *((name, int(Role.PROVIDER | Role.CONSUMER)) for name in extra))


PARAMS: dict[str, Any] = {
    "columns": [
        {"name": "account", "type": "string"},
        {"name": "balance", "type": "integer"},
        {"name": "segment", "type": "string"},
    ],
    "value_column": "balance",
    "group_column": "segment",
    "categories": ["retail", "business", "private"],
    "filter": {"column": "balance", "op": ">", "value": 0},
    "min_group_size": 3,
}


@dataclass
class NodeProcess:
    name: str
    org_id: bytes
    config_path: Path
    address: str
    admin: Clients
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def config(self) -> NodeConfig:
        return NodeConfig.load(self.config_path)

    def api(self) -> httpx.Client:
        config = self.config
        return httpx.Client(
            base_url=f"http://{config.api_listen}",
            headers={"Authorization": f"Bearer {config.api_token()}"},
            timeout=60.0,
        )

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def start(self, extra_env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.starts += 1
        env = {**os.environ, "PROVNET_KEY_PASSWORD": PASSWORD}
        env.pop(CRASH_ENV, None)  # fault injection only where a test asks for it
        env.update(extra_env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "node", "run", "--config", str(self.config_path)],
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        url = f"http://{self.config.api_listen}/health"
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "node API did not come up"
            time.sleep(0.2)

    def wait_peers(self, timeout: float) -> None:
        """Until the node has verified every active peer's certificate (`GET /peers`).

        Before that, a call between two nodes can fail the TLS handshake: the callee
        does not accept the caller's certificate yet. Nodes started at once ask a peer
        that was not listening yet again at their next poll (`node.peer.trust`), so this
        takes about one poll interval after the last node listens.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.api() as api:
                peers = api.get("/peers").json()["peers"]
            waiting = [p for p in peers if p["certificate"] in ("pending", "unavailable")]
            if not waiting:
                return
            assert time.monotonic() < deadline, f"{self.name} has not verified {waiting}"
            time.sleep(0.2)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        self.process = None
        return code


@dataclass
class Cluster:
    chain: Chain
    deployment: Deployment
    nodes: dict[str, NodeProcess]
    tmp: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)
    provider_names: tuple[str, ...] = PROVIDERS

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.tmp.glob("*.log"))
        )

    def share_datasets(self, rows_each: int = 120, max_uses: int = 20) -> None:
        """Providers upload a generated CSV each and grant bank-a its use, over REST."""
        for seed, name in enumerate(self.provider_names):
            path = self.tmp / f"{name}.csv"
            self.rows += write_rows(path, seed, rows_each)
            self.providers.append(
                self.share(name, path, "accounts", "portfolio-statistics", max_uses)
            )

    def share(
        self, name: str, path: Path, dataset: str, purpose: str, max_uses: int = 5
    ) -> dict[str, Any]:
        """Node ``name`` uploads ``path`` as ``dataset`` (classification 2) and grants
        bank-a its use for ``purpose``, over REST; the task's provider entry for it."""
        node = self.nodes[name]
        with node.api() as api, path.open("rb") as fh:
            uploaded = api.post(
                "/datasets",
                data={"name": dataset, "classification": "2"},
                files={"file": (path.name, fh, "text/csv")},
            )
            assert uploaded.status_code == 201, uploaded.text
            grant = api.post(
                "/grants",
                json={
                    "datasetId": uploaded.json()["datasetId"],
                    "granteeOrg": hex32(self.nodes["bank-a"].org_id),
                    "purpose": purpose,
                    "validForSeconds": 3600,
                    "maxUses": max_uses,
                },
            )
            assert grant.status_code == 201, grant.text
        return {
            "node": node.address,
            "datasetId": uploaded.json()["datasetId"],
            "datasetVersion": 1,
            "grantId": grant.json()["grantId"],
        }

    def create_task(
        self,
        request_id: str,
        valid_for: int = 600,
        params: dict[str, Any] | None = None,
        providers: list[dict[str, Any]] | None = None,
    ) -> str:
        """A secure-stats task by bank-a over ``providers`` (default: every provider)."""
        with self.nodes["bank-a"].api() as api:
            created = api.post(
                "/tasks",
                json={
                    "requestId": request_id,
                    "algorithm": "secure-stats",
                    "params": PARAMS if params is None else params,
                    "providers": self.providers if providers is None else providers,
                    "validForSeconds": valid_for,
                },
            )
            assert created.status_code == 201, created.text
            return str(created.json()["taskId"])

    def dump_transcripts(self, task: str, directory: Path) -> Path:
        """Each node's recorded transcript of ``task`` as ``<address>.json``, read from
        its own evidence database: the files ``provnet audit verify --transcripts`` takes
        (a regulator fetches them with signed evidence requests instead)."""
        directory.mkdir(parents=True, exist_ok=True)
        task_id = bytes.fromhex(task.removeprefix("0x"))
        for node in self.nodes.values():
            with EvidenceStore(node.config.database_url) as store:
                entries = [e.to_json() for e in store.entries(task_id)]
            (directory / f"{node.address}.json").write_text(json.dumps(entries))
        return directory

    def wait_settled(self, task: str, timeout: float = 120.0) -> None:
        """Wait until every node's own part of ``task`` is over (its local phase final,
        or it holds no record of the task). A node appends the messages it never read
        (``received-late``) and checkpoints its transcript when the chain's terminal
        event reaches it, before it marks its part final: a dump taken earlier could
        show a transcript the node is still extending."""
        deadline = time.monotonic() + timeout
        pending = dict(self.nodes)
        while pending:
            for name, node in list(pending.items()):
                with node.api() as api:
                    status = api.get(f"/tasks/{task}").json()
                if status.get("localPhase") in (None, "done", "failed"):
                    del pending[name]
            if pending:
                assert time.monotonic() < deadline, (sorted(pending), self.logs())
                time.sleep(0.3)

    def audit(self, task: str, *extra: str) -> tuple[int, dict[str, Any]]:
        """`provnet audit verify` on ``task``: exit code and the printed report."""
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["audit", "verify", "--chain", self.chain.url,
                         "--manifest", str(self.tmp / "manifest.json"), task, *extra])  # fmt: skip
        report: dict[str, Any] = json.loads(out.getvalue())
        return code, report

    def wait_terminal(self, task: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.nodes["bank-a"].api() as api:
            while True:
                status: dict[str, Any] = api.get(f"/tasks/{task}").json()
                if status["state"] not in ("CREATED", "RUNNING"):
                    return status
                assert time.monotonic() < deadline, (status, self.logs())
                time.sleep(0.3)


def write_test_keystore(account: LocalAccount, path: Path, password: str) -> None:
    """(Over)write ``path`` with ``account``'s keystore at TEST_SCRYPT_N, private to its owner."""
    keystore = Account.encrypt(account.key, password, kdf="scrypt", iterations=TEST_SCRYPT_N)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keystore, fh)


def write_rows(path: Path, seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = [
        {
            "account": f"A{seed}-{i}",
            "balance": rng.randrange(-1000, 10_000),
            "segment": rng.choice(["retail", "business", "private"]),
        }
        for i in range(count)
    ]
    path.write_text(
        "account,balance,segment\n"
        + "".join(f"{r['account']},{r['balance']},{r['segment']}\n" for r in rows)
    )
    return rows


@contextmanager
def running_cluster(
    anvil_url: str,
    tmp: Path,
    protocol_timeout: float | None = None,
    providers: int = 2,
    approve: tuple[ModuleType, ...] = (stats,),
    extra_orgs: tuple[tuple[str, int], ...] = (),
    configure: Callable[[dict[str, NodeProcess]], None] | None = None,
) -> Iterator[Cluster]:
    """Deploy, init and register bank-a (the consumer) and ``providers`` provider banks
    with the CLI, approve the algorithms (by default secure-stats), start all.

    ``extra_orgs`` (name, roles) join the genesis after those (e.g. a lookup relay's
    operator); ``configure(nodes)`` runs once every node is registered and before any
    starts (e.g. to add a ``lookup`` section naming the nodes' addresses)."""
    os.environ["PROVNET_KEY_PASSWORD"] = PASSWORD
    os.environ["PROVNET_ADMIN_PASSWORD"] = PASSWORD
    orgs = (*orgs_for(providers), *extra_orgs)
    # anvil's funded account holds 10^22 wei: enough for 10^21 each up to three orgs.
    wei = 10**21 if len(orgs) <= len(ORGS) else 10**20
    chain = Chain.connect(anvil_url)
    deployer = new_account()
    chain.fund(deployer.address, wei)
    admins = {name: new_account() for name, _ in orgs}
    for name, account in admins.items():
        chain.fund(account.address, wei)
        write_test_keystore(account, tmp / f"{name}-admin.json", PASSWORD)
    genesis = [GenesisMember(name_id("org", n), n, r, admins[n].address) for n, r in orgs]
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(50), genesis)
    manifest = tmp / "manifest.json"
    deployment.save(manifest)
    nodes: dict[str, NodeProcess] = {}
    for name, _ in orgs:
        node_dir = tmp / name
        assert main(["node", "init", "--dir", str(node_dir), "--name", name,
                     "--chain", anvil_url, "--manifest", str(manifest),
                     "--peer-listen", f"127.0.0.1:{free_port()}",
                     "--api-listen", f"127.0.0.1:{free_port()}"]) == 0  # fmt: skip
        config_path = node_dir / "node.json"
        if protocol_timeout is not None:
            raw = json.loads(config_path.read_text())
            raw["protocol_timeout"] = protocol_timeout
            config_path.write_text(json.dumps(raw))
        keystore = NodeConfig.load(config_path).keystore
        account = read_keystore(keystore, PASSWORD)
        write_test_keystore(account, keystore, PASSWORD)  # see TEST_SCRYPT_N
        address = account.address
        chain.fund(address, wei)
        assert main(["node", "register", "--config", str(config_path),
                     "--admin-keystore", str(tmp / f"{name}-admin.json")]) == 0  # fmt: skip
        admin = Clients.bind(chain, deployment, Sender(chain, admins[name]))
        nodes[name] = NodeProcess(name, name_id("org", name), config_path, address, admin, tmp)
    algorithms = nodes["bank-a"].admin.algorithms
    for module in approve:
        digest = package_of(module).digest
        algorithms.propose(digest, module.NAME, module.VERSION, AlgorithmKind(int(module.KIND)))
        for voter in [n for n in nodes if n != "bank-a"]:  # more members need more votes
            if algorithms.is_approved(digest):
                break
            nodes[voter].admin.algorithms.approve(digest)
        assert algorithms.is_approved(digest)
    if configure is not None:
        configure(nodes)
    cluster = Cluster(chain, deployment, nodes, tmp, provider_names=provider_names(providers))
    try:
        # Started together, then waited for: each start is mostly interpreter start-up and
        # imports, which overlap; every node serves before the test sees the cluster. The
        # first wait covers all of them starting at once on a loaded machine.
        for node in nodes.values():
            node.start(wait=False)
        for node in nodes.values():
            node.wait_healthy(timeout=60.0 + 30.0 * len(nodes))
        for node in nodes.values():
            node.wait_peers(timeout=2 * MAX_FETCH_BACKOFF + 30.0)
        yield cluster
    finally:
        # SIGTERM to all first, so that they shut down side by side; then wait for each.
        for node in nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in nodes.values():
            node.stop()
