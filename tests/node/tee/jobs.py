"""A consortium running ``tee-join`` in one process, shared by the TEE task and audit tests.

bank-a creates tasks and hosts the enclave (the ``simulated`` backend); bank-b holds
balances and the regulator's organisation call counts, both keyed by account. Real chain
(eth-tester), real stores, real HPKE and signatures; the transport is in-memory
(``tests/node/runner_harness.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.replay import task_history
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import ATTESTATION_REFUSAL_CODES, Reason, TaskState
from ledger.ids import dataset_id_for, hex32, name_id
from node.algorithms import tee
from node.algorithms.package import package_of
from node.datasets import import_csv
from node.service import NodeService
from node.tee.settings import TeeTrust
from node.tee.simulated import (
    SIMULATED,
    SimulatedBackend,
    SimulatedVerifier,
    simulated_measurement,
)
from node.tee.verify import TrustPolicy
from tests.conftest import Consortium
from tests.node.runner_harness import Network

PARAMS = {"key": "account", "sum": ["balance", "calls"]}
ROWS = 60
PLATFORM = Ed25519PrivateKey.generate()


def owner_rows(seed: int) -> list[tuple[str, int]]:
    """Accounts 0..99 sampled per owner, so about a third are held by both."""
    rng = random.Random(seed)
    accounts = rng.sample(range(100), ROWS)
    return [(f"ACC{a:03d}", rng.randrange(-5_000, 500_000)) for a in accounts]


def add_owner(net: Network, org: str, column: str, scale: int, seed: int) -> list[tuple[str, int]]:
    consortium = net.consortium
    o = consortium.orgs[org]
    node = net.add_node(org, org, o.node, o.node_clients)
    rows = owner_rows(seed)
    path = net.tmp / org / f"{column}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{a},{v // 100}.{v % 100:02d}\n" if scale else f"{a},{v}\n" for a, v in rows)
    path.write_text(f"account,{column}\n{text}")
    imported = import_csv(path, identifier_columns=["account"])
    dataset_name = name_id("dataset", f"{org}/{column}")
    dataset_id = dataset_id_for(o.org_id, dataset_name)
    node.runner.datasets.save(dataset_id, 1, imported, 2)
    o.node_clients.datasets.register(
        dataset_name,
        DatasetVersion(imported.merkle_root, imported.row_count, imported.schema_digest, 2),
    )
    now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])
    grant = o.clients.authorizations.grant(
        dataset_id, consortium.orgs["bank-a"].org_id, name_id("purpose", "tee"), now + 86_400, 5
    )
    net.providers.append(
        {
            "node": o.node.address,
            "datasetId": hex32(dataset_id),
            "datasetVersion": 1,
            "grantId": hex32(grant),
        }
    )
    return rows


def plaintext_join(balances: list[tuple[str, int]], calls: list[tuple[str, int]]) -> dict[str, Any]:
    """The same figures computed directly from the rows, without the job's code."""
    b, c = dict(balances), dict(calls)
    both = sorted(set(b) & set(c))
    total = sum(b[a] for a in both)
    sign = "-" if total < 0 else ""
    return {
        "matched": len(both),
        "sums": {
            "balance": f"{sign}{abs(total) // 100}.{abs(total) % 100:02d}",
            "calls": sum(c[a] for a in both),
        },
        "suppressed": None,
    }


def trust_measurement(consortium: Consortium, module: ModuleType) -> bytes:
    """bank-a proposes the enclave's measurement, bank-b's vote carries it."""
    package = package_of(module)
    measurement = simulated_measurement(package)
    orgs = consortium.orgs
    proposal = orgs["bank-a"].clients.consortium.propose_measurement(measurement, package.digest)
    orgs["bank-b"].clients.consortium.vote(proposal)
    return measurement


def tee_network(
    consortium: Consortium, tmp: Path, backend: Any = None
) -> tuple[Network, dict[str, Any]]:
    digest = package_of(tee).digest
    orgs = consortium.orgs
    orgs["bank-a"].clients.algorithms.propose(digest, tee.NAME, tee.VERSION, AlgorithmKind.TEE)
    orgs["bank-b"].clients.algorithms.approve(digest)
    net = Network(consortium, tmp)
    host = net.add_node("bank-a", "bank-a", orgs["bank-a"].node, orgs["bank-a"].node_clients)
    balances = add_owner(net, "bank-b", "balance", 2, 1)
    calls = add_owner(net, "regulator", "calls", 0, 2)
    trust = TeeTrust(
        TrustPolicy(frozenset({SIMULATED})),
        {SIMULATED: SimulatedVerifier(frozenset({SimulatedBackend(PLATFORM).platform_public_key}))},
    )
    for node in net.nodes.values():
        node.runner.algorithms = {digest: tee}
        node.runner.tee_trust = trust
    host.runner.tee_backend = backend or SimulatedBackend(PLATFORM)
    net.service = NodeService(
        orgs["bank-a"].node_clients,
        orgs["bank-a"].org_id,
        host.runner.datasets,
        consortium.deployment.first_block,
        host.state,
        {tee.NAME: tee},
    )
    return net, plaintext_join(balances, calls)


def run(
    net: Network, request: str, params: dict[str, Any] | None = None
) -> tuple[bytes, TaskState]:
    created = net.creator.create_task(request, tee.NAME, params or PARAMS, net.providers, 3600)
    task_id = bytes.fromhex(created["taskId"][2:])
    return task_id, net.drive(task_id)


def refusals(consortium: Consortium, task_id: bytes) -> dict[str, tuple[int, bytes]]:
    history = task_history(consortium.chain, consortium.deployment, task_id)
    return {
        str(e.args["node"]).lower(): (int(e.args["reason"]), bytes(e.args["reportDigest"]))
        for e in history.task_events
        if e.name == "AttestationRefused"
    }


def assert_refused_by_every_owner(net: Network, task_id: bytes, reason: str) -> None:
    assert net.creator.clients.tasks.state(task_id) == TaskState.FAILED
    got = refusals(net.consortium, task_id)
    owners = {p["node"].lower() for p in net.providers}
    assert set(got) == owners, got
    assert {code for code, _ in got.values()} == {ATTESTATION_REFUSAL_CODES[reason]}, got
    assert net.failure(task_id)[0] == Reason.ATTESTATION_REFUSED
