"""Deploy the six provnet contracts and wire them together.

Input is validated completely before the first transaction, so bad input leaves no
orphaned contracts; the manifest is written only once every contract is deployed and
bound, so a half-finished deployment is never loadable by a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from web3.contract.contract import Contract

from ledger.artifacts import CONTRACT_NAMES, abi, artifact_digest, load_artifact
from ledger.chain import Chain
from ledger.deployment import DeployedContract, Deployment
from ledger.ids import InvalidInput, as_address, as_bytes32
from ledger.roles import ALL_ROLES
from ledger.transactions import Sender

DAY = 86_400
#: Longest proposal lifetime and timelock the contract accepts (`Consortium.MAX_DURATION`).
MAX_DURATION = 365 * DAY


@dataclass(frozen=True)
class Governance:
    """How the consortium decides (fixed at deployment; see the `Consortium` NatSpec).

    The defaults are the recommended production settings. `timelock_seconds=0` makes
    the vote that reaches the quorum execute the proposal at once, leaving no window
    to object or veto: for development chains and tests only (`Governance.dev()`).
    """

    threshold_percent: int = 67
    min_approvals: int = 2
    proposal_lifetime_seconds: int = 7 * DAY
    timelock_seconds: int = 2 * DAY

    @classmethod
    def dev(cls, threshold_percent: int = 50) -> Governance:
        """Settings for development chains and tests: no timelock."""
        return cls(threshold_percent=threshold_percent, timelock_seconds=0)

    def validated(self) -> Governance:
        for field, value, low, high in (
            ("threshold_percent", self.threshold_percent, 1, 100),
            ("min_approvals", self.min_approvals, 2, 255),
            ("proposal_lifetime_seconds", self.proposal_lifetime_seconds, 1, MAX_DURATION),
            ("timelock_seconds", self.timelock_seconds, 0, MAX_DURATION),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInput(field, f"must be an integer {low}..{high}, got {value!r}")
        return self

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (
            self.threshold_percent,
            self.min_approvals,
            self.proposal_lifetime_seconds,
            self.timelock_seconds,
        )


def as_governance(governance: Governance | int) -> Governance:
    """Validated settings; a bare int is a threshold percent with the other defaults."""
    if isinstance(governance, Governance):
        return governance.validated()
    return Governance(threshold_percent=governance).validated()


@dataclass(frozen=True)
class GenesisMember:
    """A founding organisation, admitted without a vote at deployment."""

    org_id: bytes
    name: str
    roles: int
    admin: str

    def validated(self, index: int) -> GenesisMember:
        field = f"genesis[{index}]"
        if not self.name or len(self.name) > 128 or not self.name.isprintable():
            raise InvalidInput(
                f"{field}.name", f"must be 1-128 printable characters: {self.name!r}"
            )
        if not 0 < self.roles <= ALL_ROLES:
            raise InvalidInput(f"{field}.roles", f"must be a non-empty role mask, got {self.roles}")
        return GenesisMember(
            org_id=as_bytes32(self.org_id, f"{field}.org_id"),
            name=self.name,
            roles=int(self.roles),
            admin=as_address(self.admin, f"{field}.admin"),
        )


def validate(governance: Governance | int, genesis: Sequence[GenesisMember]) -> list[GenesisMember]:
    """Validate the governance settings (see `as_governance`) and the genesis members."""
    as_governance(governance)
    if not genesis:
        raise InvalidInput("genesis", "at least one founding organisation is required")
    members = [m.validated(i) for i, m in enumerate(genesis)]
    for field, values in (
        ("org_id", [m.org_id for m in members]),
        ("admin", [m.admin.lower() for m in members]),
    ):
        seen: set[object] = set()
        for i, value in enumerate(values):
            if value in seen:
                raise InvalidInput(f"genesis[{i}].{field}", "duplicate")
            seen.add(value)
    return members


MAX_TASK_DURATION = 7 * 24 * 3600  # TaskRegistry.maxTaskDuration: a task's deadline cap, seconds


def deploy(
    chain: Chain,
    sender: Sender,
    governance: Governance | int,
    genesis: Sequence[GenesisMember],
    max_task_duration: int = MAX_TASK_DURATION,
) -> Deployment:
    """Deploy and wire the six contracts.

    `governance` is a `Governance`, or a bare threshold percent with the other settings
    at their production defaults (2-day timelock included).
    """
    settings = as_governance(governance)
    members = validate(settings, genesis)
    if not 0 < max_task_duration < 2**64:
        raise InvalidInput("max_task_duration", f"must be 1..2^64-1 s, got {max_task_duration}")
    deployed: dict[str, DeployedContract] = {}

    def create(name: str, *args: object) -> Contract:
        artifact = load_artifact(name)
        factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = sender.transact(factory.constructor(*args))
        address = str(receipt["contractAddress"])
        deployed[name] = DeployedContract(
            address=address,
            block=int(receipt["blockNumber"]),
            artifact_digest=artifact_digest(name),
            transaction="0x" + bytes(receipt["transactionHash"]).hex(),
        )
        return chain.w3.eth.contract(address=address, abi=abi(name))  # type: ignore[call-overload,no-any-return]

    consortium = create(
        "Consortium",
        settings.as_tuple(),
        [(m.org_id, m.name, m.roles, m.admin) for m in members],
    )
    algorithms = create("AlgorithmRegistry", consortium.address)
    datasets = create("DatasetRegistry", consortium.address)
    authorizations = create(
        "AuthorizationRegistry", consortium.address, datasets.address, algorithms.address
    )
    tasks = create(
        "TaskRegistry",
        consortium.address,
        algorithms.address,
        datasets.address,
        authorizations.address,
        max_task_duration,
    )
    create("AnchorLog", consortium.address)
    sender.transact(authorizations.functions.bindTaskRegistry(tasks.address))
    assert list(deployed) == list(CONTRACT_NAMES)
    return Deployment(chain_id=chain.chain_id, deployer=sender.address, contracts=deployed)
