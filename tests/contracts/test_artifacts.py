"""The committed artifacts are exactly what the committed sources compile to."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.artifacts import CONTRACT_NAMES
from ledger.compiler import artifact_text, compile_sources
from ledger.paths import BUILD_DIR


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict[str, Any]]:
    """One fresh compile of the committed sources (seconds of solc-js), for both tests."""
    return compile_sources()


def test_committed_artifacts_match_a_fresh_compile(fresh: dict[str, dict[str, Any]]) -> None:
    assert sorted(fresh) == sorted(CONTRACT_NAMES)
    committed = {p.stem for p in BUILD_DIR.glob("*.json")}
    assert committed == set(fresh), "stale or missing artifacts: run `provnet contracts build`"
    for name, artifact in fresh.items():
        on_disk = (BUILD_DIR / f"{name}.json").read_text()
        assert on_disk == artifact_text(artifact), (
            f"contracts/build/{name}.json is stale: run `provnet contracts build`"
        )


def test_every_artifact_targets_prague(fresh: dict[str, dict[str, Any]]) -> None:
    for name, artifact in fresh.items():
        assert artifact["settings"]["evmVersion"] == "prague", name
