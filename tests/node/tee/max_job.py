"""Another tiny TEE algorithm (the maximum), standing for "some other approved job".

A host that offers an enclave running this for a task that approved ``sum_job`` is the
digest-mismatch attack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ledger.clients.algorithms import AlgorithmKind

NAME: Final = "tee-test-max"
VERSION: Final = "1.0.0"
KIND: Final = AlgorithmKind.TEE
PARAMETER_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def compute(inputs: Mapping[str, bytes]) -> bytes:
    return json.dumps(max(max(json.loads(v)) for v in inputs.values())).encode()
