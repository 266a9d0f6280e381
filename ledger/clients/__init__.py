"""One typed client per contract, and `Clients`, the bundle a deployment hands out."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.chain import Chain
from ledger.clients.algorithms import AlgorithmRegistryClient
from ledger.clients.anchor_log import AnchorLogClient
from ledger.clients.authorizations import AuthorizationRegistryClient
from ledger.clients.consortium import ConsortiumClient
from ledger.clients.datasets import DatasetRegistryClient
from ledger.clients.tasks import TaskRegistryClient
from ledger.deployment import Deployment, ManifestError
from ledger.transactions import Sender


@dataclass(frozen=True)
class Clients:
    consortium: ConsortiumClient
    algorithms: AlgorithmRegistryClient
    datasets: DatasetRegistryClient
    authorizations: AuthorizationRegistryClient
    tasks: TaskRegistryClient
    anchors: AnchorLogClient

    @classmethod
    def bind(cls, chain: Chain, deployment: Deployment, sender: Sender | None = None) -> Clients:
        """Clients for a deployment, refusing one made for another chain."""
        if deployment.chain_id != chain.chain_id:
            raise ManifestError(
                "chainId",
                f"manifest is for chain {deployment.chain_id}, node reports {chain.chain_id}",
            )
        return cls(
            consortium=ConsortiumClient(chain, deployment.address("Consortium"), sender),
            algorithms=AlgorithmRegistryClient(
                chain, deployment.address("AlgorithmRegistry"), sender
            ),
            datasets=DatasetRegistryClient(chain, deployment.address("DatasetRegistry"), sender),
            authorizations=AuthorizationRegistryClient(
                chain, deployment.address("AuthorizationRegistry"), sender
            ),
            tasks=TaskRegistryClient(chain, deployment.address("TaskRegistry"), sender),
            anchors=AnchorLogClient(chain, deployment.address("AnchorLog"), sender),
        )

    @property
    def account(self) -> str:
        """The address these clients send from."""
        if self.tasks.sender is None:
            raise RuntimeError("read-only clients have no account")
        return str(self.tasks.sender.address)
