"""Typed client for `TaskRegistry`: the on-chain task state machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import InvalidInput, as_address, as_bytes32, task_id_for


class TaskState(IntEnum):
    NONE = 0
    CREATED = 1
    RUNNING = 2
    COMPLETED = 3
    DISPUTED = 4
    FAILED = 5
    EXPIRED = 6


class Reason(IntEnum):
    """Failure reason codes; below 100 the contract's own, from 100 node-reported.

    A caller reporting a code below `MIN_REPORTED_REASON` is refused on chain
    (`ReservedReasonCode`) unless the contract detects such a lapse itself, in which case
    the detected code is recorded.
    """

    GRANT_REVOKED = 1
    PARTICIPANT_INACTIVE = 2
    ALGORITHM_DEPRECATED = 3
    ALGORITHM_DIGEST_MISMATCH = 100
    DATASET_MISMATCH = 101
    GRANT_INVALID = 102
    PROTOCOL_ERROR = 103
    PEER_TIMEOUT = 104
    # Output policy (node-reported by a provider, DESIGN §6): the query would disclose
    # too much, so the provider refused before sending anything.
    GROUP_TOO_SMALL = 105  # selected or excluded rows fewer than the minimum group size
    QUERY_OVERLAP = 106  # differs from an answered query by fewer than the minimum rows
    IDENTIFIER_FILTER = 107  # (in)equality filter on a column marked as an identifier
    PROVIDER_NOT_INDEPENDENT = 108  # another provider belongs to the creator organisation
    TOO_FEW_PROVIDER_ORGS = 109  # fewer provider organisations than the policy's minimum
    PRIVACY_BUDGET_EXHAUSTED = 110  # grant's epsilon budget or the query history is spent
    NOT_INVITED = 111  # a data-less seat in a task of an org the node does not accept tasks from
    NODE_AT_CAPACITY = 112  # the node's inbox memory for all tasks is full: no inbox for this one
    # A data owner refused the host's enclave (the named reason is in its
    # `AttestationRefused` event), or an attested job's host was told so.
    ATTESTATION_REFUSED = 113


MIN_REPORTED_REASON = 100  # TaskRegistry.MIN_REPORTED_REASON


#: `TaskRegistry.AttestationRefused` reason codes, keyed by the value of
#: `node.tee.refusal.Reason` (declaration order from 1; 0 is rejected on chain). Never
#: renumber: add new reasons at the end, as `Reason` does.
ATTESTATION_REFUSAL_CODES: dict[str, int] = {
    "UNKNOWN_MEASUREMENT": 1,
    "REVOKED_MEASUREMENT": 2,
    "STALE_NONCE": 3,
    "REPORT_EXPIRED": 4,
    "DIGEST_MISMATCH": 5,
    "BACKEND_NOT_ALLOWED": 6,
    "BAD_SIGNATURE": 7,
    "UNVERIFIABLE_EVIDENCE": 8,
    "MALFORMED": 9,
}


def attestation_refusal_code(reason: str) -> int:
    """The on-chain code of a refusal reason (a `node.tee.refusal.Reason` or its value)."""
    try:
        return ATTESTATION_REFUSAL_CODES[str(reason)]
    except KeyError:
        raise InvalidInput("reason", f"unknown attestation refusal reason {reason!r}") from None


def attestation_refusal_name(code: int) -> str:
    """The reason an `AttestationRefused` code stands for; ``UNKNOWN_REASON_<code>`` if
    this build does not know it (a newer node's)."""
    for name, value in ATTESTATION_REFUSAL_CODES.items():
        if value == int(code):
            return name
    return f"UNKNOWN_REASON_{int(code)}"


def reason_name(code: int) -> str:
    """The name of an on-chain failure reason code, as operators and dashboards see it.

    A code this build does not know (a newer node's, or a contract upgrade's) keeps its
    number rather than being mislabelled or raising: ``UNKNOWN_REASON_<code>``.
    """
    try:
        return Reason(int(code)).name
    except ValueError:
        return f"UNKNOWN_REASON_{int(code)}"


@dataclass(frozen=True)
class Participant:
    node: str
    dataset_id: bytes = bytes(32)
    dataset_version: int = 0
    grant_id: bytes = bytes(32)

    def as_tuple(self, index: int) -> tuple[str, bytes, int, bytes]:
        field = f"participants[{index}]"
        if not 0 <= self.dataset_version < 2**32:
            raise InvalidInput(f"{field}.dataset_version", f"out of range: {self.dataset_version}")
        return (
            as_address(self.node, f"{field}.node"),
            as_bytes32(self.dataset_id, f"{field}.dataset_id"),
            self.dataset_version,
            as_bytes32(self.grant_id, f"{field}.grant_id"),
        )


@dataclass(frozen=True)
class TaskInfo:
    creator_org: bytes
    algorithm_digest: bytes
    params_digest: bytes
    deadline: int
    state: TaskState
    participant_count: int
    accepted_count: int
    result_count: int


@dataclass(frozen=True)
class ParticipantStatus:
    accepted: bool
    input_anchored: bool
    result_submitted: bool
    result_digest: bytes


class TaskRegistryClient(ContractClient):
    contract_name = "TaskRegistry"

    @staticmethod
    def task_id_for(creator_org: bytes, request_id: bytes) -> bytes:
        """The id `createTask(request_id, ...)` gives a task of `creator_org` (computed locally)."""
        return task_id_for(creator_org, request_id)

    def task_id_on_chain(self, creator_org: bytes, request_id: bytes) -> bytes:
        """The contract's own `taskIdFor`, to check the local derivation against."""
        return bytes(
            self._call(
                "taskIdFor",
                as_bytes32(creator_org, "creator_org"),
                as_bytes32(request_id, "request_id"),
            )
        )

    def create(
        self,
        request_id: bytes,
        algorithm_digest: bytes,
        params_digest: bytes,
        deadline: int,
        participants: list[Participant],
    ) -> TxReceipt:
        """Creates the task `task_id_for(<caller's org>, request_id)`; see `created_id`."""
        return self._transact(
            "createTask",
            as_bytes32(request_id, "request_id"),
            as_bytes32(algorithm_digest, "algorithm_digest"),
            as_bytes32(params_digest, "params_digest"),
            deadline,
            [p.as_tuple(i) for i, p in enumerate(participants)],
        )

    def created_id(self, receipt: TxReceipt) -> bytes:
        """The task id a `create` receipt's `TaskCreated` event names."""
        return bytes(self.events_in(receipt, "TaskCreated")[0]["taskId"])

    def max_task_duration(self) -> int:
        return int(self._call("maxTaskDuration"))

    def accept(self, task_id: bytes) -> TxReceipt:
        return self._transact("acceptTask", as_bytes32(task_id, "task_id"))

    def refuse(self, task_id: bytes, reason: int) -> TxReceipt:
        return self._transact("refuseTask", as_bytes32(task_id, "task_id"), int(reason))

    def record_attestation_refusal(
        self, task_id: bytes, report_digest: bytes, reason: str
    ) -> TxReceipt:
        """Record that this node refused an enclave's attestation report for a task.

        `reason` is a `node.tee.refusal.Reason` (or its value); the task's state is unchanged.
        """
        return self._transact(
            "recordAttestationRefusal",
            as_bytes32(task_id, "task_id"),
            as_bytes32(report_digest, "report_digest"),
            attestation_refusal_code(reason),
        )

    def anchor_input(self, task_id: bytes, commitment: bytes) -> TxReceipt:
        return self._transact(
            "anchorInput", as_bytes32(task_id, "task_id"), as_bytes32(commitment, "commitment")
        )

    def anchor_checkpoint(self, task_id: bytes, round_: int, digest: bytes) -> TxReceipt:
        return self._transact(
            "anchorCheckpoint",
            as_bytes32(task_id, "task_id"),
            round_,
            as_bytes32(digest, "checkpoint digest"),
        )

    def checkpoints(
        self, task_id: bytes, node: str, from_block: int = 0
    ) -> list[tuple[int, bytes]]:
        """(round, digest) of every checkpoint ``node`` anchored in the task, in chain
        order (the contract accepts only rising rounds, so that is round order)."""
        logs = self.contract.events.CheckpointAnchored().get_logs(
            argument_filters={"taskId": as_bytes32(task_id, "task_id"), "node": node},
            from_block=from_block,
        )
        ordered = sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"]))
        return [
            (int(log["args"]["round"]), bytes(log["args"]["checkpointDigest"])) for log in ordered
        ]

    def submit_result(
        self, task_id: bytes, result_digest: bytes, evidence_root: bytes
    ) -> TxReceipt:
        return self._transact(
            "submitResult",
            as_bytes32(task_id, "task_id"),
            as_bytes32(result_digest, "result_digest"),
            as_bytes32(evidence_root, "evidence_root"),
        )

    def report_failure(self, task_id: bytes, reason: int) -> TxReceipt:
        return self._transact("reportFailure", as_bytes32(task_id, "task_id"), int(reason))

    def expire(self, task_id: bytes) -> TxReceipt:
        return self._transact("expire", as_bytes32(task_id, "task_id"))

    def max_participants(self) -> int:
        return int(self._call("MAX_PARTICIPANTS"))

    def state(self, task_id: bytes) -> TaskState:
        return TaskState(self._call("taskState", as_bytes32(task_id, "task_id")))

    def info(self, task_id: bytes) -> TaskInfo:
        c, a, p, d, s, n, acc, res = self._call("taskInfo", as_bytes32(task_id, "task_id"))
        return TaskInfo(bytes(c), bytes(a), bytes(p), int(d), TaskState(s), n, acc, res)

    def participants(self, task_id: bytes) -> list[Participant]:
        rows = self._call("participants", as_bytes32(task_id, "task_id"))
        return [Participant(str(n), bytes(d), int(v), bytes(g)) for n, d, v, g in rows]

    def participant_status(self, task_id: bytes, node: str) -> ParticipantStatus:
        a, i, r, d = self._call(
            "participantStatus", as_bytes32(task_id, "task_id"), as_address(node, "node")
        )
        return ParticipantStatus(bool(a), bool(i), bool(r), bytes(d))
