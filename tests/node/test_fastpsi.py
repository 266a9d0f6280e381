"""Fast PSI mode: two spu sidecars over mutually pinned TLS on localhost.

Each test runs both parties, each from its own thread calling ``run_fast_psi`` (so each
in its own sidecar process), with freshly made self-signed node certificates. Skipped
only when ``.venv-fast-psi`` is missing and CI did not require it.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.fastpsi import driver
from node.fastpsi.driver import FastPsiError, FastPsiOutcome, FastPsiUnavailable, Protocol
from node.identity import TlsIdentity, new_tls_identity

pytestmark = pytest.mark.skipif(
    not driver.is_available() and not os.environ.get(driver.REQUIRE_ENV),
    reason=f"fast PSI venv missing ({driver.sidecar_python()}): run `make fast-psi` "
    f"(CI sets {driver.REQUIRE_ENV}=1, which turns this skip into a failure)",
)

TIMEOUT = 60.0


@dataclass(frozen=True)
class Party:
    identity: TlsIdentity
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Party]:
    folder = tmp_path_factory.mktemp("fastpsi-certs")
    made = {}
    for name in ("bank-a", "bank-b", "mallory"):
        identity = new_tls_identity(name)
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(identity.cert_pem)
        key.write_bytes(identity.key_pem)
        key.chmod(0o600)
        made[name] = Party(identity, cert, key)
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def items(count: int, rng: random.Random) -> list[bytes]:
    return [rng.randbytes(16) for _ in range(count)]


def run_pair(
    receiver: Party,
    sender: Party,
    receiver_items: list[bytes],
    sender_items: list[bytes],
    *,
    receiver_pins: Party | None = None,
    sender_pins: Party | None = None,
    protocol: Protocol = "rr22",
    protocols: dict[str, Protocol] | None = None,
    broadcast_result: bool = False,
    connect_timeout: float | None = None,
    before_sender: Callable[[str], None] | None = None,
) -> tuple[FastPsiOutcome | BaseException, FastPsiOutcome | BaseException]:
    """Both parties at once; each result is an outcome or the exception raised."""
    ports = {"receiver": free_port(), "sender": free_port()}
    results: dict[str, Any] = {}

    def party(role: driver.Role, me: Party, pins: Party, mine: list[bytes]) -> None:
        other = "sender" if role == "receiver" else "receiver"
        try:
            results[role] = driver.run_fast_psi(
                role,
                mine,
                f"127.0.0.1:{ports[role]}",
                f"127.0.0.1:{ports[other]}",
                me.cert,
                me.key,
                pins.identity.cert_pem,
                TIMEOUT,
                protocol=(protocols or {}).get(role, protocol),
                broadcast_result=broadcast_result,
                connect_timeout=connect_timeout,
            )
        except BaseException as exc:
            results[role] = exc

    threads = [
        threading.Thread(
            target=party,
            args=("receiver", receiver, receiver_pins or sender, receiver_items),
        ),
        threading.Thread(
            target=party, args=("sender", sender, sender_pins or receiver, sender_items)
        ),
    ]
    threads[0].start()
    if before_sender is not None:
        before_sender(f"127.0.0.1:{ports['receiver']}")
    threads[1].start()
    for thread in threads:
        thread.join(TIMEOUT + 30)
    return results["receiver"], results["sender"]


def outcome(result: FastPsiOutcome | BaseException) -> FastPsiOutcome:
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.parametrize(
    ("n_receiver", "n_sender", "shared", "protocol"),
    [
        pytest.param(0, 1000, 0, "rr22", id="empty-receiver"),
        pytest.param(1000, 0, 0, "rr22", id="empty-sender"),
        pytest.param(1, 1, 1, "rr22", id="one-identical"),
        pytest.param(1, 1000, 1, "rr22", id="one-in-thousand"),
        pytest.param(1000, 1000, 0, "rr22", id="disjoint"),
        pytest.param(1000, 1000, 1000, "rr22", id="identical"),
        pytest.param(1000, 20000, 300, "rr22", id="partial-1000x20000"),
        pytest.param(20000, 1000, 700, "rr22", id="partial-20000x1000"),
        pytest.param(1000, 1000, 400, "ecdh", id="partial-ecdh"),
    ],
)
def test_intersection_matches_python(
    parties: dict[str, Party], n_receiver: int, n_sender: int, shared: int, protocol: Protocol
) -> None:
    rng = random.Random(f"{n_receiver}-{n_sender}-{shared}-{protocol}")
    common = items(shared, rng)
    mine = common + items(n_receiver - shared, rng)
    theirs = common + items(n_sender - shared, rng)
    rng.shuffle(mine)
    rng.shuffle(theirs)

    got_r, got_s = run_pair(parties["bank-a"], parties["bank-b"], mine, theirs, protocol=protocol)
    receiver, sender = outcome(got_r), outcome(got_s)

    assert receiver.intersection == frozenset(mine) & frozenset(theirs)
    assert sender.intersection is None  # the sender learns nothing without broadcasting
    assert (receiver.self_count, receiver.peer_count) == (len(mine), len(theirs))
    assert (sender.self_count, sender.peer_count) == (len(theirs), len(mine))
    # What one side sent is what the other received (TLS records), give or take the
    # last link acknowledgements, which the side that exits first no longer reads.
    pairs = [
        (receiver.bytes_sent, sender.bytes_received),
        (sender.bytes_sent, receiver.bytes_received),
    ]
    for sent, received in pairs:
        assert sent > 0 and received > 0
        assert abs(sent - received) <= 4096 + sent // 100


def test_duplicates_are_dropped_and_broadcast_reaches_the_sender(
    parties: dict[str, Party],
) -> None:
    rng = random.Random(7)
    common = items(50, rng)
    mine = common + items(200, rng) + common[:10]
    theirs = common + items(300, rng) + common[:5]

    got_r, got_s = run_pair(
        parties["bank-a"], parties["bank-b"], mine, theirs, broadcast_result=True
    )
    receiver, sender = outcome(got_r), outcome(got_s)

    assert receiver.intersection == sender.intersection == frozenset(common)
    assert receiver.self_count == 250 and sender.self_count == 350


def test_wrong_peer_certificate_fails_both_sides(parties: dict[str, Party]) -> None:
    """Mallory has bank-a's certificate pinned, but bank-a pins bank-b: nobody learns anything."""
    rng = random.Random(3)
    shared = items(100, rng)

    got_r, got_s = run_pair(
        parties["bank-a"],
        parties["mallory"],
        shared,
        shared,
        receiver_pins=parties["bank-b"],
        sender_pins=parties["bank-a"],
        connect_timeout=5.0,
    )

    for got in (got_r, got_s):
        assert isinstance(got, FastPsiError), got
    assert "connect to mesh failed" in str(got_r)
    # The handshake failed on certificate checks, not on something else.
    logs = str(got_r) + str(got_s)
    assert "certificate verify failed" in logs or "unknown ca" in logs


def test_mismatched_protocols_fail_both_sides(parties: dict[str, Party]) -> None:
    rng = random.Random(11)
    shared = items(10, rng)
    protocols: dict[str, Protocol] = {"receiver": "rr22", "sender": "ecdh"}

    got_r, got_s = run_pair(
        parties["bank-a"], parties["bank-b"], shared, shared, protocols=protocols
    )

    for got in (got_r, got_s):
        assert isinstance(got, FastPsiError), got
        assert "peer has protocol=" in str(got)


def test_plaintext_connection_is_refused(parties: dict[str, Party]) -> None:
    """spu's brpc server would take a plaintext JSON ``Push``; the relay closes it unread."""
    answers: list[bytes] = []

    def probe(endpoint: str) -> None:
        host, port = endpoint.rsplit(":", 1)
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        body = b'{"sender_rank":1,"key":"x","value":""}'
        with sock:
            sock.sendall(
                b"POST /org.interconnection.link.ReceiverService/Push HTTP/1.1\r\n"
                b"Host: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            try:
                answers.append(sock.recv(4096))
            except ConnectionResetError:  # closed with our request unread
                answers.append(b"")

    rng = random.Random(5)
    common = items(10, rng)
    mine, theirs = common + items(10, rng), common + items(20, rng)
    got_r, got_s = run_pair(parties["bank-a"], parties["bank-b"], mine, theirs, before_sender=probe)
    receiver = outcome(got_r)
    outcome(got_s)

    assert answers == [b""]  # closed without a byte of answer
    assert receiver.plaintext_refused == 1
    assert receiver.intersection == frozenset(common)


def test_missing_venv_names_make_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, parties: dict[str, Party]
) -> None:
    monkeypatch.setenv(driver.PYTHON_ENV, str(tmp_path / "no-such-python"))
    assert not driver.is_available()
    party = parties["bank-a"]
    with pytest.raises(FastPsiUnavailable, match="make fast-psi"):
        driver.run_fast_psi(
            "receiver",
            [secrets.token_bytes(16)],
            "127.0.0.1:1",
            "127.0.0.1:2",
            party.cert,
            party.key,
            party.identity.cert_pem,
            5.0,
        )
