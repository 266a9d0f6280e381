"""The one interface algorithms see: send and receive bytes to a named peer.

Algorithms are written against `Channel` only, so the same protocol code runs over
in-memory queues in unit tests and over the mutual-TLS gRPC mesh in nodes. Messages are
addressed by (peer, step): a step names one message of the protocol ("keys",
"masked-input", ...), so a late or replayed message can never be taken for another.

Every implementation records what it sends and receives into the task's evidence
transcript (see `RecordingChannel`), because the auditor checks that what A says it
sent is exactly what B says it received. A message delivered but never read by the
protocol (a threshold protocol finishes once enough peers answered) is recorded by its
receiver as ``received-late`` when its part of the task ends (`record_unread`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from ledger.canonical import digest, digest_json

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


class ChannelError(RuntimeError):
    """Base of every failure a channel reports; carries a stable reason name."""

    reason = "PROTOCOL_ERROR"


class PeerTimeout(ChannelError):
    """A peer did not deliver the expected message before the deadline."""

    reason = "PEER_TIMEOUT"

    def __init__(self, peer: str, step: str, timeout: float) -> None:
        self.peer, self.step = peer, step
        super().__init__(f"no message {step!r} from {peer} within {timeout:g} s")


class MessageTooLarge(ChannelError):
    reason = "PROTOCOL_ERROR"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")


class UnknownPeer(ChannelError):
    reason = "PROTOCOL_ERROR"

    def __init__(self, peer: str) -> None:
        super().__init__(f"{peer} is not a participant of this task")


class Channel(Protocol):
    """Point-to-point messages between the participants of one task."""

    @property
    def me(self) -> str:
        """This party's name (its node address in a real deployment)."""
        ...

    @property
    def peers(self) -> Sequence[str]:
        """Every other participant."""
        ...

    def send(self, peer: str, step: str, payload: bytes) -> None: ...

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes: ...


def message_digest(task_id: bytes, sender: str, receiver: str, step: str, payload: bytes) -> bytes:
    """What both ends record for one message: bound to the task, the parties and the step."""
    header = digest_json(
        "message-header",
        {"task": task_id.hex(), "from": sender.lower(), "to": receiver.lower(), "step": step},
    )
    return digest("message", header + payload)


class TranscriptSink(Protocol):
    """Where a recording channel appends: an in-memory Transcript or the evidence store."""

    def append(self, kind: str, step: str, entry_digest: bytes, peer: str = "") -> object: ...


Unread = list[tuple[str, str, bytes]]
"""Messages delivered for a task but never read: (sender, step, payload)."""


def take_unread(channel: Channel, seal: bool = False) -> Unread:
    """What ``channel``'s transport holds unread for the task (see `GrpcChannel.take_unread`);
    they count as read afterwards. A transport without an inbox holds nothing."""
    method = getattr(channel, "take_unread", None)
    if method is None:
        return []
    return cast("Unread", method(seal))


class ForwardingChannel:
    """Delegates to an inner channel; wrappers override only what they add to."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner

    @property
    def me(self) -> str:
        return self.inner.me

    @property
    def peers(self) -> Sequence[str]:
        return self.inner.peers

    def send(self, peer: str, step: str, payload: bytes) -> None:
        self.inner.send(peer, step, payload)

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return self.inner.receive(peer, step, timeout)

    def take_unread(self, seal: bool = False) -> Unread:
        return take_unread(self.inner, seal)


class RecordingChannel(ForwardingChannel):
    """Wraps a channel and appends every message's digest to the task transcript."""

    def __init__(self, inner: Channel, task_id: bytes, transcript: TranscriptSink) -> None:
        super().__init__(inner)
        self.task_id = task_id
        self.transcript = transcript
        self.lock = threading.Lock()

    def send(self, peer: str, step: str, payload: bytes) -> None:
        """Send, then record: "sent" means the peer's transport filed the message (a
        refused or failed send is not on record), so every message on record as sent is
        in the receiver's inbox until the receiver reads it, records it late, or loses
        it by going away. A crash between the send and the record can leave a receiver
        holding one message (this node's last) its sender has no record of; the auditor
        accepts that only from a sender that did not finish the task, and names it."""
        self.inner.send(peer, step, payload)
        with self.lock:
            self.transcript.append(
                "sent", step, message_digest(self.task_id, self.me, peer, step, payload), peer
            )

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        payload = self.inner.receive(peer, step, timeout)
        with self.lock:
            self.transcript.append(
                "received", step, message_digest(self.task_id, peer, self.me, step, payload), peer
            )
        return payload

    def record_unread(self, seal: bool = False) -> int:
        """Record every message delivered for the task but never read by the protocol as
        ``received-late`` (same digest a receive records), sorted by sender and step;
        the number recorded. ``seal`` refuses later deliveries: the node's part is over."""
        unread = take_unread(self.inner, seal)
        with self.lock:
            for sender, step, payload in unread:
                self.transcript.append(
                    "received-late",
                    step,
                    message_digest(self.task_id, sender, self.me, step, payload),
                    sender,
                )
        return len(unread)


class InMemoryNetwork:
    """Queues between named parties in one process: the unit-test transport."""

    def __init__(self, parties: Sequence[str], max_message: int = MAX_MESSAGE_BYTES) -> None:
        if len(set(parties)) != len(parties):
            raise ValueError("party names must be distinct")
        self.parties = list(parties)
        self.max_message = max_message
        self._queues: dict[tuple[str, str, str], queue.Queue[bytes]] = {}
        self._lock = threading.Lock()
        self.sent: list[tuple[str, str, str, bytes]] = []  # (from, to, step, payload)
        self.sealed: set[str] = set()  # parties whose part is over: they accept nothing

    def _queue(self, sender: str, receiver: str, step: str) -> queue.Queue[bytes]:
        with self._lock:
            return self._queues.setdefault((sender, receiver, step), queue.Queue())

    def channel(self, me: str) -> InMemoryChannel:
        if me not in self.parties:
            raise UnknownPeer(me)
        return InMemoryChannel(self, me)


@dataclass
class InMemoryChannel:
    network: InMemoryNetwork
    name: str

    @property
    def me(self) -> str:
        return self.name

    @property
    def peers(self) -> Sequence[str]:
        return [p for p in self.network.parties if p != self.name]

    def send(self, peer: str, step: str, payload: bytes) -> None:
        if peer not in self.peers:
            raise UnknownPeer(peer)
        if len(payload) > self.network.max_message:
            raise MessageTooLarge(len(payload), self.network.max_message)
        with self.network._lock:
            if peer in self.network.sealed:
                raise ChannelError(f"{peer} has closed this task")
            self.network.sent.append((self.name, peer, step, bytes(payload)))
            # Queued under the lock, so `take_unread` never misses a message it let in.
            self.network._queues.setdefault((self.name, peer, step), queue.Queue()).put(
                bytes(payload)
            )

    def take_unread(self, seal: bool = False) -> Unread:
        """Messages queued for this party and never received (see `GrpcChannel`)."""
        taken: Unread = []
        with self.network._lock:
            if seal:
                self.network.sealed.add(self.name)
            for (sender, receiver, step), waiting in sorted(
                self.network._queues.items(), key=lambda item: item[0]
            ):
                while receiver == self.name:
                    try:
                        taken.append((sender, step, waiting.get_nowait()))
                    except queue.Empty:
                        break
        return taken

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        if peer not in self.peers:
            raise UnknownPeer(peer)
        try:
            return self.network._queue(peer, self.name, step).get(timeout=timeout)
        except queue.Empty:
            raise PeerTimeout(peer, step, timeout) from None
