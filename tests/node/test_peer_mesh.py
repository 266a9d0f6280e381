"""The peer data plane end to end: real gRPC over mutual TLS, trust read from a real chain.

Every node's certificate digest and endpoint are registered on the embedded chain; the
tests then change the chain (revoke, suspend, register a wrong digest) and check that
the mesh follows it, and that every failure surfaces as a named error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
import pytest

from ledger.ids import InvalidInput
from ledger.transcript import Transcript, chain_intact
from node.channel import MessageTooLarge, PeerTimeout, RecordingChannel, UnknownPeer
from node.identity import new_tls_identity
from node.peer import MAX_STEP_CHARS, peer_pb2
from node.peer.client import PeerClient, PeerRejected, PeerUnreachable, deliver
from node.peer.server import AlreadyReceived
from node.peer.trust import PeerNotTrusted, PeerState, TrustedPeer, TrustUnavailable
from tests.conftest import Consortium
from tests.node.peer_helpers import PeerNode, rpc_error, running_mesh, task_id, wait_until

POLL = 0.2
# EIP-55's own example address with the case of one letter flipped.
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def envelope(task: bytes, step: str, sender: str, payload: bytes = b"x") -> peer_pb2.Envelope:
    return peer_pb2.Envelope(task_id=task, step=step, sender=sender, payload=payload)


# ---------------------------------------------------------------------- happy path


def test_three_nodes_exchange_both_ways_and_transcripts_agree(consortium: Consortium) -> None:
    with running_mesh(consortium) as nodes:
        tid = task_id()
        a, b, c = nodes["bank-a"], nodes["bank-b"], nodes["regulator"]
        transcripts = {n: Transcript() for n in nodes}
        chans = {
            name: RecordingChannel(
                node.channel(tid, *[p for p in nodes.values() if p is not node]),
                tid,
                transcripts[name],
            )
            for name, node in nodes.items()
        }
        big = bytes(range(256)) * 4096 * 5  # 5 MiB: above gRPC's 4 MiB default limit
        for ch in chans.values():
            for peer in ch.peers:
                ch.send(peer, "hello", f"{ch.me}->{peer}".encode())
        chans["bank-a"].send(b.address, "bulk", big)
        for ch in chans.values():
            for peer in ch.peers:
                assert ch.receive(peer, "hello", timeout=5) == f"{peer}->{ch.me}".encode()
        assert chans["bank-b"].receive(a.address, "bulk", timeout=5) == big
        assert c.address in chans["bank-a"].peers

        for sender in nodes:
            for receiver in nodes:
                if sender == receiver:
                    continue
                sent = {
                    (e.step, e.digest)
                    for e in transcripts[sender].entries
                    if e.kind == "sent" and e.peer == nodes[receiver].address
                }
                got = {
                    (e.step, e.digest)
                    for e in transcripts[receiver].entries
                    if e.kind == "received" and e.peer == nodes[sender].address
                }
                assert sent == got and sent
        assert all(chain_intact(t.entries) for t in transcripts.values())


def test_sender_retries_until_the_peer_opens_the_task(consortium: Consortium) -> None:
    """A peer that is slower to set the task up is a NOT_FOUND, retried, not a failure."""
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch_a = a.channel(tid, b)
        opened: list[object] = []
        timer = threading.Timer(0.3, lambda: opened.append(b.channel(tid, a)))
        timer.start()
        try:
            ch_a.send(b.address, "early", b"payload")
        finally:
            timer.join()
        assert b.server.inbox.take(tid, a.address, "early", 1.0) == b"payload"


def test_the_pin_not_the_host_name_is_what_is_trusted(consortium: Consortium) -> None:
    """An endpoint registered by DNS name reaches a certificate that only names an IP."""
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        b.org.clients.consortium.update_node(
            b.address, f"localhost:{b.server.port}", b.identity.cert_sha256
        )
        a.trust.refresh()
        assert a.trust.peer(b.address).endpoint == f"localhost:{b.server.port}"
        tid = task_id()
        ch_a, ch_b = a.channel(tid, b), b.channel(tid, a)
        ch_a.send(b.address, "by-name", b"hi")
        assert ch_b.receive(a.address, "by-name", timeout=5) == b"hi"


# ---------------------------------------------------------------------- who may talk


def test_certificate_not_on_chain_is_refused_by_tls(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        a.channel(tid, b)
        impostor = new_tls_identity("bank-b")  # same node account, certificate not on chain
        code, details = rpc_error(b.raw_client(a, impostor), envelope(tid, "s", b.address))
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "handshake" in details.lower() or "socket closed" in details.lower()
        assert a.server.inbox.take(tid, b.address, "s", 0) is None


def test_sender_must_be_the_node_of_the_certificate(consortium: Consortium) -> None:
    with running_mesh(consortium) as nodes:
        a, b, c = nodes["bank-a"], nodes["bank-b"], nodes["regulator"]
        tid = task_id()
        a.channel(tid, b, c)
        stranger = consortium.new_funded_account().address  # an unregistered account
        for claimed in (c.address, stranger):
            code, details = rpc_error(b.raw_client(a), envelope(tid, "s", claimed))
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert details.startswith(f"sender: the envelope claims {claimed}")
            assert b.address in details
        assert a.server.inbox.take(tid, c.address, "s", 0) is None


def test_client_refuses_a_server_whose_certificate_is_not_the_registered_one(
    consortium: Consortium,
) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch = a.channel(tid, b, send_timeout=0.6)
        b.channel(tid, a)
        other = new_tls_identity("bank-b")
        # The chain now registers another certificate for B, but B's server still
        # presents its old one: A must not talk to it.
        b.org.clients.consortium.update_node(b.address, b.endpoint, other.cert_sha256)
        a.trust.refresh()
        with pytest.raises(PeerNotTrusted, match="presents a certificate with SHA-256"):
            ch.send(b.address, "s", b"secret")
        assert b.server.inbox.take(tid, a.address, "s", 0) is None

        # Below the trust layer: a client pinned to a certificate the server does not
        # hold fails the TLS handshake, and deliver() names the peer unreachable.
        pinned = TrustedPeer(b.address, b.endpoint, other.cert_sha256, other.cert_pem)
        client = PeerClient(pinned, a.identity, 1024)
        try:
            with pytest.raises(PeerUnreachable, match=r"CERTIFICATE_VERIFY_FAILED|handshake"):
                deliver(lambda: client, envelope(tid, "s", a.address), b.address, 0.5)
        finally:
            client.close()
        assert b.server.inbox.take(tid, a.address, "s", 0) is None


def test_revoking_a_node_cuts_its_open_connection_within_one_poll(
    consortium: Consortium,
) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b"), poll_interval=POLL) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch_a, ch_b = a.channel(tid, b, send_timeout=2.0), b.channel(tid, a, send_timeout=2.0)
        ch_b.send(a.address, "before", b"ok")  # opens the HTTP/2 connection B -> A
        assert ch_a.receive(b.address, "before", timeout=2) == b"ok"

        b.org.clients.consortium.revoke_node(b.address)
        revoked_at = time.monotonic()
        steps = iter(range(10_000))

        def b_is_cut_off() -> bool:
            try:
                ch_b.send(a.address, f"after-{next(steps)}", b"late")
            except PeerRejected as exc:
                assert exc.code == grpc.StatusCode.PERMISSION_DENIED
                assert "not registered for a node that is active on chain" in exc.details
                return True
            return False

        wait_until(b_is_cut_off, timeout=5 * POLL + 2)
        # One poll interval, plus the time a poll takes on a busy test machine.
        assert time.monotonic() - revoked_at < POLL + 1.0

        # A now refuses to send to B, and stops waiting for B, by name.
        wait_until(lambda: not a.trust.is_active(b.address), timeout=5 * POLL + 2)
        with pytest.raises(PeerNotTrusted, match="revoked"):
            ch_a.send(b.address, "to-revoked", b"x")
        with pytest.raises(PeerNotTrusted, match="no longer active"):
            ch_a.receive(b.address, "never", timeout=5)
        # New connections from B fail at the TLS layer: A's roots no longer hold B.
        wait_until(lambda: a.trust.root_certificates()[1].count(b"BEGIN") == 1, timeout=5)
        code, _ = rpc_error(
            PeerClient(b.trust.peer(a.address), b.identity, 1024), envelope(tid, "x", b.address)
        )
        assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED)


def test_one_poll_is_enough_to_follow_the_chain(consortium: Consortium) -> None:
    """Without a background poller: a single refresh after the revocation cuts B off."""
    with running_mesh(consortium, ("bank-a", "bank-b"), start_trust=False) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        a.channel(tid, b)
        ch_b = b.channel(tid, a, send_timeout=2.0)
        ch_b.send(a.address, "one", b"1")
        b.org.clients.consortium.revoke_node(b.address)
        ch_b.send(a.address, "two", b"2")  # A has not polled yet: still accepted
        a.trust.refresh_status()
        with pytest.raises(PeerRejected, match="PERMISSION_DENIED"):
            ch_b.send(a.address, "three", b"3")


def test_suspending_the_org_cuts_its_node_off(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b"), poll_interval=POLL) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        a.channel(tid, b)
        ch_b = b.channel(tid, a, send_timeout=2.0)
        ch_b.send(a.address, "before", b"ok")

        admin_a = consortium.orgs["bank-a"].clients.consortium
        # No organisation suspends another alone: bank-a proposes, the regulator agrees
        # (the test consortium has no timelock, so the second vote executes it).
        proposal = admin_a.propose_suspension(b.org.org_id)
        assert not admin_a.proposal_executed(proposal)
        consortium.orgs["regulator"].clients.consortium.vote(proposal)
        assert admin_a.proposal_executed(proposal)
        assert not admin_a.is_active_org(b.org.org_id)

        def b_is_cut_off() -> bool:
            try:
                ch_b.send(a.address, f"after-{time.monotonic_ns()}", b"late")
            except PeerRejected as exc:
                return exc.code == grpc.StatusCode.PERMISSION_DENIED
            return False

        wait_until(b_is_cut_off, timeout=5 * POLL + 2)
        wait_until(lambda: not a.trust.is_active(b.address), timeout=5 * POLL + 2)
        with pytest.raises(PeerNotTrusted, match="organisation is not active"):
            a.trust.peer(b.address)


def test_a_stale_chain_view_trusts_nobody(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b"), start_trust=False) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        assert a.trust.nodes_for_certificate(b.identity.cert_pem) == {b.address}
        assert a.trust.nodes_for_certificate(new_tls_identity("x").cert_pem) == frozenset()
        a.trust.max_staleness = 0.05
        time.sleep(0.1)
        with pytest.raises(TrustUnavailable, match="last read from chain"):
            a.trust.nodes_for_certificate(b.identity.cert_pem)
        assert not a.trust.is_active(b.address)


# ---------------------------------------------------------------------- failures by name


def test_a_stalled_peer_is_a_peer_timeout(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch = a.channel(tid, b)
        b.channel(tid, a)  # B takes part but never sends
        start = time.monotonic()
        with pytest.raises(PeerTimeout, match="no message 'keys' from"):
            ch.receive(b.address, "keys", timeout=0.5)
        assert 0.5 <= time.monotonic() - start < 5


def test_an_unreachable_peer_is_named_after_the_deadline(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch = a.channel(tid, b, send_timeout=0.6)
        a.trust.peer(b.address)  # certificate known; now B goes away
        b.server.stop(0)
        start = time.monotonic()
        with pytest.raises(PeerUnreachable, match=f"could not deliver 's' to {b.address}"):
            ch.send(b.address, "s", b"x")
        assert 0.6 <= time.monotonic() - start < 5


def test_message_size_is_limited_on_both_sides(consortium: Consortium) -> None:
    limit = 64 * 1024
    with running_mesh(consortium, ("bank-a", "bank-b"), max_message_bytes=limit) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch = a.channel(tid, b)
        b.channel(tid, a)
        ch.send(b.address, "fits", bytes(limit))
        with pytest.raises(MessageTooLarge, match=f"{limit + 1} bytes exceeds the {limit}-byte"):
            ch.send(b.address, "big", bytes(limit + 1))
        # A sender that skips the check: the server's own check, then gRPC's wire limit.
        big_client = PeerClient(a.trust.peer(b.address), a.identity, 10 * limit)
        code, details = rpc_error(big_client, envelope(tid, "big", a.address, bytes(limit + 1)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("payload:")
        big_client = PeerClient(a.trust.peer(b.address), a.identity, 10 * limit)
        code, _ = rpc_error(big_client, envelope(tid, "huge", a.address, bytes(2 * limit)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert b.server.inbox.take(tid, a.address, "big", 0) is None
        assert b.server.inbox.take(tid, a.address, "fits", 0) == bytes(limit)


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("task_id", lambda tid, s: envelope(tid[:31], "s", s)),
        ("task_id", lambda tid, s: envelope(tid + b"\0", "s", s)),
        ("step", lambda tid, s: envelope(tid, "", s)),
        ("step", lambda tid, s: envelope(tid, "x" * (MAX_STEP_CHARS + 1), s)),
        ("step", lambda tid, s: envelope(tid, "line\nbreak", s)),
        ("sender", lambda tid, s: envelope(tid, "s", "0x1234")),
        ("sender", lambda tid, s: envelope(tid, "s", "0x" + "zz" * 20)),
        ("sender", lambda tid, s: envelope(tid, "s", BAD_CHECKSUM)),
    ],
)
def test_malformed_envelopes_are_invalid_argument_naming_the_field(
    consortium: Consortium, field: str, make: Callable[[bytes, str], peer_pb2.Envelope]
) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        a.channel(tid, b)
        env = make(tid, b.address)
        code, details = rpc_error(b.raw_client(a), env)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(f"{field}:")
        assert a.server.inbox.take(tid, b.address, "s", 0) is None


def test_task_and_participant_checks(consortium: Consortium) -> None:
    with running_mesh(consortium) as nodes:
        a, b, c = nodes["bank-a"], nodes["bank-b"], nodes["regulator"]
        tid = task_id()
        ch = a.channel(tid, c)  # B is not a participant of this task
        code, details = rpc_error(b.raw_client(a), envelope(tid, "s", b.address))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details == f"sender: {b.address} is not a participant of task 0x{tid.hex()}"
        unknown = task_id()
        code, details = rpc_error(b.raw_client(a), envelope(unknown, "s", b.address))
        assert code == grpc.StatusCode.NOT_FOUND and details.startswith("task_id:")
        ch.close()
        code, details = rpc_error(c.raw_client(a), envelope(tid, "s", c.address))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "closed" in details
        # The channel refuses non-participants and bad steps before touching the network.
        ch2 = a.channel(task_id(), c)
        with pytest.raises(UnknownPeer):
            ch2.send(b.address, "s", b"x")
        with pytest.raises(UnknownPeer):
            ch2.receive("not-an-address", "s", timeout=0.1)
        with pytest.raises(InvalidInput, match=r"^step:"):
            ch2.send(c.address, "", b"x")


def test_duplicates_are_idempotent_and_conflicts_refused(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        tid = task_id()
        ch_a, ch_b = a.channel(tid, b), b.channel(tid, a)
        client = b.raw_client(a)
        try:
            first = client.deliver_once(envelope(tid, "share", b.address, b"v1"), timeout=5)
            again = client.deliver_once(envelope(tid, "share", b.address, b"v1"), timeout=5)
            assert (first.duplicate, again.duplicate) == (False, True)
            assert ch_a.receive(b.address, "share", timeout=1) == b"v1"
            # A retry whose Ack was lost arrives after the read: still only an Ack.
            late = client.deliver_once(envelope(tid, "share", b.address, b"v1"), timeout=5)
            assert late.duplicate
        finally:
            client.close()
        with pytest.raises(AlreadyReceived):
            ch_a.receive(b.address, "share", timeout=1)
        ch_b.send(a.address, "share", b"v1")  # an identical resend through the channel
        with pytest.raises(PeerRejected, match="ALREADY_EXISTS: step: a different message"):
            ch_b.send(a.address, "share", b"v2")
        code, details = rpc_error(b.raw_client(a), envelope(tid, "share", b.address, b"v3"))
        assert code == grpc.StatusCode.ALREADY_EXISTS and details.startswith("step:")


# ---------------------------------------------------------------------- the operator's view


def _states(node: PeerNode) -> dict[str, PeerState]:
    return {s.address: s for s in node.trust.peer_states()}


def test_peer_states_say_which_certificates_are_verified_and_why_not(
    consortium: Consortium,
) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b", "regulator"), start_trust=False) as nodes:
        a, b, reg = nodes["bank-a"], nodes["bank-b"], nodes["regulator"]
        states = _states(a)
        assert {states[n.address].certificate for n in (a, b, reg)} == {"verified"}

        # B now registers a certificate its endpoint does not present; the regulator's
        # node goes away and comes back under a new certificate on a dead port.
        other = new_tls_identity("bank-b")
        b.org.clients.consortium.update_node(b.address, b.endpoint, other.cert_sha256)
        reg.org.clients.consortium.update_node(
            reg.address, "127.0.0.1:1", new_tls_identity("regulator").cert_sha256
        )
        a.trust.refresh_status()
        pending = _states(a)
        assert pending[b.address].certificate == "pending"
        a.trust.discover()
        states = _states(a)
        wrong, dead = states[b.address], states[reg.address]
        assert wrong.certificate == "unavailable"
        assert "presents a certificate with SHA-256" in wrong.problem
        assert wrong.retry_in > 0
        assert dead.certificate == "unavailable"
        assert "cannot read its certificate at 127.0.0.1:1" in dead.problem
        assert states[a.address].certificate == "verified"

        b.org.clients.consortium.revoke_node(b.address)
        a.trust.refresh_status()
        revoked = _states(a)[b.address]
        assert (revoked.certificate, revoked.active) == ("inactive", False)
        assert "revoked" in revoked.problem
