"""One party of a two-party PSI run by SecretFlow spu 0.9.5, as a command-line program.

Runs only inside ``.venv-fast-psi`` (``make fast-psi``) and imports nothing but the
standard library and spu: the provnet packages need numpy 2, spu needs numpy<2.

    python -m node.fastpsi.sidecar --role receiver --rank 0 \\
        --self-endpoint 0.0.0.0:7001 --peer-endpoint bank-b:7002 \\
        --tls-cert me.crt --tls-key me.key --peer-cert peer.crt \\
        --input items.txt --output intersection.txt [--protocol rr22|ecdh]

The PSI is spu's ``psi_execute`` (psi v2): RR22 in its default fast mode (semi-honest;
spu 0.9.5's launcher never sets RR22's malicious option), or ECDH on FourQ (default) or
Curve25519. Both parties must pass the same ``--protocol``, ``--broadcast-result`` and
``--link-id``, opposite ranks, and agree on who receives.

Input: one item per line (the node passes fixed-length hex digests), only the characters
``0-9 A-Z a-z . _ : + / = -``, no empty lines. Output: the receiver (and, with
``--broadcast-result true``, the sender too) writes the intersection, one item per line,
in no particular order. On success one JSON object goes to stdout (counts, timings,
bytes); spu's own log goes to stderr only when the run fails (or with ``--verbose``).
Exit status 0 on success, 2 on a usage or input error, 1 on any other failure.

Transport. spu's link is brpc; with ``enable_ssl`` each party's brpc server presents the
node certificate and asks for the client's, and each party's brpc client presents the
node certificate and checks the server's, both verified with ``verify_depth = 1`` against
a CA file that holds only the peer's self-signed certificate (brpc checks no host name,
so the pin is the whole check; ``verify_depth = 0``, spu's default, would verify
nothing). Two gaps of spu's link are closed here with small relays in this process:

* brpc's server accepts plaintext connections on its TLS port (yacl does not set brpc's
  ``force_ssl``): an unauthenticated ``POST /org.interconnection.link.ReceiverService/Push``
  with a JSON body is dispatched to the PSI as if the peer had sent it. So brpc listens
  on a loopback port only, and the public ``--self-endpoint`` is a relay that forwards a
  connection only if its first byte opens a TLS handshake record (0x16). brpc then
  treats it as TLS and requires the peer's certificate; anything else is closed unread.
  (The loopback port itself still takes plaintext from processes on this host.)
* the link exposes no traffic counters, so the connection to the peer also goes through
  a loopback relay, and the two relays count the bytes (TLS records included).

Before the PSI the two parties exchange, over the authenticated link, their protocol,
receiver rank, result broadcasting and set sizes: a mismatch fails both, and when either
set is empty both finish with an empty intersection without calling spu (whose PSI
aborts on an empty input). The sizes are no extra leak: spu's PSI exchanges them anyway.
The run ends with a FIN exchange of our own instead of spu's ``stop_link``, whose
teardown races with the peer's exit (see :func:`finish`); the process then leaves with
``os._exit``. spu writes its bucket files to ``--workdir`` (removed at the end) and a
trace file to /tmp, which is deleted too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

LINK_ID_DEFAULT = "provnet-fast-psi"
KEY_COLUMN = "id"
ALLOWED_ITEM_BYTES = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._:+/=-"
)
MAX_ITEM_LENGTH = 512
CHUNK = 1 << 22
TLS_HANDSHAKE_RECORD = 0x16
FIRST_BYTE_TIMEOUT = 10.0
FIN = "provnet-fast-psi-fin"
FIN_GRACE = 5.0
CONNECT_RETRY_INTERVAL_MS = 500
ECDH_CURVES = {"fourq": "CURVE_FOURQ", "curve25519": "CURVE_25519"}
TRACE_LINE = re.compile(rb"Trace has been written to (\S+?\.trace)")


class UsageError(Exception):
    """Bad arguments or a bad input file: exit status 2."""


class PeerMismatch(Exception):
    """The peer runs a different configuration (protocol, ranks, broadcasting)."""


# --------------------------------------------------------------------------- helpers


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"expected HOST:PORT, got {endpoint!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connect_attempts(window: float) -> int:
    """How many of spu's connection attempts fit in `window` seconds (at least one).

    spu's ``ConnectToMesh`` gives attempt k a timeout of ``(k % 11) + 2`` seconds and
    sleeps ``connect_retry_interval_ms`` between attempts; a peer that fails the TLS
    handshake makes each attempt last its whole timeout.
    """
    spent, attempts = 0.0, 0
    while True:
        cost = (attempts % 11) + 2 + (CONNECT_RETRY_INTERVAL_MS / 1000 if attempts else 0.0)
        if attempts and spent + cost > window:
            return attempts
        spent += cost
        attempts += 1


def convert_input(source: Path, csv_path: Path) -> int:
    """Copy the items file to a one-column CSV spu reads; returns the number of items.

    Streams in chunks, so 10^7 items never sit in memory; rejects characters that would
    need CSV quoting and empty lines, naming the line but not the item.
    """
    count = 0
    with source.open("rb") as src, csv_path.open("wb") as dst:
        dst.write(KEY_COLUMN.encode() + b"\n")
        carry = b""
        while True:
            block = src.read(CHUNK)
            data = carry + block
            if not block:
                if data:
                    data += b"\n"
                else:
                    break
            cut = data.rfind(b"\n") + 1
            whole, carry = data[:cut], data[cut:]
            if len(carry) > MAX_ITEM_LENGTH:
                raise UsageError(f"line {count + 1} is longer than {MAX_ITEM_LENGTH} bytes")
            if whole:
                count += _check_lines(whole, count)
                dst.write(whole)
            if not block:
                break
    return count


def _check_lines(whole: bytes, before: int) -> int:
    lines = whole.split(b"\n")[:-1]
    for offset, line in enumerate(lines):
        if not line:
            raise UsageError(f"line {before + offset + 1} is empty")
        if len(line) > MAX_ITEM_LENGTH:
            raise UsageError(f"line {before + offset + 1} is longer than {MAX_ITEM_LENGTH} bytes")
    stripped = whole.translate(None, b"\n")
    if any(b not in ALLOWED_ITEM_BYTES for b in set(stripped)):
        for offset, line in enumerate(lines):
            if not set(line) <= ALLOWED_ITEM_BYTES:
                raise UsageError(
                    f"line {before + offset + 1} has a character other than "
                    "0-9 A-Z a-z . _ : + / = -"
                )
    return len(lines)


def convert_output(csv_path: Path, target: Path) -> int:
    """spu's result CSV (header, then one possibly quoted key per row) to plain lines."""
    count = 0
    with csv_path.open("rb") as src, target.open("wb") as dst:
        src.readline()  # header
        for line in src:
            item = line.strip().strip(b'"')
            if item:
                dst.write(item + b"\n")
                count += 1
    return count


# --------------------------------------------------------------------------- relays


@dataclass
class Counters:
    sent: int = 0
    received: int = 0
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, sent: int = 0, received: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.received += received


class Relay:
    """Forwards TCP connections from ``listen`` to ``target``, counting bytes.

    ``inbound`` relays carry the peer's connections to our loopback brpc server (bytes
    from the peer count as received) and admit only connections that open with a TLS
    handshake record; outbound relays carry our brpc client's connections to the peer.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        counters: Counters,
        *,
        inbound: bool,
        connect_timeout: float = 0.0,
    ) -> None:
        self.target = target
        self.counters = counters
        self.inbound = inbound
        self.connect_timeout = connect_timeout
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.server = socket.create_server(listen, family=family, backlog=64)
        self.port: int = self.server.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._peer_gone = threading.Condition(self._lock)
        self._peer_open = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def wait_peer_gone(self, timeout: float) -> bool:
        """Wait until the peer has closed every connection; False if `timeout` passed."""
        with self._peer_gone:
            return self._peer_gone.wait_for(lambda: self._peer_open == 0, timeout)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._track(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.inbound:
                conn.settimeout(FIRST_BYTE_TIMEOUT)
                first = conn.recv(1, socket.MSG_PEEK)
                if not first or first[0] != TLS_HANDSHAKE_RECORD:
                    with self.counters.lock:
                        self.counters.rejected += 1
                    conn.close()
                    return
                conn.settimeout(None)
            upstream = self._connect_upstream()
        except OSError:
            conn.close()
            return
        self._track(upstream)
        for sock in (conn, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._peer_gone:
            self._peer_open += 1
        # Inbound, `conn` is the peer's side; outbound, `upstream` is.
        peer_side, own_side = (conn, upstream) if self.inbound else (upstream, conn)
        other = threading.Thread(target=self._pump, args=(own_side, peer_side, True), daemon=True)
        other.start()
        self._pump(peer_side, own_side, False)
        with self._peer_gone:
            self._peer_open -= 1
            self._peer_gone.notify_all()
        other.join()
        for sock in (conn, upstream):
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            self._sockets.difference_update((conn, upstream))

    def _connect_upstream(self) -> socket.socket:
        """Retry until the target listens (the peer, or our brpc server still starting).

        A refused attempt would close the connecting brpc client's connection, and brpc
        revives a failed connection only on its health-check period, seconds later.
        """
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                if time.monotonic() >= deadline or self._closed.is_set():
                    raise
                time.sleep(0.05)
                continue
            upstream.settimeout(None)
            return upstream

    def _pump(self, src: socket.socket, dst: socket.socket, outgoing: bool) -> None:
        """Copy until EOF; `outgoing` when `src` is our side (the bytes go to the peer)."""
        buffer = bytearray(1 << 16)
        view = memoryview(buffer)
        try:
            while True:
                n = src.recv_into(buffer)
                if n == 0:
                    break
                dst.sendall(view[:n])
                if outgoing:
                    self.counters.add(sent=n)
                else:
                    self.counters.add(received=n)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def stdout_to(log_path: Path) -> Iterator[TextIO]:
    """Point fd 1 (where spu's C++ logger writes) at a file; yield the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log_fd, 1)
    os.close(log_fd)
    real = os.fdopen(saved, "w", encoding="utf-8", closefd=True)
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        real.flush()


def remove_traces(log_path: Path) -> None:
    """spu writes a perfetto trace to /tmp whatever TMPDIR says; its log names the file."""
    try:
        text = log_path.read_bytes()
    except OSError:
        return
    for match in TRACE_LINE.finditer(text):
        path = Path(os.fsdecode(match.group(1)))
        if path.name.startswith("psi_"):
            with contextlib.suppress(OSError):
                path.unlink()


def log_tail(log_path: Path, limit: int = 6000) -> str:
    try:
        data = log_path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m node.fastpsi.sidecar",
        description="One party of a two-party PSI by SecretFlow spu over mutually pinned TLS.",
    )
    parser.add_argument("--role", choices=("sender", "receiver"), required=True)
    parser.add_argument("--rank", type=int, choices=(0, 1), required=True)
    parser.add_argument("--self-endpoint", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--peer-endpoint", required=True, help="HOST:PORT of the peer")
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--peer-cert", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--protocol", choices=("rr22", "ecdh"), default="rr22")
    parser.add_argument(
        "--ecdh-curve",
        choices=sorted(ECDH_CURVES),
        default="fourq",
        help="for --protocol ecdh (FourQ: ~8x faster than Curve25519 in spu 0.9.5)",
    )
    parser.add_argument("--broadcast-result", type=parse_bool, default=False)
    parser.add_argument(
        "--keys-unique",
        action="store_true",
        help="the input has no duplicates (skips spu's de-duplication)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, whole run")
    parser.add_argument(
        "--connect-timeout", type=float, default=30.0, help="seconds to wait for the peer"
    )
    parser.add_argument("--link-id", default=LINK_ID_DEFAULT, help="same on both sides")
    parser.add_argument("--workdir", type=Path, help="for spu's files (default: a temp dir)")
    parser.add_argument("--verbose", action="store_true", help="copy spu's log to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    base = args.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="fastpsi-", dir=base)).resolve()
    log_path = workdir / "spu.log"
    status = 1
    try:
        with stdout_to(log_path) as real_stdout:
            try:
                report = run(args, workdir)
                status = 0
                json.dump(report, real_stdout, sort_keys=True)
                real_stdout.write("\n")
            except UsageError as exc:
                status = 2
                print(f"fastpsi sidecar: {exc}", file=sys.stderr)
            except Exception as exc:
                print(f"fastpsi sidecar: {type(exc).__name__}: {exc}", file=sys.stderr)
            if status != 0 or args.verbose:
                tail = log_tail(log_path)
                if tail:
                    print("--- spu log (tail) ---\n" + tail, file=sys.stderr)
    finally:
        remove_traces(log_path)
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    for name in ("tls_cert", "tls_key", "peer_cert", "input"):
        path: Path = getattr(args, name)
        if not path.is_file():
            raise UsageError(f"--{name.replace('_', '-')}: no such file {path}")
    self_host, self_port = split_endpoint(args.self_endpoint)
    peer_host, peer_port = split_endpoint(args.peer_endpoint)
    receiver_rank = args.rank if args.role == "receiver" else 1 - args.rank
    receives = args.role == "receiver" or args.broadcast_result

    csv_in = workdir / "input.csv"
    count = convert_input(args.input, csv_in)
    prepared = time.perf_counter()

    os.environ["TMPDIR"] = str(workdir)  # spu's bucket files; read when spu runs
    import spu.libspu as libspu  # type: ignore[import-not-found]
    import spu.psi as psi  # type: ignore[import-not-found]

    imported = time.perf_counter()

    counters = Counters()
    brpc_port = free_loopback_port()
    inbound = Relay(
        (self_host, self_port),
        ("127.0.0.1", brpc_port),
        counters,
        inbound=True,
        connect_timeout=args.connect_timeout,
    )
    outbound = Relay(
        ("127.0.0.1", 0),
        (peer_host, peer_port),
        counters,
        inbound=False,
        connect_timeout=args.connect_timeout,
    )
    try:
        desc = libspu.link.Desc()
        desc.id = args.link_id
        hosts = {args.rank: f"127.0.0.1:{brpc_port}", 1 - args.rank: f"127.0.0.1:{outbound.port}"}
        for rank in (0, 1):
            desc.add_party(f"rank{rank}", hosts[rank])
        desc.enable_ssl = True
        for opts in (desc.server_ssl_opts, desc.client_ssl_opts):
            opts.cert.certificate_path = str(args.tls_cert.resolve())
            opts.cert.private_key_path = str(args.tls_key.resolve())
            opts.verify.verify_depth = 1
            opts.verify.ca_file_path = str(args.peer_cert.resolve())
        timeout_ms = max(1000, int(args.timeout * 1000))
        desc.recv_timeout_ms = timeout_ms
        desc.http_timeout_ms = timeout_ms
        desc.connect_retry_interval_ms = CONNECT_RETRY_INTERVAL_MS
        desc.connect_retry_times = connect_attempts(args.connect_timeout)

        lctx = libspu.link.create_brpc(desc, args.rank)
        connected = time.perf_counter()

        mine = {
            "protocol": args.protocol if args.protocol == "rr22" else f"ecdh-{args.ecdh_curve}",
            "receiver_rank": receiver_rank,
            "broadcast_result": bool(args.broadcast_result),
            "count": count,
        }
        gathered = [json.loads(bytes_or_str(x)) for x in lctx.all_gather(json.dumps(mine))]
        theirs = gathered[1 - args.rank]
        for key in ("protocol", "receiver_rank", "broadcast_result"):
            if theirs.get(key) != mine[key]:
                finish(lctx, args.rank, inbound)  # the peer sees the same and stops too
                raise PeerMismatch(f"peer has {key}={theirs.get(key)!r}, we have {mine[key]!r}")
        peer_count = int(theirs["count"])

        csv_out = workdir / "output.csv"
        intersection: int | None = None
        psi_seconds = 0.0
        if count == 0 or peer_count == 0:
            intersection = 0 if receives else None
            if receives:
                args.output.write_bytes(b"")
        else:
            config = psi.PsiExecuteConfig(
                protocol_conf=protocol_config(psi, args.protocol, receiver_rank, args),
                input_params=psi.InputParams(
                    path=str(csv_in), selected_keys=[KEY_COLUMN], keys_unique=args.keys_unique
                ),
                output_params=psi.OutputParams(path=str(csv_out), disable_alignment=True),
            )
            psi_started = time.perf_counter()
            psi.psi_execute(config, lctx)
            psi_seconds = time.perf_counter() - psi_started
            if receives:
                intersection = convert_output(csv_out, args.output)
        finish(lctx, args.rank, inbound)
    finally:
        inbound.close()
        outbound.close()
    finished = time.perf_counter()
    return {
        "ok": True,
        "role": args.role,
        "rank": args.rank,
        "protocol": args.protocol,
        "spu_version": spu_version(),
        "self_count": count,
        "peer_count": peer_count,
        "intersection_count": intersection,
        "seconds_prepare": round(prepared - started, 6),
        "seconds_import": round(imported - prepared, 6),
        "seconds_connect": round(connected - imported, 6),
        "seconds_psi": round(psi_seconds, 6),
        "seconds_total": round(finished - started, 6),
        "bytes_sent": counters.sent,
        "bytes_received": counters.received,
        "plaintext_connections_refused": counters.rejected,
    }


def finish(lctx: Any, rank: int, inbound: Relay) -> None:
    """End the run so that neither party leaves while the other still needs it.

    spu's own ``stop_link`` (acknowledge everything, then exchange FIN) races with the
    peer's exit: a party whose peer is gone retries its last send for 10 s and then
    dies with status 255, and one whose TLS connection is closed with a close_notify
    while a request is in flight aborts in brpc (``controller.cpp: Check failed:
    error_code is 0``). A message's response, moreover, reaches the peer only once the
    relays have forwarded it. So: rank 0 sends FIN synchronously (the call returns when
    rank 1's response is back), waits for rank 1's FIN and leaves; rank 1, after
    receiving FIN, sends its own without waiting for the response and stays until rank
    0's connections have closed (or a grace period ends), so that everything rank 0
    waits for has left. Both end with ``os._exit`` (see ``__main__``): no destructors.
    """
    if rank == 0:
        lctx.send(1, FIN)
        if bytes_or_str(lctx.recv(1)) != FIN:
            raise PeerMismatch("peer did not finish the run")
    else:
        if bytes_or_str(lctx.recv(0)) != FIN:
            raise PeerMismatch("peer did not finish the run")
        lctx.send_async(0, FIN)
        inbound.wait_peer_gone(FIN_GRACE)


def protocol_config(psi: Any, protocol: str, receiver_rank: int, args: argparse.Namespace) -> Any:
    if protocol == "rr22":
        return psi.PsiProtocolConfig(
            protocol=psi.PsiProtocol.PROTOCOL_RR22,
            receiver_rank=receiver_rank,
            broadcast_result=bool(args.broadcast_result),
            rr22_params=psi.Rr22Rarams(low_comm_mode=False),
        )
    return psi.PsiProtocolConfig(
        protocol=psi.PsiProtocol.PROTOCOL_ECDH,
        receiver_rank=receiver_rank,
        broadcast_result=bool(args.broadcast_result),
        ecdh_params=psi.EcdhParams(
            curve=getattr(psi.EllipticCurveType, ECDH_CURVES[args.ecdh_curve])
        ),
    )


def bytes_or_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def spu_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("spu")
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip spu's destructors: see finish()
