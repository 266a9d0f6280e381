"""A node's side of a task: check, accept (or refuse on chain), anchor, run, submit.

The chain drives the work: a node acts on a task only after reading it from the
`TaskRegistry`, and every refusal is recorded on chain with a reason code, because a
silent refusal leaves nothing for an auditor to find. Before accepting, the node
recomputes the algorithm digest from the code it would run, compares its own copy of
the dataset with the registered commitment, and checks the grant — trusting neither the
task's creator nor its own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from ledger.canonical import digest_json
from ledger.clients import Clients
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.transcript import Transcript
from node.algorithms.package import package_of
from node.datasets import ImportedDataset


class Refused(Exception):
    """This node will not take part; `reason` is the code recorded on chain."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.name}: {detail}")


@dataclass
class HeldDataset:
    """A dataset version this node holds, with the secret key of its row salts."""

    dataset_id: bytes
    version: int
    data: ImportedDataset


@dataclass
class TaskParticipant:
    clients: Clients  # acting as this node's account
    address: str
    algorithms: dict[bytes, ModuleType]  # digest recomputed from code -> module
    datasets: dict[tuple[bytes, int], HeldDataset] = field(default_factory=dict)
    transcripts: dict[bytes, Transcript] = field(default_factory=dict)

    @classmethod
    def with_algorithms(
        cls, clients: Clients, address: str, modules: list[ModuleType]
    ) -> TaskParticipant:
        return cls(clients, address, {package_of(m).digest: m for m in modules})

    def hold(self, dataset: HeldDataset) -> None:
        self.datasets[(dataset.dataset_id, dataset.version)] = dataset

    def my_slot(self, task_id: bytes) -> Participant:
        for p in self.clients.tasks.participants(task_id):
            if p.node.lower() == self.address.lower():
                return p
        raise Refused(Reason.PROTOCOL_ERROR, "this node is not a participant")

    def check(self, task_id: bytes) -> None:
        """Raise Refused when this node must not take part in the task."""
        info = self.clients.tasks.info(task_id)
        if info.algorithm_digest not in self.algorithms:
            raise Refused(
                Reason.ALGORITHM_DIGEST_MISMATCH,
                f"no local code hashes to 0x{info.algorithm_digest.hex()}",
            )
        slot = self.my_slot(task_id)
        if slot.dataset_id == bytes(32):
            return
        held = self.datasets.get((slot.dataset_id, slot.dataset_version))
        registered = self.clients.datasets.version_info(slot.dataset_id, slot.dataset_version)
        if held is None or (
            held.data.merkle_root,
            held.data.schema_digest,
            len(held.data.rows),
        ) != (
            registered.merkle_root,
            registered.schema_digest,
            registered.row_count,
        ):
            raise Refused(Reason.DATASET_MISMATCH, "local copy differs from the registered version")
        if slot.grant_id != bytes(32):
            grant = self.clients.authorizations.info(slot.grant_id)
            usable = self.clients.authorizations.is_usable(slot.grant_id)
            allowed = grant.algorithm_digest in (ANY_APPROVED_ALGORITHM, info.algorithm_digest)
            if not (usable and allowed and grant.grantee_org == info.creator_org):
                raise Refused(
                    Reason.GRANT_INVALID, f"grant 0x{slot.grant_id.hex()} does not cover this use"
                )

    def accept_or_refuse(self, task_id: bytes) -> bool:
        try:
            self.check(task_id)
        except Refused as refusal:
            self.clients.tasks.refuse(task_id, refusal.reason)
            return False
        self.clients.tasks.accept(task_id)
        return True

    def anchor_input(self, task_id: bytes) -> None:
        slot = self.my_slot(task_id)
        transcript = self.transcripts.setdefault(task_id, Transcript())
        if slot.dataset_id == bytes(32):
            commitment = digest_json("no-input", {"task": task_id.hex(), "node": self.address})
        else:
            commitment = self.datasets[(slot.dataset_id, slot.dataset_version)].data.merkle_root
        transcript.append("input", "input", commitment)
        self.clients.tasks.anchor_input(task_id, commitment)

    def run_placeholder(self, task_id: bytes) -> bytes:
        """Run the digest placeholder and submit its result with the transcript root."""
        info = self.clients.tasks.info(task_id)
        if info.state != TaskState.RUNNING:
            raise Refused(Reason.PROTOCOL_ERROR, f"task is {info.state.name}, not RUNNING")
        module = self.algorithms[info.algorithm_digest]
        commitments = [
            self.clients.datasets.version_info(p.dataset_id, p.dataset_version).merkle_root
            for p in self.clients.tasks.participants(task_id)
            if p.dataset_id != bytes(32)
        ]
        result: bytes = module.run(task_id, info.params_digest, commitments)
        transcript = self.transcripts.setdefault(task_id, Transcript())
        transcript.append("output", "result", result)
        self.clients.tasks.submit_result(task_id, result, transcript.root())
        return result
