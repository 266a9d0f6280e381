"""Fixtures for the sign-in and query-log tests: one anvil consortium for the package,
indexed once per database backend, with the members an attacker would try to be.

On the chain (``build_consortium`` plus two changes an attacker cares about):
- bank-a, bank-b (PROVIDER|CONSUMER) and regulator (REGULATOR|PROVIDER), each with an
  admin and a node key;
- an extra node of bank-a, registered then revoked;
- bank-b suspended by the others' vote.
The index of that chain is what ``SessionStore`` reads; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import delete

from auditor.index import schema
from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from ledger import transactions
from ledger.chain import Chain
from tests.anvil import running_anvil
from tests.conftest import Consortium, build_consortium
from tests.contracts.helpers import add_node, suspend
from tests.node.conftest import BACKENDS, database_url

AUDIENCE = "http://auditor.test"


@dataclass
class World:
    url: str
    consortium: Consortium
    revoked_node: LocalAccount

    def account(self, who: str) -> LocalAccount:
        """`bank-a/admin`, `regulator/node`, ..."""
        org, role = who.split("/")
        member = self.consortium.orgs[org]
        return member.admin if role == "admin" else member.node

    @property
    def chain_id(self) -> int:
        return self.consortium.deployment.chain_id

    @property
    def consortium_address(self) -> str:
        return str(self.consortium.deployment.address("Consortium"))


@pytest.fixture(scope="package")
def world() -> Iterator[World]:
    transactions.reset_nonces()
    with running_anvil() as url:
        c = build_consortium(Chain.connect(url))
        extra = add_node(c, "bank-a")
        c.orgs["bank-a"].clients.consortium.revoke_node(extra.address)
        suspend(c, "bank-b")
        yield World(url, c, extra.account)
    transactions.reset_nonces()


@dataclass
class Indexed:
    backend: str
    store: IndexStore
    follower: Follower

    def catch_up(self) -> None:
        self.follower.catch_up()


@pytest.fixture(scope="package", params=BACKENDS)
def indexed(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Indexed]:
    """The world's chain indexed into a fresh database of each backend."""
    backend = str(request.param)
    for url in database_url(backend, tmp_path_factory.mktemp(f"index-{backend}")):
        store = IndexStore(url)
        follower = Follower(Rpc(world.url), store, world.consortium.deployment, confirmations=0)
        follower.catch_up()
        yield Indexed(backend, store, follower)
        follower.rpc.close()
        store.close()


@pytest.fixture
def empty_store(indexed: Indexed) -> IndexStore:
    """The backend's database with an empty query log (the index tables stay: migrating
    a fresh PostgreSQL schema per test would cost more than the tests themselves)."""
    with indexed.store.engine.begin() as conn:
        conn.execute(delete(schema.query_log_checkpoints))
        conn.execute(delete(schema.query_log))
    return indexed.store


class Clock:
    """A settable clock for the stores' ``clock=`` parameter (expiry without sleeping)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
