"""The CLI rejects bad input with one line naming the field, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.consortium import OrgStatus
from ledger.deployment import Deployment
from ledger.ids import name_id
from scripts.cli import main

ADMIN = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def genesis(tmp_path: Path, **overrides: Any) -> Path:
    body: dict[str, Any] = {
        "thresholdPercent": 50,
        "members": [
            {"name": "Bank A", "roles": "provider,consumer", "admin": ADMIN},
            {
                "name": "Regulator",
                "roles": "regulator",
                "admin": "0x" + "11" * 20,
            },
        ],
    }
    body.update(overrides)
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(body))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"thresholdPercent": 0}, "threshold_percent"),
        ({"thresholdPercent": "50"}, "thresholdPercent"),
        ({"members": []}, "genesis"),
        ({"members": "Bank A"}, "members"),
        ({"members": [{"name": "A", "roles": "provider", "admin": "0x12"}]}, "genesis[0].admin"),
        ({"members": [{"name": "A", "roles": "banker", "admin": ADMIN}]}, "members[0].roles"),
        ({"members": [{"name": "", "roles": "provider", "admin": ADMIN}]}, "members[0].name"),
        (
            {
                "members": [
                    {"name": "A", "roles": "provider", "admin": ADMIN},
                    {"name": "B", "roles": "provider", "admin": ADMIN.lower()},
                ]
            },
            "genesis[1].admin",
        ),
        (
            {"members": [{"name": "A", "roles": "provider", "admin": ADMIN, "orgId": "0x12"}]},
            "members[0].orgId",
        ),
    ],
)
def test_bad_genesis_is_rejected_before_any_chain_access(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], field: str
) -> None:
    out = tmp_path / "manifest.json"
    # The chain URL points nowhere: validation must fail before it is ever contacted.
    code, err = run(
        capsys,
        "chain", "deploy", "--chain", "http://127.0.0.1:9", "--dev-account",
        "--genesis", str(genesis(tmp_path, **overrides)), "--out", str(out),
    )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"provnet: error: {field}: ")
    assert not out.exists()


def test_unreadable_genesis_and_bad_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.json"
    code, err = run(
        capsys, "chain", "deploy", "--chain", "http://127.0.0.1:9", "--dev-account",
        "--genesis", str(tmp_path / "none.json"), "--out", str(out),
    )  # fmt: skip
    assert code == 2 and "genesis: file" in err
    code, err = run(
        capsys, "chain", "deploy", "--chain", "ftp://x", "--dev-account",
        "--genesis", str(genesis(tmp_path)), "--out", str(out),
    )  # fmt: skip
    assert code == 2 and err.startswith("provnet: error: chain url: ")
    code, err = run(
        capsys, "chain", "deploy", "--chain", "http://127.0.0.1:9", "--dev-account",
        "--genesis", str(genesis(tmp_path)), "--out", str(out),
    )  # fmt: skip
    assert code == 1 and "does not answer" in err and err.count("\n") == 1
    assert not out.exists()


def test_deploy_to_anvil_writes_a_loadable_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_url: str
) -> None:
    out = tmp_path / "manifest.json"
    code, err = run(
        capsys, "chain", "deploy", "--chain", anvil_url, "--dev-account",
        "--genesis", str(genesis(tmp_path)), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    deployment = Deployment.load(out)
    deployment.check_artifacts()
    chain = Chain.connect(anvil_url)
    assert deployment.chain_id == chain.chain_id == 31337
    clients = Clients.bind(chain, deployment)
    assert clients.consortium.org_status(name_id("org", "Bank A")) == OrgStatus.ACTIVE
    assert clients.consortium.org_admin(name_id("org", "Bank A")) == ADMIN
    assert clients.consortium.threshold_percent() == 50
