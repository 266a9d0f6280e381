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


def validate(threshold_percent: int, genesis: Sequence[GenesisMember]) -> list[GenesisMember]:
    if not 1 <= threshold_percent <= 100:
        raise InvalidInput("threshold_percent", f"must be 1..100, got {threshold_percent}")
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


def deploy(
    chain: Chain, sender: Sender, threshold_percent: int, genesis: Sequence[GenesisMember]
) -> Deployment:
    members = validate(threshold_percent, genesis)
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
        threshold_percent,
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
    )
    create("AnchorLog", consortium.address)
    sender.transact(authorizations.functions.bindTaskRegistry(tasks.address))
    assert list(deployed) == list(CONTRACT_NAMES)
    return Deployment(chain_id=chain.chain_id, deployer=sender.address, contracts=deployed)
