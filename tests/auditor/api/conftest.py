"""Fixtures of the API tests: one anvil history for the whole folder, indexed once into
SQLite (and once into PostgreSQL by the store tests), and the app over it.

Signing in goes through the real ``SessionStore`` and the real ``/v1/auth`` routes: an
organisation's admin key signs the EIP-712 challenge with eth-account.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from fastapi.testclient import TestClient

from auditor.api.app import create_app
from auditor.api.context import ServiceContext
from auditor.auth.client import sign_in
from auditor.auth.sessions import SessionStore
from auditor.index.store import IndexStore
from auditor.querylog.log import QueryLog
from tests.auditor.api.scenario import History, running_history

AUDIENCE = "http://testserver"


@pytest.fixture(scope="package")
def history() -> Iterator[History]:
    with running_history() as h:
        yield h


@pytest.fixture(scope="package")
def sqlite_index(
    history: History, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexStore]:
    store = history.index_into(f"sqlite:///{tmp_path_factory.mktemp('api') / 'index.db'}")
    yield store
    store.close()


@dataclass
class Api:
    app: FastAPI
    ctx: ServiceContext
    client: TestClient
    log: QueryLog
    tokens: dict[str, str] = field(default_factory=dict)

    def sign_in(self, account: LocalAccount) -> str:
        return sign_in(AUDIENCE, account, client=self.client)

    def headers(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"}

    def get(self, path: str, as_: str = "regulator", **params: Any) -> Any:
        """GET ``path`` signed in as the admin of the organisation ``as_``."""
        return self.client.get(path, params=params, headers=self.headers(as_))


def make_app(history: History, store: IndexStore) -> FastAPI:
    """The app over ``store``, as the service builds it (no verifier: SERVICE's part)."""
    c = history.consortium
    consortium = c.deployment.address("Consortium")
    ctx = ServiceContext(
        store=store,
        sessions=SessionStore(store, c.chain.chain_id, consortium, AUDIENCE),
        query_log=QueryLog(store),
        verifier=None,
        chain_id=c.chain.chain_id,
        consortium_address=consortium,
        version="test",
    )
    return create_app(ctx)


def make_api(history: History, store: IndexStore) -> Api:
    """The app over ``store``, with every organisation's admin signed in."""
    app = make_app(history, store)
    ctx = app.state.ctx
    api = Api(app, ctx, TestClient(app), ctx.query_log)
    for name, org in history.consortium.orgs.items():
        api.tokens[name] = api.sign_in(org.admin)
    return api


@pytest.fixture(scope="package")
def api(history: History, sqlite_index: IndexStore) -> Api:
    return make_api(history, sqlite_index)
