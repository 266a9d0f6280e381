"""The consortium demo: two banks and a regulator, one audited job, end to end.

Runs on the embedded chain in one process: deploy, register nodes, approve the
(placeholder) algorithm by vote, register one dataset per organisation from generated
CSV files, grant access, run one task through its on-chain lifecycle, then replay the
chain as the auditor would and print every verification check.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from auditor.replay import task_history
from auditor.verifier import verify_task
from ledger.canonical import digest_json
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import dataset_id_for, name_id, task_id_for
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender
from ledger.transcript import Entry
from node.algorithms import digest_placeholder
from node.algorithms.package import package_of
from node.datasets import import_csv
from node.identity import new_tls_identity
from node.participant import HeldDataset, TaskParticipant

FUNDING = 10**20
ORGS = (
    ("Bank A", int(Role.PROVIDER | Role.CONSUMER)),
    ("Bank B", int(Role.PROVIDER | Role.CONSUMER)),
    ("Regulator", int(Role.REGULATOR | Role.PROVIDER)),
)


@dataclass(frozen=True)
class ScenarioResult:
    report: dict[str, Any]
    deployment: Deployment
    admins: dict[str, Clients]  # clients acting as each organisation's admin
    nodes: dict[str, Clients]  # clients acting as each organisation's node
    transcripts: dict[str, list[Entry]]  # node address -> its evidence transcript


def short(value: bytes) -> str:
    return "0x" + value.hex()[:16] + "..."


def write_csv(path: Path, seed: int, rows: int) -> None:
    """A synthetic account table: id, balance in cents, flagged-for-fraud."""
    rng = random.Random(seed)
    lines = ["account_id,balance_cents,flagged"]
    for _ in range(rows):
        lines.append(
            f"ACC{rng.randrange(10**8):08d},{rng.randrange(-5000, 10**7)},{rng.random() < 0.05:d}"
        )
    path.write_text("\n".join(lines) + "\n")


def run_demo(as_json: bool = False) -> int:
    """`provnet demo`: the scenario on a fresh embedded chain; exit 0 only if verified."""
    say: Callable[[str], None] = (lambda _: None) if as_json else print
    chain = Chain.start_embedded()
    say(f"chain: embedded eth-tester (py-evm), chain id {chain.chain_id}")
    report = run_scenario(chain, say).report
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        say("auditor verification:")
        for c in report["checks"]:
            say(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['name']}: {c['detail']}")
        say(f"verified: {report['verified']}")
    return 0 if report["verified"] else 1


def run_scenario(
    chain: Chain,
    say: Callable[[str], None],
    sender_for: Callable[[Chain, LocalAccount], Sender] = Sender,
) -> ScenarioResult:
    """Two banks and a regulator run one placeholder job; returns the verification report.

    `sender_for` lets a benchmark observe every transaction (gas per function).
    """

    deployer = new_account()
    chain.fund(deployer.address, FUNDING)
    admins = {name: new_account() for name, _ in ORGS}
    nodes = {name: new_account() for name, _ in ORGS}
    for account in [*admins.values(), *nodes.values()]:
        chain.fund(account.address, FUNDING)
    org_ids = {name: name_id("org", name) for name, _ in ORGS}
    genesis = [GenesisMember(org_ids[n], n, roles, admins[n].address) for n, roles in ORGS]
    deployment = deploy(chain, sender_for(chain, deployer), Governance.dev(50), genesis)
    say(f"deployed 6 contracts; Consortium at {deployment.address('Consortium')}")

    admin_clients = {
        n: Clients.bind(chain, deployment, sender_for(chain, a)) for n, a in admins.items()
    }
    node_clients = {
        n: Clients.bind(chain, deployment, sender_for(chain, a)) for n, a in nodes.items()
    }
    for i, (name, _) in enumerate(ORGS):
        tls = new_tls_identity(f"{name} node")
        admin_clients[name].consortium.register_node(
            nodes[name].address, f"127.0.0.1:{7001 + i}", tls.cert_sha256
        )
        say(f"{name}: node {nodes[name].address} registered (TLS cert {short(tls.cert_sha256)})")

    package = package_of(digest_placeholder)
    admin_clients["Bank A"].algorithms.propose(
        package.digest, package.name, package.version, AlgorithmKind.OTHER
    )
    admin_clients["Bank B"].algorithms.approve(package.digest)
    say(
        f"algorithm {package.name} (PLACEHOLDER, computes nothing) approved {short(package.digest)}"
    )

    participants = {
        n: TaskParticipant.with_algorithms(node_clients[n], nodes[n].address, [digest_placeholder])
        for n, _ in ORGS
    }
    dataset_ids = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (name, _) in enumerate(ORGS):
            path = Path(tmp) / f"{name.replace(' ', '_').lower()}.csv"
            write_csv(path, seed, 200)
            data = import_csv(path)
            dataset_name = name_id("dataset", f"{name}/accounts")
            dataset_id = dataset_id_for(org_ids[name], dataset_name)
            admin_clients[name].datasets.register(
                dataset_name,
                DatasetVersion(data.merkle_root, data.row_count, data.schema_digest, 3),
                f"file://{path.name}",
            )
            participants[name].hold(HeldDataset(dataset_id, 1, data))
            dataset_ids[name] = dataset_id
            say(
                f"{name}: dataset {path.name} registered, {data.row_count} rows, "
                f"root {short(data.merkle_root)}"
            )

    purpose = name_id("purpose", "fraud-analytics")
    not_after = int(chain.w3.eth.get_block("latest")["timestamp"]) + 86_400
    grants = {
        name: admin_clients[name].authorizations.grant(
            dataset_ids[name], org_ids["Bank A"], purpose, not_after, 3, package.digest
        )
        for name in ("Bank B", "Regulator")
    }
    say("grants: Bank B and the Regulator allow Bank A 3 uses for fraud-analytics")

    request_id = name_id("task", f"demo-{time.time_ns()}")
    task_id = task_id_for(org_ids["Bank A"], request_id)
    params_digest = digest_json("task-params", {})
    slots = [
        Participant(nodes["Bank A"].address, dataset_ids["Bank A"], 1),
        Participant(nodes["Bank B"].address, dataset_ids["Bank B"], 1, grants["Bank B"]),
        Participant(nodes["Regulator"].address, dataset_ids["Regulator"], 1, grants["Regulator"]),
    ]
    deadline = int(chain.w3.eth.get_block("latest")["timestamp"]) + 3_600
    node_clients["Bank A"].tasks.create(request_id, package.digest, params_digest, deadline, slots)
    say(f"task {short(task_id)} created by Bank A")
    for participant in participants.values():
        if not participant.accept_or_refuse(task_id):
            raise RuntimeError("a participant refused the demo task")
    for participant in participants.values():
        participant.anchor_input(task_id)
    for participant in participants.values():
        participant.run_placeholder(task_id)
    state = node_clients["Bank A"].tasks.state(task_id)
    say(f"task state on chain: {state.name}")

    history = task_history(chain, deployment, task_id)
    transcripts = {p.address: p.transcripts[task_id].entries for p in participants.values()}
    checks = verify_task(history, transcripts)
    report = {
        "task": "0x" + task_id.hex(),
        "chainId": chain.chain_id,
        "state": state.name,
        "algorithm": {
            "name": package.name,
            "digest": "0x" + package.digest.hex(),
            "placeholder": True,
        },
        "checks": [c.to_json() for c in checks],
        "verified": all(c.passed for c in checks),
        "deployment": deployment.to_json(),
    }
    return ScenarioResult(report, deployment, admin_clients, node_clients, transcripts)
