"""A tiny TEE algorithm for the tests: the sum of every owner's integers.

Each owner's input is a JSON list of integers; the output is the JSON total. It is an
algorithm package (``node.algorithms.package.package_of``) so the simulated backend
measures it like any real job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ledger.clients.algorithms import AlgorithmKind

NAME: Final = "tee-test-sum"
VERSION: Final = "1.0.0"
KIND: Final = AlgorithmKind.TEE
PARAMETER_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def compute(inputs: Mapping[str, bytes]) -> bytes:
    return json.dumps(sum(sum(json.loads(v)) for v in inputs.values())).encode()
