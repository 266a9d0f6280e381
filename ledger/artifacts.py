"""Load the committed contract artifacts.

Artifacts are read from `contracts/build/` once per process: they never change while
a node runs, and every client, decoder and deployer needs the same ABI objects.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ledger.canonical import digest_json
from ledger.paths import BUILD_DIR

#: The deployable contracts, in deployment order (later ones take earlier addresses).
CONTRACT_NAMES: tuple[str, ...] = (
    "Consortium",
    "AlgorithmRegistry",
    "DatasetRegistry",
    "AuthorizationRegistry",
    "TaskRegistry",
    "AnchorLog",
)


class ArtifactError(RuntimeError):
    """A committed artifact is missing or unreadable; rebuild with `provnet contracts build`."""


@cache
def load_artifact(name: str, build_dir: Path = BUILD_DIR) -> dict[str, Any]:
    """The artifact of one contract; raises ArtifactError naming the file when absent."""
    path = build_dir / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"artifact {path} missing: run `provnet contracts build`") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"artifact {path} is not valid JSON: {exc}") from None
    for key in ("abi", "bytecode"):
        if key not in artifact:
            raise ArtifactError(f"artifact {path} lacks field {key!r}")
    return artifact


def abi(name: str) -> list[dict[str, Any]]:
    """The ABI of one contract."""
    result: list[dict[str, Any]] = load_artifact(name)["abi"]
    return result


def artifact_digest(name: str) -> bytes:
    """Digest binding a deployment to exactly the ABI and bytecode it was made from."""
    artifact = load_artifact(name)
    return digest_json(
        "contract-artifact",
        {"abi": artifact["abi"], "bytecode": artifact["bytecode"], "name": name},
    )
