"""Whether this node may take part in a task: the checks made before accepting on chain.

The node trusts neither the task's creator nor its own configuration: it recomputes the
algorithm digest from the code it would run, compares its own copy of the dataset with
the registered commitment, and checks that the grant covers this use. The node's task runner
calls it before accepting or refusing on chain.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from types import ModuleType

from ledger.clients import Clients
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM
from ledger.clients.tasks import Participant, Reason
from ledger.ids import InvalidInput
from node.algorithms import output_policy
from node.datasets import ImportedDataset

ZERO = bytes(32)

#: Loads the dataset version a node holds; None if absent, InvalidInput if altered.
DatasetLoader = Callable[[bytes, int], ImportedDataset | None]


class TaskRefused(Exception):
    """This node must not take part; `reason` is what it records on chain."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.name}: {detail}")


def participant_slot(clients: Clients, task_id: bytes, node: str) -> Participant:
    for p in clients.tasks.participants(task_id):
        if p.node.lower() == node.lower():
            return p
    raise TaskRefused(Reason.PROTOCOL_ERROR, "this node is not a participant")


def dataset_levels(clients: Clients, participants: Sequence[Participant]) -> list[int]:
    """The classification level of every provider's dataset version, from the chain."""
    return [
        clients.datasets.version_info(p.dataset_id, p.dataset_version).classification
        for p in participants
        if p.dataset_id != ZERO
    ]


def check_independent_providers(
    clients: Clients, creator_org: bytes, participants: Sequence[Participant]
) -> None:
    """Refuse an aggregate task whose providers are not independent of its creator.

    The aggregator runs at the creator, so a provider of the creator's own
    organisation is a colluder the creator brings along (it can sign any survivor set
    and subtract its own contribution); and an aggregate over fewer organisations than
    the policy's minimum is one organisation's figures under another name.
    """
    providers = [p for p in participants if p.dataset_id != ZERO]
    orgs = [clients.consortium.node_org(p.node) for p in providers]
    for p, org in zip(providers, orgs, strict=True):
        if org == creator_org:
            raise TaskRefused(
                Reason.PROVIDER_NOT_INDEPENDENT,
                f"provider {p.node} belongs to the creator organisation 0x{org.hex()}",
            )
    try:
        policy = output_policy.effective(dataset_levels(clients, participants))
    except output_policy.PolicyError as exc:
        raise TaskRefused(Reason.PROTOCOL_ERROR, str(exc)) from None
    if len(set(orgs)) < policy.min_provider_orgs:
        raise TaskRefused(
            Reason.TOO_FEW_PROVIDER_ORGS,
            f"{len(set(orgs))} provider organisation(s); classification level {policy.level} "
            f"needs at least {policy.min_provider_orgs}",
        )


def check_invited(
    clients: Clients, creator_org: bytes, node: str, accept_tasks_from: Collection[bytes]
) -> None:
    """Refuse a data-less seat unless the task's creator may pull this node in.

    A seat without a dataset (an aggregator's) serves the creator alone, yet costs this
    node gas and inbox memory; no grant vouches for it. So only this node's own
    organisation, or one the operator allow-listed (`accept_tasks_from`), may give it.
    """
    if creator_org == clients.consortium.node_org(node) or creator_org in accept_tasks_from:
        return
    raise TaskRefused(
        Reason.NOT_INVITED,
        f"a seat without a dataset in a task of organisation 0x{creator_org.hex()}, "
        "which is neither this node's own nor in its accept_tasks_from list",
    )


def is_requester_style(module: ModuleType | None) -> bool:
    """Whether the algorithm's first seat brings its own data and learns the result
    (PSI), rather than aggregating data-less (secure statistics)."""
    return getattr(module, "PROTOCOL", "aggregate") == "requester"


def lead_role(module: ModuleType) -> str:
    """The role of a task's first seat, the creator's own node, in the node's records."""
    return "requester" if is_requester_style(module) else "aggregator"


def seat_role(module: ModuleType | None, participants: Sequence[Participant], node: str) -> str:
    """The role ``node`` plays in a task of ``module`` with these seats."""
    seat = next(p for p in participants if p.node.lower() == node.lower())
    if is_requester_style(module):
        return "requester" if participants[0].node.lower() == node.lower() else "responder"
    return "aggregator" if seat.dataset_id == ZERO else "provider"


def check_requester_seats(
    clients: Clients, creator_org: bytes, participants: Sequence[Participant]
) -> None:
    """Refuse a requester-style task (PSI) whose seats do not say who learns what.

    The first seat learns the result, so it must be a node of the task's creator: a
    creator naming another bank's node there would have that bank's node compute a
    result nobody asked it for, on data it holds for the creator. Every seat holds a
    dataset: the requester matches its own, each responder one it granted.
    """
    if len(participants) < 2:
        raise TaskRefused(Reason.PROTOCOL_ERROR, "a requester task needs at least one responder")
    lead = participants[0]
    lead_org = clients.consortium.node_org(lead.node)
    if lead_org != creator_org:
        raise TaskRefused(
            Reason.PROTOCOL_ERROR,
            f"the requesting seat {lead.node} is not a node of the creator organisation "
            f"0x{creator_org.hex()}",
        )
    for p in participants:
        if p.dataset_id == ZERO:
            raise TaskRefused(
                Reason.PROTOCOL_ERROR, f"seat {p.node} holds no dataset; every seat needs one"
            )


def check_task(
    clients: Clients,
    task_id: bytes,
    node: str,
    algorithms: Mapping[bytes, ModuleType],
    load_dataset: DatasetLoader,
    accept_tasks_from: Collection[bytes] = (),
) -> None:
    """Raise TaskRefused unless code, data and grant all match the chain.

    A seat without a dataset is taken only for a task of this node's own organisation
    or of one in `accept_tasks_from` (see `check_invited`); checked first, so a task
    nobody invited this node to is refused before anything else is looked at.
    """
    info = clients.tasks.info(task_id)
    slot = participant_slot(clients, task_id, node)
    if slot.dataset_id == ZERO:
        check_invited(clients, info.creator_org, node, accept_tasks_from)
    module = algorithms.get(info.algorithm_digest)
    if module is None:
        raise TaskRefused(
            Reason.ALGORITHM_DIGEST_MISMATCH,
            f"no local code hashes to 0x{info.algorithm_digest.hex()}",
        )
    unavailable = getattr(module, "unavailable_reason", None)
    reason = unavailable() if unavailable is not None else None
    if reason is not None:
        raise TaskRefused(Reason.PROTOCOL_ERROR, reason)
    if is_requester_style(module):
        check_requester_seats(clients, info.creator_org, clients.tasks.participants(task_id))
    if slot.dataset_id == ZERO:
        return
    if getattr(module, "OUTPUT_POLICY", False):
        check_independent_providers(clients, info.creator_org, clients.tasks.participants(task_id))
    try:
        held = load_dataset(slot.dataset_id, slot.dataset_version)
    except InvalidInput as exc:  # the local copy was altered after import
        raise TaskRefused(Reason.DATASET_MISMATCH, str(exc)) from None
    registered = clients.datasets.version_info(slot.dataset_id, slot.dataset_version)
    if held is None or (held.merkle_root, held.schema_digest, held.row_count) != (
        registered.merkle_root,
        registered.schema_digest,
        registered.row_count,
    ):
        raise TaskRefused(Reason.DATASET_MISMATCH, "local copy differs from the registered version")
    if slot.grant_id != ZERO:
        grant = clients.authorizations.info(slot.grant_id)
        usable = clients.authorizations.is_usable(slot.grant_id)
        allowed = grant.algorithm_digest in (ANY_APPROVED_ALGORITHM, info.algorithm_digest)
        if not (usable and allowed and grant.grantee_org == info.creator_org):
            raise TaskRefused(
                Reason.GRANT_INVALID, f"grant 0x{slot.grant_id.hex()} does not cover this use"
            )
