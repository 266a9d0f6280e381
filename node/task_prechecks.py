"""Everything a task needs from the chain, checked before the task is created.

A task the chain accepts but a provider must refuse is worse than a refused request: it
costs gas, consumes the other providers' grant uses when they accept, and the consumer
only learns "the task failed". Every fact a provider or the contract would check at
acceptance is public chain state, so the creating node checks it first and answers with
the provider (index and organisation name) and the reason:

* `Conflict` (HTTP 409): the request is well formed but the chain's current state rules
  it out (grant revoked, expired, used up, for another dataset or grantee; node or
  organisation inactive; dataset retired; algorithm not approved). It may succeed later.
* `InvalidInput` (HTTP 422): the request cannot work as written (unknown organisation or
  dataset, parameters whose columns differ from a provider's registered schema, fewer
  providers or provider organisations than the algorithm and output policy require).

The checks are judged at the time the creating transaction will see: the pending block's
timestamp (`pending_time`), not the last mined block's, which on an idle dev chain can be
minutes old.

Providers may be given in the full form ``{"node", "datasetId", "datasetVersion",
"grantId"}`` or the short form ``{"org", "dataset"}`` with optional ``datasetVersion``
(default: the latest), ``grantId`` (default: the newest usable grant from that dataset to
this organisation) and ``node`` (default: the organisation's only active node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from web3 import Web3

from ledger.artifacts import abi
from ledger.clients import Clients
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM, Grant
from ledger.clients.consortium import OrgStatus
from ledger.clients.tasks import Participant
from ledger.events import EventReader, Source
from ledger.ids import InvalidInput, as_address, as_bytes32, hex32
from ledger.rows import schema_digest
from node.algorithms import output_policy
from node.references import dataset_id_of, is_id, org_of
from node.service_errors import Conflict

ZERO = bytes(32)
FULL_FORM = frozenset({"node", "datasetId", "datasetVersion", "grantId"})
SHORT_FORM = frozenset({"org", "dataset", "datasetVersion", "grantId", "node"})
# The secure sum needs two providers at least (node.crypto.secagg): with one, the
# "aggregate" is that provider's own figures.
MIN_SECURE_SUM_PROVIDERS = 2


def pending_time(w3: Web3) -> int:
    """The timestamp the next block will carry (what a transaction sent now will see).

    anvil and geth give the pending block the current time; eth-tester gives the last
    block's time + 1. Either way it is the chain's own clock, never older than `latest`.
    """
    pending = w3.eth.get_block("pending")
    latest = w3.eth.get_block("latest")
    return max(int(pending["timestamp"]), int(latest["timestamp"]))


@dataclass(frozen=True)
class ResolvedProvider:
    """One provider of a task request, with every default filled in from the chain."""

    index: int
    org_id: bytes
    org_name: str
    slot: Participant
    # Which of node / datasetVersion / grantId the request named itself (the others
    # are defaults, so a retry may legitimately find them different).
    explicit: frozenset[str]

    @property
    def label(self) -> str:
        return f"providers[{self.index}] ({self.org_name})"


def _field(index: int, name: str) -> str:
    return f"providers[{index}].{name}"


def _version(value: object, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**32:
        raise InvalidInput(field_name, f"expected a version number >= 1, got {value!r}")
    return value


class ProviderResolver:
    """Turns request entries into participant slots, reading the chain only."""

    def __init__(self, clients: Clients, org_id: bytes, first_block: int = 0) -> None:
        self.clients = clients
        self.org_id = org_id
        self.first_block = first_block
        self._grants: list[tuple[bytes, bytes, bytes]] | None = None  # (grant, dataset, grantee)

    def org_name(self, org_id: bytes) -> str:
        if org_id == ZERO:
            return "no organisation"
        return self.clients.consortium.org_name(org_id) or hex32(org_id)

    def resolve(
        self, entries: Sequence[Mapping[str, Any]], algorithm_digest: bytes, now: int
    ) -> list[ResolvedProvider]:
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise InvalidInput("providers", "expected a list of providers")
        return [self._one(i, entry, algorithm_digest, now) for i, entry in enumerate(entries)]

    def _one(
        self, i: int, entry: Mapping[str, Any], algorithm_digest: bytes, now: int
    ) -> ResolvedProvider:
        if not isinstance(entry, Mapping):
            raise InvalidInput(f"providers[{i}]", "expected an object")
        given = {k: v for k, v in entry.items() if v is not None}
        short = "org" in given or "dataset" in given
        allowed = SHORT_FORM if short else FULL_FORM
        unknown = sorted(set(given) - allowed)
        if unknown:
            form = (
                '{"org", "dataset"[, "datasetVersion", "grantId", "node"]}'
                if short
                else '{"node", "datasetId", "datasetVersion"[, "grantId"]}'
            )
            raise InvalidInput(f"providers[{i}]", f"unknown field(s) {unknown}; expected {form}")
        if short:
            for required in ("org", "dataset"):
                if required not in given:
                    raise InvalidInput(_field(i, required), "is required in the short form")
            org = org_of(self.clients, given["org"], _field(i, "org"), self.first_block)
            org_id, org_name = org.org_id, org.name
            dataset_id = dataset_id_of(org_id, given["dataset"], _field(i, "dataset"))
            dataset_field = _field(i, "dataset")
            if "node" in given:
                node = as_address(given["node"], _field(i, "node"))
            else:
                active = org.active_nodes()
                if len(active) != 1:
                    raise InvalidInput(
                        _field(i, "node"),
                        f"organisation {org_name!r} has {len(active)} active nodes "
                        f"({', '.join(n.address for n in active) or 'none'}); name one",
                    )
                node = as_address(active[0].address, _field(i, "node"))
        else:
            if "node" not in given:
                raise InvalidInput(
                    _field(i, "node"),
                    'is required (or use the short form {"org": ..., "dataset": ...})',
                )
            node = as_address(given["node"], _field(i, "node"))
            org_id = self.clients.consortium.node_org(node)
            org_name = self.org_name(org_id)
            dataset_field = _field(i, "datasetId")
            dataset_id = as_bytes32(given.get("datasetId"), dataset_field)
        label = f"providers[{i}] ({org_name})"
        if "datasetVersion" in given:
            version = _version(given["datasetVersion"], _field(i, "datasetVersion"))
        else:
            version = self.clients.datasets.latest_version(dataset_id)
            if version == 0:
                raise InvalidInput(
                    dataset_field,
                    f"{label}: no dataset {given.get('dataset', given.get('datasetId'))!r} "
                    f"(id {hex32(dataset_id)}) is registered on chain",
                )
        if "grantId" in given:
            grant_id = as_bytes32(given["grantId"], _field(i, "grantId"))
        else:
            grant_id = self._default_grant(label, i, dataset_id, algorithm_digest, now)
        explicit = frozenset(k for k in ("node", "datasetVersion", "grantId") if k in given)
        slot = Participant(node, dataset_id, version, grant_id)
        return ResolvedProvider(i, org_id, org_name, slot, explicit)

    def _default_grant(
        self, label: str, i: int, dataset_id: bytes, algorithm_digest: bytes, now: int
    ) -> bytes:
        owner = self.clients.datasets.owner(dataset_id)
        if owner == self.org_id:
            return ZERO  # this organisation's own data needs no grant
        auth = self.clients.authorizations
        candidates = [g for g, d, e in self.grants() if d == dataset_id and e == self.org_id]
        for grant_id in reversed(candidates):  # newest first
            if grant_problem(auth.info(grant_id), dataset_id, self.org_id, algorithm_digest, now):
                continue
            return grant_id
        raise Conflict(
            _field(i, "grantId"),
            f"{label}: no usable grant from dataset {hex32(dataset_id)} to this organisation "
            f"({len(candidates)} granted, none valid, unexpired, with uses left, for this "
            "algorithm); ask its owner for a grant",
        )

    def grants(self) -> list[tuple[bytes, bytes, bytes]]:
        if self._grants is None:
            auth = self.clients.authorizations
            reader = EventReader(
                auth.chain,
                [Source("AuthorizationRegistry", auth.address, abi("AuthorizationRegistry"))],
            )
            self._grants = [
                (
                    bytes(e.args["grantId"]),
                    bytes(e.args["datasetId"]),
                    bytes(e.args["granteeOrg"]),
                )
                for e in reader.read(self.first_block)
                if e.name == "GrantCreated"
            ]
        return self._grants


def grant_problem(
    grant: Grant, dataset_id: bytes, grantee_org: bytes, algorithm_digest: bytes, now: int
) -> str | None:
    """Why a grant would be refused at acceptance (the contract's `consumeUse` rules,
    in its order), or None if it covers this use."""
    if grant.dataset_id == ZERO:
        return "does not exist"
    if grant.revoked:
        return "was revoked"
    if now > grant.not_after:
        return f"expired at {grant.not_after} (chain time now {now})"
    if grant.used >= grant.max_uses:
        return f"is used up ({grant.used} of {grant.max_uses} uses)"
    if grant.grantee_org != grantee_org:
        return f"was granted to organisation {hex32(grant.grantee_org)}, not to this one"
    if grant.dataset_id != dataset_id:
        return f"is for dataset {hex32(grant.dataset_id)}, not {hex32(dataset_id)}"
    if grant.algorithm_digest not in (ANY_APPROVED_ALGORITHM, algorithm_digest):
        return f"is for algorithm {hex32(grant.algorithm_digest)} only"
    return None


def check_providers(
    clients: Clients,
    creator_org: bytes,
    providers: Sequence[ResolvedProvider],
    algorithm_digest: bytes,
    now: int,
) -> None:
    """Each provider as the contract and the provider itself will judge it."""
    auth = clients.authorizations
    seen_nodes: dict[str, int] = {}
    uses: dict[bytes, int] = {}
    for p in providers:
        slot, label = p.slot, p.label
        node_field = _field(p.index, "node")
        earlier = seen_nodes.setdefault(slot.node.lower(), p.index)
        if earlier != p.index:
            raise InvalidInput(
                node_field, f"{label}: node {slot.node} is also providers[{earlier}]"
            )
        if slot.node.lower() == clients.account.lower():
            raise InvalidInput(node_field, f"{label}: this node is the aggregator, not a provider")
        if clients.consortium.active_node_org(slot.node) == ZERO:
            raise Conflict(node_field, f"{label}: node {slot.node} is not an active node")
        if clients.consortium.org_status(p.org_id) != OrgStatus.ACTIVE:
            raise Conflict(node_field, f"{label}: the organisation is not active")
        dataset_field = _field(p.index, "datasetId")
        latest = clients.datasets.latest_version(slot.dataset_id)
        if latest == 0:
            raise InvalidInput(
                dataset_field, f"{label}: dataset {hex32(slot.dataset_id)} is not registered"
            )
        if not 1 <= slot.dataset_version <= latest:
            raise InvalidInput(
                _field(p.index, "datasetVersion"),
                f"{label}: dataset {hex32(slot.dataset_id)} has versions 1..{latest}, "
                f"not {slot.dataset_version}",
            )
        commitment = clients.datasets.version_commitment(slot.dataset_id, slot.dataset_version)
        if commitment.owner_org != p.org_id:
            owner = clients.consortium.org_name(commitment.owner_org) or hex32(commitment.owner_org)
            raise InvalidInput(
                dataset_field,
                f"{label}: dataset {hex32(slot.dataset_id)} belongs to {owner}, not to the "
                "node's organisation",
            )
        if commitment.retired:
            raise Conflict(dataset_field, f"{label}: dataset {hex32(slot.dataset_id)} is retired")
        grant_field = _field(p.index, "grantId")
        if slot.grant_id == ZERO:
            if p.org_id != creator_org:
                raise InvalidInput(
                    grant_field, f"{label}: another organisation's data needs a grant"
                )
            continue
        grant = auth.info(slot.grant_id)
        problem = grant_problem(grant, slot.dataset_id, creator_org, algorithm_digest, now)
        if grant.dataset_id != ZERO:
            uses[slot.grant_id] = uses.get(slot.grant_id, 0) + 1
            if problem is None and grant.used + uses[slot.grant_id] > grant.max_uses:
                problem = f"has {grant.max_uses - grant.used} use(s) left, named more often"
        if problem is not None:
            error = InvalidInput if grant.dataset_id == ZERO else Conflict
            raise error(grant_field, f"{label}: grant {hex32(slot.grant_id)} {problem}")


def check_schema(
    clients: Clients, providers: Sequence[ResolvedProvider], columns: Sequence[Any]
) -> None:
    """The parameters' columns must describe each provider's registered schema exactly
    (names, order, types, identifier marks, decimal scales): the schema digest on chain
    is what the provider's data is committed to, and a provider refuses anything else."""
    wanted = schema_digest(tuple(columns))
    for p in providers:
        registered = clients.datasets.version_info(p.slot.dataset_id, p.slot.dataset_version)
        if registered.schema_digest != wanted:
            raise InvalidInput(
                "params.columns",
                f"{p.label}: the columns differ from the registered schema of dataset "
                f"{hex32(p.slot.dataset_id)} version {p.slot.dataset_version} (see "
                "GET /datasets/{dataset} on its node, or `provnet dataset show`, for the "
                "exact names, types, identifier marks and decimal scales)",
            )


def check_counts(
    clients: Clients,
    module: ModuleType,
    parsed: Any,
    creator_org: bytes,
    providers: Sequence[ResolvedProvider],
) -> None:
    """Provider count and distinct organisations against the algorithm and the output
    policy, and providers independent of the creator (each provider refuses otherwise)."""
    if not getattr(module, "OUTPUT_POLICY", False):
        return
    if len(providers) < MIN_SECURE_SUM_PROVIDERS:
        raise InvalidInput(
            "providers",
            f"{len(providers)} provider(s): the secure sum needs at least "
            f"{MIN_SECURE_SUM_PROVIDERS}, or the aggregate is one provider's own figures",
        )
    threshold_for = getattr(parsed, "threshold_for", None)
    if threshold_for is not None:
        try:
            threshold_for(len(providers))
        except ValueError as exc:
            raise InvalidInput("params.threshold", str(exc)) from None
    for p in providers:
        if p.org_id == creator_org:
            raise InvalidInput(
                _field(p.index, "node"),
                f"{p.label}: a provider of the creating organisation is not independent of "
                "its aggregator (it would refuse as PROVIDER_NOT_INDEPENDENT)",
            )
    levels = [
        clients.datasets.version_info(p.slot.dataset_id, p.slot.dataset_version).classification
        for p in providers
    ]
    try:
        policy = output_policy.effective(levels)
    except output_policy.PolicyError as exc:
        raise InvalidInput("providers", str(exc)) from None
    orgs = {p.org_id for p in providers}
    if len(orgs) < policy.min_provider_orgs:
        raise InvalidInput(
            "providers",
            f"{len(orgs)} provider organisation(s) "
            f"({', '.join(sorted({p.org_name for p in providers}))}); classification level "
            f"{policy.level} needs at least {policy.min_provider_orgs} "
            "(the providers would refuse as TOO_FEW_PROVIDER_ORGS)",
        )


def check_algorithm(clients: Clients, digest: bytes, name: str) -> None:
    if not clients.algorithms.is_approved(digest):
        status = clients.algorithms.status(digest).name
        raise Conflict(
            "algorithm",
            f"{name} (digest {hex32(digest)}) is not approved on chain (status {status}); "
            "propose and vote it with `provnet algorithm propose|vote`",
        )


def check_validity(clients: Clients, valid_for_seconds: int) -> None:
    limit = clients.tasks.max_task_duration()
    if valid_for_seconds > limit:
        raise InvalidInput(
            "validForSeconds", f"{valid_for_seconds} s exceeds the chain's maximum of {limit} s"
        )


__all__ = [
    "ProviderResolver",
    "ResolvedProvider",
    "check_algorithm",
    "check_counts",
    "check_providers",
    "check_schema",
    "check_validity",
    "grant_problem",
    "is_id",
    "pending_time",
]
