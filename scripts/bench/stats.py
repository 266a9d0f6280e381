"""Secure statistics throughput, as JSON, against the plaintext computation in the same run.

For each (parties, rows per party) the secure protocol runs end to end over an
in-memory network, one thread per party plus the aggregator, and is timed from the
first thread start to the aggregator's result (every provider's local filtering and
summing included). Two baselines over the union of all rows, in the same run: what a
trusted party holding everything would compute, exactly (`plaintext_stats`, provnet's
own column-wise code), and what a user would pick instead: the same filter, count, sum,
sum of squares and histogram in pyarrow compute over the pooled table (the columnar
engine; its sum of squares in float64, since int64 would overflow). Also reported:
bytes on the wire per party (sent and received, from the network's record of every
message).

All parties share one Python process and its GIL, so the end-to-end time is roughly
the sum of every party's CPU work: pessimistic for a deployment where each node runs on
its own machine, where the local work runs in parallel.

    .venv/bin/python -m scripts.bench.stats [--parties 3 7] [--rows 100000 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from eth_account import Account

from node.algorithms import stats
from node.channel import InMemoryNetwork
from node.crypto.secagg import Identity, KeyRingVerifier
from scripts.bench.machine import machine

AGGREGATOR = "aggregator"
REGIONS = ["north", "south", "east", "west", "centre", "islands", "abroad", "unknown"]
PARAMS = {
    "columns": [
        {"name": "amount", "type": "integer"},
        {"name": "region", "type": "string"},
        {"name": "age", "type": "integer"},
    ],
    "value_column": "amount",
    "group_column": "region",
    "categories": REGIONS[:6],  # "abroad" and "unknown" land in the 'other' bucket
    "filter": {"column": "age", "op": ">=", "value": 30},
    "min_group_size": 10,
}
QUICK = {"parties": [2, 3], "rows": [50, 200]}


def make_rows(rng: np.random.Generator, count: int) -> pa.Table:
    """Synthetic rows, column-wise: signed 24-bit amounts, eight regions, ages 18..81."""
    return pa.table(
        {
            "amount": rng.integers(-(1 << 23), 1 << 23, size=count, dtype=np.int64),
            "region": pa.array(np.array(REGIONS, dtype=object)[rng.integers(0, 8, size=count)]),
            "age": rng.integers(18, 82, size=count, dtype=np.int64),
        }
    )


def columnar_baseline(table: pa.Table) -> dict[str, Any]:
    """The same statistics in plain pyarrow compute over the pooled rows."""
    kept = table.filter(pc.greater_equal(table["age"], 30))
    amounts = kept["amount"]
    counts = pc.value_counts(kept["region"])
    return {
        "count": kept.num_rows,
        "sum": pc.sum(amounts).as_py(),
        "sum_of_squares": pc.sum(
            pc.multiply(pc.cast(amounts, pa.float64()), pc.cast(amounts, pa.float64()))
        ).as_py(),
        "histogram": dict(
            zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        ),
    }


def run_secure(
    params: stats.StatsParams,
    rows: dict[str, pa.Table],
    timeout: float,
) -> tuple[stats.StatsResult, float, InMemoryNetwork]:
    names = list(rows)
    net = InMemoryNetwork([*names, AGGREGATOR])
    errors: dict[str, BaseException] = {}
    # Throwaway node keys: parties here have plain names, so a key ring maps them.
    accounts = {name: Account.create() for name in names}
    verifier = KeyRingVerifier({name: a.address for name, a in accounts.items()})

    def provider(name: str) -> None:
        try:
            stats.run_provider(
                net.channel(name),
                params,
                rows[name],
                AGGREGATOR,
                names,
                timeout,
                identity=Identity(accounts[name]),
                verifier=verifier,
            )
        except BaseException as exc:
            errors[name] = exc

    threads = [threading.Thread(target=provider, args=(n,), name=n) for n in names]
    start = time.perf_counter()
    for t in threads:
        t.start()
    result = stats.run_aggregator(
        net.channel(AGGREGATOR), params, names, timeout, verifier=verifier
    )
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"providers failed: {errors}")
    return result, elapsed, net


def wire(net: InMemoryNetwork) -> dict[str, Any]:
    per_party = {p: {"sent": 0, "received": 0, "messages_sent": 0} for p in net.parties}
    by_step: dict[str, int] = {}
    for src, dst, step, payload in net.sent:
        per_party[src]["sent"] += len(payload)
        per_party[src]["messages_sent"] += 1
        per_party[dst]["received"] += len(payload)
        by_step[step] = by_step.get(step, 0) + len(payload)
    return {
        "per_party_bytes": per_party,
        "bytes_by_step": by_step,
        "total_bytes": sum(len(m[3]) for m in net.sent),
        "messages": len(net.sent),
    }


def measure_one(parties: int, rows_per_party: int, seed: int, timeout: float) -> dict[str, Any]:
    params = stats.StatsParams.from_json(PARAMS)
    rng = np.random.default_rng(seed * 1_000_003 + parties * 1009 + rows_per_party)
    rows = {f"provider-{i + 1}": make_rows(rng, rows_per_party) for i in range(parties)}
    everything = pa.concat_tables(rows.values())
    total = everything.num_rows

    result, secure_s, net = run_secure(params, rows, timeout)
    start = time.perf_counter()
    reference = stats.plaintext_stats(params, everything)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    columnar = columnar_baseline(everything)
    columnar_s = time.perf_counter() - start

    secure_rate = total / secure_s
    plain_rate = total / plain_s if plain_s > 0 else float("inf")
    columnar_rate = total / columnar_s if columnar_s > 0 else float("inf")
    return {
        "parties": parties,
        "rows_per_party": rows_per_party,
        "total_rows": total,
        "secure": {"seconds": round(secure_s, 4), "rows_per_s": round(secure_rate)},
        "plaintext": {"seconds": round(plain_s, 4), "rows_per_s": round(plain_rate)},
        "columnar": {"seconds": round(columnar_s, 4), "rows_per_s": round(columnar_rate)},
        "plaintext_over_secure": round(plain_rate / secure_rate, 2),
        "secure_over_columnar_seconds": round(secure_s / columnar_s, 2),
        "wire": wire(net),
        "results_equal": result == reference,
        "columnar_agrees": reference.count == columnar["count"]
        and reference.sum == columnar["sum"],
        "result": result.to_json(),
    }


def measure(
    parties: Sequence[int], rows: Sequence[int], seed: int = 1, timeout: float = 300.0
) -> dict[str, Any]:
    return {
        "benchmark": "secure-stats",
        "algorithm": {"name": stats.NAME, "version": stats.VERSION},
        "machine": machine(("cryptography", "pyarrow", "numpy", "pycryptodome")),
        "params": PARAMS,
        "transport": "InMemoryNetwork, one thread per party in one process (shared GIL)",
        "runs": [measure_one(p, r, seed, timeout) for p in parties for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, nargs="+", default=[3, 7])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if any(p < 2 for p in args.parties) or any(r < 0 for r in args.rows):
        parser.error("--parties must be >= 2 and --rows >= 0")
    parties, rows = (QUICK["parties"], QUICK["rows"]) if args.quick else (args.parties, args.rows)
    print(json.dumps(measure(parties, rows, args.seed), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
