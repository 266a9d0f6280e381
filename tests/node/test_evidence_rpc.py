"""`GetEvidence` end to end: real gRPC over mutual TLS on 127.0.0.1, trust and roles read
from the embedded chain, evidence in SQLite under tmp_path.

bank-a's node holds the evidence; the regulator's node (its organisation holds REGULATOR)
reads it, bank-b's node (PROVIDER | CONSUMER) must not. Every refusal is checked by
status code and by the stable name at the start of its details.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import grpc
import pytest
from sqlalchemy import select

from ledger.transcript import Entry, chain_intact, transcript_root
from node.evidence.access import MAX_VALIDITY_SECONDS, DenyReason
from node.evidence.models import AccessNonceRow
from node.evidence.store import EvidenceStore
from node.peer import peer_pb2
from node.peer.client import PeerClient
from node.peer.evidence_service import (
    AnchorRecord,
    EvidenceBundle,
    EvidenceDenied,
    EvidenceNotFound,
    EvidenceRefused,
    EvidenceUnreachable,
    fetch_evidence,
    signed_request,
)
from node.peer.server import PeerServer
from node.peer.trust import TrustedPeer
from tests.conftest import Consortium
from tests.node.peer_helpers import PeerNode, running_mesh

TASK = hashlib.sha256(b"audited task").digest()
UNKNOWN = hashlib.sha256(b"never run").digest()
# EIP-55's own example address with the case of one letter flipped.
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def d(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


@dataclass
class EvidenceMesh:
    consortium: Consortium
    nodes: dict[str, PeerNode]
    store: EvidenceStore  # bank-a's evidence
    server: PeerServer  # bank-a's node, serving `store`
    peer: TrustedPeer  # that server as the regulator's node dials it

    def fetch(self, who: str, task: bytes = TASK, timeout: float = 5.0) -> EvidenceBundle:
        node = self.nodes[who]
        return fetch_evidence(
            self.peer,
            node.identity,
            node.org.node,
            task,
            self.consortium.chain.chain_id,
            self.consortium.deployment.address("Consortium"),
            timeout,
        )

    def request(
        self, who: str, task: bytes = TASK, *, nonce: int = 1, expires_in: int = 60
    ) -> peer_pb2.EvidenceRequest:
        return signed_request(
            self.nodes[who].org.node,
            task,
            self.consortium.chain.chain_id,
            self.consortium.deployment.address("Consortium"),
            nonce=nonce,
            expires_at=int(time.time()) + expires_in,
        )

    def client(self, caller: str) -> PeerClient:
        """A raw client over `caller`'s TLS identity, to put any request on the wire."""
        return PeerClient(self.peer, self.nodes[caller].identity, 1024 * 1024)

    def served(self, caller: str, request: peer_pb2.EvidenceRequest) -> peer_pb2.EvidenceResponse:
        with closing(self.client(caller)) as client:
            return client.get_evidence_once(request, timeout=5.0)

    def refused(
        self, caller: str, request: peer_pb2.EvidenceRequest
    ) -> tuple[grpc.StatusCode, str]:
        """The status the call ends with; fails the test if the request is served."""
        with closing(self.client(caller)) as client:
            try:
                client.get_evidence_once(request, timeout=5.0)
            except grpc.RpcError as exc:
                call = cast("grpc.Call", exc)
                return call.code(), call.details() or ""
        raise AssertionError("the request was served")

    def used_nonces(self) -> list[tuple[str, int]]:
        with self.store.session() as session:
            rows = session.scalars(select(AccessNonceRow)).all()
            return sorted((r.requester, int.from_bytes(r.nonce, "big")) for r in rows)


@pytest.fixture
def mesh(consortium: Consortium, tmp_path: Path) -> Iterator[EvidenceMesh]:
    """The three-node mesh, plus a server of bank-a's node that holds its evidence.

    `running_mesh` builds servers without an evidence store, so bank-a's node gets a
    second server with the same TLS identity and chain trust; the regulator dials it
    with the certificate pin the chain gives for bank-a, at that server's port.
    """
    with (
        running_mesh(consortium) as nodes,
        EvidenceStore(f"sqlite:///{tmp_path / 'evidence.db'}") as store,
    ):
        a = nodes["bank-a"]
        server = PeerServer(a.identity, a.address, a.trust, evidence=store)
        try:
            server.start()
            pinned = nodes["regulator"].trust.peer(a.address)
            peer = replace(pinned, endpoint=f"127.0.0.1:{server.port}")
            yield EvidenceMesh(consortium, nodes, store, server, peer)
        finally:
            server.stop(0)


def record_transcript(mesh: EvidenceMesh, n: int = 7) -> list[Entry]:
    """bank-a's transcript of a task with bank-b, with a checkpoint and a result anchor."""
    other = mesh.nodes["bank-b"].address
    kinds = ["input", *(["sent", "received"] * n)][: n - 1]
    kinds.append("output")
    entries = []
    for i, kind in enumerate(kinds):
        peer = other if kind in ("sent", "received") else ""
        entries.append(mesh.store.append(TASK, kind, f"round-{i}", d(i), peer=peer))
    mesh.store.record_anchor(TASK, "checkpoint", 3, transcript_root(entries[:3]), d(100))
    mesh.store.record_anchor(TASK, "result", n, transcript_root(entries), d(101))
    return entries


# ---------------------------------------------------------------------- served


def test_the_regulator_reads_a_transcript_it_did_not_write(mesh: EvidenceMesh) -> None:
    written = record_transcript(mesh)
    bundle = mesh.fetch("regulator")

    assert bundle.node == mesh.nodes["bank-a"].address and bundle.task_id == TASK
    assert list(bundle.entries) == written == mesh.store.entries(TASK)
    assert chain_intact(bundle.entries)
    assert bundle.tree_size == len(written)
    assert bundle.root == transcript_root(bundle.entries) == mesh.store.root(TASK)
    assert bundle.anchors == (
        AnchorRecord("checkpoint", 3, transcript_root(written[:3]), d(100)),
        AnchorRecord("result", len(written), bundle.root, d(101)),
    )
    # Each fetch signs a fresh single-use request, and each read is logged by its nonce.
    assert mesh.fetch("regulator") == bundle
    regulator = mesh.nodes["regulator"].address
    assert [who for who, _ in mesh.used_nonces()] == [regulator, regulator]
    # Deliver still works on the same server, beside GetEvidence.
    mesh.server.inbox.open_task(TASK, [regulator])
    with closing(mesh.client("regulator")) as client:
        env = peer_pb2.Envelope(task_id=TASK, step="s", sender=regulator, payload=b"x")
        assert not client.deliver_once(env, timeout=5.0).duplicate


# ---------------------------------------------------------------------- refused


def test_a_bank_node_is_not_a_regulator(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    with pytest.raises(EvidenceDenied) as info:
        mesh.fetch("bank-b")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.deny_reason == DenyReason.NOT_REGULATOR
    assert info.value.details.startswith("not_regulator: ")
    assert info.value.reason == "PROTOCOL_ERROR"  # a ChannelError like any refusal
    assert mesh.used_nonces() == []


def test_a_replayed_request_is_refused(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    request = mesh.request("regulator", nonce=2**255 + 1)
    assert len(mesh.served("regulator", request).entries) == 7
    code, details = mesh.refused("regulator", request)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details.startswith("replayed_nonce: ")
    # Re-signing the same nonce with another expiry is the same replay.
    again = mesh.request("regulator", nonce=2**255 + 1, expires_in=90)
    assert mesh.refused("regulator", again)[1].startswith("replayed_nonce: ")


def test_a_request_signed_for_another_node_than_the_caller_is_refused(
    mesh: EvidenceMesh,
) -> None:
    """bank-b presents a regulator's request it got hold of: refused, nonce not burnt."""
    record_transcript(mesh)
    stolen = mesh.request("regulator", nonce=7)
    code, details = mesh.refused("bank-b", stolen)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    regulator, bank_b = mesh.nodes["regulator"].address, mesh.nodes["bank-b"].address
    assert details.startswith(f"requester: the request names {regulator}")
    assert bank_b in details
    assert mesh.used_nonces() == []
    assert mesh.served("regulator", stolen).tree_size == 7  # its owner can still use it


def test_expired_and_overlong_requests_are_refused(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    for nonce, expires_in, reason in [
        (1, -1, "expired"),
        (2, 0, "expired"),
        (3, MAX_VALIDITY_SECONDS + 60, "expiry_too_far"),
    ]:
        code, details = mesh.refused(
            "regulator", mesh.request("regulator", nonce=nonce, expires_in=expires_in)
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details.startswith(f"{reason}: "), details
    assert mesh.used_nonces() == []


def test_a_tampered_request_is_a_bad_signature(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    request = mesh.request("regulator", nonce=5)
    tampered = peer_pb2.EvidenceRequest()
    tampered.CopyFrom(request)
    tampered.expires_at += 1
    code, details = mesh.refused("regulator", tampered)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details.startswith("bad_signature: ")


def test_an_unknown_task_is_not_found(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    with pytest.raises(EvidenceNotFound) as info:
        mesh.fetch("regulator", UNKNOWN)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.details == f"task_id: no evidence recorded for task 0x{UNKNOWN.hex()}"
    # ... but only to a regulator: anyone else learns nothing about which tasks exist.
    with pytest.raises(EvidenceDenied, match="not_regulator"):
        mesh.fetch("bank-b", UNKNOWN)


def test_malformed_requests_are_invalid_argument_naming_the_field(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    good = mesh.request("regulator", nonce=11)
    cases: list[tuple[str, dict[str, object]]] = [
        ("task_id", {"task_id": TASK[:31]}),
        ("task_id", {"task_id": TASK + b"\0"}),
        ("task_id", {"task_id": b""}),
        ("requester", {"requester": ""}),
        ("requester", {"requester": "0x1234"}),
        ("requester", {"requester": "0x" + "zz" * 20}),
        ("requester", {"requester": BAD_CHECKSUM}),
        ("nonce", {"nonce": ""}),
        ("nonce", {"nonce": "-1"}),
        ("nonce", {"nonce": "0x11"}),
        ("nonce", {"nonce": "١٢"}),  # digits, but not ASCII ones
        ("nonce", {"nonce": str(2**256)}),
        ("nonce", {"nonce": "9" * 79}),
        ("signature", {"signature": b""}),
        ("signature", {"signature": good.signature[:64]}),
        ("signature", {"signature": good.signature + b"\0"}),
    ]
    for field, change in cases:
        bad = peer_pb2.EvidenceRequest()
        bad.CopyFrom(good)
        for name, value in change.items():
            setattr(bad, name, value)
        code, details = mesh.refused("regulator", bad)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (change, details)
        assert details.startswith(f"{field}: "), (change, details)
    assert mesh.used_nonces() == []
    assert mesh.served("regulator", good).tree_size == 7


# ---------------------------------------------------------------------- not served


def test_a_node_without_an_evidence_store_serves_none(mesh: EvidenceMesh) -> None:
    regulator = mesh.nodes["regulator"]
    plain = regulator.trust.peer(mesh.nodes["bank-b"].address)  # its mesh server, no store
    with pytest.raises(EvidenceRefused) as info:
        fetch_evidence(
            plain,
            regulator.identity,
            regulator.org.node,
            TASK,
            mesh.consortium.chain.chain_id,
            mesh.consortium.deployment.address("Consortium"),
            5.0,
        )
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert info.value.details == "this node serves no evidence"


def test_an_unreachable_node_is_named_after_the_deadline(mesh: EvidenceMesh) -> None:
    record_transcript(mesh)
    mesh.server.stop(0)
    start = time.monotonic()
    with pytest.raises(EvidenceUnreachable, match=r"within 0\.5 s: UNAVAILABLE") as info:
        mesh.fetch("regulator", timeout=0.5)
    assert info.value.reason == "PEER_TIMEOUT"
    assert 0.5 <= time.monotonic() - start < 5
