"""`provnet dev up --orgs N`: a whole development consortium in one command.

A newcomer otherwise runs some twenty commands before a first task (keys, genesis,
deploy, funding, node init and register per organisation, the algorithm vote). This
runs exactly those verbs, in order, against a private anvil, starts one
`provnet node run` process per organisation, prints where everything is, and stops it
all on Ctrl-C. Development only: the chain and its keys are thrown away on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

import httpx

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.deployment import Deployment
from ledger.ids import InvalidInput, hex32, name_id
from ledger.keys import PASSWORD_ENV, new_account, password_from, read_keystore, write_keystore
from ledger.transactions import Sender
from node.algorithms.package import package_of
from node.config import NodeConfig
from scripts.anvil import free_port, running_anvil
from scripts.consortium_command import genesis_document
from scripts.deploy_command import deploy_command
from scripts.node_command import CONFIG_NAME, node_init, node_register

FUNDING_WEI = 10**21
START_TIMEOUT = 120.0


def _org_name(index: int) -> str:
    return f"Org {index}"


def _password(directory: Path) -> str:
    """The keystores' password: PROVNET_KEY_PASSWORD, else a random one kept in DIR."""
    if os.environ.get(PASSWORD_ENV):
        return password_from(PASSWORD_ENV)
    password = secrets.token_urlsafe(24)
    path = directory / "key-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.environ[PASSWORD_ENV] = password
    return password


def set_up(url: str, directory: Path, orgs: int) -> dict[str, Any]:
    """Everything before the node processes: keys, genesis, deployment, nodes, vote."""
    password = _password(directory)
    chain = Chain.connect(url)
    admins = []
    members = []
    for i in range(1, orgs + 1):
        admin = new_account()
        write_keystore(admin, directory / f"org-{i}-admin.json", password)
        chain.fund(admin.address, FUNDING_WEI)
        admins.append(admin)
        members.append({"name": _org_name(i), "roles": "provider,consumer", "admin": admin.address})
    genesis = directory / "genesis.json"
    genesis.write_text(json.dumps(genesis_document(members, 50, dev=True), indent=2) + "\n")
    manifest = directory / "manifest.json"
    ns = argparse.Namespace
    with redirect_stdout(sys.stderr):
        deploy_command(
            ns(chain=url, genesis=genesis, keystore=None, dev_account=True, out=manifest)
        )
    deployment = Deployment.load(manifest)
    nodes = []
    for i in range(1, orgs + 1):
        node_dir = directory / f"org-{i}"
        api = f"127.0.0.1:{free_port()}"
        peer = f"127.0.0.1:{free_port()}"
        with redirect_stdout(sys.stderr):
            node_init(
                ns(dir=node_dir, name=_org_name(i), chain=url, manifest=manifest,
                   peer_listen=peer, peer_endpoint=None, api_listen=api, database=None,
                   password_env=PASSWORD_ENV)
            )  # fmt: skip
            node_register(
                ns(config=node_dir / CONFIG_NAME,
                   admin_keystore=directory / f"org-{i}-admin.json",
                   admin_password_env=PASSWORD_ENV)
            )  # fmt: skip
        config = NodeConfig.load(node_dir / CONFIG_NAME)
        node = read_keystore(config.keystore, password)
        chain.fund(node.address, FUNDING_WEI)
        nodes.append(
            {
                "org": _org_name(i),
                "orgId": hex32(name_id("org", _org_name(i))),
                "node": node.address,
                "config": str(node_dir / CONFIG_NAME),
                "api": f"http://{api}",
                "adminKeystore": str(directory / f"org-{i}-admin.json"),
            }
        )
    _approve_algorithms(chain, deployment, admins)
    return {"chain": url, "manifest": str(manifest), "passwordEnv": PASSWORD_ENV, "nodes": nodes}


def _approve_algorithms(chain: Chain, deployment: Deployment, admins: list[Any]) -> None:
    """This build's algorithms, proposed by the first admin and approved by the second."""
    from node.process import ALGORITHMS

    first = Clients.bind(chain, deployment, Sender(chain, admins[0]))
    second = Clients.bind(chain, deployment, Sender(chain, admins[1]))
    for module in ALGORITHMS:
        package = package_of(module)
        first.algorithms.propose(
            package.digest,
            package.name,
            package.version,
            AlgorithmKind(package.kind),
        )
        second.algorithms.approve(package.digest)


def _wait_healthy(api: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise InvalidInput("node", f"the node serving {api} exited with {proc.returncode}")
        try:
            if httpx.get(f"{api}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise InvalidInput("node", f"the node serving {api} did not start in time")
        time.sleep(0.2)


def dev_up(args: argparse.Namespace) -> int:
    if args.orgs < 2:
        raise InvalidInput("orgs", "at least 2: approving an algorithm takes two organisations")
    directory: Path = args.dir
    if directory.exists() and any(directory.iterdir()):
        raise InvalidInput("dir", f"{directory} is not empty; give a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    with ExitStack() as stack:
        url = stack.enter_context(running_anvil())
        summary = set_up(url, directory, args.orgs)
        procs: list[subprocess.Popen[bytes]] = []

        def stop_nodes() -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

        stack.callback(stop_nodes)
        for node in summary["nodes"]:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "scripts.cli",
                        "node",
                        "run",
                        "--config",
                        node["config"],
                    ],
                    cwd=Path(__file__).resolve().parent.parent,
                    stdout=subprocess.DEVNULL,
                )
            )
        for node, proc in zip(summary["nodes"], procs, strict=True):
            _wait_healthy(node["api"], proc)
        (directory / "consortium.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        first = summary["nodes"][0]["config"]
        kept = directory / "key-password"
        where = f"{kept}" if kept.exists() else f"${PASSWORD_ENV}"
        print(
            f"ready: {args.orgs} nodes on {url} (keystore password: {where}); "
            f"try: provnet org list --config {first} ; Ctrl-C stops everything",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        while not stop.is_set():
            if any(proc.poll() is not None for proc in procs):
                print("a node process exited; stopping the rest", file=sys.stderr)
                return 1
            stop.wait(0.5)
    return 0
