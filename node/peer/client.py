"""The sending side: a mutual-TLS gRPC channel pinned to the certificate the chain registers.

`PeerClient` trusts exactly one root, the peer's own self-signed certificate as verified
against its on-chain digest by `ChainTrust`, so the TLS handshake succeeds only with the
holder of that certificate's key: no CA, no hostname trust. Hostname checking is kept
formally satisfied by overriding the target name with a name the certificate carries,
because the pin already says everything the name could.

`deliver` retries what is transient (the peer is not reachable yet, or has not opened
the task yet, or asks this node to slow down: a rate-limit refusal carrying a
`provnet-retry-after-ms` trailer) with backoff until the deadline, and names what is not. The
same channel carries `GetEvidence` (see `node.peer.evidence_service.fetch_evidence`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import cast

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from node.channel import ChannelError
from node.identity import TlsIdentity
from node.peer import ENVELOPE_OVERHEAD, RETRY_AFTER_KEY, peer_pb2, peer_pb2_grpc
from node.peer.trust import CertificateUnavailable, PeerNotTrusted, TrustedPeer, split_endpoint

INITIAL_BACKOFF = 0.05
MAX_BACKOFF = 1.0
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # not reachable, TLS refused, server restarting
        grpc.StatusCode.NOT_FOUND,  # the peer has not opened the task yet
        grpc.StatusCode.DEADLINE_EXCEEDED,  # this attempt's deadline; the loop decides
    }
)


class PeerUnreachable(ChannelError):
    """A message could not be delivered before the deadline; names the last obstacle."""

    reason = "PEER_TIMEOUT"

    def __init__(self, peer: str, step: str, timeout: float, last_error: str) -> None:
        self.peer, self.step, self.last_error = peer, step, last_error
        super().__init__(f"could not deliver {step!r} to {peer} within {timeout:g} s: {last_error}")


class PeerRejected(ChannelError):
    """The peer answered and refused the message; retrying would not help."""

    reason = "PROTOCOL_ERROR"

    def __init__(self, peer: str, step: str, code: grpc.StatusCode, details: str) -> None:
        self.peer, self.step, self.code, self.details = peer, step, code, details
        super().__init__(f"{peer} refused {step!r}: {code.name}: {details}")


class PeerClient:
    """One gRPC channel to one peer, valid for one (endpoint, certificate) of that peer."""

    def __init__(self, peer: TrustedPeer, identity: TlsIdentity, max_message_bytes: int) -> None:
        self.peer = peer
        host, _ = split_endpoint(peer.endpoint)
        wire_limit = max_message_bytes + ENVELOPE_OVERHEAD
        credentials = grpc.ssl_channel_credentials(
            root_certificates=peer.cert_pem,
            private_key=identity.key_pem,
            certificate_chain=identity.cert_pem,
        )
        self._channel = grpc.secure_channel(
            peer.endpoint,
            credentials,
            options=[
                ("grpc.ssl_target_name_override", target_name(peer.cert_pem, host)),
                ("grpc.max_send_message_length", wire_limit),
                ("grpc.max_receive_message_length", wire_limit),
                # gRPC's own reconnect backoff starts at 1 s; deliver() paces retries itself.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.enable_retries", 0),
            ],
        )
        self._stub = peer_pb2_grpc.PeerStub(self._channel)

    def deliver_once(self, envelope: peer_pb2.Envelope, timeout: float) -> peer_pb2.Ack:
        """One attempt; raises `grpc.RpcError` as gRPC reports it."""
        return self._stub.Deliver(envelope, timeout=timeout)

    def get_evidence_once(
        self, request: peer_pb2.EvidenceRequest, timeout: float
    ) -> peer_pb2.EvidenceResponse:
        """One `GetEvidence` call; raises `grpc.RpcError` as gRPC reports it.

        The retrying, signing caller is `node.peer.evidence_service.fetch_evidence`.
        """
        return self._stub.GetEvidence(request, timeout=timeout)

    def close(self) -> None:
        self._channel.close()


def deliver(
    connect: Callable[[], PeerClient],
    envelope: peer_pb2.Envelope,
    peer: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Deliver `envelope` before `timeout` elapses; True if the peer already had it.

    `connect` is asked for a client on every attempt so that a certificate rotated or an
    endpoint moved on chain mid-retry is picked up. A peer the chain no longer vouches
    for fails at once (`PeerNotTrusted`); a certificate mismatch at the endpoint is
    retried (the peer may be restarting with the certificate just registered) and
    reported as `PeerNotTrusted` if it persists; everything transient ends as
    `PeerUnreachable`; a refusal is `PeerRejected`.
    """
    deadline = time.monotonic() + timeout
    backoff = INITIAL_BACKOFF
    last: ChannelError | str = "no attempt was made"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if isinstance(last, PeerNotTrusted):
                raise last
            raise PeerUnreachable(peer, envelope.step, timeout, str(last))
        try:
            ack = connect().deliver_once(envelope, remaining)
            return ack.duplicate
        except PeerNotTrusted as exc:
            if not exc.transient:
                raise
            last = exc
        except CertificateUnavailable as exc:
            last = exc
        except grpc.RpcError as exc:
            call = cast("grpc.Call", exc)
            code, details = call.code(), call.details() or ""
            wait = retry_after(call) if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None
            if code not in RETRYABLE and wait is None:
                raise PeerRejected(peer, envelope.step, code, details) from None
            last = f"{code.name}: {details}"
            if wait is not None:
                backoff = max(backoff, wait)
        sleep(max(0.0, min(backoff, deadline - time.monotonic())))
        backoff = min(backoff * 2, MAX_BACKOFF)


def retry_after(call: grpc.Call) -> float | None:
    """Seconds a rate-limited peer asked us to wait (its trailer), None if it did not."""
    for key, value in call.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            try:
                return max(0.0, min(float(value) / 1000, MAX_BACKOFF))
            except (TypeError, ValueError):
                return None
    return None


def target_name(cert_pem: bytes, host: str) -> str:
    """A name the peer's certificate carries, preferring the endpoint's own host.

    gRPC checks the server certificate against the target name even when the root is
    pinned; any name in the certificate satisfies it without weakening the pin.
    """
    cert = x509.load_pem_x509_certificate(cert_pem)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        names += [n for n in san.get_values_for_type(x509.DNSName) if "*" not in n]
    if _normal(host) in {_normal(n) for n in names}:
        return host
    if names:
        return names[0]
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else host


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()
