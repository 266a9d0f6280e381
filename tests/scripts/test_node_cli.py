"""`provnet node init` then `provnet node register` against a real anvil deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.consortium import NodeStatus
from ledger.deployment import Deployment
from ledger.keys import new_account, read_keystore, write_keystore
from node.config import NodeConfig
from node.identity import certificate_digest
from scripts.cli import main


def test_init_then_register_is_idempotent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    anvil_url: str,
) -> None:
    monkeypatch.setenv("PROVNET_KEY_PASSWORD", "node secret")
    monkeypatch.setenv("PROVNET_ADMIN_PASSWORD", "admin secret")
    admin = new_account()
    write_keystore(admin, tmp_path / "admin.json", "admin secret")
    chain = Chain.connect(anvil_url)
    chain.fund(admin.address, 10**20)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(
        json.dumps(
            {
                "thresholdPercent": 50,
                "members": [
                    {"name": "Bank A", "roles": "provider,consumer", "admin": admin.address}
                ],
            }
        )
    )
    manifest = tmp_path / "manifest.json"
    assert main(["chain", "deploy", "--chain", anvil_url, "--dev-account",
                 "--genesis", str(genesis), "--out", str(manifest)]) == 0  # fmt: skip

    node_dir = tmp_path / "bank-a"
    init = ["node", "init", "--dir", str(node_dir), "--name", "Bank A", "--chain", anvil_url,
            "--manifest", str(manifest), "--peer-listen", "127.0.0.1:7101"]  # fmt: skip
    assert main(init) == 0
    config = NodeConfig.load(node_dir / "node.json")
    assert oct((node_dir / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert oct(config.api_token_file.stat().st_mode & 0o777) == "0o600"
    before = sorted(p.name for p in node_dir.rglob("*"))
    assert main(init) == 2
    assert "already holds a node" in capsys.readouterr().err
    assert sorted(p.name for p in node_dir.rglob("*")) == before

    register = ["node", "register", "--config", str(node_dir / "node.json"),
                "--admin-keystore", str(tmp_path / "admin.json")]  # fmt: skip
    assert main(register) == 0
    node = read_keystore(config.keystore, "node secret")
    info = Clients.bind(chain, Deployment.load(manifest)).consortium.node_info(node.address)
    assert info.status == NodeStatus.ACTIVE
    assert info.endpoint == "127.0.0.1:7101"
    assert info.tls_cert_sha256 == certificate_digest(config.tls_cert.read_bytes())
    head = chain.head()
    capsys.readouterr()
    assert main(register) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert chain.head() == head  # no transaction the second time


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    from ledger.ids import InvalidInput

    path = tmp_path / "node.json"
    path.write_text(json.dumps({"version": 1, "name": "x"}))
    with pytest.raises(InvalidInput, match=r"^config\.chain_url: missing"):
        NodeConfig.load(path)
