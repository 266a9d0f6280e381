"""Nodes of a small consortium in one process: real chain (eth-tester), real SQLite stores,
real protocols, in-memory transport. Shared by the runner and output-privacy tests."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.ids import dataset_id_for, hex32, name_id, task_id_for
from ledger.task_params import ParamsEnvelope
from node.algorithms import stats
from node.algorithms.package import package_of
from node.channel import Channel, InMemoryNetwork
from node.dataset_store import DatasetStore
from node.datasets import import_csv
from node.evidence.store import EvidenceStore
from node.runner import TaskRunner
from node.service import NodeService
from node.state import TaskStateStore
from node.task_prechecks import pending_time
from tests.conftest import Consortium

COLUMNS = [
    {"name": "account", "type": "string"},
    {"name": "balance", "type": "integer"},
    {"name": "segment", "type": "string"},
]
SEGMENTS = ("retail", "business", "private", "other")


@dataclass
class Node:
    name: str
    runner: TaskRunner
    state: TaskStateStore
    evidence: EvidenceStore
    clients: Clients


class Mesh:
    """One in-memory network per task, shared by the nodes of one test."""

    def __init__(self) -> None:
        self.networks: dict[bytes, InMemoryNetwork] = {}

    def opener(self, me: str) -> Callable[[bytes, list[str]], Channel]:
        def open_channel(task_id: bytes, peers: list[str]) -> Channel:
            network = self.networks.setdefault(task_id, InMemoryNetwork(sorted([me, *peers])))
            return network.channel(me)

        return open_channel


def write_rows(path: Path, seed: int, rows: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    data = [
        {
            "account": f"ACC{seed}-{i}",
            "balance": rng.randrange(-500, 5000),
            "segment": SEGMENTS[i % len(SEGMENTS)],
        }
        for i in range(rows)
    ]
    path.write_text(
        "account,balance,segment\n"
        + "".join(f"{r['account']},{r['balance']},{r['segment']}\n" for r in data)
    )
    return data


@dataclass
class Network:
    consortium: Consortium
    tmp: Path
    mesh: Mesh = field(default_factory=Mesh)
    nodes: dict[str, Node] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)
    service: NodeService | None = None
    # Columns the providers' datasets mark as identifiers: task parameters describe a
    # provider's registered schema exactly (the creating node checks its digest).
    identifiers: set[str] = field(default_factory=set)

    @property
    def creator(self) -> NodeService:
        assert self.service is not None
        return self.service

    def add_node(
        self,
        name: str,
        org: str,
        account: LocalAccount,
        clients: Clients,
        *,
        rows: int = 0,
        seed: int = 0,
        classification: int = 2,
        identifier_columns: Sequence[str] = (),
        max_uses: int = 20,
        protocol_timeout: float = 20.0,
    ) -> Node:
        """A node of ``org``; with ``rows`` it holds a dataset and grants bank-a its use."""
        orgs = self.consortium.orgs
        base = self.tmp / name
        datasets = DatasetStore(base / "datasets")
        if rows:
            self.identifiers.update(identifier_columns)
            self.rows += write_rows(base / "rows.csv", seed, rows)
            data = import_csv(base / "rows.csv", identifier_columns=identifier_columns)
            dataset_name = name_id("dataset", f"{name}/accounts")
            dataset_id = dataset_id_for(orgs[org].org_id, dataset_name)
            datasets.save(dataset_id, 1, data, classification)
            clients.datasets.register(
                dataset_name,
                DatasetVersion(
                    data.merkle_root, data.row_count, data.schema_digest, classification
                ),
            )
            now = int(self.consortium.chain.w3.eth.get_block("latest")["timestamp"])
            grant = orgs[org].clients.authorizations.grant(
                dataset_id,
                orgs["bank-a"].org_id,
                name_id("purpose", "stats"),
                now + 86_400,
                max_uses,
            )
            self.providers.append(
                {
                    "node": account.address,
                    "datasetId": hex32(dataset_id),
                    "datasetVersion": 1,
                    "grantId": hex32(grant),
                }
            )
        state = TaskStateStore(f"sqlite:///{base / 'state.db'}")
        evidence = EvidenceStore(f"sqlite:///{base / 'evidence.db'}")
        runner = TaskRunner(
            address=account.address,
            clients=clients,
            datasets=datasets,
            state=state,
            evidence=evidence,
            algorithms={package_of(stats).digest: stats},
            open_channel=self.mesh.opener(account.address),
            first_block=self.consortium.deployment.first_block,
            protocol_timeout=protocol_timeout,
            account=account,
        )
        node = Node(name, runner, state, evidence, clients)
        self.nodes[name] = node
        return node

    def described(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the providers' identifier marks on its columns (what an
        operator copies from `provnet dataset show`)."""
        columns = [
            {**c, "identifier": True} if c["name"] in self.identifiers else c
            for c in params["columns"]
        ]
        return {**params, "columns": columns}

    def create(self, request_id: str, params: dict[str, Any], valid_for: int = 3600) -> bytes:
        created = self.creator.create_task(
            request_id, stats.NAME, self.described(params), self.providers, valid_for
        )
        return bytes.fromhex(created["taskId"][2:])

    def create_unchecked(
        self, request_id: str, params: dict[str, Any], valid_for: int = 3600
    ) -> bytes:
        """The task a creator skipping `NodeService`'s pre-checks makes (a buggy or
        hostile consumer): straight to the contract, then the aggregator's local record.
        For tests of the providers' own refusals, which must hold regardless."""
        service = self.creator
        assert service.state is not None
        request_key = name_id("task", request_id)
        task_id = task_id_for(service.org_id, request_key)
        parsed = stats.StatsParams.from_json(self.described(params))
        envelope = ParamsEnvelope(parsed.to_json(), service.params_salt(task_id))
        slots = [Participant(service.clients.account)] + [
            Participant(
                p["node"],
                bytes.fromhex(p["datasetId"][2:]),
                p["datasetVersion"],
                bytes.fromhex(p["grantId"][2:]),
            )
            for p in self.providers
        ]
        now = pending_time(service.clients.tasks.chain.w3)
        service.clients.tasks.create(
            request_key, package_of(stats).digest, envelope.digest, now + valid_for, slots
        )
        service.state.ensure(task_id, role="aggregator", params=envelope.to_json())
        return task_id

    def drive(self, task_id: bytes, rounds: int = 60, only: Sequence[str] = ()) -> TaskState:
        nodes = [n for name, n in self.nodes.items() if not only or name in only]
        clients = self.creator.clients
        for _ in range(rounds):
            for node in nodes:
                node.runner.poll_once()
            state = clients.tasks.state(task_id)
            if state not in (TaskState.CREATED, TaskState.RUNNING):
                break
            for node in nodes:
                node.runner.join(0.2)
        for node in nodes:
            node.runner.join()
            node.runner.poll_once()
        return clients.tasks.state(task_id)

    def failure(self, task_id: bytes) -> tuple[Reason, str]:
        """The on-chain reason and reporter of a failed task."""
        from auditor.replay import task_history

        history = task_history(self.consortium.chain, self.consortium.deployment, task_id)
        failed = [e for e in history.task_events if e.name == "TaskFailed"]
        assert len(failed) == 1, [e.name for e in history.task_events]
        return Reason(int(failed[0].args["reasonCode"])), str(failed[0].args["reporter"])


def approve_stats(consortium: Consortium) -> None:
    digest = package_of(stats).digest
    orgs = consortium.orgs
    orgs["bank-a"].clients.algorithms.propose(digest, stats.NAME, stats.VERSION, AlgorithmKind.MPC)
    orgs["bank-b"].clients.algorithms.approve(digest)


def standard_network(
    consortium: Consortium,
    tmp: Path,
    rows_each: int = 80,
    classification: int = 2,
    identifier_columns: Sequence[str] = (),
    protocol_timeout: float = 20.0,
) -> Network:
    """bank-a consumes (aggregator, no data); bank-b and the regulator provide.

    ``protocol_timeout`` also bounds how long the aggregator waits for providers that
    refused at run time (a node process is woken by the chain's verdict instead).
    """
    approve_stats(consortium)
    net = Network(consortium, tmp)
    orgs = consortium.orgs
    net.add_node(
        "bank-a",
        "bank-a",
        orgs["bank-a"].node,
        orgs["bank-a"].node_clients,
        protocol_timeout=protocol_timeout,
    )
    for seed, name in enumerate(("bank-b", "regulator"), start=1):
        net.add_node(
            name,
            name,
            orgs[name].node,
            orgs[name].node_clients,
            rows=rows_each,
            seed=seed,
            classification=classification,
            identifier_columns=identifier_columns,
            protocol_timeout=protocol_timeout,
        )
    net.service = NodeService(
        orgs["bank-a"].node_clients,
        orgs["bank-a"].org_id,
        DatasetStore(tmp / "bank-a" / "datasets"),
        consortium.deployment.first_block,
        net.nodes["bank-a"].state,
        {stats.NAME: stats},
    )
    return net
