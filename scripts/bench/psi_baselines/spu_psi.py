"""SecretFlow spu 0.9.5's PSI (RR22, or ECDH on FourQ) between two processes, as JSON.

Two parties, each its own process, talk over spu's brpc link on localhost, exactly as
two deployed spu parties would; with ``--tls-dir``, over mutual TLS where each party
pins the other's self-signed certificate (as provnet nodes do). The API, read from the
installed package (``spu/libpsi.pyi``, ``spu/libspu.pyi``):

* link: ``desc = spu.link.Desc(); desc.id = ...; desc.add_party(id, "host:port")`` for
  each party in rank order, then ``lctx = spu.link.create_brpc(desc, my_rank)``. TLS:
  ``desc.enable_ssl = True`` and ``desc.server_ssl_opts`` / ``desc.client_ssl_opts``
  (``.cert.certificate_path``, ``.cert.private_key_path``, ``.verify.ca_file_path``,
  ``.verify.verify_depth``). A self-signed peer certificate given as the CA file pins
  that peer (a handshake with any other certificate fails: "certificate verify
  failed" / "unknown ca"); host names are not checked.
* PSI: ``spu.psi.psi_execute(PsiExecuteConfig(protocol_conf=PsiProtocolConfig(protocol=
  PsiProtocol.PROTOCOL_RR22 | PROTOCOL_ECDH, receiver_rank=0, broadcast_result=False,
  ecdh_params=EcdhParams(curve=EllipticCurveType.CURVE_FOURQ)), input_params=
  InputParams(path=CSV, selected_keys=["id"], keys_unique=True), output_params=
  OutputParams(path=CSV, disable_alignment=True)), lctx)`` returns a report with
  ``intersection_count`` (-1 at the party that learns nothing); the receiver's output
  CSV holds the intersection. Paths must be absolute (a bare file name makes it try to
  create the directory ``""``).

Timed: ``psi_execute`` in each party, after both have connected and passed a barrier;
it includes spu's own CSV reading, bucketing to temporary files and result writing, as
any use of its PSI does. Reported time is the slower party's. Bytes on the wire: TCP
payload bytes of both link connections, read from the kernel's per-socket counters
(``ss -ti``'s ``bytes_sent`` / ``bytes_received``) once both parties have finished,
before the link closes. spu writes logs, ``.meta`` files beside its inputs and
temporary files to ``$TMPDIR``, all of which go to ``--workdir``; the trace file each
party writes to ``/tmp`` whatever ``$TMPDIR`` says is deleted afterwards.

    .venv-psi-baselines/bin/python -m scripts.bench.psi_baselines.spu_psi \\
        --protocol rr22|ecdh-fourq --a A.txt --b B.txt --workdir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

from scripts.bench.psi_baselines.common import (
    current_rss_mb,
    intersection_digest,
    peak_rss_mb,
    read_items,
)

PROTOCOLS = ("rr22", "ecdh-fourq")
KEY = "id"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; closed again, so a party can bind them."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wire_bytes(ports: list[int]) -> int | None:
    """TCP payload bytes both ways over the connections accepted on ``ports``.

    Each link connection has one socket whose local port is a party's listening port;
    its ``bytes_sent + bytes_received`` counts that connection in both directions, so
    summing the accepted sockets counts every connection once.
    """
    flt = " or ".join(f"sport = :{p}" for p in ports)
    try:
        out = subprocess.run(
            ["ss", "-tinH", "state", "established", f"( {flt} )"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0
    for name in ("bytes_sent", "bytes_received"):
        total += sum(int(v) for v in re.findall(rf"\b{name}:(\d+)", out))
    return total


def party(args: argparse.Namespace) -> None:
    """One party: connect, barrier, time ``psi_execute``, count bytes, report."""
    import spu  # type: ignore[import-not-found]
    import spu.psi as psi  # type: ignore[import-not-found]

    rank = args.party
    ports = [int(p) for p in args.ports.split(",")]
    desc = spu.link.Desc()
    desc.id = "provnet-psi-bench"
    desc.recv_timeout_ms = int(args.timeout * 1000)
    desc.http_timeout_ms = int(args.timeout * 1000)
    for i, port in enumerate(ports):
        desc.add_party(f"party{i}", f"127.0.0.1:{port}")
    if args.tls_dir:
        # Mutual TLS pinned to the peer's self-signed certificate, as provnet nodes trust
        # each other: the peer's certificate is the only trust root, on both the
        # accepting (server) and the connecting (client) side. spu does not check host
        # names, so the pin is the whole check.
        desc.enable_ssl = True
        peer = 1 - rank
        for opts in (desc.server_ssl_opts, desc.client_ssl_opts):
            opts.cert.certificate_path = os.path.join(args.tls_dir, f"party{rank}.crt")
            opts.cert.private_key_path = os.path.join(args.tls_dir, f"party{rank}.key")
            opts.verify.ca_file_path = os.path.join(args.tls_dir, f"party{peer}.crt")
            opts.verify.verify_depth = 1
    lctx = spu.link.create_brpc(desc, rank)
    if args.protocol == "rr22":
        protocol_conf = psi.PsiProtocolConfig(
            protocol=psi.PsiProtocol.PROTOCOL_RR22, receiver_rank=0, broadcast_result=False
        )
    else:
        protocol_conf = psi.PsiProtocolConfig(
            protocol=psi.PsiProtocol.PROTOCOL_ECDH,
            receiver_rank=0,
            broadcast_result=False,
            ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_FOURQ),
        )
    config = psi.PsiExecuteConfig(
        protocol_conf=protocol_conf,
        input_params=psi.InputParams(path=args.input, selected_keys=[KEY], keys_unique=True),
        output_params=psi.OutputParams(path=args.output, disable_alignment=True),
    )
    rss_at_start = current_rss_mb()
    lctx.barrier()
    start = time.perf_counter()
    report = psi.psi_execute(config, lctx)
    seconds = time.perf_counter() - start
    lctx.barrier()  # both finished: the counters hold the whole run
    counted = wire_bytes(ports) if rank == 0 else None
    with open(args.result, "w", encoding="ascii") as out:
        json.dump(
            {
                "rank": rank,
                "seconds": seconds,
                "bytes": counted,
                "intersection_count": report.intersection_count,
                "original_count": report.original_count,
                "rss_at_start_mb": rss_at_start,
                "peak_rss_mb": peak_rss_mb(),
            },
            out,
        )
    lctx.barrier()  # the peer keeps its sockets open until rank 0 has read them
    # No stop_link(): over TLS, both parties stopping their links at once sometimes
    # aborts one of them on a fatal check in brpc (controller.cpp "Check failed: false.
    # error_code is 0"). Both have passed the barrier and written their figures, so the
    # process just leaves once the barrier's last acknowledgements have landed; should
    # a party still die on the way out, the orchestrator keeps its figures and says so.
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.5)
    os._exit(0)


def write_csv(items: list[str], path: str) -> None:
    with open(path, "w", encoding="ascii") as out:
        out.write(KEY + "\n")
        out.write("\n".join(items))
        out.write("\n")


def read_csv_column(path: str) -> list[str]:
    with open(path, encoding="ascii") as handle:
        lines = handle.read().splitlines()
    return [line.strip('"') for line in lines[1:]]


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Write both parties' CSVs, run the two party processes, check and combine."""
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    items = {0: read_items(args.a), 1: read_items(args.b)}
    ports = free_ports(2)
    env = {**os.environ, "TMPDIR": workdir}
    procs = []
    logs = []
    for rank in (0, 1):
        write_csv(items[rank], os.path.join(workdir, f"input{rank}.csv"))
        log = open(os.path.join(workdir, f"party{rank}.log"), "w")  # noqa: SIM115
        logs.append(log)
        command = [
            sys.executable,
            "-m",
            "scripts.bench.psi_baselines.spu_psi",
            "--protocol",
            args.protocol,
            "--party",
            str(rank),
            "--ports",
            ",".join(map(str, ports)),
            "--input",
            os.path.join(workdir, f"input{rank}.csv"),
            "--output",
            os.path.join(workdir, f"output{rank}.csv"),
            "--result",
            os.path.join(workdir, f"result{rank}.json"),
            "--timeout",
            str(args.timeout),
        ]
        if args.tls_dir:
            command += ["--tls-dir", os.path.abspath(args.tls_dir)]
        # spu logs to both streams; the party's figures go to --result.
        procs.append(subprocess.Popen(command, stdout=log, stderr=log, env=env))
    parties = []
    teardown: list[str] = []
    try:
        for rank, proc in enumerate(procs):
            proc.wait(timeout=args.timeout)
            result_path = os.path.join(workdir, f"result{rank}.json")
            if proc.returncode != 0 and not os.path.exists(result_path):
                raise RuntimeError(f"spu party {rank} exited {proc.returncode}: {tail(logs[rank])}")
            if proc.returncode != 0:
                teardown.append(f"party {rank} exited {proc.returncode} after reporting")
            with open(result_path, encoding="ascii") as result:
                parties.append(json.load(result))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
            remove_traces(log.name)
    matched = read_csv_column(os.path.join(workdir, "output0.csv"))
    return {
        "seconds": round(max(p["seconds"] for p in parties), 4),
        "seconds_by_party": [round(p["seconds"], 4) for p in parties],
        "bytes": parties[0]["bytes"],
        "peak_rss_mb": round(sum(p["peak_rss_mb"] for p in parties), 1),
        "peak_rss_mb_by_party": [p["peak_rss_mb"] for p in parties],
        "rss_at_start_mb_by_party": [p["rss_at_start_mb"] for p in parties],
        "intersection_size": len(set(matched)),
        "intersection_count_reported": parties[0]["intersection_count"],
        "intersection_sha256": intersection_digest(matched),
        "n_a": len(items[0]),
        "n_b": len(items[1]),
        **({"teardown_errors": teardown} if teardown else {}),
    }


def remove_traces(log_path: str) -> None:
    """Delete the trace files a party's log names: spu writes them to /tmp regardless."""
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for path in re.findall(r"Trace has been written to (\S+?\.trace)", log.read()):
            if os.path.basename(path).startswith("psi_"):
                with contextlib.suppress(OSError):
                    os.remove(path)


def tail(log: Any, limit: int = 2000) -> str:
    log.flush()
    with open(log.name, encoding="utf-8", errors="replace") as handle:
        return handle.read()[-limit:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--a", help="requester's (receiver, rank 0) items, one per line")
    parser.add_argument("--b", help="responder's (sender, rank 1) items, one per line")
    parser.add_argument("--workdir", help="CSV files, logs and spu's temporary files")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--tls-dir",
        help="mutual TLS on the link: partyN.crt / partyN.key (self-signed, PEM) per rank",
    )
    # Internal: one party, started by the orchestrating run.
    parser.add_argument("--party", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.party is not None:
        party(args)
        return
    if not (args.a and args.b and args.workdir):
        parser.error("--a, --b and --workdir are required")
    report = orchestrate(args)
    report.update(
        {
            "library": "spu " + metadata.version("spu"),
            "protocol": {"rr22": "RR22 (VOLE/OKVS)", "ecdh-fourq": "ECDH on FourQ"}[args.protocol],
            "processes": 2,
            "transport": "spu brpc link over localhost TCP, "
            + ("mutual TLS pinned to the peer's certificate" if args.tls_dir else "no TLS"),
        }
    )
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
