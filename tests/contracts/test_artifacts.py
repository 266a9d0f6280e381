"""The committed artifacts are exactly what the committed sources compile to."""

from __future__ import annotations

from ledger.artifacts import CONTRACT_NAMES
from ledger.compiler import artifact_text, compile_sources
from ledger.paths import BUILD_DIR


def test_committed_artifacts_match_a_fresh_compile() -> None:
    fresh = compile_sources()
    assert sorted(fresh) == sorted(CONTRACT_NAMES)
    committed = {p.stem for p in BUILD_DIR.glob("*.json")}
    assert committed == set(fresh), "stale or missing artifacts: run `provnet contracts build`"
    for name, artifact in fresh.items():
        on_disk = (BUILD_DIR / f"{name}.json").read_text()
        assert on_disk == artifact_text(artifact), (
            f"contracts/build/{name}.json is stale: run `provnet contracts build`"
        )


def test_every_artifact_targets_prague() -> None:
    for name, artifact in compile_sources().items():
        assert artifact["settings"]["evmVersion"] == "prague", name
