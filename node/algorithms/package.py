"""The algorithm digest: what the consortium approves and every node recomputes.

The digest covers the source files of the algorithm module (not the installed
package's metadata), its version and its parameter schema (DESIGN §4). A node
recomputes it from the code it is about to run, so a node running modified code
computes a different digest and refuses the task instead of silently deviating.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ledger.canonical import digest_json
from node.algorithms import __file__ as _algorithms_init

ALGORITHMS_DIR = Path(_algorithms_init).parent


@dataclass(frozen=True)
class AlgorithmPackage:
    name: str
    version: str
    kind: int
    parameter_schema: dict[str, Any]
    source_digests: dict[str, str]

    @property
    def digest(self) -> bytes:
        return digest_json(
            "algorithm",
            {
                "name": self.name,
                "version": self.version,
                "kind": self.kind,
                "parameterSchema": self.parameter_schema,
                "sources": self.source_digests,
            },
        )


def package_of(module: ModuleType) -> AlgorithmPackage:
    """Describe an algorithm module from the files on disk right now."""
    path = Path(str(module.__file__))
    sources = [path, *getattr(module, "EXTRA_SOURCES", ())]
    return AlgorithmPackage(
        name=module.NAME,
        version=module.VERSION,
        kind=int(module.KIND),
        parameter_schema=module.PARAMETER_SCHEMA,
        source_digests={
            Path(p).resolve().relative_to(ALGORITHMS_DIR.parent.parent).as_posix(): hashlib.sha256(
                Path(p).read_bytes()
            ).hexdigest()
            for p in sources
        },
    )
