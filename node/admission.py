"""Whether this node may take part in a task: the checks made before accepting on chain.

The node trusts neither the task's creator nor its own configuration: it recomputes the
algorithm digest from the code it would run, compares its own copy of the dataset with
the registered commitment, and checks that the grant covers this use. One function, so
the demo's in-process participant and the node's task runner refuse for the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ledger.clients import Clients
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM
from ledger.clients.tasks import Participant, Reason
from ledger.ids import InvalidInput
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


def check_task(
    clients: Clients,
    task_id: bytes,
    node: str,
    algorithms: Collection[bytes],
    load_dataset: DatasetLoader,
) -> None:
    """Raise TaskRefused unless code, data and grant all match the chain."""
    info = clients.tasks.info(task_id)
    if info.algorithm_digest not in algorithms:
        raise TaskRefused(
            Reason.ALGORITHM_DIGEST_MISMATCH,
            f"no local code hashes to 0x{info.algorithm_digest.hex()}",
        )
    slot = participant_slot(clients, task_id, node)
    if slot.dataset_id == ZERO:
        return
    try:
        held = load_dataset(slot.dataset_id, slot.dataset_version)
    except InvalidInput as exc:  # the local copy was altered after import
        raise TaskRefused(Reason.DATASET_MISMATCH, str(exc)) from None
    registered = clients.datasets.version_info(slot.dataset_id, slot.dataset_version)
    if held is None or (held.merkle_root, held.schema_digest, len(held.rows)) != (
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
