"""Run one party of a fast-mode PSI from the node: start the spu sidecar and read its result.

The node's venv (numpy 2) cannot import spu (numpy<2), so :func:`run_fast_psi` writes the
items to a private temporary directory, starts ``python -m node.fastpsi.sidecar`` with
the interpreter of ``.venv-fast-psi`` (``make fast-psi``; override with the environment
variable ``PROVNET_FAST_PSI_PYTHON``), waits, and parses the one JSON line the sidecar
prints. Items are bytes; they travel as lower-case hex, one per line, and come back the
same way. Both parties must call it with the same ``protocol`` and ``broadcast_result``
and opposite roles; each side's ``peer_cert_pem`` is the certificate the other presents
(the node takes it from :class:`node.peer.trust.TrustedPeer`, i.e. checked against the
chain). The sidecar listens on ``self_endpoint`` for the whole run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Role = Literal["sender", "receiver"]
Protocol = Literal["rr22", "ecdh"]
EcdhCurve = Literal["fourq", "curve25519"]

PYTHON_ENV = "PROVNET_FAST_PSI_PYTHON"
#: Set (as CI does) to make the tests of the fast mode fail, not skip, without the engine.
REQUIRE_ENV = "PROVNET_REQUIRE_FAST_PSI"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = REPO_ROOT / ".venv-fast-psi" / "bin" / "python"
STDERR_TAIL = 4000


class FastPsiUnavailable(RuntimeError):
    """The sidecar's venv is not installed."""


class FastPsiError(RuntimeError):
    """The sidecar failed; ``stderr_tail`` holds the end of what it wrote to stderr."""

    def __init__(self, message: str, stderr_tail: str = "", returncode: int | None = None):
        self.stderr_tail = stderr_tail
        self.returncode = returncode
        detail = f"\n--- sidecar stderr (tail) ---\n{stderr_tail}" if stderr_tail else ""
        super().__init__(message + detail)


@dataclass(frozen=True)
class FastPsiOutcome:
    """What one party learned and what the run cost.

    ``intersection`` is None for a sender unless the result was broadcast. Byte counts
    are what went over the connections to the peer, TLS records included (this party's
    side: sent = to the peer, received = from the peer).
    """

    role: Role
    protocol: Protocol
    intersection: frozenset[bytes] | None
    self_count: int
    peer_count: int
    seconds_psi: float
    seconds_import: float
    seconds_connect: float
    seconds_sidecar: float
    seconds_wall: float
    bytes_sent: int
    bytes_received: int
    plaintext_refused: int
    spu_version: str


def sidecar_python() -> Path:
    override = os.environ.get(PYTHON_ENV)
    return Path(override) if override else DEFAULT_PYTHON


def is_available() -> bool:
    """Whether the fast-PSI interpreter exists (not whether spu imports: that costs ~1 s)."""
    python = sidecar_python()
    return python.is_file() and os.access(python, os.X_OK)


def run_fast_psi(
    role: Role,
    items: Sequence[bytes],
    self_endpoint: str,
    peer_endpoint: str,
    tls_cert: Path,
    tls_key: Path,
    peer_cert_pem: bytes,
    timeout: float,
    *,
    rank: int | None = None,
    protocol: Protocol = "rr22",
    broadcast_result: bool = False,
    ecdh_curve: EcdhCurve = "fourq",
    connect_timeout: float | None = None,
    link_id: str = "provnet-fast-psi",
) -> FastPsiOutcome:
    """Run one party; blocks until the PSI ends, fails or `timeout` seconds pass.

    `rank` defaults to 0 for the receiver and 1 for the sender; the two parties need
    different ranks. Duplicate items are dropped first, so the set size the peer learns
    is the number of distinct items. `connect_timeout` (default: `timeout`, at most
    30 s) is how long the sidecar waits for the peer's to come up.
    """
    if role not in ("sender", "receiver"):
        raise ValueError(f"role must be 'sender' or 'receiver', got {role!r}")
    if protocol not in ("rr22", "ecdh"):
        raise ValueError(f"protocol must be 'rr22' or 'ecdh', got {protocol!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    if rank is None:
        rank = 0 if role == "receiver" else 1
    if rank not in (0, 1):
        raise ValueError(f"rank must be 0 or 1, got {rank}")
    python = sidecar_python()
    if not is_available():
        raise FastPsiUnavailable(
            f"fast PSI needs its own venv, and {python} does not exist: run `make fast-psi` "
            f"(or point {PYTHON_ENV} at a Python with spu==0.9.5 installed)"
        )
    receives = role == "receiver" or broadcast_result
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="provnet-fastpsi-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "items.txt"
        output_path = workdir / "intersection.txt"
        peer_cert_path = workdir / "peer.crt"
        peer_cert_path.write_bytes(peer_cert_pem)
        write_items(input_path, items)
        command = [
            str(python),
            "-m",
            "node.fastpsi.sidecar",
            "--role",
            role,
            "--rank",
            str(rank),
            "--self-endpoint",
            self_endpoint,
            "--peer-endpoint",
            peer_endpoint,
            "--tls-cert",
            str(Path(tls_cert).resolve()),
            "--tls-key",
            str(Path(tls_key).resolve()),
            "--peer-cert",
            str(peer_cert_path),
            "--input",
            str(input_path),
            "--output",
            str(output_path),
            "--protocol",
            protocol,
            "--ecdh-curve",
            ecdh_curve,
            "--broadcast-result",
            "true" if broadcast_result else "false",
            "--keys-unique",
            "--timeout",
            f"{timeout:g}",
            "--connect-timeout",
            f"{min(timeout, 30.0) if connect_timeout is None else connect_timeout:g}",
            "--link-id",
            link_id,
            "--workdir",
            str(workdir / "spu"),
        ]
        stderr_path = workdir / "stderr.log"
        with stderr_path.open("wb") as stderr:
            # The sidecar imports node.fastpsi from this checkout, and only it: the
            # venv's own site-packages come from the interpreter, not from our path.
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(workdir)}
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
                env=env,
            )
            try:
                stdout, _ = proc.communicate(timeout=timeout + 10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise FastPsiError(
                    f"fast PSI sidecar ({role}) did not finish within {timeout:g} s",
                    _tail(stderr_path) + _left_spu_logs(workdir / "spu"),
                ) from None
        if proc.returncode != 0:
            raise FastPsiError(
                f"fast PSI sidecar ({role}) exited with status {proc.returncode}",
                _tail(stderr_path) + _left_spu_logs(workdir / "spu"),
                proc.returncode,
            )
        report = _parse_report(stdout, stderr_path)
        intersection = read_items(output_path) if receives else None
    wall = time.perf_counter() - started
    if intersection is not None and len(intersection) != report.get("intersection_count"):
        raise FastPsiError(
            f"sidecar reported {report.get('intersection_count')} matches "
            f"but wrote {len(intersection)}"
        )
    return FastPsiOutcome(
        role=role,
        protocol=protocol,
        intersection=intersection,
        self_count=int(report["self_count"]),
        peer_count=int(report["peer_count"]),
        seconds_psi=float(report["seconds_psi"]),
        seconds_import=float(report["seconds_import"]),
        seconds_connect=float(report["seconds_connect"]),
        seconds_sidecar=float(report["seconds_total"]),
        seconds_wall=wall,
        bytes_sent=int(report["bytes_sent"]),
        bytes_received=int(report["bytes_received"]),
        plaintext_refused=int(report["plaintext_connections_refused"]),
        spu_version=str(report["spu_version"]),
    )


def write_items(path: Path, items: Sequence[bytes]) -> int:
    """Distinct items as lower-case hex, one per line; returns how many were written."""
    distinct = dict.fromkeys(bytes(item) for item in items)
    if b"" in distinct:
        raise ValueError("an empty item cannot take part in a PSI")
    with path.open("w", encoding="ascii") as out:
        for item in distinct:
            out.write(item.hex())
            out.write("\n")
    return len(distinct)


def read_items(path: Path) -> frozenset[bytes]:
    with path.open(encoding="ascii") as handle:
        return frozenset(bytes.fromhex(line) for line in (raw.strip() for raw in handle) if line)


def _parse_report(stdout: bytes, stderr_path: Path) -> dict[str, Any]:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                report = json.loads(line)
                if isinstance(report, dict) and report.get("ok") is True:
                    return report
    raise FastPsiError("fast PSI sidecar printed no result", _tail(stderr_path))


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-STDERR_TAIL:].decode("utf-8", "replace")


def _left_spu_logs(folder: Path) -> str:
    """spu's log of a sidecar that died before it could copy it to stderr."""
    tails = []
    for log in sorted(folder.glob("*/spu.log")):
        tails.append(f"\n--- {log.name} left by the sidecar (tail) ---\n{_tail(log)}")
    return "".join(tails)
