"""PLACEHOLDER — not a computation.

The spine needs one job that exercises the whole on-chain lifecycle before any real
protocol exists. This "algorithm" computes nothing from the data: every participant
derives the same digest from the task id, the parameters digest and the anchored input
commitments, so the lifecycle, metering, anchoring and verification paths can be shown
end to end. Real computations (statistics, PSI, FL, ...) replace it in later work.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.canonical import digest_json
from ledger.clients.algorithms import AlgorithmKind

NAME = "digest-placeholder"
VERSION = "1.0.0"
KIND = AlgorithmKind.OTHER
PARAMETER_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
}


def run(task_id: bytes, params_digest: bytes, input_commitments: Sequence[bytes]) -> bytes:
    """The placeholder 'result': a digest over the task's public commitments only."""
    return digest_json(
        "placeholder-result",
        {
            "task": task_id.hex(),
            "params": params_digest.hex(),
            "inputs": sorted(c.hex() for c in input_commitments),
        },
    )
