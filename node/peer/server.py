"""The peer server: accepts protocol messages from nodes the chain vouches for right now.

Two gates, because either alone is not enough:

1. TLS. The server demands a client certificate, and the only roots it accepts are the
   certificates of the nodes that are active on chain (verified against their on-chain
   digests by `ChainTrust`). gRPC asks for the root set on every new connection, so a
   node cut off on chain cannot open a new connection after the next poll.
2. Every call. An HTTP/2 connection can live for hours, far beyond a revocation, so each
   `Deliver` looks the caller's certificate digest up in the current chain view again,
   and the envelope's sender must be the node that certificate is registered for.
   Failing that, the call is refused with PERMISSION_DENIED and a message naming why.

Before the envelope is looked at, the caller's per-peer rate is charged (`PeerRateLimiter`:
messages and bytes per second, token buckets keyed by the authenticated node); a peer
over its rate gets RESOURCE_EXHAUSTED naming the limit, with a `provnet-retry-after-ms`
trailer its client honours.

Then the envelope is checked field by field (INVALID_ARGUMENT naming the field) and filed
in the `Inbox` under (task, sender, step). Nothing is stored unless every check passed.
The inbox bounds what it holds per task (`max_task_bytes`) and across all tasks
(`max_total_bytes`); a message beyond either is refused with RESOURCE_EXHAUSTED, and no
new task is opened while the node-wide bound is reached (`InboxAtCapacity`, which the
task runner records on chain as NODE_AT_CAPACITY).

`GetEvidence` passes the same two gates; the signed request must then name the
authenticated node as its requester and satisfy `node.evidence.access.verify_request`
(see `node.peer.evidence_service`). A server built without an evidence store answers it
UNIMPLEMENTED.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import cast

import grpc

from ledger.ids import InvalidInput, as_address, hex32
from node.channel import MAX_MESSAGE_BYTES, ChannelError
from node.evidence.store import EvidenceStore
from node.identity import TlsIdentity, certificate_digest
from node.peer import (
    ENVELOPE_OVERHEAD,
    RETRY_AFTER_KEY,
    TASK_ID_BYTES,
    check_envelope,
    peer_pb2,
    peer_pb2_grpc,
)
from node.peer.evidence_service import EvidenceService
from node.peer.trust import ChainTrust, TrustUnavailable

DEFAULT_MAX_TASK_BYTES = 256 * 1024 * 1024
"""Undelivered bytes one task may hold in the inbox: bounds what a participant can pin."""
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
"""Undelivered bytes all open tasks together may hold: bounds the inbox's memory."""
DEFAULT_RATE_MESSAGES = 200.0
DEFAULT_RATE_BURST = 400
DEFAULT_RATE_BYTES = 256.0 * 1024 * 1024
REMEMBERED_CLOSED_TASKS = 10_000


class TaskNotOpen(ChannelError):
    """A message for a task this node has not opened (yet): the sender may retry."""

    def __init__(self, task_id: bytes) -> None:
        super().__init__(f"task_id: task {hex32(task_id)} is not open on this node")


class TaskClosed(ChannelError):
    """A message for a task this node has finished with: it will never be read."""

    def __init__(self, task_id: bytes) -> None:
        super().__init__(f"task_id: task {hex32(task_id)} is closed on this node")


class NotParticipant(ChannelError):
    def __init__(self, sender: str, task_id: bytes) -> None:
        super().__init__(f"sender: {sender} is not a participant of task {hex32(task_id)}")


class ConflictingMessage(ChannelError):
    """A second, different payload for a (task, sender, step) that already has one."""

    def __init__(self, sender: str, step: str) -> None:
        super().__init__(
            f"step: a different message {step!r} from {sender} was already delivered for this task"
        )


class InboxFull(ChannelError):
    """A message would take the task's, or the node's, unread bytes beyond their limit."""

    def __init__(self, task_id: bytes, limit: int, node_wide: bool = False) -> None:
        self.limit, self.node_wide = limit, node_wide
        if node_wide:
            message = (
                f"payload: inbox_max_total_bytes: this node's inbox already holds up to its "
                f"{limit} bytes of unread messages across tasks (task {hex32(task_id)})"
            )
        else:
            message = (
                f"payload: inbox_max_task_bytes: task {hex32(task_id)} already holds up to "
                f"{limit} bytes of unread messages"
            )
        super().__init__(message)


class InboxAtCapacity(ChannelError):
    """No new task is opened while the node-wide unread bytes are at their limit."""

    reason = "NODE_AT_CAPACITY"

    def __init__(self, task_id: bytes, held: int, limit: int) -> None:
        super().__init__(
            f"inbox_max_total_bytes: cannot open task {hex32(task_id)}: the inbox holds "
            f"{held} bytes of unread messages, the node-wide limit is {limit}"
        )


class AlreadyReceived(ChannelError):
    """The message was taken before: each (task, sender, step) is read once."""

    def __init__(self, sender: str, step: str) -> None:
        super().__init__(f"message {step!r} from {sender} was already received")


class InboxClosed(ChannelError):
    """The task was closed or the server stopped while a receiver was waiting."""


@dataclass
class _Slot:
    digest: bytes
    size: int
    payload: bytes | None  # None once taken; the digest stays to recognise retries


@dataclass
class _TaskBox:
    participants: frozenset[str]
    slots: dict[tuple[str, str], _Slot] = field(default_factory=dict)
    unread_bytes: int = 0
    sealed: bool = False  # the node's part is over: new messages are refused, as if closed


class Inbox:
    """Messages filed per open task under (sender, step), until the local protocol reads them.

    Only tasks this node opened accept messages, and only from their participants, so a
    peer cannot make the node hold data for work it never agreed to. A retry of a
    delivered message is recognised by digest, even after it was read, so a lost Ack
    never makes a message appear twice.
    """

    def __init__(
        self,
        max_task_bytes: int = DEFAULT_MAX_TASK_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    ) -> None:
        self.max_task_bytes = max_task_bytes
        self.max_total_bytes = max_total_bytes
        self.unread_bytes = 0  # across all open tasks
        self._cond = threading.Condition()
        self._tasks: dict[bytes, _TaskBox] = {}
        self._closed: OrderedDict[bytes, None] = OrderedDict()
        self._shut = False

    def open_task(self, task_id: bytes, participants: Iterable[str]) -> None:
        """Start accepting messages for `task_id` from `participants` (idempotent).

        A task not open yet is refused with `InboxAtCapacity` while the unread bytes of
        all tasks are at `max_total_bytes`: it could not receive anything anyway.
        """
        if len(task_id) != TASK_ID_BYTES:
            raise InvalidInput("task_id", f"expected {TASK_ID_BYTES} bytes, got {len(task_id)}")
        members = frozenset(str(as_address(p, "participant")) for p in participants)
        with self._cond:
            box = self._tasks.get(task_id)
            if box is not None and box.participants != members:
                raise ValueError(f"task {hex32(task_id)} is already open with other participants")
            if box is None:
                if self.unread_bytes >= self.max_total_bytes:
                    raise InboxAtCapacity(task_id, self.unread_bytes, self.max_total_bytes)
                self._closed.pop(task_id, None)
                self._tasks[task_id] = _TaskBox(members)

    def close_task(self, task_id: bytes) -> None:
        """Drop the task's messages; later deliveries are refused, waiting readers woken."""
        with self._cond:
            box = self._tasks.pop(task_id, None)
            if box is not None:
                self.unread_bytes -= box.unread_bytes
                self._closed[task_id] = None
                while len(self._closed) > REMEMBERED_CLOSED_TASKS:
                    self._closed.popitem(last=False)
            self._cond.notify_all()

    def take_unread(self, task_id: bytes, seal: bool = False) -> list[tuple[str, str, bytes]]:
        """Every message filed for the task and not read yet, as (sender, step, payload)
        sorted by sender and step; they count as read from now on.

        The task runner records them as delivered late: a threshold protocol may finish
        before reading every message peers sent, and the auditor must still find each
        delivered message on both sides. ``seal`` also refuses later deliveries (as
        `TaskClosed`) while readers still waiting are left to `close_task`, so nothing
        can arrive between the last record and the close. Unknown or closed tasks hold
        nothing: an empty list.
        """
        with self._cond:
            box = self._tasks.get(task_id)
            if box is None:
                return []
            unread = sorted(
                ((key, slot) for key, slot in box.slots.items() if slot.payload is not None),
                key=lambda item: item[0],
            )
            taken = []
            for (sender, step), slot in unread:
                assert slot.payload is not None
                taken.append((sender, step, slot.payload))
                slot.payload = None
                box.unread_bytes -= slot.size
                self.unread_bytes -= slot.size
            if seal:
                box.sealed = True
            return taken

    def is_open(self, task_id: bytes) -> bool:
        with self._cond:
            return task_id in self._tasks

    def put(self, task_id: bytes, sender: str, step: str, payload: bytes) -> bool:
        """File a message; True if it was an identical retry of one already filed."""
        digest = hashlib.sha256(payload).digest()
        with self._cond:
            box = self._box(task_id)
            if sender not in box.participants:
                raise NotParticipant(sender, task_id)
            slot = box.slots.get((sender, step))
            if slot is not None:
                if slot.digest != digest:
                    raise ConflictingMessage(sender, step)
                return True
            if box.unread_bytes + len(payload) > self.max_task_bytes:
                raise InboxFull(task_id, self.max_task_bytes)
            if self.unread_bytes + len(payload) > self.max_total_bytes:
                raise InboxFull(task_id, self.max_total_bytes, node_wide=True)
            box.slots[(sender, step)] = _Slot(digest, len(payload), payload)
            box.unread_bytes += len(payload)
            self.unread_bytes += len(payload)
            self._cond.notify_all()
            return False

    def take(self, task_id: bytes, sender: str, step: str, timeout: float) -> bytes | None:
        """The message, once it is there; None if it did not arrive within `timeout`."""
        with self._cond:
            deadline = time.monotonic() + timeout
            while True:
                if self._shut:
                    raise InboxClosed("the peer server was stopped")
                box = self._tasks.get(task_id)
                if box is None:
                    raise InboxClosed(f"task {hex32(task_id)} is not open on this node")
                slot = box.slots.get((sender, step))
                if slot is not None:
                    if slot.payload is None:
                        raise AlreadyReceived(sender, step)
                    payload, slot.payload = slot.payload, None
                    box.unread_bytes -= slot.size
                    self.unread_bytes -= slot.size
                    return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def shutdown(self) -> None:
        """Wake every waiting reader with `InboxClosed`; used when the server stops."""
        with self._cond:
            self._shut = True
            self._cond.notify_all()

    def _box(self, task_id: bytes) -> _TaskBox:
        box = self._tasks.get(task_id)
        if box is not None and box.sealed:
            raise TaskClosed(task_id)
        if box is not None:
            return box
        if task_id in self._closed:
            raise TaskClosed(task_id)
        raise TaskNotOpen(task_id)


@dataclass
class _Bucket:
    messages: float
    bytes: float
    at: float


class PeerRateLimiter:
    """Per-peer token buckets: `messages_per_second` calls and `bytes_per_second` bytes.

    A bucket starts full (`burst_messages`, `burst_bytes`) and refills at its rate; a call
    that finds too few tokens is refused and charged nothing. `burst_bytes` is raised to
    at least one largest message, so a single message within the size limit always
    passes a full bucket. Buckets are kept per authenticated node: only nodes the chain
    vouches for get one, so their number is bounded by the consortium.
    """

    def __init__(
        self,
        messages_per_second: float = DEFAULT_RATE_MESSAGES,
        burst_messages: int = DEFAULT_RATE_BURST,
        bytes_per_second: float = DEFAULT_RATE_BYTES,
        burst_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if messages_per_second <= 0 or bytes_per_second <= 0 or burst_messages < 1:
            raise ValueError("rates must be positive and the burst at least 1")
        self.messages_per_second = float(messages_per_second)
        self.burst_messages = float(burst_messages)
        self.bytes_per_second = float(bytes_per_second)
        self.burst_bytes = float(bytes_per_second if burst_bytes is None else burst_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, peer: str, size: int) -> tuple[str, float] | None:
        """Charge one call of `size` bytes; None if admitted, else (why, seconds to wait)."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(peer)
            if bucket is None:
                bucket = self._buckets[peer] = _Bucket(self.burst_messages, self.burst_bytes, now)
            elapsed = max(0.0, now - bucket.at)
            bucket.at = now
            bucket.messages = min(
                self.burst_messages, bucket.messages + elapsed * self.messages_per_second
            )
            bucket.bytes = min(self.burst_bytes, bucket.bytes + elapsed * self.bytes_per_second)
            if bucket.messages < 1:
                wait = (1 - bucket.messages) / self.messages_per_second
                return (
                    f"peer_rate_messages: {peer} is over its rate of "
                    f"{self.messages_per_second:g} messages/s (burst {self.burst_messages:g})",
                    wait,
                )
            if bucket.bytes < size:
                wait = (min(size, self.burst_bytes) - bucket.bytes) / self.bytes_per_second
                return (
                    f"peer_rate_bytes: {peer} is over its rate of "
                    f"{self.bytes_per_second:g} bytes/s (burst {self.burst_bytes:g})",
                    wait,
                )
            bucket.messages -= 1
            bucket.bytes -= size
            return None


class _PeerService(peer_pb2_grpc.PeerServicer):
    def __init__(
        self,
        trust: ChainTrust,
        inbox: Inbox,
        limit: int,
        evidence: EvidenceService | None,
        rate: PeerRateLimiter,
    ) -> None:
        self._trust = trust
        self._inbox = inbox
        self._limit = limit
        self._evidence = evidence
        self._rate = rate

    def Deliver(self, request: peer_pb2.Envelope, context: grpc.ServicerContext) -> peer_pb2.Ack:
        callers = self._authenticate(context)
        self._throttle(callers, request.ByteSize(), context)
        try:
            sender = check_envelope(
                request.task_id, request.step, request.sender, len(request.payload), self._limit
            )
        except InvalidInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if sender not in callers:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"sender: the envelope claims {sender}, but the client certificate is "
                f"registered for {', '.join(sorted(callers))}",
            )
        try:
            duplicate = self._inbox.put(request.task_id, sender, request.step, request.payload)
        except TaskNotOpen as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except TaskClosed as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except NotParticipant as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ConflictingMessage as exc:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except InboxFull as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return peer_pb2.Ack(duplicate=duplicate)

    def GetEvidence(
        self, request: peer_pb2.EvidenceRequest, context: grpc.ServicerContext
    ) -> peer_pb2.EvidenceResponse:
        # Authenticated first, so that only active nodes learn whether evidence is served.
        callers = self._authenticate(context)
        self._throttle(callers, request.ByteSize(), context)
        if self._evidence is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node serves no evidence")
        return self._evidence.get_evidence(request, callers, context)

    def _throttle(self, callers: frozenset[str], size: int, context: grpc.ServicerContext) -> None:
        """Charge the caller's rate; RESOURCE_EXHAUSTED naming the limit when over it."""
        refused = self._rate.admit(",".join(sorted(callers)), size)
        if refused is not None:
            why, wait = refused
            context.set_trailing_metadata(((RETRY_AFTER_KEY, str(max(1, round(wait * 1000)))),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)

    def _authenticate(self, context: grpc.ServicerContext) -> frozenset[str]:
        """The active nodes the caller's client certificate is registered for, or abort."""
        # The stubs say Mapping[str, bytes]; gRPC actually gives a list of values per key.
        auth = cast("dict[str, Sequence[bytes]]", context.auth_context())
        certs = auth.get("x509_pem_cert") or []
        if not certs:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate presented")
        try:
            callers = self._trust.nodes_for_certificate(certs[0])
        except TrustUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot check the caller now: {exc}")
        if not callers:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client certificate SHA-256 {certificate_digest(certs[0]).hex()} is not "
                "registered for a node that is active on chain",
            )
        return callers


class PeerServer:
    """This node's gRPC endpoint for protocol messages, bound to `listen` by `start()`.

    With an ``evidence`` store it also serves that store's transcripts to regulators'
    nodes; the EIP-712 domain and the role checks use the chain `trust` reads.
    """

    def __init__(
        self,
        identity: TlsIdentity,
        node_address: str,
        trust: ChainTrust,
        listen: str = "127.0.0.1:0",
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_task_bytes: int = DEFAULT_MAX_TASK_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        rate_messages: float = DEFAULT_RATE_MESSAGES,
        rate_burst: int = DEFAULT_RATE_BURST,
        rate_bytes: float = DEFAULT_RATE_BYTES,
        max_workers: int = 16,
        evidence: EvidenceStore | None = None,
        extra_services: Sequence[Callable[[grpc.Server], None]] = (),
    ) -> None:
        """``extra_services`` each add one more gRPC service to the server when it starts
        (e.g. ``lookup_pb2_grpc.add_LookupServicer_to_server`` bound to a servicer): it
        shares the port, the mutual TLS and the message size limits; per-call checks
        are the added service's own business."""
        self.identity = identity
        self.node_address = str(as_address(node_address, "node_address"))
        self.trust = trust
        self.listen = listen
        self.max_message_bytes = max_message_bytes
        self.max_workers = max_workers
        self.inbox = Inbox(max_task_bytes, max_total_bytes)
        self.rate_limiter = PeerRateLimiter(
            rate_messages,
            rate_burst,
            rate_bytes,
            max(int(rate_bytes), max_message_bytes + ENVELOPE_OVERHEAD),
        )
        self.evidence_service = (
            None if evidence is None else EvidenceService(evidence, trust.consortium)
        )
        self.extra_services = tuple(extra_services)
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._tls_lock = threading.Lock()
        self._roots_version = -1

    @property
    def port(self) -> int:
        """The bound port (useful with "host:0"); only known once started."""
        if self._port is None:
            raise RuntimeError("peer server is not started")
        return self._port

    def start(self) -> PeerServer:
        if self._server is not None:
            return self
        wire_limit = self.max_message_bytes + ENVELOPE_OVERHEAD
        server = grpc.server(
            futures.ThreadPoolExecutor(self.max_workers, thread_name_prefix="peer-rpc"),
            options=[
                ("grpc.max_receive_message_length", wire_limit),
                ("grpc.max_send_message_length", wire_limit),
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail
            ],
        )
        peer_pb2_grpc.add_PeerServicer_to_server(
            _PeerService(
                self.trust,
                self.inbox,
                self.max_message_bytes,
                self.evidence_service,
                self.rate_limiter,
            ),
            server,
        )
        for add_service in self.extra_services:
            add_service(server)
        initial = self._tls_config(force=True)
        assert initial is not None
        credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            # gRPC accepts None ("keep the current configuration"); the stubs do not say so.
            cast("Callable[[], grpc.ServerCertificateConfiguration]", self._tls_config),
            require_client_authentication=True,
        )
        try:
            port = server.add_secure_port(self.listen, credentials)
        except RuntimeError as exc:
            raise OSError(f"peer server cannot listen on {self.listen}: {exc}") from None
        if port == 0:
            raise OSError(f"peer server cannot listen on {self.listen}")
        server.start()
        self._server, self._port = server, port
        return self

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving and wake every reader still waiting on the inbox."""
        server, self._server = self._server, None
        self.inbox.shutdown()
        if server is not None:
            server.stop(grace).wait()

    def __enter__(self) -> PeerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tls_config(self, force: bool = False) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before every handshake: new roots only when the trusted set changed.

        The roots are the verified certificates of the nodes active on chain. gRPC
        refuses client authentication with no roots at all, so while no peer is known
        this node's own certificate stands in: it admits nobody else, and even this
        node's own calls still pass the per-call chain check.
        """
        version, roots = self.trust.root_certificates()
        with self._tls_lock:
            if version == self._roots_version and not force:
                return None
            self._roots_version = version
        return grpc.ssl_server_certificate_configuration(
            [(self.identity.key_pem, self.identity.cert_pem)],
            root_certificates=roots or self.identity.cert_pem,
        )
