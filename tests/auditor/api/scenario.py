"""A small consortium history on anvil for the API tests, and its index.

Three organisations (bank-a, bank-b, regulator; one node each), the algorithm ``psi``
approved, one dataset per organisation, and four tasks created by bank-a:

- ``done``: bank-a + bank-b (under bank-b's grant), completed;
- ``failed``: bank-a + regulator (under the regulator's grant), accepted by the
  regulator's node, which then reports ``GROUP_TOO_SMALL``;
- ``waiting``: bank-a + bank-b, created only;
- ``solo``: bank-a alone, created only (no grant).

bank-b also gives a second grant that it revokes, a third whose uses (4 of 10) it
settles in one call as a metered service does, and anchors three AnchorLog checkpoints.
bank-b took part in ``done`` and ``waiting`` only: the member-scoping tests look for
``failed`` and ``solo`` as bank-b.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from auditor.index.follower import Follower
from auditor.index.rpc import Rpc
from auditor.index.store import IndexStore
from ledger import transactions
from ledger.chain import Chain
from ledger.clients.tasks import Participant, Reason
from ledger.ids import name_id, task_id_for
from tests.anvil import running_anvil
from tests.conftest import Consortium, build_consortium
from tests.contracts.helpers import (
    ALGO,
    EVIDENCE,
    HOUR,
    PARAMS,
    RESULT_1,
    ZERO32,
    Dataset,
    approve_algorithm,
    make_grant,
    now,
    register_dataset,
)

LOG_NAME = name_id("log", "api-test")
TICK = 60  # seconds between the phases of the history


@dataclass
class History:
    url: str
    consortium: Consortium
    tasks: dict[str, bytes] = field(default_factory=dict)  # by scenario name
    datasets: dict[str, Dataset] = field(default_factory=dict)  # by owner org
    grants: dict[str, bytes] = field(default_factory=dict)  # by label

    @property
    def chain(self) -> Chain:
        return self.consortium.chain

    def index_into(self, url: str, page_size: int = 25) -> IndexStore:
        """A new index of the chain as it is now, at ``url``."""
        rpc = Rpc(self.url)
        try:
            store = IndexStore(url)
            Follower(
                rpc, store, self.consortium.deployment, confirmations=0, page_size=page_size
            ).catch_up()
        finally:
            rpc.close()
        return store


def _create(h: History, label: str, seats: list[tuple[str, bytes]]) -> bytes:
    """bank-a creates a task over one node per (org, grant) seat."""
    c = h.consortium
    creator = c.orgs["bank-a"]
    request_id = name_id("task", label)
    participants = [
        Participant(c.orgs[org].node.address, h.datasets[org].dataset_id, 1, grant)
        for org, grant in seats
    ]
    creator.clients.tasks.create(request_id, ALGO, PARAMS, now(c) + HOUR, participants)
    task_id = task_id_for(creator.org_id, request_id)
    h.tasks[label] = task_id
    return task_id


def _tick(h: History, seconds: int = TICK) -> None:
    """Let the chain's clock jump: each phase of the history gets its own block times,
    so "at or before time T" questions have one answer (blocks mined within one second
    share a timestamp)."""
    h.chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]


def build(h: History) -> None:
    c = h.consortium
    approve_algorithm(c)
    for org in ("bank-a", "bank-b", "regulator"):
        h.datasets[org] = register_dataset(c.orgs[org], f"{org}-data")
    h.grants["bank-b"] = make_grant(c, "bank-b", h.datasets["bank-b"].dataset_id, max_uses=3)
    h.grants["regulator"] = make_grant(
        c, "regulator", h.datasets["regulator"].dataset_id, max_uses=1
    )
    _tick(h)
    done = _create(h, "done", [("bank-a", ZERO32), ("bank-b", h.grants["bank-b"])])
    for org in ("bank-a", "bank-b"):
        c.orgs[org].node_clients.tasks.accept(done)
    for org in ("bank-a", "bank-b"):
        c.orgs[org].node_clients.tasks.anchor_input(done, h.datasets[org].root)
    for org in ("bank-a", "bank-b"):
        c.orgs[org].node_clients.tasks.submit_result(done, RESULT_1, EVIDENCE)
    _tick(h)
    failed = _create(h, "failed", [("bank-a", ZERO32), ("regulator", h.grants["regulator"])])
    c.orgs["regulator"].node_clients.tasks.accept(failed)
    c.orgs["regulator"].node_clients.tasks.report_failure(failed, Reason.GROUP_TOO_SMALL)
    _tick(h)
    _create(h, "waiting", [("bank-a", ZERO32), ("bank-b", h.grants["bank-b"])])
    _tick(h)
    _create(h, "solo", [("bank-a", ZERO32)])
    h.grants["revoked"] = make_grant(c, "bank-b", h.datasets["bank-b"].dataset_id, max_uses=2)
    _tick(h)
    c.orgs["bank-b"].clients.authorizations.revoke(h.grants["revoked"])
    _tick(h)
    # a metered service's grant (anonymous lookups): bank-b's node settles a block of 4
    h.grants["metered"] = make_grant(c, "bank-b", h.datasets["bank-b"].dataset_id, max_uses=10)
    c.orgs["bank-b"].node_clients.authorizations.settle_uses(
        h.grants["metered"], 4, name_id("settlement", "day-1")
    )
    _tick(h)
    anchors = c.orgs["bank-b"].node_clients.anchors
    for size in (3, 7, 12):
        anchors.append(LOG_NAME, size, name_id("root", str(size)))


@contextmanager
def running_history() -> Iterator[History]:
    transactions.reset_nonces()
    with running_anvil() as url:
        history = History(url, build_consortium(Chain.connect(url)))
        build(history)
        yield history
    transactions.reset_nonces()
