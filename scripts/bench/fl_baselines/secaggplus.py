"""flwr SecAgg+ client masking (stage 2 of ``secaggplus_mod``) on one float vector.

What is timed is what ``flwr.client.mod.secure_aggregation.secaggplus_mod.
_collect_masked_vectors`` does after decrypting the key shares: scale by the weight
ratio, ``quantize`` (stochastic rounding), ``factor_combine``, the private mask
``pseudo_rand_gen(rd_seed, ...)``, for each neighbour ``generate_shared_key`` (ECDH on
flwr's curve + HKDF) and its pairwise mask, and the final ``parameters_mod``; with
``SecAggPlusWorkflow``'s defaults (clipping 8.0, quantization 2^22, modulus 2^32,
max weight 1000). ``pseudo_rand_gen`` seeds numpy's MT19937 (``RandomState``) with 32
bits folded from the key: not a cryptographically secure generator, reported as such.

    .venv-fl-baselines/bin/python -m scripts.bench.fl_baselines.secaggplus
        --vector FILE.npy --neighbours 10 [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from importlib import metadata
from typing import Any

import numpy as np
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (  # type: ignore[import-not-found]
    generate_shared_key,
)
from flwr.common.secure_aggregation.ndarrays_arithmetic import (  # type: ignore[import-not-found]
    factor_combine,
    parameters_addition,
    parameters_mod,
    parameters_multiply,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import quantize  # type: ignore[import-not-found]
from flwr.common.secure_aggregation.secaggplus_utils import (  # type: ignore[import-not-found]
    pseudo_rand_gen,
)
from flwr.supercore.primitives.asymmetric import (  # type: ignore[import-not-found]
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

CLIPPING_RANGE = 8.0
TARGET_RANGE = 1 << 22
MOD_RANGE = 1 << 32
MAX_WEIGHT = 1000.0


def mask_once(
    vector: np.ndarray, sk1: bytes, peers: list[tuple[int, bytes]], me: int, num_examples: int
) -> list[np.ndarray]:
    """Stage 2 of flwr's SecAgg+ client, from the fitted parameters to the masked vector."""
    rd_seed = os.urandom(32)
    ratio = num_examples / MAX_WEIGHT
    q_ratio = round(ratio * TARGET_RANGE)
    dq_ratio = q_ratio / TARGET_RANGE
    parameters = parameters_multiply([vector], dq_ratio)
    quantized = quantize(parameters, CLIPPING_RANGE, TARGET_RANGE)
    quantized = factor_combine(q_ratio, quantized)
    dimensions = [a.shape for a in quantized]
    quantized = parameters_addition(quantized, pseudo_rand_gen(rd_seed, MOD_RANGE, dimensions))
    for node_id, public in peers:
        shared = generate_shared_key(bytes_to_private_key(sk1), bytes_to_public_key(public))
        mask = pseudo_rand_gen(shared, MOD_RANGE, dimensions)
        if me > node_id:
            quantized = parameters_addition(quantized, mask)
        else:
            quantized = parameters_subtraction(quantized, mask)
    out: list[np.ndarray] = parameters_mod(quantized, MOD_RANGE)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vector", required=True, help=".npy file of float64 parameters")
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    vector = np.load(args.vector)
    sk, _ = generate_key_pairs()
    sk1 = private_key_to_bytes(sk)
    me = args.neighbours // 2  # some neighbours add, some subtract, as in a real graph
    peers = []
    for k in range(args.neighbours + 1):
        if k != me:
            peers.append((k, public_key_to_bytes(generate_key_pairs()[1])))
    mask_once(vector[:16], sk1, peers, me, 100)  # warm-up: imports, first-call costs
    times = []
    masked: list[np.ndarray] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        masked = mask_once(vector, sk1, peers, me, 100)
        times.append(time.perf_counter() - start)
    report: dict[str, Any] = {
        "library": f"flwr {metadata.version('flwr')}",
        "parameters": int(vector.size),
        "neighbours": args.neighbours,
        "seconds": round(statistics.median(times), 5),
        "seconds_all": [round(t, 5) for t in times],
        "masked_dtype": str(masked[0].dtype),
        "masked_elements": sum(int(a.size) for a in masked),  # the weight factor first
        "ring": "Z_{2^32}",
        "mask_generator": "numpy RandomState (MT19937) seeded with 32 bits: not a CSPRNG",
        "key_agreement": "ECDH (flwr generate_shared_key) + HKDF-SHA256 per neighbour",
        "settings": {
            "clipping_range": CLIPPING_RANGE,
            "quantization_range": TARGET_RANGE,
            "modulus_range": MOD_RANGE,
            "max_weight": MAX_WEIGHT,
        },
        "numpy": np.__version__,
    }
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
