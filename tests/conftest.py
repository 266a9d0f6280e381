"""Shared fixtures: a fresh embedded chain with the six contracts and a small consortium.

The deployment is made once per session and every test runs on an eth-tester snapshot
reverted afterwards, so tests are independent but do not pay for a deployment each.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
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


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that uses a fixture shared beyond one test: the package
    where a package-scoped fixture is defined (the outermost, if several), else its
    module for a module- or class-scoped one; None when every fixture it uses is per
    test or per session (a session fixture is built once per worker whatever the
    grouping)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    used = [
        defs[-1]
        for name, defs in info.name2fixturedefs.items()
        if defs and name in item.fixturenames
    ]
    packages = [d.baseid for d in used if d.scope == "package"]
    if packages:
        return min(packages, key=len) or "."
    if any(d.scope in ("module", "class") for d in used):
        return item.nodeid.split("::", 1)[0]
    return None


def _xdist_group_name(item: pytest.Item) -> str | None:
    """The group xdist's loadgroup derives from an item's ``xdist_group`` marks."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Keep the tests that share a module- or package-scoped fixture on one xdist worker.

    The suite runs with ``--dist loadgroup`` (see ``pyproject.toml``): a test without an
    ``xdist_group`` mark is scheduled on its own, so tests that share an expensive
    fixture (a multi-process consortium, an anvil chain, the demo's run) would otherwise
    be spread over the workers, each building it again. Grouped, they run on one
    worker in file order, and xdist hands out the largest groups first, so the long
    end-to-end modules do not end up last on one worker while the other idles. A test
    marked with an ``xdist_group`` of its own keeps it.

    On an xdist worker, loadgroup works by appending ``@<group>`` to each marked test's
    node id. pytest-xdist 3.8 writes it to ``item._nodeid``, which pytest 9 no longer
    reads (the id lives in ``item._id``), so every group would silently fall apart into
    single tests: the suffix is applied here after xdist's hook, where it is missing.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    result = yield
    if getattr(config.option, "loadgroup", False):
        from _pytest.nodeid import NodeId

        for item in items:
            name = _xdist_group_name(item)
            if name is not None and not item.nodeid.endswith(f"@{name}"):
                item._id = NodeId.parse(f"{item.nodeid}@{name}")
    return result


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
