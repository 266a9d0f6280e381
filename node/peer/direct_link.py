"""What an engine with its own transport needs to reach a peer node over TLS.

Why: the fast PSI mode runs SecretFlow spu's RR22, which speaks its own protocol over its
own TLS connections rather than through the gRPC peer mesh. It must still run between
the same two nodes with the certificates the chain binds to them: this node presents
its own TLS identity, and pins the peer's certificate as `ChainTrust` verified it
against the on-chain digest. The host a peer is dialled on is the host of its registered
peer endpoint; the port is chosen per task and announced over the (recorded,
authenticated) peer mesh.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node.config import parse_host_port
from node.peer.trust import TrustedPeer


@dataclass(frozen=True)
class PeerAddress:
    """Where and as whom to reach a peer's engine."""

    host: str
    cert_pem: bytes


@dataclass(frozen=True)
class DirectLink:
    tls_cert: Path  # this node's certificate, as registered (its digest) on chain
    tls_key: Path
    bind_host: str  # the host of `peer_listen`: the engine listens there too
    trusted: Callable[[str], TrustedPeer]  # `ChainTrust.peer`

    def peer(self, node: str) -> PeerAddress:
        """The peer's registered host and its chain-verified certificate."""
        trusted = self.trusted(node)
        host, _ = parse_host_port(trusted.endpoint, f"endpoint of {node}")
        return PeerAddress(host, trusted.cert_pem)

    def free_port(self) -> int:
        """A port free on ``bind_host`` now, for one engine run.

        The engine binds it a moment later; a port taken in between makes that run fail
        with a clear error rather than connect anywhere else.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((self.bind_host, 0))
            port: int = sock.getsockname()[1]
            return port
