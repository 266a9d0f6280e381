"""When `ChainTrust` asks a peer's endpoint for its certificate again after a failure.

Nodes started together find their peers' ports closed at first. A refused connection
(nothing listens yet) is asked again at the next discovery pass however often it was
refused, so a peer is verified about one poll interval after it starts listening; any
other failure (here: the endpoint presents a certificate the chain does not register)
still backs off exponentially.
"""

from __future__ import annotations

import time

import pytest

from node.identity import new_tls_identity
from node.peer.server import PeerServer
from node.peer.trust import CertificateUnavailable, ChainTrust, PeerNotTrusted, PeerState
from tests.anvil import free_port
from tests.conftest import Consortium
from tests.node.peer_helpers import running_mesh

POLL = 1.0
FAILURES = 5


def _states(trust: ChainTrust) -> dict[str, PeerState]:
    return {s.address: s for s in trust.peer_states()}


def test_a_refused_fetch_is_retried_next_pass_and_other_failures_back_off(
    consortium: Consortium,
) -> None:
    with running_mesh(
        consortium, ("bank-a", "regulator"), poll_interval=POLL, start_trust=False
    ) as nodes:
        a, reg = nodes["bank-a"], nodes["regulator"]
        # bank-b's node is registered at a port nothing listens on yet.
        b = consortium.orgs["bank-b"]
        b_identity = new_tls_identity("bank-b")
        b_endpoint = f"127.0.0.1:{free_port()}"
        b.clients.consortium.update_node(b.node.address, b_endpoint, b_identity.cert_sha256)
        # The regulator's node is registered with a certificate its server does not present.
        reg.org.clients.consortium.update_node(
            reg.address, reg.endpoint, new_tls_identity("regulator").cert_sha256
        )
        a.trust.refresh_status()
        for _ in range(FAILURES):
            with pytest.raises(CertificateUnavailable, match="refused"):
                a.trust.peer(b.node.address)
            with pytest.raises(PeerNotTrusted, match="presents a certificate with SHA-256"):
                a.trust.peer(reg.address)

        states = _states(a.trust)
        refused, wrong = states[b.node.address], states[reg.address]
        assert (refused.certificate, wrong.certificate) == ("unavailable", "unavailable")
        assert f"cannot read its certificate at {b_endpoint}" in refused.problem
        assert "refused" in refused.problem
        # However often refused: due again within half a poll interval.
        assert refused.retry_in <= POLL / 2
        # The wrong certificate's fifth failure waits 2^4 poll intervals (under the cap).
        assert wrong.retry_in > POLL * 2 ** (FAILURES - 2)

        # bank-b's node starts listening: the next discovery pass verifies it, while the
        # regulator's is not asked again before its backoff ends.
        b_trust = ChainTrust(b.node_clients.consortium, poll_interval=POLL)
        b_server = PeerServer(b_identity, b.node.address, b_trust, listen=b_endpoint)
        b_server.start()
        try:
            time.sleep(POLL / 2 + 0.05)
            a.trust.discover()
            states = _states(a.trust)
            assert states[b.node.address].certificate == "verified"
            assert states[reg.address].certificate == "unavailable"
            assert states[reg.address].retry_in > POLL * 2 ** (FAILURES - 2) - 1
        finally:
            b_server.stop(0)
