"""Setup shared by the AuthorizationRegistry and TaskRegistry tests.

Everything here acts through the typed clients on the session `consortium` fixture
(three genesis orgs, one node each), so a test reads as the scenario it checks:
approve an algorithm, register datasets, grant their use, create a task, drive it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt

from ledger.artifacts import load_artifact
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant
from ledger.errors import ContractRevert
from ledger.ids import dataset_id_for, name_id, task_id_for
from ledger.transactions import Sender, raise_decoded
from tests.conftest import Consortium, Org

ZERO32 = bytes(32)
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
ZERO_ADDRESS = "0x" + "00" * 20

ALGO = name_id("algorithm", "psi-ecdh-v1")
ALGO_2 = name_id("algorithm", "psi-ecdh-v2")
PURPOSE = name_id("purpose", "aml-screening")
PARAMS = name_id("params", "default")
HOUR = 3600

# Two result digests so that tests (and the state machine) can make participants agree
# or disagree; evidence roots only need to be non-zero.
RESULT_1 = name_id("result", "one")
RESULT_2 = name_id("result", "two")
EVIDENCE = name_id("evidence", "transcript")


# ----------------------------------------------------------------------- fast senders


class FastSender(Sender):
    """A `Sender` that checks for a revert with one call instead of a gas search.

    eth-tester estimates gas by binary search, a dozen EVM runs per transaction, which
    made these tests several times slower. An `eth_call` on the pending block sees the
    same state and timestamp as the transaction will, so it raises the same custom
    error; the transaction is then sent with a fixed gas limit. Only the client-side
    preflight differs from `Sender`: what the contracts do is unchanged.
    """

    GAS = 5_000_000

    def transact(
        self, fn: ContractFunction | ContractConstructor, gas: int | None = None
    ) -> TxReceipt:
        if gas is None and isinstance(fn, ContractFunction):
            try:
                fn.call({"from": self.address}, block_identifier="pending")
            except Exception as exc:
                raise_decoded(exc)
                raise
            gas = self.GAS
        return super().transact(fn, gas)


# Bound clients per (chain, deployment, account), most recently used last. Binding costs
# about 16 ms (six web3 contract objects) and every test rebound six of them. Clients and
# senders hold no state of their own: nonces are kept in `ledger.transactions` and reset
# whenever the `consortium` fixture reverts its snapshot.
_BOUND: OrderedDict[tuple[int, int, str], tuple[Consortium, Clients]] = OrderedDict()
_BOUND_MAX = 64


def fast_clients(c: Consortium, account: LocalAccount) -> Clients:
    key = (id(c.chain), id(c.deployment), str(account.address))
    cached = _BOUND.get(key)
    if cached is not None and cached[0].chain is c.chain and cached[0].deployment is c.deployment:
        _BOUND.move_to_end(key)
        return cached[1]
    clients = Clients.bind(c.chain, c.deployment, FastSender(c.chain, account))
    _BOUND[key] = (c, clients)  # holding `c` keeps the ids in the key from being reused
    while len(_BOUND) > _BOUND_MAX:
        _BOUND.popitem(last=False)
    return clients


@pytest.fixture(autouse=True)
def _fast_senders(consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every org's clients and `consortium.clients_for` use `FastSender` during the test."""
    for org in consortium.orgs.values():
        monkeypatch.setattr(org, "clients", fast_clients(consortium, org.admin))
        monkeypatch.setattr(org, "node_clients", fast_clients(consortium, org.node))
    monkeypatch.setattr(consortium, "clients_for", lambda a: fast_clients(consortium, a))


# ---------------------------------------------------------------------------- reverts


def revert_args(exc: pytest.ExceptionInfo[ContractRevert]) -> dict[str, Any]:
    """A revert's decoded arguments, addresses checksummed whatever the decoder returns."""
    return {
        k: to_checksum_address(v) if isinstance(v, str) and _ADDRESS.match(v) else v
        for k, v in exc.value.arguments.items()
    }


# ------------------------------------------------------------------------ chain clock


def eth_tester(c: Consortium) -> Any:
    """The eth-tester instance behind the embedded chain (snapshots, time travel)."""
    return c.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]


def now(c: Consortium) -> int:
    """Timestamp of the latest mined block."""
    return int(c.chain.w3.eth.get_block("latest")["timestamp"])


def travel_to(c: Consortium, timestamp: int) -> None:
    """Make the next mined block carry `timestamp` (reverted with the test's snapshot)."""
    eth_tester(c).time_travel(timestamp)


# ------------------------------------------------------------------------- algorithms


def approve_algorithm(c: Consortium, digest: bytes = ALGO, name: str = "psi") -> bytes:
    """bank-a proposes, bank-b approves: 2 of 3 votes carry at the 50 % threshold."""
    c.orgs["bank-a"].clients.algorithms.propose(digest, name, "1.0", AlgorithmKind.OTHER)
    c.orgs["bank-b"].clients.algorithms.approve(digest)
    assert c.orgs["bank-a"].clients.algorithms.is_approved(digest)
    return digest


def propose_algorithm(c: Consortium, digest: bytes, name: str = "pending") -> bytes:
    """An algorithm left Proposed (one vote of the two needed)."""
    c.orgs["bank-a"].clients.algorithms.propose(digest, name, "1.0", AlgorithmKind.OTHER)
    assert not c.orgs["bank-a"].clients.algorithms.is_approved(digest)
    return digest


def deprecate_algorithm(c: Consortium, digest: bytes = ALGO) -> None:
    c.orgs["bank-a"].clients.algorithms.propose_deprecation(digest)
    c.orgs["bank-b"].clients.algorithms.vote_deprecation(digest)
    assert not c.orgs["bank-a"].clients.algorithms.is_approved(digest)


# ------------------------------------------------------------------------- membership


def suspend(c: Consortium, org_name: str) -> None:
    """Suspend an organisation by vote of the others (proposal plus votes until carried)."""
    target = c.orgs[org_name]
    voters = [o for name, o in c.orgs.items() if name != org_name]
    proposal = voters[0].clients.consortium.propose_suspension(target.org_id)
    for voter in voters[1:]:
        if voter.clients.consortium.proposal_executed(proposal):
            break
        voter.clients.consortium.vote(proposal)
    assert not target.clients.consortium.is_active_org(target.org_id)


@dataclass
class Node:
    """An extra node account registered for an organisation, with clients acting as it."""

    account: LocalAccount
    clients: Clients

    @property
    def address(self) -> str:
        return str(self.account.address)


def add_node(c: Consortium, org_name: str) -> Node:
    account = c.new_funded_account()
    c.orgs[org_name].clients.consortium.register_node(
        account.address, f"{org_name}-extra.example:7000", name_id("cert", account.address)
    )
    return Node(account, c.clients_for(account))


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    dataset_id: bytes
    root: bytes  # Merkle root of version 1


def dataset_root(name: str, version: int = 1) -> bytes:
    return name_id("merkle-root", f"{name}/v{version}")


def register_dataset(org: Org, name: str) -> Dataset:
    """`org` registers the dataset `name`; its id is namespaced by `org` on chain."""
    dataset_name = name_id("dataset", name)
    root = dataset_root(name)
    org.clients.datasets.register(
        dataset_name, DatasetVersion(root, 100, name_id("schema", name), 2), f"ipfs://{name}"
    )
    return Dataset(dataset_id_for(org.org_id, dataset_name), root)


# ----------------------------------------------------------------------------- grants


def make_grant(
    c: Consortium,
    owner: str,
    dataset_id: bytes,
    grantee: str = "bank-a",
    *,
    max_uses: int = 3,
    not_after: int | None = None,
    algorithm: bytes = ANY_APPROVED_ALGORITHM,
) -> bytes:
    """A grant by `owner`'s admin of `dataset_id` to `grantee`; expires in a day by default."""
    return c.orgs[owner].clients.authorizations.grant(
        dataset_id,
        c.orgs[grantee].org_id,
        PURPOSE,
        not_after if not_after is not None else now(c) + 24 * HOUR,
        max_uses,
        algorithm,
    )


# ------------------------------------------------------------------------------ tasks


@dataclass
class Seat:
    """One participant of a test task: who it is, what it names, what it must anchor."""

    org: str
    address: str
    clients: Clients  # acting as the participant node
    participant: Participant
    commitment: bytes  # the registered root of its dataset version, or its own commitment


@dataclass
class TaskSetup:
    c: Consortium
    task_id: bytes
    creator: Org
    algorithm: bytes
    deadline: int
    seats: list[Seat]
    datasets: dict[str, Dataset] = field(default_factory=dict)
    grants: dict[str, bytes] = field(default_factory=dict)  # by participant org
    created: TxReceipt | None = None
    request_id: bytes = ZERO32  # the creator's request id; task_id = task_id_for(creator, it)

    @property
    def participants(self) -> list[Participant]:
        return [s.participant for s in self.seats]

    def seat(self, org: str) -> Seat:
        return next(s for s in self.seats if s.org == org)

    def create(self) -> TxReceipt:
        self.task_id = task_id_for(self.creator.org_id, self.request_id)
        self.created = self.creator.clients.tasks.create(
            self.request_id, self.algorithm, PARAMS, self.deadline, self.participants
        )
        return self.created

    def accept_all(self) -> None:
        for s in self.seats:
            s.clients.tasks.accept(self.task_id)

    def anchor_all_inputs(self) -> None:
        for s in self.seats:
            s.clients.tasks.anchor_input(self.task_id, s.commitment)

    def submit_all(self, digests: Sequence[bytes] | None = None) -> list[TxReceipt]:
        digests = digests or [RESULT_1] * len(self.seats)
        return [
            s.clients.tasks.submit_result(self.task_id, d, EVIDENCE)
            for s, d in zip(self.seats, digests, strict=True)
        ]

    def run(self) -> None:
        """Accept and anchor every input: the task is Running with inputs anchored."""
        self.accept_all()
        self.anchor_all_inputs()


def build_task(
    c: Consortium,
    orgs: Sequence[str] = ("bank-a", "bank-b"),
    *,
    name: str = "task-1",
    max_uses: int = 3,
    deadline_in: int = HOUR,
    algorithm: bytes | None = None,
    create: bool = True,
) -> TaskSetup:
    """A task created by bank-a (unless `create` is false) over one node per org in `orgs`.

    bank-a's node reads bank-a's own dataset without a grant; every other org's node
    reads that org's dataset under a grant to bank-a (`max_uses` uses, any approved
    algorithm). The algorithm `ALGO` is approved first unless `algorithm` is given.
    """
    if algorithm is None:
        algorithm = approve_algorithm(c)
    request_id = name_id("task", name)
    setup = TaskSetup(
        c=c,
        task_id=task_id_for(c.orgs["bank-a"].org_id, request_id),
        request_id=request_id,
        creator=c.orgs["bank-a"],
        algorithm=algorithm,
        deadline=now(c) + deadline_in,
        seats=[],
    )
    for org_name in orgs:
        org = c.orgs[org_name]
        ds = register_dataset(org, f"{org_name}-data")
        setup.datasets[org_name] = ds
        grant = ZERO32
        if org_name != "bank-a":
            grant = make_grant(c, org_name, ds.dataset_id, max_uses=max_uses)
            setup.grants[org_name] = grant
        setup.seats.append(
            Seat(
                org_name,
                str(org.node.address),
                org.node_clients,
                Participant(org.node.address, ds.dataset_id, 1, grant),
                ds.root,
            )
        )
    if create:
        setup.create()
    return setup


def deploy_authorization_registry(c: Consortium, deployer: LocalAccount) -> str:
    """A second AuthorizationRegistry over the same consortium, not yet bound; its address."""
    artifact = load_artifact("AuthorizationRegistry")
    factory = c.chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = Sender(c.chain, deployer).transact(
        factory.constructor(
            c.deployment.address("Consortium"),
            c.deployment.address("DatasetRegistry"),
            c.deployment.address("AlgorithmRegistry"),
        )
    )
    return str(receipt["contractAddress"])
