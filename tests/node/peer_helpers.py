"""A running peer mesh for tests: real gRPC over mutual TLS on 127.0.0.1, real chain trust.

Each node gets a fresh TLS identity, a `ChainTrust` of its own and a started
`PeerServer`; its real endpoint and certificate digest replace the placeholders the
`consortium` fixture registered. Everything is stopped when the context exits, even if
setup failed halfway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import grpc

from node.channel import MAX_MESSAGE_BYTES
from node.identity import TlsIdentity, new_tls_identity
from node.peer import peer_pb2
from node.peer.channel import GrpcChannel
from node.peer.client import PeerClient
from node.peer.server import PeerServer
from node.peer.trust import ChainTrust
from tests.conftest import Consortium, Org

NAMES = ("bank-a", "bank-b", "regulator")


@dataclass
class PeerNode:
    name: str
    org: Org
    identity: TlsIdentity
    trust: ChainTrust
    server: PeerServer
    channels: list[GrpcChannel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.org.node.address)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def channel(self, task_id: bytes, *peers: PeerNode, send_timeout: float = 5.0) -> GrpcChannel:
        ch = GrpcChannel(
            task_id,
            self.address,
            [p.address for p in peers],
            self.server,
            self.trust,
            self.identity,
            send_timeout=send_timeout,
        )
        self.channels.append(ch)
        return ch

    def raw_client(self, to: PeerNode, identity: TlsIdentity | None = None) -> PeerClient:
        """A client below `GrpcChannel`, to put arbitrary envelopes on the wire."""
        return PeerClient(
            self.trust.peer(to.address), identity or self.identity, to.server.max_message_bytes
        )


@contextmanager
def running_mesh(
    consortium: Consortium,
    names: Sequence[str] = NAMES,
    *,
    poll_interval: float = 0.2,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    start_trust: bool = True,
) -> Iterator[dict[str, PeerNode]]:
    with ExitStack() as stack:
        nodes: dict[str, PeerNode] = {}
        for name in names:
            org = consortium.orgs[name]
            identity = new_tls_identity(name)
            trust = ChainTrust(
                org.node_clients.consortium, poll_interval=poll_interval, fetch_timeout=1.0
            )
            server = PeerServer(
                identity, org.node.address, trust, max_message_bytes=max_message_bytes
            )
            stack.callback(server.stop, 0)
            server.start()
            org.clients.consortium.update_node(
                org.node.address, f"127.0.0.1:{server.port}", identity.cert_sha256
            )
            nodes[name] = PeerNode(name, org, identity, trust, server)
        for node in nodes.values():
            stack.callback(_close_channels, node)
            if start_trust:
                stack.callback(node.trust.stop)
                node.trust.start()
            else:
                node.trust.refresh()
        yield nodes


def _close_channels(node: PeerNode) -> None:
    for ch in node.channels:
        ch.close()


def task_id() -> bytes:
    return os.urandom(32)


def rpc_error(client: PeerClient, envelope: peer_pb2.Envelope) -> tuple[grpc.StatusCode, str]:
    """The status a Deliver call ends with; fails the test if it succeeds."""
    try:
        client.deliver_once(envelope, timeout=5.0)
    except grpc.RpcError as exc:
        call: grpc.Call = exc  # type: ignore[assignment]
        return call.code(), call.details() or ""
    finally:
        client.close()
    raise AssertionError("the call was accepted")


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Seconds until `condition()` held; fails if it does not hold within `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start
