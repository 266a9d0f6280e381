"""`GrpcChannel`: the `node.channel.Channel` of one task over the mutual-TLS peer mesh.

Algorithms see only `send(peer, step, payload)` and `receive(peer, step, timeout)`;
everything network-shaped becomes a named `ChannelError` so the task driver can fail the
task on chain with a reason instead of hanging:

* `MessageTooLarge` before anything is sent, `UnknownPeer` for a non-participant;
* `PeerUnreachable` when a send cannot be delivered before `send_timeout`;
* `PeerRejected` when the peer refuses (conflicting duplicate, not a participant, ...);
* `PeerNotTrusted` when the chain no longer vouches for the peer;
* `PeerTimeout` when an expected message does not arrive in time.

The task is opened in this node's inbox when the channel is made, and closed (its unread
messages dropped) by `close()`; `take_unread()` hands over the messages the protocol
never read first, so the task runner can record them as delivered late.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ledger.ids import InvalidInput, as_address
from node.channel import DEFAULT_TIMEOUT, MessageTooLarge, PeerTimeout, UnknownPeer
from node.identity import TlsIdentity
from node.peer import TASK_ID_BYTES, check_step, peer_pb2
from node.peer.client import PeerClient, deliver
from node.peer.server import PeerServer
from node.peer.trust import ChainTrust, PeerNotTrusted


class GrpcChannel:
    """Point-to-point messages between the participants of one task, over gRPC."""

    def __init__(
        self,
        task_id: bytes,
        me: str,
        peers: Sequence[str],
        server: PeerServer,
        trust: ChainTrust,
        identity: TlsIdentity,
        *,
        send_timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int | None = None,
    ) -> None:
        if len(task_id) != TASK_ID_BYTES:
            raise InvalidInput("task_id", f"expected {TASK_ID_BYTES} bytes, got {len(task_id)}")
        self.task_id = bytes(task_id)
        self._me = str(as_address(me, "me"))
        self._peers = [str(as_address(p, "peers")) for p in peers]
        if len(set(self._peers)) != len(self._peers) or self._me in self._peers:
            raise InvalidInput("peers", "must be distinct and must not include this node")
        if self._me != server.node_address:
            raise InvalidInput("me", f"{self._me} is not the node {server.node_address} serving")
        self.server = server
        self.trust = trust
        self.identity = identity
        self.send_timeout = send_timeout
        self.max_message_bytes = (
            server.max_message_bytes if max_message_bytes is None else max_message_bytes
        )
        self._clients: dict[str, PeerClient] = {}
        self._lock = threading.Lock()
        server.inbox.open_task(self.task_id, [self._me, *self._peers])

    @property
    def me(self) -> str:
        return self._me

    @property
    def peers(self) -> Sequence[str]:
        return list(self._peers)

    def send(self, peer: str, step: str, payload: bytes) -> None:
        """Deliver one message; returns once the peer has filed it (or had it already)."""
        address = self._participant(peer)
        check_step(step)
        if len(payload) > self.max_message_bytes:
            raise MessageTooLarge(len(payload), self.max_message_bytes)
        envelope = peer_pb2.Envelope(
            task_id=self.task_id, step=step, sender=self._me, payload=bytes(payload)
        )
        deliver(lambda: self._client(address), envelope, address, self.send_timeout)

    def receive(self, peer: str, step: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Wait for `peer`'s message `step`; `PeerTimeout` if it is not there in time.

        Waits in slices of the trust poll interval so that a peer cut off on chain ends
        the wait early with `PeerNotTrusted` instead of running out the whole timeout.
        Messages it delivered while still active are still returned.
        """
        address = self._participant(peer)
        check_step(step)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            wait = max(0.0, min(remaining, self.trust.poll_interval))
            payload = self.server.inbox.take(self.task_id, address, step, wait)
            if payload is not None:
                return payload
            record = self.trust.record(address)
            if record is not None and not record.active:
                raise PeerNotTrusted(address, "it is no longer active on chain")
            if remaining <= 0:
                raise PeerTimeout(address, step, timeout)

    def take_unread(self, seal: bool = False) -> list[tuple[str, str, bytes]]:
        """Messages peers delivered for this task that the protocol never read, as
        (sender, step, payload); ``seal`` refuses any later delivery (`Inbox.take_unread`)."""
        return self.server.inbox.take_unread(self.task_id, seal)

    def close(self) -> None:
        """Close the task in the inbox and the connections this channel opened."""
        self.server.inbox.close_task(self.task_id)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> GrpcChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _participant(self, peer: str) -> str:
        try:
            address = str(as_address(peer, "peer"))
        except InvalidInput:
            raise UnknownPeer(peer) from None
        if address not in self._peers:
            raise UnknownPeer(peer)
        return address

    def _client(self, address: str) -> PeerClient:
        """A client for the peer as the chain describes it now; rebuilt if that changed."""
        trusted = self.trust.peer(address)
        with self._lock:
            client = self._clients.get(address)
            if client is not None and client.peer == trusted:
                return client
            if client is not None:
                client.close()
            client = PeerClient(trusted, self.identity, self.max_message_bytes)
            self._clients[address] = client
            return client
