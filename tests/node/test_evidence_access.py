"""Signed evidence requests against the embedded consortium, on both database backends."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from ledger.clients.consortium import ConsortiumClient
from ledger.ids import name_id
from ledger.keys import new_account
from node.evidence import EvidenceStore
from node.evidence.access import (
    MAX_VALIDITY_SECONDS,
    AccessDenied,
    DenyReason,
    EvidenceRequest,
    request_message,
    sign_request,
    verify_request,
)
from node.evidence.models import AccessNonceRow
from tests.conftest import Consortium

TASK = hashlib.sha256(b"audited task").digest()
NOW = 1_900_000_000


@pytest.fixture
def store(db_url: str) -> Iterator[EvidenceStore]:
    with EvidenceStore(db_url) as s:
        yield s


def chain_reader(consortium: Consortium) -> ConsortiumClient:
    """A read-only client, as the serving node would hold."""
    return ConsortiumClient(consortium.chain, consortium.deployment.address("Consortium"))


def signed(
    consortium: Consortium,
    account: LocalAccount,
    *,
    nonce: int = 1,
    expires_at: int = NOW + 60,
    task: bytes = TASK,
) -> tuple[dict[str, Any], bytes]:
    return sign_request(
        account,
        task,
        nonce,
        expires_at,
        consortium.chain.chain_id,
        consortium.deployment.address("Consortium"),
    )


def denied(
    consortium: Consortium,
    store: EvidenceStore,
    request: dict[str, Any],
    signature: bytes,
    **kwargs: Any,
) -> DenyReason:
    with pytest.raises(AccessDenied) as info:
        verify_request(request, signature, chain_reader(consortium), NOW, store, **kwargs)
    assert str(info.value).startswith(info.value.reason.value + ": ")
    return info.value.reason


def used_nonces(store: EvidenceStore) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(AccessNonceRow)) or 0)


def test_regulator_node_is_served_once(consortium: Consortium, store: EvidenceStore) -> None:
    regulator = consortium.orgs["regulator"].node
    request, signature = signed(consortium, regulator, nonce=2**255 + 7)
    assert request == {
        "taskId": "0x" + TASK.hex(),
        "requester": regulator.address,
        "nonce": 2**255 + 7,
        "expiresAt": NOW + 60,
    }
    client = chain_reader(consortium)
    assert verify_request(request, signature, client, NOW, store, task_id=TASK) == (
        regulator.address
    )
    with store.session() as session:
        row = session.scalars(select(AccessNonceRow)).one()
        assert (row.requester, row.task_id, row.expires_at) == (
            regulator.address,
            TASK,
            NOW + 60,
        )
        assert int.from_bytes(row.nonce, "big") == 2**255 + 7
    # The very same request again is a replay.
    assert denied(consortium, store, request, signature) == DenyReason.REPLAYED_NONCE
    # A fresh nonce is fine, and so is a nonce given as a decimal string.
    request, signature = signed(consortium, regulator, nonce=3)
    request["nonce"] = "3"
    assert verify_request(request, signature, client, NOW, store) == regulator.address
    assert used_nonces(store) == 2


def test_nonces_are_per_requester(consortium: Consortium, store: EvidenceStore) -> None:
    regulator = consortium.orgs["regulator"]
    second = new_account()
    regulator.clients.consortium.register_node(
        second.address, "regulator.example:7001", name_id("cert", "regulator-2")
    )
    client = chain_reader(consortium)
    for account in (regulator.node, second):
        request, signature = signed(consortium, account, nonce=42)
        assert verify_request(request, signature, client, NOW, store) == account.address
    assert used_nonces(store) == 2


def test_only_regulator_nodes_that_are_active_now(
    consortium: Consortium, store: EvidenceStore
) -> None:
    bank_node = consortium.orgs["bank-a"].node
    assert denied(consortium, store, *signed(consortium, bank_node)) == DenyReason.NOT_REGULATOR
    bank_admin = consortium.orgs["bank-a"].admin
    assert denied(consortium, store, *signed(consortium, bank_admin)) == DenyReason.NOT_ACTIVE_NODE
    stranger = new_account()
    assert denied(consortium, store, *signed(consortium, stranger)) == DenyReason.NOT_ACTIVE_NODE

    regulator = consortium.orgs["regulator"]
    request, signature = signed(consortium, regulator.node)
    regulator.clients.consortium.revoke_node(regulator.node.address)
    assert denied(consortium, store, request, signature) == DenyReason.NOT_ACTIVE_NODE
    assert used_nonces(store) == 0  # refused requests consume nothing


def test_expiry_window(consortium: Consortium, store: EvidenceStore) -> None:
    node = consortium.orgs["regulator"].node
    for nonce, expires_at, reason in [
        (1, NOW - 1, DenyReason.EXPIRED),
        (2, NOW, DenyReason.EXPIRED),
        (3, NOW + MAX_VALIDITY_SECONDS + 1, DenyReason.EXPIRY_TOO_FAR),
        (4, 2**64 - 1, DenyReason.EXPIRY_TOO_FAR),
    ]:
        request, signature = signed(consortium, node, nonce=nonce, expires_at=expires_at)
        assert denied(consortium, store, request, signature) == reason
    request, signature = signed(consortium, node, nonce=5, expires_at=NOW + MAX_VALIDITY_SECONDS)
    client = chain_reader(consortium)
    assert verify_request(request, signature, client, NOW, store) == node.address
    request, signature = signed(consortium, node, nonce=6, expires_at=NOW + 120)
    with pytest.raises(AccessDenied, match="expiry_too_far"):
        verify_request(request, signature, client, NOW, store, max_validity=60)


def test_signature_must_be_the_requesters(consortium: Consortium, store: EvidenceStore) -> None:
    regulator = consortium.orgs["regulator"].node
    address = consortium.deployment.address("Consortium")
    chain_id = consortium.chain.chain_id
    # Signed by another key but naming the regulator's node as requester.
    forged = EvidenceRequest(TASK, regulator.address, 9, NOW + 60)
    mallory = Account.sign_message(request_message(forged, chain_id, address), new_account().key)
    reason = denied(consortium, store, forged.to_dict(), bytes(mallory.signature))
    assert reason == DenyReason.BAD_SIGNATURE
    # Signed for another chain or another consortium contract.
    for other_chain, other_address in [(chain_id + 1, address), (chain_id, "0x" + "11" * 20)]:
        wrong = Account.sign_message(
            request_message(forged, other_chain, other_address), regulator.key
        )
        assert (
            denied(consortium, store, forged.to_dict(), bytes(wrong.signature))
            == DenyReason.BAD_SIGNATURE
        )
    # Every field is covered by the signature.
    request, signature = signed(consortium, regulator)
    for field, value in [
        ("taskId", "0x" + hashlib.sha256(b"other").hexdigest()),
        ("requester", consortium.orgs["bank-a"].node.address),
        ("nonce", 2),
        ("expiresAt", NOW + 61),
    ]:
        tampered = {**request, field: value}
        assert denied(consortium, store, tampered, signature) == DenyReason.BAD_SIGNATURE, field
    flipped = bytearray(signature)
    flipped[10] ^= 1
    assert denied(consortium, store, request, bytes(flipped)) == DenyReason.BAD_SIGNATURE
    for junk in (b"", signature[:64], b"\xff" * 65, signature + b"\x00"):
        assert denied(consortium, store, request, junk) == DenyReason.BAD_SIGNATURE
    assert used_nonces(store) == 0


def test_malformed_requests_name_the_field(consortium: Consortium, store: EvidenceStore) -> None:
    request, signature = signed(consortium, consortium.orgs["regulator"].node)
    cases: list[tuple[Any, str]] = [
        ([], "request"),
        ({k: v for k, v in request.items() if k != "nonce"}, "request"),
        ({**request, "extra": 1}, "request"),
        ({**request, "taskId": "0x1234"}, "taskId"),
        ({**request, "requester": "regulator"}, "requester"),
        ({**request, "nonce": -1}, "nonce"),
        ({**request, "nonce": 2**256}, "nonce"),
        ({**request, "nonce": True}, "nonce"),
        ({**request, "expiresAt": 2**64}, "expiresAt"),
        ({**request, "expiresAt": 1.5}, "expiresAt"),
    ]
    for bad, field in cases:
        with pytest.raises(AccessDenied) as info:
            verify_request(bad, signature, chain_reader(consortium), NOW, store)
        assert info.value.reason == DenyReason.MALFORMED_REQUEST
        assert info.value.detail.startswith(f"{field}: "), (field, info.value.detail)


def test_request_for_another_task_does_not_burn_the_nonce(
    consortium: Consortium, store: EvidenceStore
) -> None:
    node = consortium.orgs["regulator"].node
    request, signature = signed(consortium, node)
    other = hashlib.sha256(b"other").digest()
    reason = denied(consortium, store, request, signature, task_id=other)
    assert reason == DenyReason.WRONG_TASK
    client = chain_reader(consortium)
    assert verify_request(request, signature, client, NOW, store, task_id=TASK) == node.address


def test_racing_replays_are_served_once(consortium: Consortium, store: EvidenceStore) -> None:
    node = consortium.orgs["regulator"].node
    request, signature = signed(consortium, node, nonce=77)
    client = chain_reader(consortium)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(verify_request(request, signature, client, NOW, store))
        except AccessDenied as exc:
            outcomes.append(exc.reason.value)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([node.address] + ["replayed_nonce"] * 5)
