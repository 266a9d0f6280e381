"""The deployment manifest rejects anything malformed, naming the field, and round-trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.artifacts import CONTRACT_NAMES
from ledger.deployment import Deployment, ManifestError

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def good() -> dict[str, Any]:
    return {
        "version": 1,
        "chainId": 31337,
        "deployer": ADDRESS,
        "contracts": {
            name: {
                "address": ADDRESS,
                "block": i + 1,
                "artifactDigest": "0x" + "ab" * 32,
                "transaction": "0x" + "cd" * 32,
            }
            for i, name in enumerate(CONTRACT_NAMES)
        },
    }


def test_round_trip(tmp_path: Path) -> None:
    deployment = Deployment.from_json(good())
    path = tmp_path / "m.json"
    deployment.save(path)
    assert Deployment.load(path) == deployment
    assert deployment.first_block == 1
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.update(version=2), "version"),
        (lambda m: m.update(chainId="1"), "chainId"),
        (lambda m: m.update(chainId=True), "chainId"),
        (lambda m: m.update(chainId=0), "chainId"),
        (lambda m: m.update(deployer="0x12"), "deployer"),
        (lambda m: m["contracts"].pop("TaskRegistry"), "contracts.TaskRegistry"),
        (lambda m: m["contracts"].update(Extra={}), "contracts.Extra"),
        (
            lambda m: m["contracts"]["AnchorLog"].update(address="nope"),
            "contracts.AnchorLog.address",
        ),
        (lambda m: m["contracts"]["Consortium"].update(block=-1), "contracts.Consortium.block"),
        (
            lambda m: m["contracts"]["Consortium"].update(artifactDigest="0x" + "zz" * 32),
            "contracts.Consortium.artifactDigest",
        ),
        (
            lambda m: m["contracts"]["Consortium"].update(transaction="0x1"),
            "contracts.Consortium.transaction",
        ),
    ],
)
def test_malformed_fields_are_named(mutate: Any, field: str) -> None:
    manifest = copy.deepcopy(good())
    mutate(manifest)
    with pytest.raises(ManifestError) as exc:
        Deployment.from_json(manifest)
    assert exc.value.field == field
    assert str(exc.value).startswith(f"{field}: ")


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        Deployment.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        Deployment.load(bad)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([good()]))
    with pytest.raises(ManifestError, match="JSON object"):
        Deployment.load(listed)
