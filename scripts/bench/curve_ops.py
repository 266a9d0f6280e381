"""Single-operation cost of the candidate PSI curve operations, as JSON, in one run.

Why: an ECDH/OPRF PSI costs a fixed number of curve operations per identifier, so its
speed limit is the per-operation cost on this machine. Issue 14's targets are stated
against that cost "measured in the same run", so `scripts/bench/psi.py` imports
:func:`measure` from here rather than quoting a constant.

Measured, each through the library provnet would call it with:

* ``ristretto255_scalarmult``: libsodium's variable-base ``crypto_scalarmult_ristretto255``
  via ``rbcl`` (the operation OPRF blinding, evaluation and unblinding each perform);
* ``ristretto255_scalarmult_base``: libsodium's fixed-base multiplication (key
  generation, proof nonces);
* ``x25519_exchange``: ``cryptography``'s X25519 ``exchange`` (OpenSSL);
* ``p256_ecdh``: ``cryptography``'s P-256 ECDH ``exchange`` (OpenSSL);
* ``oprf_evaluate``: a whole RFC 9497 ``Evaluate`` (hash to group, one multiplication,
  SHA-512), i.e. what one PSI-side identifier costs in ``node.crypto.oprf``.

Method: each operation runs in batches of ``batch`` calls on fixed inputs (all are
constant-time, so inputs do not matter); the per-operation time of a batch is its
wall time over ``batch``. Rounds interleave the operations in a shuffled order, so drift
in clock speed or background load hits all of them alike; the report gives the median
over rounds (and the minimum and the 90th percentile, in microseconds), plus the load
average so a noisy machine is visible in the figures.

    .venv/bin/python -m scripts.bench.curve_ops [--rounds 200] [--batch 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import rbcl  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from node.crypto import oprf
from scripts.bench.machine import machine

QUICK = {"rounds": 10, "batch": 5}


def operations() -> dict[str, Callable[[], object]]:
    """Zero-argument callables, one per operation, with their inputs bound in advance."""
    scalar = oprf.random_scalar()
    point: bytes = rbcl.crypto_core_ristretto255_random()
    x_private = x25519.X25519PrivateKey.generate()
    x_peer = x25519.X25519PrivateKey.generate().public_key()
    p_private = ec.generate_private_key(ec.SECP256R1())
    p_peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    ecdh = ec.ECDH()
    sk, _ = oprf.derive_key_pair(bytes(32), b"bench")
    identifier = b"ID:1234567890"
    return {
        "ristretto255_scalarmult": lambda: rbcl.crypto_scalarmult_ristretto255(scalar, point),
        "ristretto255_scalarmult_base": lambda: rbcl.crypto_scalarmult_ristretto255_base(scalar),
        "x25519_exchange": lambda: x_private.exchange(x_peer),
        "p256_ecdh": lambda: p_private.exchange(ecdh, p_peer),
        "oprf_evaluate": lambda: oprf.evaluate(sk, identifier),
    }


def _time_batch(op: Callable[[], object], batch: int) -> float:
    """Microseconds per call over one batch of ``batch`` consecutive calls."""
    start = time.perf_counter_ns()
    for _ in range(batch):
        op()
    return (time.perf_counter_ns() - start) / batch / 1000.0


def measure(rounds: int = 200, batch: int = 50, seed: int = 0) -> dict[str, Any]:
    """Per-operation microseconds for every operation, interleaved in one run."""
    ops = operations()
    names = list(ops)
    for name in names:  # warm-up: imports, caches, lazy OpenSSL initialisation
        _time_batch(ops[name], batch)
    samples: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(seed)
    load_before = os.getloadavg()
    started = time.perf_counter()
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            samples[name].append(_time_batch(ops[name], batch))
    elapsed = time.perf_counter() - started
    figures: dict[str, Any] = {}
    for name in sorted(samples):
        values = sorted(samples[name])
        figures[name] = {
            "median_us": round(statistics.median(values), 2),
            "min_us": round(values[0], 2),
            "p90_us": round(values[min(len(values) - 1, int(0.9 * len(values)))], 2),
            "calls": rounds * batch,
        }
    base = figures["ristretto255_scalarmult"]["median_us"]
    for name in figures:
        figures[name]["relative_to_ristretto255_scalarmult"] = round(
            figures[name]["median_us"] / base, 3
        )
    return {
        "operations": figures,
        "rounds": rounds,
        "batch": batch,
        "seconds": round(elapsed, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(["rbcl", "cryptography"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few rounds, for tests")
    args = parser.parse_args()
    rounds, batch = (QUICK["rounds"], QUICK["batch"]) if args.quick else (args.rounds, args.batch)
    print(json.dumps(measure(rounds, batch, args.seed), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
