"""Chain-bound peer trust: which TLS certificates belong to nodes that are active now.

There is no certificate authority in provnet. The `Consortium` contract holds, per node,
only the SHA-256 of its DER certificate and its endpoint ("host:port"). This module turns
that into what TLS needs:

* Callers are identified by digest alone: `nodes_for_certificate` maps the SHA-256 of
  the certificate a caller authenticated with to the active nodes registered with it.
  Nothing but the chain is consulted, so a certificate that is not on chain, or whose
  node is revoked or whose organisation is suspended, maps to nobody.
* Certificates themselves are discovered: gRPC needs the peer's full certificate (as a
  pinned root for the client, as an accepted client root for the server), and only the
  digest is on chain. `fetch_certificate` reads the certificate a node's registered
  endpoint presents in a TLS 1.3 handshake — without verifying anything, since it only
  *reads* — and the certificate is kept only if its SHA-256 equals the on-chain digest.
  A man in the middle can therefore make discovery fail, never succeed with his own
  certificate.

A failed fetch is retried with exponential backoff (from one poll interval up to
`MAX_FETCH_BACKOFF`), except a refused connection: nothing listens at the endpoint yet
(typically a peer still starting, as when a consortium's nodes start together), which
costs nothing to ask again, so it is retried at the next discovery pass without growing
the backoff. A wrong certificate, a timeout or a failed handshake still backs off.

Status is re-read from the chain every poll interval (only when the chain head moved:
state cannot change without a new block), so a revocation or suspension takes effect
within one interval. If the chain cannot be read for `max_staleness` seconds the view is
treated as unusable and every peer is refused: the node fails closed rather than
trusting a membership list it can no longer confirm.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.artifacts import abi
from ledger.clients.consortium import ConsortiumClient, NodeStatus
from ledger.events import EventReader, Source
from ledger.ids import InvalidInput, as_address
from node.channel import ChannelError
from node.identity import certificate_digest

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_FETCH_TIMEOUT = 2.0
MAX_FETCH_BACKOFF = 30.0

CertificateFetcher = Callable[[str, float], bytes]
"""(endpoint "host:port", timeout in seconds) -> the DER certificate the endpoint presents."""


class PeerNotTrusted(ChannelError):
    """The chain does not vouch for this peer now: not an active node, or wrong certificate."""

    reason = "PARTICIPANT_INACTIVE"

    def __init__(self, node: str, problem: str, *, transient: bool = False) -> None:
        self.node, self.problem = node, problem
        # True for a certificate mismatch at the endpoint, which a restart with the
        # newly registered certificate can end; False for a verdict of the chain itself.
        self.transient = transient
        super().__init__(f"peer {node} is not trusted: {problem}")


class CertificateUnavailable(ChannelError):
    """An active node's certificate could not be read from its endpoint (yet).

    Distinct from `PeerNotTrusted` because it is usually transient — the peer is still
    starting, or the network blipped — so a sender retries it until its deadline.
    """

    reason = "PEER_TIMEOUT"

    def __init__(self, node: str, endpoint: str, problem: str) -> None:
        self.node, self.endpoint, self.problem = node, endpoint, problem
        super().__init__(f"certificate of {node} at {endpoint} unavailable: {problem}")


class TrustUnavailable(ChannelError):
    """The chain has not been read recently enough to vouch for anyone."""

    reason = "PROTOCOL_ERROR"


@dataclass(frozen=True)
class NodeRecord:
    """One node as the chain shows it at the last poll."""

    address: str  # EIP-55 checksummed
    org_id: bytes
    status: NodeStatus
    active: bool  # node Active *and* its organisation Active
    endpoint: str
    cert_sha256: bytes


@dataclass(frozen=True)
class TrustedPeer:
    """An active node together with its verified certificate: what a client dials."""

    address: str
    endpoint: str
    cert_sha256: bytes
    cert_pem: bytes


@dataclass(frozen=True)
class _Snapshot:
    nodes: Mapping[str, NodeRecord]
    by_digest: Mapping[bytes, frozenset[str]]  # active nodes only
    taken_at: float  # time.monotonic() of the last successful chain read
    head: bytes  # hash of the chain head the snapshot was read at


@dataclass
class _Backoff:
    failures: int = 0
    next_try: float = 0.0
    problem: str = ""


@dataclass(frozen=True)
class PeerState:
    """What an operator needs to know about one node of the chain: can we talk to it?

    `certificate` is ``verified`` (its endpoint presented the certificate the chain
    registers, so calls both ways pass TLS), ``pending`` (not fetched yet),
    ``unavailable`` (the last fetch failed: `problem` says why, `retry_in` when the
    next try is) or ``inactive`` (revoked, or its organisation suspended).
    """

    address: str
    org_id: bytes
    endpoint: str
    active: bool
    certificate: str
    problem: str = ""
    retry_in: float = 0.0


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port", as registered on chain."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInput("endpoint", f"expected host:port, got {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def fetch_certificate(endpoint: str, timeout: float) -> bytes:
    """The DER certificate `endpoint` presents, read in a TLS 1.3 handshake.

    Verification is off on purpose: this only *reads* the certificate, and the caller
    accepts it only if its digest is the one on chain. TLS 1.3 is required because there
    the server's certificate arrives before the server asks for ours, so the handshake
    completes on our side even though a peer server demands a client certificate that we
    do not send (the server then drops the connection, which is fine).
    """
    host, port = split_endpoint(endpoint)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2"])  # what a gRPC server expects to negotiate
    server_name = None if _is_ip(host) else host
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{endpoint} presented no certificate")
    return der


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ChainTrust:
    """The node's view of which peers the chain vouches for, refreshed every poll.

    One instance serves both directions: the peer server asks it who a caller is and
    which client certificates to accept; the sending side asks it where a peer is and
    which certificate to pin. It holds no key material, only public chain data and
    public certificates.
    """

    def __init__(
        self,
        consortium: ConsortiumClient,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        max_staleness: float | None = None,
        fetch: CertificateFetcher = fetch_certificate,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval}")
        self.consortium = consortium
        self.poll_interval = poll_interval
        self.fetch_timeout = fetch_timeout
        self.max_staleness = (
            max(10 * poll_interval, 10.0) if max_staleness is None else max_staleness
        )
        self._fetch = fetch
        self._reader = EventReader(
            consortium.chain, [Source("Consortium", consortium.address, abi("Consortium"))]
        )
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # one chain read at a time
        self._next_block = 0
        self._known: set[str] = set()
        self._snapshot: _Snapshot | None = None
        self._certs: dict[bytes, bytes] = {}  # verified: digest -> PEM
        self._backoff: dict[bytes, _Backoff] = {}
        self._roots_key: tuple[bytes, ...] = ()
        self._roots: tuple[int, bytes] = (0, b"")
        self._stop = threading.Event()
        self._discover_now = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ChainTrust:
        """Read the chain once (raising if it cannot be read), then keep polling."""
        if self._threads:
            return self
        self.refresh()
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._status_loop, name="trust-status", daemon=True),
            threading.Thread(target=self._discovery_loop, name="trust-discovery", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._discover_now.set()
        for thread in self._threads:
            thread.join(timeout=self.fetch_timeout + self.poll_interval + 5)
        self._threads = []

    def __enter__(self) -> ChainTrust:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self) -> None:
        """One poll, synchronously: re-read node status, then discover missing certificates."""
        self.refresh_status()
        self.discover()

    # ------------------------------------------------------------------ queries

    def nodes_for_certificate(self, cert_pem: bytes) -> frozenset[str]:
        """The active nodes registered with this certificate (usually one, else none)."""
        digest = certificate_digest(cert_pem)
        return self._fresh_snapshot().by_digest.get(digest, frozenset())

    def is_active(self, node: str) -> bool:
        """Whether the last poll saw `node` active (False when the view is stale)."""
        try:
            snapshot = self._fresh_snapshot()
            record = snapshot.nodes.get(_checksum(node))
        except (TrustUnavailable, InvalidInput):
            return False
        return record is not None and record.active

    def record(self, node: str) -> NodeRecord | None:
        snapshot = self._snapshot
        return None if snapshot is None else snapshot.nodes.get(_checksum(node))

    def peer(self, node: str) -> TrustedPeer:
        """Where to reach `node` and which certificate to pin, as the chain says now.

        Served from the last poll when it has everything; otherwise (a node not seen
        yet, a certificate not fetched yet, a stale view) the chain and the endpoint
        are asked right away, so a sender never waits a poll interval for discovery.
        Raises `PeerNotTrusted`, `CertificateUnavailable` or `TrustUnavailable`.
        """
        try:
            address = _checksum(node)
        except InvalidInput as exc:
            raise PeerNotTrusted(node, str(exc)) from None
        record: NodeRecord | None = None
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken_at <= self.max_staleness:
            record = snapshot.nodes.get(address)
        if record is None:
            record = self._read_node(address)
        if not record.active:
            raise PeerNotTrusted(address, _inactive_reason(record))
        pem = self._certs.get(record.cert_sha256)
        if pem is None:
            pem = self._discover_one(record)
        return TrustedPeer(address, record.endpoint, record.cert_sha256, pem)

    def peer_states(self) -> list[PeerState]:
        """Every node the chain lists, with whether its certificate is verified yet.

        A peer this node has not verified cannot call it either (its certificate is
        not among the accepted client roots), so a freshly started consortium is
        ready when every node shows every other as ``verified``.
        """
        snapshot = self._fresh_snapshot()
        now = time.monotonic()
        states = []
        with self._lock:
            for record in sorted(snapshot.nodes.values(), key=lambda r: r.address):
                backoff = self._backoff.get(record.cert_sha256)
                if not record.active:
                    certificate, problem, retry = "inactive", _inactive_reason(record), 0.0
                elif record.cert_sha256 in self._certs:
                    certificate, problem, retry = "verified", "", 0.0
                elif backoff is None:
                    certificate, problem, retry = "pending", "", 0.0
                else:
                    certificate, problem = "unavailable", backoff.problem
                    retry = max(0.0, backoff.next_try - now)
                states.append(
                    PeerState(
                        record.address,
                        record.org_id,
                        record.endpoint,
                        record.active,
                        certificate,
                        problem,
                        round(retry, 1),
                    )
                )
        return states

    def root_certificates(self) -> tuple[int, bytes]:
        """(version, concatenated PEM) of the verified certificates of all active nodes.

        The version changes whenever the set does, so the server rebuilds its TLS
        configuration only then.
        """
        with self._lock:
            return self._roots

    # ------------------------------------------------------------------ polling

    def refresh_status(self) -> None:
        """Re-read every known node's status, if the chain head moved since last time."""
        with self._refresh_lock:
            latest = self.consortium.chain.w3.eth.get_block("latest")
            number, head = int(latest["number"]), bytes(latest["hash"])
            previous = self._snapshot
            if previous is not None and previous.head == head:
                self._publish(previous.nodes, head)
                return
            if number < self._next_block - 1:  # the chain went back (reorg, test revert)
                self._next_block = 0
            for event in self._reader.read(self._next_block, number):
                if event.name == "NodeRegistered":
                    with self._lock:
                        self._known.add(_checksum(event.args["node"]))
            self._next_block = number + 1
            with self._lock:
                known = sorted(self._known)
            self._publish({a: self._chain_record(a) for a in known}, head)

    def discover(self) -> None:
        """Fetch and verify the certificates of active nodes that lack one (with backoff)."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        now = time.monotonic()
        for record in snapshot.nodes.values():
            if not record.active or record.cert_sha256 in self._certs:
                continue
            backoff = self._backoff.get(record.cert_sha256)
            if backoff is not None and now < backoff.next_try:
                continue
            try:
                self._discover_one(record)
            except (CertificateUnavailable, PeerNotTrusted) as exc:
                log.log(
                    logging.WARNING if backoff is None else logging.DEBUG,
                    "peer discovery: %s",
                    exc,
                )

    def _status_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh_status()
            except Exception as exc:  # keep polling; staleness makes the view fail closed
                log.warning("reading node status from chain failed: %s", exc)
            self._discover_now.set()

    def _discovery_loop(self) -> None:
        """Separate from status polling so a slow endpoint never delays a revocation."""
        while True:
            self._discover_now.wait()
            if self._stop.is_set():
                return
            self._discover_now.clear()
            try:
                self.discover()
            except Exception as exc:
                log.warning("peer discovery failed: %s", exc)

    # ------------------------------------------------------------------ internals

    def _fresh_snapshot(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise TrustUnavailable("the chain has not been read yet")
        age = time.monotonic() - snapshot.taken_at
        if age > self.max_staleness:
            raise TrustUnavailable(f"node status last read from chain {age:.1f} s ago")
        return snapshot

    def _chain_record(self, address: str) -> NodeRecord:
        info = self.consortium.node_info(address)
        active = info.status == NodeStatus.ACTIVE and self.consortium.is_active_node(address)
        return NodeRecord(
            address, info.org_id, info.status, active, info.endpoint, info.tls_cert_sha256
        )

    def _read_node(self, address: str) -> NodeRecord:
        """One node straight from the chain, merged into the current view."""
        try:
            record = self._chain_record(address)
        except Exception as exc:
            raise TrustUnavailable(f"cannot read node {address} from chain: {exc}") from exc
        if record.status == NodeStatus.NONE:
            raise PeerNotTrusted(address, "no such node on chain")
        with self._lock:
            self._known.add(address)
            snapshot = self._snapshot
            if snapshot is not None:
                nodes = {**snapshot.nodes, address: record}
                self._snapshot = _Snapshot(
                    nodes, _index(nodes.values()), snapshot.taken_at, snapshot.head
                )
                self._recompute_roots()
        return record

    def _discover_one(self, record: NodeRecord) -> bytes:
        """Fetch `record`'s certificate from its endpoint and keep it if the digest matches."""
        digest = record.cert_sha256
        try:
            der = self._fetch(record.endpoint, self.fetch_timeout)
        except (OSError, InvalidInput) as exc:  # ssl.SSLError and socket timeouts are OSErrors
            self._failed(
                digest,
                f"cannot read its certificate at {record.endpoint}: {exc}",
                refused=isinstance(exc, ConnectionRefusedError),
            )
            raise CertificateUnavailable(record.address, record.endpoint, str(exc)) from None
        got = hashlib.sha256(der).digest()
        if got != digest:
            problem = (
                f"endpoint {record.endpoint} presents a certificate with SHA-256 {got.hex()}, "
                f"the chain registers {digest.hex()}"
            )
            self._failed(digest, problem)
            raise PeerNotTrusted(record.address, problem, transient=True)
        pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        with self._lock:
            self._certs[digest] = pem
            self._backoff.pop(digest, None)
            self._recompute_roots()
        return pem

    def _failed(self, digest: bytes, problem: str, *, refused: bool = False) -> None:
        """Schedule the next fetch of `digest`'s certificate after a failed one.

        A refused connection (nothing listens there yet) is due again after half a poll
        interval, so the next discovery pass (the status loop starts one every poll
        interval) retries it; it neither grows nor resets the backoff of other failures.
        """
        with self._lock:
            backoff = self._backoff.setdefault(digest, _Backoff())
            backoff.problem = problem
            if refused:
                delay = self.poll_interval / 2
            else:
                delay = min(self.poll_interval * 2**backoff.failures, MAX_FETCH_BACKOFF)
                backoff.failures += 1
            backoff.next_try = time.monotonic() + delay

    def _publish(self, nodes: Mapping[str, NodeRecord], head: bytes) -> None:
        with self._lock:
            self._snapshot = _Snapshot(nodes, _index(nodes.values()), time.monotonic(), head)
            self._recompute_roots()

    def _recompute_roots(self) -> None:
        """Caller holds the lock. Bumps the version only when the set of roots changed."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        key = tuple(sorted(d for d in snapshot.by_digest if d in self._certs))
        if key != self._roots_key:
            self._roots_key = key
            self._roots = (self._roots[0] + 1, b"".join(self._certs[d] for d in key))


def _index(records: Iterable[NodeRecord]) -> dict[bytes, frozenset[str]]:
    by_digest: dict[bytes, set[str]] = {}
    for record in records:
        if record.active:
            by_digest.setdefault(record.cert_sha256, set()).add(record.address)
    return {d: frozenset(a) for d, a in by_digest.items()}


def _inactive_reason(record: NodeRecord) -> str:
    if record.status == NodeStatus.REVOKED:
        return "node is revoked on chain"
    if record.status == NodeStatus.ACTIVE:
        return "its organisation is not active on chain"
    return f"node status on chain is {record.status.name}"


def _checksum(node: str) -> str:
    return str(as_address(node, "node"))
