"""The demo's in-process participant: check, accept (or refuse on chain), anchor, submit.

It runs the placeholder job of `provnet demo` without a peer mesh; node processes use
`node.runner.TaskRunner`, and both refuse through `node.admission.check_task`.

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

from ledger.clients import Clients
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.transcript import Transcript
from node.admission import TaskRefused, check_task, participant_slot
from node.algorithms.package import package_of
from node.datasets import ImportedDataset
from node.runner import no_input_commitment


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
        return participant_slot(self.clients, task_id, self.address)

    def check(self, task_id: bytes) -> None:
        """Raise TaskRefused when this node must not take part in the task."""

        def load(dataset_id: bytes, version: int) -> ImportedDataset | None:
            held = self.datasets.get((dataset_id, version))
            return None if held is None else held.data

        check_task(self.clients, task_id, self.address, self.algorithms, load)

    def accept_or_refuse(self, task_id: bytes) -> bool:
        try:
            self.check(task_id)
        except TaskRefused as refusal:
            self.clients.tasks.refuse(task_id, refusal.reason)
            return False
        self.clients.tasks.accept(task_id)
        return True

    def anchor_input(self, task_id: bytes) -> None:
        slot = self.my_slot(task_id)
        transcript = self.transcripts.setdefault(task_id, Transcript())
        if slot.dataset_id == bytes(32):
            commitment = no_input_commitment(task_id, self.address)
        else:
            commitment = self.datasets[(slot.dataset_id, slot.dataset_version)].data.merkle_root
        transcript.append("input", "input", commitment)
        self.clients.tasks.anchor_input(task_id, commitment)

    def run_placeholder(self, task_id: bytes) -> bytes:
        """Run the digest placeholder and submit its result with the transcript root."""
        info = self.clients.tasks.info(task_id)
        if info.state != TaskState.RUNNING:
            raise TaskRefused(Reason.PROTOCOL_ERROR, f"task is {info.state.name}, not RUNNING")
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
