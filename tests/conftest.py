"""Shared fixtures: a fresh embedded chain with the six contracts and a small consortium.

The deployment is made once per session and every test runs on an eth-tester snapshot
reverted afterwards, so tests are independent but do not pay for a deployment each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import name_id
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender

FUNDING = 10**20


@dataclass
class Org:
    """A consortium member in tests: its id, admin account and one node account."""

    name: str
    org_id: bytes
    roles: int
    admin: LocalAccount
    node: LocalAccount
    clients: Clients  # acting as the admin
    node_clients: Clients  # acting as the node


@dataclass
class Consortium:
    chain: Chain
    deployment: Deployment
    deployer: LocalAccount
    orgs: dict[str, Org]

    def clients_for(self, account: LocalAccount) -> Clients:
        return Clients.bind(self.chain, self.deployment, Sender(self.chain, account))

    def new_funded_account(self) -> LocalAccount:
        account = new_account()
        self.chain.fund(account.address, FUNDING)
        return account


GENESIS = (
    ("bank-a", int(Role.PROVIDER | Role.CONSUMER)),
    ("bank-b", int(Role.PROVIDER | Role.CONSUMER)),
    ("regulator", int(Role.REGULATOR | Role.PROVIDER)),
)
THRESHOLD_PERCENT = 50


def build_consortium(chain: Chain) -> Consortium:
    deployer = new_account()
    chain.fund(deployer.address, FUNDING)
    accounts = {}
    for name, _ in GENESIS:
        admin, node = new_account(), new_account()
        chain.fund(admin.address, FUNDING)
        chain.fund(node.address, FUNDING)
        accounts[name] = (admin, node)
    genesis = [
        GenesisMember(name_id("org", name), name, roles, accounts[name][0].address)
        for name, roles in GENESIS
    ]
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(THRESHOLD_PERCENT), genesis)
    orgs = {}
    for (name, roles), member in zip(GENESIS, genesis, strict=True):
        admin, node = accounts[name]
        clients = Clients.bind(chain, deployment, Sender(chain, admin))
        clients.consortium.register_node(
            node.address, f"{name}.example:7000", name_id("cert", name)
        )
        orgs[name] = Org(
            name,
            member.org_id,
            roles,
            admin,
            node,
            clients,
            Clients.bind(chain, deployment, Sender(chain, node)),
        )
    return Consortium(chain, deployment, deployer, orgs)


@pytest.fixture(scope="session")
def _embedded_consortium() -> Consortium:
    return build_consortium(Chain.start_embedded())


@pytest.fixture
def consortium(_embedded_consortium: Consortium) -> Iterator[Consortium]:
    """The session consortium, rolled back to its post-setup state after the test."""
    w3 = _embedded_consortium.chain.w3
    snapshot = w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
    try:
        yield _embedded_consortium
    finally:
        w3.provider.ethereum_tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]
        from ledger import transactions

        transactions.reset_nonces()


@pytest.fixture
def anvil_url() -> Iterator[str]:
    """A real anvil node on a random free port of 127.0.0.1, stopped after the test."""
    from tests.anvil import running_anvil

    with running_anvil() as url:
        yield url
