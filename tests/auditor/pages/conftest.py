"""Real auditors for the pages' tests.

``site`` (the TestClient tests): anvil, the consortium, tasks, the index, the app.

Built once for the package (the chain and its index are the expensive part; both test
modules only read them, except the verification a test runs, which only adds a stored
verification). On the chain:
- ``task``: created by bank-a with seats of bank-a and bank-b, run to completion;
- ``refused``: created by bank-a with one seat, the regulator's node, which refuses it
  (GROUP_TOO_SMALL): a task bank-b has no part in, and a refusal for the refusals page;
- an organisation proposed under the name ``<script>alert(1)</script>``, to show that
  names render inert.

``service_scenario`` (the browser test): SERVICE's scenario (tests/auditor/service_scenario.py),
a task completed by real nodes whose evidence the regulator's node fetches over gRPC +
mutual TLS, so the page runs the verification exactly as the service does: the
package fixture ``service_scenario`` of tests/auditor/conftest.py, shared with the
service's tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from auditor.api.app import create_app
from auditor.api.context import ServiceContext
from auditor.auth.sessions import SessionStore
from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from auditor.querylog.log import QueryLog
from auditor.service.verification import TaskVerifier
from ledger import transactions
from ledger.chain import Chain
from ledger.clients.tasks import Reason
from ledger.ids import name_id
from ledger.roles import Role
from scripts.audit_fetch_command import RegulatorNode
from tests.anvil import running_anvil
from tests.auditor.service_scenario import Scenario
from tests.conftest import Consortium, build_consortium
from tests.contracts.helpers import TaskSetup, build_task

SCRIPT_NAME = "<script>alert(1)</script>"


@dataclass
class Site:
    url: str  # the anvil JSON-RPC URL
    consortium: Consortium
    task: TaskSetup
    refused: TaskSetup
    script_org: bytes
    store: IndexStore
    ctx: ServiceContext

    def app(self, audience: str) -> FastAPI:
        """An auditor app over the shared index, with its own sessions whose audience is
        the base URL its clients use."""
        sessions = SessionStore(
            self.store, self.ctx.chain_id, self.ctx.consortium_address, audience
        )
        return create_app(replace(self.ctx, sessions=sessions))


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    transactions.reset_nonces()
    with running_anvil() as url:
        chain = Chain.connect(url)
        c = build_consortium(chain)
        task = build_task(c, ("bank-a", "bank-b"), name="pages-task")
        task.run()
        task.submit_all()
        refused = build_task(c, ("regulator",), name="pages-refused", algorithm=task.algorithm)
        refused.seat("regulator").clients.tasks.refuse(refused.task_id, Reason.GROUP_TOO_SMALL)
        script_org = name_id("org", "script-org")
        c.orgs["bank-a"].clients.consortium.propose_member(
            script_org, SCRIPT_NAME, int(Role.CONSUMER), c.new_funded_account().address
        )
        db = tmp_path_factory.mktemp("pages") / "index.db"
        store = IndexStore(f"sqlite:///{db}")
        Follower(Rpc(url), store, c.deployment, confirmations=0, page_size=500).catch_up()
        consortium_address = c.deployment.address("Consortium")
        ctx = ServiceContext(
            store=store,
            sessions=SessionStore(store, chain.chain_id, consortium_address, "unset"),
            query_log=QueryLog(store),
            verifier=TaskVerifier(
                chain, c.deployment, None, CryptoSigner(Ed25519PrivateKey.generate())
            ),
            chain_id=chain.chain_id,
            consortium_address=consortium_address,
            version="test",
        )
        yield Site(url, c, task, refused, script_org, store, ctx)
        store.close()
    transactions.reset_nonces()


def scenario_app(s: Scenario, audience: str) -> tuple[FastAPI, ServiceContext]:
    """The auditor as ``provnet auditor run`` wires it over the scenario: its index, and
    a verifier fetching evidence as the regulator's node."""
    regulator = RegulatorNode(s.regulator_config, timeout=5.0, settle=5.0)
    consortium_address = s.consortium.deployment.address("Consortium")
    ctx = ServiceContext(
        store=s.index,
        sessions=SessionStore(s.index, s.chain.chain_id, consortium_address, audience),
        query_log=QueryLog(s.index),
        verifier=TaskVerifier(
            regulator.chain,
            regulator.deployment,
            regulator,
            CryptoSigner(Ed25519PrivateKey.generate()),
        ),
        chain_id=s.chain.chain_id,
        consortium_address=consortium_address,
        version="test",
    )
    return create_app(ctx), ctx
