"""Per-item cost of the DH-PSI core (``node.crypto.ecdh_psi``) on 1 and 2 processes, as JSON.

Why: the ECDH mode's target (issue 14) is stated against the curve operation's single-op
cost measured in the same run, so this script measures both: ``hash_and_blind`` (one
hash to ristretto255 and one scalar multiplication per item) and ``reblind`` (one
multiplication) through the streaming API at ``--n`` items, on one process (inline) and
on a ``--processes`` pool, beside :func:`scripts.bench.curve_ops.measure`. Figures are
reported, not asserted; the load average is included because a busy machine (a test run,
say) shows up directly in them.

Each configuration is timed ``--repeats`` times, the repeats interleaved, and the fastest
run is reported (the least disturbed by other load); the pool is started and warmed
before timing, because a runner keeps one per node.

    .venv/bin/python -m scripts.bench.psi_core [--n 100000] [--processes 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

from node.algorithms.identifiers import identifier_tag
from node.crypto import ecdh_psi
from scripts.bench import curve_ops
from scripts.bench.machine import machine

QUICK = {"n": 2000, "repeats": 1, "rounds": 10, "batch": 5}

Stream = Callable[[bytes, Iterable[Sequence[bytes]], int, Executor | None], Iterator[list[bytes]]]


def items(n: int) -> list[bytes]:
    """``n`` distinct tagged phone numbers, as the runner would feed them."""
    tag = identifier_tag("phone")
    return [tag + f"+86138{i:08d}".encode() for i in range(n)]


def _time_stream(
    stream: Stream, key: bytes, values: list[bytes], processes: int, pool: Executor | None
) -> float:
    """Seconds to push ``values`` through ``stream`` chunk by chunk, consuming the output."""
    start = time.perf_counter()
    count = 0
    for chunk in stream(key, ecdh_psi.chunked(values), processes, pool):
        count += len(chunk)
    elapsed = time.perf_counter() - start
    assert count == len(values)
    return elapsed


def measure(n: int, processes: int, repeats: int) -> dict[str, Any]:
    """Best-of-``repeats`` per-item microseconds for both steps on 1 and ``processes``."""
    values = items(n)
    key = ecdh_psi.new_key()
    elements = ecdh_psi.hash_and_blind(ecdh_psi.new_key(), values)
    steps: dict[str, tuple[Stream, list[bytes]]] = {
        "hash_and_blind": (ecdh_psi.iter_hash_and_blind, values),
        "reblind": (ecdh_psi.iter_reblind, elements),
    }
    best: dict[tuple[str, int], float] = {}
    with ecdh_psi.new_executor(processes) as pool:
        # Warm every worker (forkserver start, imports, rbcl load) before any timing.
        for _ in ecdh_psi.iter_reblind(key, ecdh_psi.chunked(elements[:512], 16), processes, pool):
            pass
        # Repeats are the outer loop, so load that comes and goes hits every configuration.
        for _ in range(repeats):
            for name, (stream, data) in steps.items():
                for procs, executor in ((1, None), (processes, pool)):
                    seconds = _time_stream(stream, key, data, procs, executor)
                    best[name, procs] = min(seconds, best.get((name, procs), seconds))
    results: dict[str, Any] = {}
    for name in steps:
        per_config: dict[str, Any] = {
            f"processes_{procs}": {
                "seconds": round(best[name, procs], 3),
                "per_item_us": round(best[name, procs] / n * 1e6, 2),
            }
            for procs in (1, processes)
        }
        per_config["speedup"] = round(best[name, 1] / best[name, processes], 3)
        results[name] = per_config
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200, help="curve_ops rounds")
    parser.add_argument("--batch", type=int, default=50, help="curve_ops batch")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = QUICK["n"], QUICK["repeats"]
        args.rounds, args.batch = QUICK["rounds"], QUICK["batch"]
    load_before = os.getloadavg()
    started = time.perf_counter()
    ops = curve_ops.measure(args.rounds, args.batch)["operations"]
    core = measure(args.n, args.processes, args.repeats)
    mult = ops["ristretto255_scalarmult"]["median_us"]
    for name, ops_per_item in (("hash_and_blind", "hash + 1 mult"), ("reblind", "1 mult")):
        per_item = core[name]["processes_1"]["per_item_us"]
        core[name]["operations_per_item"] = ops_per_item
        core[name]["processes_1_over_scalarmult"] = round(per_item / mult, 3)
    report = {
        "n": args.n,
        "processes": args.processes,
        "repeats": args.repeats,
        "chunk_items": ecdh_psi.CHUNK_ITEMS,
        "curve": "ristretto255 (libsodium via rbcl)",
        "single_op_us": {name: fig["median_us"] for name, fig in ops.items()},
        "core": core,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb_main_process": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(["rbcl", "cryptography"]),
    }
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
