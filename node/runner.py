"""The task runner: the chain drives the work, the node follows and records.

The runner reads `TaskRegistry` events and acts only on what the chain says:

* `TaskCreated` naming this node: check the algorithm digest against the code it would
  run, its own copy of the dataset against the registered commitment, and the grant;
  then accept, or refuse on chain with a reason code (a silent refusal leaves nothing for
  an auditor to find).
* `TaskStarted`: anchor the input commitment, run the protocol over the peer mesh with
  every message recorded in the evidence store, and submit the result digest with the
  transcript's Merkle root; the transcript tree is also checkpointed into `AnchorLog`.

Idempotency comes from the chain itself: before every on-chain action the runner reads
the participant's on-chain status, and a refusal that says the action already happened
(`AlreadyAccepted`, `InputAlreadyAnchored`, ...) counts as done. Off-chain state is
written before the chain is touched. After a crash, a task whose protocol had not begun
is resumed; one that had started is failed on chain with a reason (its ephemeral keys
and the messages peers had delivered to its in-memory inbox are gone, and peers must
not wait until the deadline); a node that crashed after submitting its result only
completes its local steps; none is left Running past its deadline, because the runner
expires overdue tasks it takes part in.

Aggregator-style jobs (secure statistics) share one envelope: the participant without a
dataset is the aggregator; it sends the task parameters (checked by every provider
against the on-chain parameters digest), runs the algorithm, and sends each provider a
hiding commitment to the result (digest of result and a random salt). Every participant
submits that commitment as its result digest, so the task completes only if the
aggregator told every provider the same thing, and no provider learns the result.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from eth_account.signers.local import LocalAccount

from ledger.artifacts import abi
from ledger.canonical import digest_json
from ledger.clients import Clients
from ledger.clients.measurements import read_measurement_sets
from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.errors import ContractRevert
from ledger.events import Event, EventReader, Source
from ledger.ids import InvalidInput
from ledger.rows import schema_digest
from ledger.task_params import ParamsEnvelope
from ledger.transcript import evidence_log_id, evidence_log_name
from node.admission import (
    TaskRefused,
    check_task,
    dataset_levels,
    is_requester_style,
    participant_slot,
    seat_role,
)
from node.algorithms import output_policy
from node.algorithms.disclosure import Answered, QueryRefused, check_disclosure, selection_json
from node.algorithms.output_policy import EffectivePolicy
from node.channel import Channel, ChannelError, ForwardingChannel, RecordingChannel
from node.crypto.ecdh_psi import new_executor
from node.crypto.secagg import AddressVerifier, Identity
from node.dataset_store import DatasetStore
from node.datasets import ImportedDataset
from node.evidence.store import EvidenceStore
from node.peer.direct_link import DirectLink
from node.prior_task import PriorTask
from node.prior_task import gather as gather_prior_task
from node.query_history import QueryHistory
from node.state import TaskRecord, TaskStateStore
from node.task_prechecks import pending_time
from node.tee.backend import Backend
from node.tee.refusal import Refused
from node.tee.settings import TeeTrust

log = logging.getLogger("provnet.runner")

ZERO = bytes(32)
TERMINAL_EVENTS = {
    "TaskCompleted": "done",
    "TaskDisputed": "failed",
    "TaskFailed": "failed",
    "TaskExpired": "failed",
}
ALREADY_DONE = {
    "accept": ("AlreadyAccepted",),
    "anchor_input": ("InputAlreadyAnchored",),
    "submit_result": ("ResultAlreadySubmitted",),
}
STOP_GRACE_SECONDS = 5.0
STEP_PARAMS = "params"
STEP_RESULT = "result-commitment"


class ProtocolFailure(Exception):
    """The job could not finish; `reason` is recorded on chain."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.name}: {detail}")


@contextmanager
def _algorithm_errors() -> Iterator[None]:
    """An algorithm's own refusal or failure, recorded on chain under the reason it names.

    Algorithm modules raise exceptions carrying ``reason`` (an on-chain reason name, e.g.
    ``GROUP_TOO_SMALL``) and ``detail``; they know nothing of the chain's enum.
    """
    try:
        yield
    except ChannelError:
        raise
    except Exception as exc:
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str) and reason in Reason.__members__:
            raise ProtocolFailure(Reason[reason], str(getattr(exc, "detail", exc))) from None
        raise


def result_commitment(task_id: bytes, result: Mapping[str, Any], salt: bytes) -> bytes:
    """A hiding commitment: agreement on it proves one result, revealing nothing."""
    return digest_json(
        "result-commitment", {"task": task_id.hex(), "result": dict(result), "salt": salt.hex()}
    )


def no_input_commitment(task_id: bytes, node: str) -> bytes:
    """What a participant without a dataset (an aggregator) anchors as its input."""
    return digest_json("no-input", {"task": task_id.hex(), "node": node.lower()})


CRASH_ENV = "PROVNET_FAULT_CRASH_AT"


def crash_point(name: str) -> None:
    """Fault injection for crash tests: SIGKILL this process at a named step.

    Off unless the environment variable names the step (`accepted`, `input_anchored`,
    `result_submitted`, or `send:<protocol step>`); production configs never set it.
    """
    if os.environ.get(CRASH_ENV) == name:
        log.warning("fault injection: killing the node at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)


class CrashingChannel(ForwardingChannel):
    """Passes messages through; the crash point `send:<step>` fires after that send."""

    def send(self, peer: str, step: str, payload: bytes) -> None:
        self.inner.send(peer, step, payload)
        crash_point(f"send:{step}")


class StoreTranscript:
    """Adapts the evidence store to the transcript interface a RecordingChannel writes."""

    def __init__(self, evidence: EvidenceStore, task_id: bytes) -> None:
        self.evidence = evidence
        self.task_id = task_id

    def append(self, kind: str, step: str, entry_digest: bytes, peer: str = "") -> object:
        return self.evidence.append(self.task_id, kind, step, entry_digest, peer)


@dataclass
class TaskRunner:
    address: str  # this node's account
    clients: Clients  # acting as this node
    datasets: DatasetStore
    state: TaskStateStore
    evidence: EvidenceStore
    algorithms: Mapping[bytes, ModuleType]  # digest recomputed from local code -> module
    open_channel: Callable[[bytes, list[str]], Channel]
    first_block: int = 0
    confirmations: int = 0
    protocol_timeout: float = 30.0
    clock: Callable[[], float] = time.time
    # Transport hooks: open a task's inbox as soon as it is accepted (peers may send
    # before this node's worker starts), and close it when the chain ends the task
    # (which also wakes a worker blocked waiting on a peer that will never answer).
    prepare_transport: Callable[[bytes, list[str]], None] | None = None
    release_transport: Callable[[bytes], None] | None = None
    # This node's key (the account named by ``address``): signs its protocol messages,
    # e.g. the secure sum's survivor set. None: the clients' sending account.
    account: LocalAccount | None = None
    # What this node has disclosed to each grantee (differencing checks, DP budget);
    # by default kept in the evidence store's database.
    history: QueryHistory | None = None
    # Organisations besides this node's own that may give it a seat without a dataset
    # (node config `accept_tasks_from`); see `node.admission.check_invited`.
    accept_tasks_from: frozenset[bytes] = frozenset()
    # Worker processes for a task's curve work (node config `compute_processes`); 1
    # computes in the task's own thread.
    compute_processes: int = 1
    # This node's TLS identity and its peers' pinned certificates, for an engine that
    # runs its own TLS transport (the fast PSI mode); None where no such engine runs.
    direct_link: DirectLink | None = None
    # Attested jobs (``tee-join``): the enclave backend this node hosts jobs with (a
    # COMPUTE node), and what it checks other hosts' enclaves against as a data owner
    # (node config ``tee``). None: this node takes no part in such a job in that role.
    tee_backend: Backend | None = None
    tee_trust: TeeTrust | None = None
    _pool: Executor | None = field(default=None, init=False)
    _queries: QueryHistory = field(init=False)
    _cursor: int = field(default=-1, init=False)
    _workers: dict[bytes, threading.Thread] = field(default_factory=dict, init=False)
    # Each running task's recording channel, kept until the chain ends the task, so the
    # messages its protocol never read are recorded (late) before the inbox drops them.
    _channels: dict[bytes, RecordingChannel] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        tasks = self.clients.tasks
        self._reader = EventReader(
            tasks.chain,
            [Source("TaskRegistry", tasks.address, abi("TaskRegistry"))],
            confirmations=self.confirmations,
        )
        self._cursor = self.first_block - 1
        self._queries = self.history or QueryHistory(self.evidence.db)

    # the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, poll_interval: float) -> None:
        self.recover()
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep serving: one bad poll must not stop the node
                log.exception("poll failed")
            stop.wait(poll_interval)
        # A worker finishing its step gets a moment; one blocked on a peer is abandoned
        # (a daemon thread: the restart path fails its task on chain, so waiting for the
        # peer's timeout would only delay the stop).
        self.join(STOP_GRACE_SECONDS)
        self.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the workers; with a timeout, for all of them together at most that long."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in list(self._workers.values()):
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def poll_once(self) -> None:
        head = self._reader.safe_head()
        if head > self._cursor:
            for event in self._reader.read(self._cursor + 1, head):
                self._on_event(event)
            self._cursor = head
        self._expire_overdue()

    def _mine(self, event: Event) -> bool:
        if event.name == "TaskCreated":
            return any(
                str(p["node"]).lower() == self.address.lower() for p in event.args["participants"]
            )
        return self.state.get(bytes(event.args["taskId"])) is not None

    def _on_event(self, event: Event) -> None:
        if not self._mine(event):
            return
        task_id = bytes(event.args["taskId"])
        if event.name == "TaskCreated":
            self.consider(task_id)
        elif event.name == "TaskStarted":
            self.start_worker(task_id)
        elif event.name in TERMINAL_EVENTS:
            self._finish(task_id, TERMINAL_EVENTS[event.name], event.name)

    # acceptance -----------------------------------------------------------------

    def consider(self, task_id: bytes) -> bool:
        """Accept or refuse a task that names this node; idempotent."""
        record: TaskRecord = self.state.ensure(task_id, role=self._role(task_id))
        if record.phase != "seen":
            return record.phase != "refused"
        if self.clients.tasks.participant_status(task_id, self.address).accepted:
            self.state.advance(task_id, "accepted")  # crashed after accepting on chain
            return True
        if self.clients.tasks.state(task_id) != TaskState.CREATED:
            return False
        try:
            self.check(task_id)
            self._prepare(task_id)  # may refuse too: no inbox room (NODE_AT_CAPACITY)
        except TaskRefused as refusal:
            log.warning("refusing task 0x%s: %s", task_id.hex(), refusal)
            reason = refusal.reason
            self.state.advance(task_id, "refused", error=str(refusal))
            self._chain_once(task_id, "refuse", lambda: self.clients.tasks.refuse(task_id, reason))
            return False
        self._chain_once(task_id, "accept", lambda: self.clients.tasks.accept(task_id))
        crash_point("accepted")
        self.state.advance(task_id, "accepted")
        return True

    def _prepare(self, task_id: bytes) -> None:
        if self.prepare_transport is not None:
            nodes = [p.node for p in self.clients.tasks.participants(task_id)]
            self.prepare_transport(task_id, nodes)

    def _record(self, task_id: bytes) -> TaskRecord:
        record = self.state.get(task_id)
        if record is None:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, "no local record of this task")
        return record

    def _slot(self, task_id: bytes) -> Participant:
        return participant_slot(self.clients, task_id, self.address)

    def _role(self, task_id: bytes) -> str:
        module = self.algorithms.get(self.clients.tasks.info(task_id).algorithm_digest)
        return seat_role(module, self.clients.tasks.participants(task_id), self.address)

    def check(self, task_id: bytes) -> None:
        """Raise TaskRefused unless code, data and grant all match the chain."""

        def load(dataset_id: bytes, version: int) -> ImportedDataset | None:
            held = self.datasets.load(dataset_id, version)
            return None if held is None else held.data

        check_task(
            self.clients, task_id, self.address, self.algorithms, load, self.accept_tasks_from
        )

    # execution ------------------------------------------------------------------

    def start_worker(self, task_id: bytes) -> None:
        with self._lock:
            running = self._workers.get(task_id)
            if running is not None and running.is_alive():
                return
            record = self.state.get(task_id)
            if record is None or record.phase not in ("accepted", "input_anchored"):
                return
            worker = threading.Thread(
                target=self._execute_guarded,
                args=(task_id,),
                name=f"task-{task_id.hex()[:8]}",
                daemon=True,  # a stopping node abandons the protocol; restart fails it cleanly
            )
            self._workers[task_id] = worker
            worker.start()

    def _execute_guarded(self, task_id: bytes) -> None:
        try:
            self.execute(task_id)
        except ProtocolFailure as failure:
            self._fail(task_id, failure.reason, str(failure))
        except ChannelError as exc:
            # Every channel error names its on-chain reason (PEER_TIMEOUT for a stalled
            # peer, PARTICIPANT_INACTIVE for one the chain cut off, ...).
            reason = Reason.__members__.get(exc.reason, Reason.PROTOCOL_ERROR)
            self._fail(task_id, reason, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("task 0x%s failed", task_id.hex())
            self._fail(task_id, Reason.PROTOCOL_ERROR, f"{type(exc).__name__}: {exc}")

    def execute(self, task_id: bytes) -> None:
        tasks = self.clients.tasks
        info = tasks.info(task_id)
        if info.state != TaskState.RUNNING:
            return
        slot = self._slot(task_id)
        participants = tasks.participants(task_id)
        record = self._record(task_id)
        if record.phase == "accepted":
            commitment = self._input_commitment(task_id, slot)
            if not self.evidence.size(task_id):
                self.evidence.append(task_id, "input", "input", commitment)
            self._chain_once(
                task_id, "anchor_input", lambda: tasks.anchor_input(task_id, commitment)
            )
            crash_point("input_anchored")
            self.state.advance(task_id, "input_anchored")
        module = self.algorithms[info.algorithm_digest]
        peers = [p.node for p in participants if p.node.lower() != self.address.lower()]
        self._prepare(task_id)
        self.state.advance(task_id, "running")  # from here a crash means: fail, do not resume
        channel = RecordingChannel(
            CrashingChannel(self.open_channel(task_id, peers)),
            task_id,
            StoreTranscript(self.evidence, task_id),
        )
        self._channels[task_id] = channel
        if getattr(module, "ATTESTED", False):
            commitment = self._run_attested(
                task_id, info.params_digest, module, channel, slot, participants
            )
        elif is_requester_style(module):
            if participants[0].node.lower() == self.address.lower():
                commitment = self._run_requester(
                    task_id, info.params_digest, module, channel, slot, participants
                )
            else:
                commitment = self._run_responder(
                    task_id, info.params_digest, module, channel, slot, participants
                )
        elif slot.dataset_id == ZERO:
            commitment = self._run_aggregator(
                task_id, info.params_digest, module, channel, participants
            )
        else:
            commitment = self._run_provider(
                task_id, info.params_digest, module, channel, slot, participants
            )
        self.evidence.append(task_id, "output", "result", commitment)
        root = self.evidence.root(task_id)
        self._chain_once(
            task_id, "submit_result", lambda: tasks.submit_result(task_id, commitment, root)
        )
        crash_point("result_submitted")
        # The protocol may have finished before reading every message (a threshold was
        # reached): those are on record as delivered late, after the root just anchored,
        # and the checkpoint covers them. More may arrive until the task ends (`_finish`).
        channel.record_unread()
        self._checkpoint_transcript(
            task_id, self.evidence.size(task_id), self.evidence.root(task_id)
        )
        self.state.advance(task_id, "result_submitted")

    def _input_commitment(self, task_id: bytes, slot: Participant) -> bytes:
        if slot.dataset_id == ZERO:
            return no_input_commitment(task_id, self.address)
        return self.clients.datasets.version_info(slot.dataset_id, slot.dataset_version).merkle_root

    def _signing_account(self) -> LocalAccount:
        if self.account is not None:
            return self.account
        sender = self.clients.tasks.sender
        if sender is None:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, "no node account to sign with")
        return sender.account

    def _run_aggregator(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        participants: list[Participant],
    ) -> bytes:
        envelope = self._stored_envelope(task_id, expected_digest)
        params = module.Params.from_json(envelope.params)
        policy = self._policy(participants, params)
        providers = [p.node for p in participants if p.dataset_id != ZERO]
        self._send_params(channel, envelope, providers)
        result = module.run_aggregator(
            channel,
            params,
            providers,
            timeout=self.protocol_timeout,
            verifier=AddressVerifier(),
            task_id=task_id,
            policy=policy,
            **self._checkpoint_hook(task_id, module),
        )
        return self._commit_result(task_id, channel, result.to_json(), providers)

    def _checkpoint_hook(self, task_id: bytes, module: ModuleType) -> dict[str, Any]:
        """``checkpoint(number, digest)`` for a module that declares ``CHECKPOINTS``:
        per-round (or per-epoch) progress, anchored under this node's own seat."""
        if not getattr(module, "CHECKPOINTS", False):
            return {}

        def anchor(number: int, digest: bytes) -> None:
            self.clients.tasks.anchor_checkpoint(task_id, number, digest)

        return {"checkpoint": anchor}

    # attested jobs (TEE): the data-less seat hosts the enclave, the others own data -----

    def _run_attested(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        slot: Participant,
        participants: list[Participant],
    ) -> bytes:
        hosts = [p.node for p in participants if p.dataset_id == ZERO]
        owners = [p.node for p in participants if p.dataset_id != ZERO]
        if len(hosts) != 1:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, f"expected one host, found {len(hosts)}")
        if slot.dataset_id == ZERO:
            return self._host_attested(task_id, expected_digest, module, channel, owners)
        return self._own_attested(
            task_id, expected_digest, module, channel, slot, participants, hosts[0]
        )

    def _host_attested(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        owners: list[str],
    ) -> bytes:
        envelope = self._stored_envelope(task_id, expected_digest)
        params = module.Params.from_json(envelope.params)
        self._send_params(channel, envelope, owners)
        if self.tee_backend is None:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR,
                "this node hosts no enclaves: set tee.backend in its node.json",
            )
        enclave = self.tee_backend.launch(task_id, module)
        try:
            result = module.run_host(
                channel, params, owners, enclave, task_id=task_id, timeout=self.protocol_timeout
            )
        except module.HostRefused as exc:
            raise ProtocolFailure(Reason.ATTESTATION_REFUSED, str(exc)) from None
        except Refused as exc:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, f"enclave: {exc}") from None
        # The destruction receipt, anchored: its signed statement is in the result.
        self.clients.tasks.anchor_checkpoint(
            task_id, module.RECEIPT_CHECKPOINT, result.receipt.statement_digest
        )
        return self._commit_result(task_id, channel, result.to_json(), owners)

    def _own_attested(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        slot: Participant,
        participants: list[Participant],
        host: str,
    ) -> bytes:
        envelope = self._received_envelope(channel, host, expected_digest)
        params = module.Params.from_json(envelope.params)
        held = self._held_data(slot)
        policy = self._policy(participants, params)
        if policy.differential_privacy:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR,
                f"dataset classification requires differential privacy; {module.NAME} adds none",
            )
        if self.tee_trust is None:
            raise ProtocolFailure(
                Reason.ATTESTATION_REFUSED,
                "this node trusts no enclave backend: set tee.allowed_backends in its node.json",
            )
        consortium = self.clients.consortium
        sets = read_measurement_sets(
            consortium.chain, consortium.address, confirmations=self.confirmations
        )
        trust = module.OwnerTrust(
            policy=self.tee_trust.policy,
            verifiers=self.tee_trust.verifiers,
            trusted=sets.trusted,
            revoked=sets.revoked,
            approved_digest=self.clients.tasks.info(task_id).algorithm_digest,
            now=lambda: int(self.clock()),
        )

        def record_refusal(report_digest: bytes, refused: Refused) -> None:
            self.clients.tasks.record_attestation_refusal(
                task_id, report_digest, refused.reason.value
            )

        try:
            module.run_owner(
                channel,
                params,
                held.table,
                host,
                task_id=task_id,
                trust=trust,
                min_group_size=policy.min_group_size,
                on_refusal=record_refusal,
                timeout=self.protocol_timeout,
            )
        except module.InvalidData as exc:
            raise ProtocolFailure(Reason.DATASET_MISMATCH, str(exc)) from None
        except module.AttestationRefused as exc:
            # The host fails the task once every owner has answered (so every owner's
            # refusal is on chain first); fail it ourselves only if it does not.
            self._await_verdict(task_id)
            refused = exc.refused
            raise ProtocolFailure(
                Reason.ATTESTATION_REFUSED, f"{refused.reason.value}: {refused.detail}"
            ) from None
        return self._received_commitment(channel, host)

    def _await_verdict(self, task_id: bytes) -> None:
        """Wait, at most one protocol timeout, for the chain to end a running task."""
        deadline = time.monotonic() + self.protocol_timeout
        while self.clients.tasks.state(task_id) == TaskState.RUNNING:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    def _stored_envelope(self, task_id: bytes, expected_digest: bytes) -> ParamsEnvelope:
        """The parameters this node (the task's creator) committed to on chain."""
        record = self._record(task_id)
        if not record.params_json:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR, "this node holds no parameters for the task"
            )
        try:
            envelope = ParamsEnvelope.from_json(json.loads(record.params_json))
        except InvalidInput as exc:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, f"stored parameters: {exc}") from None
        if envelope.digest != expected_digest:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, "stored parameters do not match the chain")
        return envelope

    @staticmethod
    def _send_params(channel: Channel, envelope: ParamsEnvelope, peers: list[str]) -> None:
        encoded = json.dumps(envelope.to_json(), sort_keys=True).encode()
        for peer in peers:
            channel.send(peer, STEP_PARAMS, encoded)

    def _received_envelope(
        self, channel: Channel, lead: str, expected_digest: bytes
    ) -> ParamsEnvelope:
        """The parameters the task's lead sent, checked against the on-chain digest."""
        try:
            raw = json.loads(channel.receive(lead, STEP_PARAMS, self.protocol_timeout))
            envelope = ParamsEnvelope.from_json(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, f"parameters: {exc}") from None
        if envelope.digest != expected_digest:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR, "parameters do not match the on-chain digest"
            )
        return envelope

    def _commit_result(
        self, task_id: bytes, channel: Channel, result_json: Mapping[str, Any], peers: list[str]
    ) -> bytes:
        """Keep the result, and give every peer a hiding commitment to it to submit."""
        salt = secrets.token_bytes(32)
        commitment = result_commitment(task_id, result_json, salt)
        self.state.set_result(
            task_id, json.dumps({"result": dict(result_json), "salt": salt.hex()})
        )
        for peer in peers:
            channel.send(peer, STEP_RESULT, commitment)
        return commitment

    def _held_data(self, slot: Participant) -> ImportedDataset:
        held = self.datasets.load(slot.dataset_id, slot.dataset_version)
        if held is None:
            raise ProtocolFailure(Reason.DATASET_MISMATCH, "dataset version no longer held")
        return held.data

    def _received_commitment(self, channel: Channel, lead: str) -> bytes:
        commitment = channel.receive(lead, STEP_RESULT, self.protocol_timeout)
        if len(commitment) != 32:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, "result commitment is not 32 bytes")
        return commitment

    # requester-style jobs (PSI): seat 0 holds its own data and learns the result ------

    def _run_requester(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        slot: Participant,
        participants: list[Participant],
    ) -> bytes:
        envelope = self._stored_envelope(task_id, expected_digest)
        params, policy, data = self._requester_job_inputs(envelope, module, slot, participants)
        responders = [p.node for p in participants[1:]]
        self._send_params(channel, envelope, responders)
        with _algorithm_errors():
            result = module.run_requester(
                channel,
                params,
                data.table,
                data.columns,
                responders,
                timeout=self.protocol_timeout,
                policy=policy,
                executor=self._compute_pool(),
                processes=self.compute_processes,
                **self._engine_links(module),
                **self._checkpoint_hook(task_id, module),
                **self._prior_task_hook(module),
            )
        return self._commit_result(task_id, channel, result.to_json(), responders)

    def _run_responder(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        slot: Participant,
        participants: list[Participant],
    ) -> bytes:
        requester = participants[0].node
        envelope = self._received_envelope(channel, requester, expected_digest)
        params, policy, data = self._requester_job_inputs(envelope, module, slot, participants)
        with _algorithm_errors():
            kept = module.run_responder(
                channel,
                params,
                data.table,
                data.columns,
                requester,
                [p.node for p in participants[1:]],
                timeout=self.protocol_timeout,
                policy=policy,
                executor=self._compute_pool(),
                processes=self.compute_processes,
                **self._engine_links(module),
                **self._checkpoint_hook(task_id, module),
                **self._prior_task_hook(module),
            )
        if kept is not None:
            # What this seat keeps for itself (a vertical model share, for scoring
            # later): stored beside the task, never sent, not part of any commitment.
            self.state.set_result(task_id, json.dumps({"share": kept.to_json()}))
        return self._received_commitment(channel, requester)

    def _requester_job_inputs(
        self,
        envelope: ParamsEnvelope,
        module: ModuleType,
        slot: Participant,
        participants: list[Participant],
    ) -> tuple[Any, EffectivePolicy, ImportedDataset]:
        """The parameters, the output rules (from the responders' datasets: theirs is
        the data the policy protects) and this seat's own rows."""
        try:
            params = module.Params.from_json(envelope.params)
        except ValueError as exc:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, f"parameters: {exc}") from None
        return params, self._policy(participants[1:], params), self._held_data(slot)

    def _engine_links(self, module: ModuleType) -> dict[str, Any]:
        """``link`` for an engine that opens its own TLS connections (fast PSI)."""
        if not getattr(module, "USES_DIRECT_LINK", False):
            return {}
        if self.direct_link is None:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR, f"{module.NAME} needs a direct link; this runner has none"
            )
        return {"link": self.direct_link}

    def _prior_task_hook(self, module: ModuleType) -> dict[str, Any]:
        """``training(task_id)`` for a module that builds on an earlier task's output
        (``USES_TRAINING``): this node's own facts of it (``node/prior_task.py``)."""
        if not getattr(module, "USES_TRAINING", False):
            return {}

        def training(earlier: bytes) -> PriorTask | None:
            return gather_prior_task(
                self.clients.tasks, self.state, self.algorithms, earlier, self.first_block
            )

        return {"training": training}

    def _compute_pool(self) -> Executor | None:
        """The node's worker pool for curve work, started on first use and then kept
        (starting workers costs ~0.1 s each); None computes in this thread."""
        if self.compute_processes <= 1:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = new_executor(self.compute_processes)
            return self._pool

    def close(self) -> None:
        """Stop the worker pool, if one was started."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_provider(
        self,
        task_id: bytes,
        expected_digest: bytes,
        module: ModuleType,
        channel: Channel,
        slot: Participant,
        participants: list[Participant],
    ) -> bytes:
        aggregators = [p.node for p in participants if p.dataset_id == ZERO]
        if len(aggregators) != 1:
            raise ProtocolFailure(
                Reason.PROTOCOL_ERROR, f"expected one aggregator, found {len(aggregators)}"
            )
        aggregator = aggregators[0]
        envelope = self._received_envelope(channel, aggregator, expected_digest)
        held = self.datasets.load(slot.dataset_id, slot.dataset_version)
        if held is None:
            raise ProtocolFailure(Reason.DATASET_MISMATCH, "dataset version no longer held")
        params = module.Params.from_json(envelope.params)
        if schema_digest(params.columns) != held.data.schema_digest:
            # The parameters describe the data the job expects (names, types, decimal
            # scales, identifier marks); running on a different schema would compute
            # something else under the approved name, or filter on an identifier.
            raise ProtocolFailure(
                Reason.DATASET_MISMATCH, "the task's columns differ from this dataset's schema"
            )
        policy = self._policy(participants, params)
        self._admit_query(task_id, params, policy, slot, held.data)
        providers = [p.node for p in participants if p.dataset_id != ZERO]
        module.run_provider(
            channel,
            params,
            held.data.table,
            aggregator,
            providers,
            timeout=self.protocol_timeout,
            identity=Identity(self._signing_account()),
            verifier=AddressVerifier(),
            task_id=task_id,
            policy=policy,
        )
        return self._received_commitment(channel, aggregator)

    def _policy(self, participants: list[Participant], params: Any) -> EffectivePolicy:
        """The output rules of this task, derived from chain facts by every party alike."""
        try:
            return output_policy.effective(
                dataset_levels(self.clients, participants),
                params.min_group_size,
                params.epsilon,
            )
        except output_policy.PolicyError as exc:
            raise ProtocolFailure(Reason.PROTOCOL_ERROR, str(exc)) from None

    def _admit_query(
        self,
        task_id: bytes,
        params: Any,
        policy: EffectivePolicy,
        slot: Participant,
        data: ImportedDataset,
    ) -> None:
        """Check the query against this provider's rows and history, then record it.

        Recorded before anything is sent: an answered query missing from the history
        would reopen the dataset to differencing.
        """
        grantee = self.clients.tasks.info(task_id).creator_org
        key = (grantee, slot.dataset_id, slot.dataset_version)
        with self._queries.guard(*key):
            answered = self._queries.answered(*key)
            if any(q.task_id == task_id for q in answered):
                return  # decided before a restart; the restart path fails the task anyway
            earlier = [Answered(q.selection, q.epsilon) for q in answered]
            identifiers = [c.name for c in data.columns if c.identifier]
            try:
                selected = check_disclosure(
                    params,
                    data.table,
                    policy,
                    identifiers,
                    earlier,
                    self._queries.epsilon_spent(slot.grant_id),
                )
            except QueryRefused as refused:
                raise ProtocolFailure(Reason[refused.reason], refused.detail) from None
            self._queries.record(
                task_id=task_id,
                dataset_id=slot.dataset_id,
                version=slot.dataset_version,
                grantee_org=grantee,
                grant_id=slot.grant_id,
                selection=selection_json(params),
                selected=selected,
                epsilon=policy.epsilon_per_query,
            )

    def _checkpoint_transcript(self, task_id: bytes, size: int, root: bytes) -> None:
        anchors = self.clients.anchors
        log_id = evidence_log_id(self.address, task_id)
        latest = anchors.latest(log_id)[0]
        if latest >= size:
            return
        if latest == 0:  # the node's own log for this task: nobody else can create it
            receipt = anchors.create_log(evidence_log_name(task_id), size, root)
        else:
            receipt = anchors.checkpoint(log_id, size, root)
        self.evidence.record_anchor(
            task_id, "checkpoint", size, root, bytes(receipt["transactionHash"])
        )

    # failure, completion, expiry, recovery ----------------------------------------

    def _chain_once(self, task_id: bytes, action: str, send: Callable[[], Any]) -> None:
        """Send an on-chain action unless the chain already shows it done."""
        status = self.clients.tasks.participant_status(task_id, self.address)
        done = {
            "accept": status.accepted,
            "anchor_input": status.input_anchored,
            "submit_result": status.result_submitted,
        }.get(action, False)
        if done:
            return
        try:
            send()
        except ContractRevert as exc:
            if exc.error_name in ALREADY_DONE.get(action, ()):
                return
            raise

    def _submitted(self, task_id: bytes) -> bool:
        return self.clients.tasks.participant_status(task_id, self.address).result_submitted

    def _fail(self, task_id: bytes, reason: Reason, detail: str) -> None:
        log.warning("task 0x%s failed: %s", task_id.hex(), detail)
        record = self.state.get(task_id)
        if record is not None and not record.final:
            # The chain's verdict may be recorded meanwhile (`_finish`): keep that one.
            self.state.fail(task_id, f"{reason.name}: {detail}", unless_final=True)
        if self.clients.tasks.state(task_id) in (TaskState.CREATED, TaskState.RUNNING):
            try:
                self.clients.tasks.report_failure(task_id, reason)
            except ContractRevert as exc:  # someone else ended it first
                log.info("report_failure for 0x%s: %s", task_id.hex(), exc)

    def _finish(self, task_id: bytes, outcome: str, event: str) -> None:
        """Record the chain's verdict once this node's own part is settled.

        Before the inbox is dropped, every message delivered for the task and never read
        is recorded as delivered late (the inbox is sealed first, so nothing arrives
        between that record and the close), and a node that submitted a result
        checkpoints the longer transcript in its AnchorLog log of the task.
        """
        worker = self._workers.get(task_id)
        if outcome != "done":
            self._close_transcript(task_id)
            if self.release_transport is not None:
                self.release_transport(task_id)  # wakes a worker waiting on peers in vain
        elif worker is not None and worker is not threading.current_thread():
            worker.join(self.protocol_timeout)  # its last step may be what ended the task
            self._close_transcript(task_id)
            if self.release_transport is not None:
                self.release_transport(task_id)
        record = self.state.get(task_id)
        if record is None or record.final:
            return
        if record.phase == "refused":
            self.state.advance(task_id, "done")  # the refusal is on chain: our part is over
        elif outcome == "done" and record.phase == "result_submitted":
            self.state.advance(task_id, "done")
        else:
            # unless_final: the task's worker may have failed it since the read above
            self.state.fail(
                task_id, f"CHAIN_{event.upper()}: the chain ended the task", unless_final=True
            )

    def _close_transcript(self, task_id: bytes) -> None:
        """Record the task's unread messages as late deliveries and anchor them.

        Only a node that submitted a result checkpoints: its anchored transcript is what
        the auditor holds it to; the others' transcripts are compared but not anchored.
        """
        channel = self._channels.get(task_id)
        if channel is not None:
            channel.record_unread(seal=True)
            del self._channels[task_id]
        size = self.evidence.size(task_id)
        if size and self._submitted(task_id):
            self._checkpoint_transcript(task_id, size, self.evidence.root(task_id))

    def _expire_overdue(self) -> None:
        """Expire tasks of ours past their deadline, so none stays Running forever.

        Judged by the time the expiring transaction will see: the pending block's
        (`node.task_prechecks.pending_time`; anvil gives it the current time), never the
        last mined block's, which on an idle dev chain stays old until something else is
        mined; the transaction's gas is estimated against the pending block too
        (`ledger.transactions`). The local clock may only advance the judgement
        (``clock``), and a premature attempt is refused by the contract and retried at
        the next poll. One bad record never stops the others: each is handled on its
        own, and a record of a task that never reached the chain is closed locally.
        """
        records = self.state.open_tasks()
        if not records:
            return
        now = max(self.clock(), float(pending_time(self.clients.tasks.chain.w3)))
        for record in records:
            try:
                self._expire_one(record, now)
            except Exception:  # the next record must still be looked at
                log.exception("expiry check of task 0x%s failed", record.task_id.hex())

    def _close_not_on_chain(self, task_id: bytes) -> None:
        """Close a local record without a task on chain: its creation was refused or
        never sent (older versions recorded a task before creating it). Nothing will ever
        happen to it on chain, so it is failed here, once, with that reason."""
        log.warning("task 0x%s is not on chain; closing its local record", task_id.hex())
        self.state.fail(
            task_id,
            "NOT_ON_CHAIN",
            "no such task on chain: its creating transaction was refused or never sent",
        )

    def _expire_one(self, record: TaskRecord, now: float) -> None:
        tasks = self.clients.tasks
        state = tasks.state(record.task_id)
        if state == TaskState.NONE:
            self._close_not_on_chain(record.task_id)
            return
        if state not in (TaskState.CREATED, TaskState.RUNNING):
            return
        info = tasks.info(record.task_id)
        if now >= info.deadline:
            try:
                tasks.expire(record.task_id)
            except ContractRevert as exc:
                log.info("expire 0x%s: %s", record.task_id.hex(), exc)

    def recover(self) -> None:
        """After a restart: settle every task the store says was open."""
        for record in self.state.open_tasks():
            task_id = record.task_id
            state = self.clients.tasks.state(task_id)
            if state == TaskState.NONE:
                self._close_not_on_chain(task_id)  # not "the chain ended it": it never began
                continue
            if record.phase == "running" and self._submitted(task_id):
                # Crashed after the result reached the chain: only local steps remain.
                self._checkpoint_transcript(
                    task_id, self.evidence.size(task_id), self.evidence.root(task_id)
                )
                self.state.advance(task_id, "result_submitted")
                record = self._record(task_id)
            if state in (TaskState.COMPLETED,):
                self._finish(task_id, "done", "TaskCompleted")
            elif state not in (TaskState.CREATED, TaskState.RUNNING):
                self._finish(task_id, "failed", f"Task{state.name.title()}")
            elif record.phase == "running" or (
                state == TaskState.RUNNING and record.phase in ("accepted", "input_anchored")
            ):
                # Once a task runs, peers may have delivered messages to the inbox this
                # process lost; waiting for them again would only hang until the deadline.
                self._fail(task_id, Reason.PROTOCOL_ERROR, "node restarted while the task ran")
            elif record.phase == "seen":
                self.consider(task_id)
            # accepted while still CREATED: TaskStarted (re-read from the chain) starts it
