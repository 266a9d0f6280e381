"""Entry points refuse before they read; only invited creators may seat a node without data.

* Operator API: a real uvicorn server on a real socket. The bytes the application
  actually pulled from the server are counted by an ASGI wrapper around it.
* Peer server: the inbox's node-wide memory cap, and per-peer rate limits over real gRPC.
* Admission: a foreign task naming a data-less seat is refused on chain (NOT_INVITED)
  before any inbox is opened; a task with no inbox room is refused (NODE_AT_CAPACITY).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.ids import InvalidInput
from node.api import create_app
from node.api_entry import is_upload
from node.config import NodeConfig
from node.identity import new_tls_identity
from node.peer import peer_pb2
from node.peer.client import PeerRejected
from node.peer.server import Inbox, InboxAtCapacity, InboxFull, PeerRateLimiter
from node.process import api_server_config, inbox_opener
from node.service import NodeService
from scripts.operator_command import _client as operator_client
from tests.conftest import Consortium
from tests.node.peer_helpers import rpc_error, running_mesh, task_id
from tests.node.runner_harness import Network, approve_stats

TOKEN = "entry-token"
MIB = 1024 * 1024
ATTACK_BYTES = 300 * MIB
LIMIT = 1 * MIB


class CountingApp:
    """Counts the request-body bytes the wrapped app pulled through `receive`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.body_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def no_service() -> NodeService:
    return cast(NodeService, object())  # never reached by a refused request


@contextmanager
def serving(app: Any, config: uvicorn.Config | None = None) -> Iterator[int]:
    """A real uvicorn server in a thread on 127.0.0.1; yields its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(config or uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def read_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def push_body(conn: socket.socket, total: int, chunked: bool) -> int:
    """Send up to `total` body bytes; returns how many the socket took before it broke."""
    block = b"a" * MIB
    sent = 0
    conn.settimeout(5)
    try:
        while sent < total:
            if chunked:
                conn.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            else:
                conn.sendall(block)
            sent += len(block)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def upload_request(port: int, token: str | None, chunked: bool) -> bytes:
    lines = [
        "POST /datasets HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: multipart/form-data; boundary=BOUNDARY",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {ATTACK_BYTES}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


MULTIPART_START = (
    b"--BOUNDARY\r\n"
    b'Content-Disposition: form-data; name="file"; filename="d.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\n"
)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_unauthenticated_300_mib_upload_is_refused_before_its_body_is_read(
    tmp_path: Path, chunked: bool
) -> None:
    app = CountingApp(create_app(no_service(), TOKEN, tmp_path / "uploads", max_upload_bytes=LIMIT))
    with serving(app) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(upload_request(port, None, chunked))
        # The answer comes before a single body byte was sent.
        status, headers, body = read_response(conn)
        assert status == 401
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["field"] == "Authorization"
        sent = push_body(conn, ATTACK_BYTES, chunked)
    assert app.body_bytes == 0  # the application read nothing of the body
    assert sent < ATTACK_BYTES  # and the server closed the connection on the rest
    assert not (tmp_path / "uploads").exists()
    print(f"unauthenticated upload: app read {app.body_bytes} bytes; socket took {sent}")


def test_a_declared_oversized_body_is_refused_before_reading(tmp_path: Path) -> None:
    app = CountingApp(create_app(no_service(), TOKEN, tmp_path / "uploads", max_upload_bytes=LIMIT))
    with serving(app) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(upload_request(port, TOKEN, chunked=False))
        status, headers, body = read_response(conn)
        assert status == 413 and headers["connection"] == "close"
        assert "exceeds the 1048576-byte limit" in json.loads(body)["error"]["message"]
        push_body(conn, 64 * MIB, chunked=False)
    assert app.body_bytes == 0


def test_a_streamed_oversized_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    app = CountingApp(create_app(no_service(), TOKEN, tmp_path / "uploads", max_upload_bytes=LIMIT))
    with serving(app) as port, socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(upload_request(port, TOKEN, chunked=True))
        first = MULTIPART_START + b"x" * (64 * 1024)
        conn.sendall(f"{len(first):x}\r\n".encode() + first + b"\r\n")
        result: dict[str, int] = {}
        pusher = threading.Thread(
            target=lambda: result.update(sent=push_body(conn, ATTACK_BYTES, chunked=True))
        )
        pusher.start()
        status, _, body = read_response(conn)
        pusher.join(60)
    assert status == 413
    assert json.loads(body)["error"]["field"] == "body"
    # At most what uvicorn had buffered for one `receive` beyond the limit (a few
    # hundred KiB), never the 300 MiB.
    assert LIMIT < app.body_bytes <= 2 * LIMIT
    print(f"streamed upload: app read {app.body_bytes} bytes; socket took {result['sent']}")
    assert result["sent"] < ATTACK_BYTES
    assert not (tmp_path / "uploads").exists()


def api_config(tmp_path: Path, **changes: Any) -> NodeConfig:
    base = NodeConfig(
        name="n",
        chain_url="http://127.0.0.1:8545",
        manifest=tmp_path / "manifest.json",
        keystore=tmp_path / "keystore.json",
        password_env="PW",
        tls_key=tmp_path / "tls" / "key.pem",
        tls_cert=tmp_path / "tls" / "cert.pem",
        database_url="sqlite://",
        peer_listen="127.0.0.1:7000",
        peer_endpoint="127.0.0.1:7000",
        api_listen="127.0.0.1:8000",
        api_token_file=tmp_path / "api-token",
        data_dir=tmp_path / "data",
    )
    return replace(base, **changes)


def test_the_operator_api_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    identity = new_tls_identity("operator api", hosts=("127.0.0.1",))
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_bytes(identity.cert_pem)
    (tmp_path / "tls" / "key.pem").write_bytes(identity.key_pem)
    config = api_config(
        tmp_path,
        api_tls_cert=tmp_path / "tls" / "cert.pem",
        api_tls_key=tmp_path / "tls" / "key.pem",
    )
    app = create_app(no_service(), TOKEN, tmp_path / "uploads")
    with serving(app, api_server_config(config, app, "127.0.0.1", 0)) as port:
        trusting = ssl.create_default_context(cadata=identity.cert_pem.decode())
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trusting) as client:
            assert client.get("/health").json() == {"status": "ok"}
            assert client.get("/datasets").status_code == 401
        # The CLI's client trusts exactly the configured certificate.
        (tmp_path / "api-token").write_text(TOKEN)
        replace(config, api_listen=f"127.0.0.1:{port}").save(tmp_path / "node.json")
        with operator_client(tmp_path / "node.json") as cli:
            assert str(cli.base_url).startswith("https://")
            assert cli.get("/health").json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):  # a client that does not trust it
            httpx.get(f"https://127.0.0.1:{port}/health")
        with pytest.raises(httpx.RemoteProtocolError):  # and no plain HTTP on that port
            httpx.get(f"http://127.0.0.1:{port}/health")
    plain = api_server_config(api_config(tmp_path), app, "127.0.0.1", 0)
    assert plain.ssl_certfile is None


# ---------------------------------------------------------------------- config


def test_new_config_fields_are_optional_and_round_trip(tmp_path: Path) -> None:
    config = api_config(tmp_path)
    path = tmp_path / "node.json"
    config.save(path)
    raw = json.loads(path.read_text())
    assert raw["accept_tasks_from"] == [] and raw["inbox_max_total_bytes"] == 512 * MIB
    assert raw["api_tls_cert"] is None
    assert NodeConfig.load(path) == config
    old = {k: v for k, v in raw.items() if k in OLD_FIELDS}
    path.write_text(json.dumps(old))
    assert NodeConfig.load(path) == config  # a version-1 file from before still loads
    org = "0x" + "ab" * 32
    path.write_text(
        json.dumps({**old, "accept_tasks_from": [org], "api_tls_cert": "c.pem", "api_tls_key": "k"})
    )
    loaded = NodeConfig.load(path)
    assert loaded.org_allow_list() == {bytes.fromhex("ab" * 32)}
    assert loaded.api_tls_cert == tmp_path / "c.pem"


OLD_FIELDS = {
    "version", "name", "chain_url", "manifest", "keystore", "password_env", "tls_key",
    "tls_cert", "database_url", "peer_listen", "peer_endpoint", "api_listen",
    "api_token_file", "data_dir", "poll_interval", "confirmations", "protocol_timeout",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accept_tasks_from": ["0x12"]}, "config.accept_tasks_from[0]"),
        ({"accept_tasks_from": "0x" + "ab" * 32}, "config.accept_tasks_from"),
        ({"inbox_max_total_bytes": 0}, "config.inbox_max_total_bytes"),
        ({"peer_rate_messages": -1}, "config.peer_rate_messages"),
        ({"api_tls_cert": "cert.pem"}, "config.api_tls_key"),
    ],
)
def test_bad_limit_fields_are_named(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    path = tmp_path / "node.json"
    api_config(tmp_path).save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(InvalidInput) as exc:
        NodeConfig.load(path)
    assert exc.value.field == field


# ---------------------------------------------------------------------- inbox and rate


A, B = "0x" + "11" * 20, "0x" + "22" * 20


def test_the_inbox_caps_memory_across_tasks() -> None:
    from ledger.ids import as_address

    a, b = str(as_address(A, "a")), str(as_address(B, "b"))
    inbox = Inbox(max_task_bytes=100, max_total_bytes=150)
    t1, t2, t3 = task_id(), task_id(), task_id()
    inbox.open_task(t1, [a, b])
    inbox.open_task(t2, [a, b])
    inbox.put(t1, a, "s1", b"x" * 100)
    with pytest.raises(InboxFull, match=r"inbox_max_task_bytes"):
        inbox.put(t1, a, "s2", b"x")
    inbox.put(t2, a, "s1", b"y" * 50)
    with pytest.raises(InboxFull, match=r"^payload: inbox_max_total_bytes: .* 150 bytes"):
        inbox.put(t2, a, "s2", b"y")
    with pytest.raises(InboxAtCapacity, match=r"inbox_max_total_bytes") as refused:
        inbox.open_task(t3, [a, b])
    assert refused.value.reason == "NODE_AT_CAPACITY" and not inbox.is_open(t3)
    assert inbox.take(t1, a, "s1", 0) == b"x" * 100  # reading frees room ...
    inbox.put(t2, a, "s2", b"y")
    inbox.close_task(t2)  # ... and so does closing a task
    assert inbox.unread_bytes == 0
    inbox.open_task(t3, [a, b])


def test_the_rate_limiter_names_the_limit_and_refills() -> None:
    now = [0.0]
    limiter = PeerRateLimiter(2, 2, 100, 100, clock=lambda: now[0])
    assert limiter.admit("p", 10) is None and limiter.admit("p", 10) is None
    refused = limiter.admit("p", 10)
    assert refused is not None and refused[0].startswith("peer_rate_messages: p ")
    assert refused[1] == pytest.approx(0.5)
    assert limiter.admit("q", 10) is None  # per peer
    now[0] = 0.5
    assert limiter.admit("p", 10) is None
    now[0] = 10.0
    too_big = limiter.admit("p", 150)
    assert too_big is not None and too_big[0].startswith("peer_rate_bytes: p ")


def test_a_peer_over_its_rate_gets_resource_exhausted(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        limiter = b.server.rate_limiter
        limiter.messages_per_second, limiter.burst_messages = 2.0, 3.0
        tid = task_id()
        b.channel(tid, a)  # b accepts messages of this task from a
        client = a.raw_client(b)
        try:
            for i in range(3):
                client.deliver_once(
                    peer_pb2.Envelope(task_id=tid, step=f"s{i}", sender=a.address, payload=b"x"),
                    timeout=5.0,
                )
            code, details = rpc_error(
                client, peer_pb2.Envelope(task_id=tid, step="s3", sender=a.address, payload=b"x")
            )
        finally:
            client.close()
        assert code.name == "RESOURCE_EXHAUSTED"
        assert details.startswith(f"peer_rate_messages: {a.address} is over its rate of 2 ")
        # A channel honours the peer's retry-after and gets through once the rate allows.
        sender = a.channel(tid, b, send_timeout=5.0)
        started = time.monotonic()
        sender.send(b.address, "s3", b"x")
        assert time.monotonic() - started >= 0.2
        assert b.channels[0].receive(a.address, "s3", timeout=1) == b"x"


def test_a_full_node_inbox_refuses_by_name_over_grpc(consortium: Consortium) -> None:
    with running_mesh(consortium, ("bank-a", "bank-b")) as nodes:
        a, b = nodes["bank-a"], nodes["bank-b"]
        b.server.inbox.max_total_bytes = 1000
        tid = task_id()
        b.channel(tid, a)
        sender = a.channel(tid, b, send_timeout=2.0)
        sender.send(b.address, "fill", b"x" * 900)
        with pytest.raises(PeerRejected) as exc:
            sender.send(b.address, "more", b"x" * 200)
        assert exc.value.code.name == "RESOURCE_EXHAUSTED"
        assert "inbox_max_total_bytes" in exc.value.details


# ---------------------------------------------------------------------- admission


def foreign_task(consortium: Consortium, request: str, *, creator: str = "bank-b") -> bytes:
    """A task of `creator` seating bank-a's node without a dataset (the attack, when
    `creator` is another organisation)."""
    from ledger.ids import name_id
    from node.algorithms import stats
    from node.algorithms.package import package_of

    clients = consortium.orgs[creator].node_clients
    now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])
    seats = [Participant(consortium.orgs["bank-a"].node.address)]

    receipt = clients.tasks.create(
        name_id("request", request), package_of(stats).digest, bytes(32), now + 3600, seats
    )
    return bytes(clients.tasks.events_in(receipt, "TaskCreated")[0]["taskId"])


def consumer_node(consortium: Consortium, tmp_path: Path) -> Network:
    """bank-a's node alone (no datasets), with the stats algorithm approved."""
    approve_stats(consortium)
    net = Network(consortium, tmp_path)
    bank_a = consortium.orgs["bank-a"]
    net.add_node("bank-a", "bank-a", bank_a.node, bank_a.node_clients)
    return net


def test_a_foreign_task_seating_the_node_without_data_is_refused_and_opens_nothing(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = consumer_node(consortium, tmp_path)
    runner = net.nodes["bank-a"].runner
    tasks = runner.clients.tasks
    inbox = Inbox()
    runner.prepare_transport = inbox_opener(inbox)
    tid = foreign_task(consortium, "pull-bank-a-in")
    runner.poll_once()  # the runner sees TaskCreated naming it and decides
    assert tasks.state(tid) == TaskState.FAILED
    assert net.failure(tid) == (Reason.NOT_INVITED, runner.address)
    assert not inbox.is_open(tid)  # nothing was opened for it
    assert not tasks.participant_status(tid, runner.address).accepted
    record = net.nodes["bank-a"].state.get(tid)
    assert record is not None and record.phase == "refused"

    # The operator allow-lists bank-b: the same kind of task is now taken.
    runner.accept_tasks_from = frozenset({consortium.orgs["bank-b"].org_id})
    invited = foreign_task(consortium, "invited")
    assert runner.consider(invited) is True
    assert inbox.is_open(invited)
    assert tasks.participant_status(invited, runner.address).accepted


def test_a_task_without_inbox_room_is_refused_by_name(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = consumer_node(consortium, tmp_path)
    runner = net.nodes["bank-a"].runner
    inbox = Inbox(max_task_bytes=10, max_total_bytes=10)
    other = task_id()
    inbox.open_task(other, [runner.address, A])
    inbox.put(other, str(_checksum(A)), "s", b"x" * 10)  # the node-wide cap is reached
    runner.prepare_transport = inbox_opener(inbox)
    tid = foreign_task(consortium, "own-task", creator="bank-a")  # its own org: invited
    assert runner.consider(tid) is False
    assert net.failure(tid) == (Reason.NODE_AT_CAPACITY, runner.address)
    assert not inbox.is_open(tid)


def _checksum(address: str) -> str:
    from ledger.ids import as_address

    return str(as_address(address, "address"))


@pytest.mark.parametrize(
    ("method", "path", "upload"),
    [
        ("POST", "/datasets", True),
        ("POST", "/lookup/screens", True),
        ("POST", "/lookup/blacklist/publish", True),
        ("POST", "/lookup/graylist/publish", True),
        ("GET", "/lookup/blacklist/publish", False),
        ("POST", "/lookup/blacklist/epochs", False),
        ("POST", "/lookup/a/b/publish", False),  # a list name has no slash
        ("POST", "/lookup/query", False),
        ("POST", "/tasks", False),
    ],
)
def test_only_file_routes_get_the_upload_limit(method: str, path: str, upload: bool) -> None:
    assert is_upload(method, path) is upload
