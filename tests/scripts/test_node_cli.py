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


def test_node_run_refuses_a_manifest_bound_to_another_deployment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    anvil_url: str,
) -> None:
    """A TaskRegistry address from another deployment, or AnchorLog's, used to run with no
    warning and log an error every second; now the node refuses to start, naming it."""
    from ledger.deployment import ManifestError
    from node.process import build_node

    monkeypatch.setenv("PROVNET_KEY_PASSWORD", "node secret")
    monkeypatch.setenv("PROVNET_ADMIN_PASSWORD", "admin secret")
    assert main(["key", "new", "--out", str(tmp_path / "admin.json"),
                 "--password-env", "PROVNET_ADMIN_PASSWORD"]) == 0  # fmt: skip
    genesis = tmp_path / "genesis.json"
    member = f"Bank A:provider,consumer:{tmp_path / 'admin.json'}"
    assert main(["consortium", "init", "--out", str(genesis), "--dev", "--threshold", "50",
                 "--member", member]) == 0  # fmt: skip
    assert main(["chain", "fund", "--chain", anvil_url, str(tmp_path / "admin.json")]) == 0
    manifests = [tmp_path / "manifest.json", tmp_path / "other.json"]
    for manifest in manifests:
        assert main(["chain", "deploy", "--chain", anvil_url, "--dev-account",
                     "--genesis", str(genesis), "--out", str(manifest)]) == 0  # fmt: skip
    node_dir = tmp_path / "bank-a"
    assert main(["node", "init", "--dir", str(node_dir), "--name", "Bank A",
                 "--chain", anvil_url, "--manifest", str(manifests[0]),
                 "--peer-listen", "127.0.0.1:7102"]) == 0  # fmt: skip
    assert main(["node", "register", "--config", str(node_dir / "node.json"),
                 "--admin-keystore", str(tmp_path / "admin.json")]) == 0  # fmt: skip
    config = NodeConfig.load(node_dir / "node.json")
    build_node(config)  # the genuine manifest is bound: no error

    good = json.loads(manifests[0].read_text())
    other = json.loads(manifests[1].read_text())
    for label, address in (
        ("another deployment's TaskRegistry", other["contracts"]["TaskRegistry"]["address"]),
        ("the AnchorLog", good["contracts"]["AnchorLog"]["address"]),
    ):
        tampered = json.loads(json.dumps(good))
        tampered["contracts"]["TaskRegistry"]["address"] = address
        manifests[0].write_text(json.dumps(tampered))
        with pytest.raises(ManifestError, match="TaskRegistry") as caught:
            build_node(config)
        assert caught.value.field.startswith("deployment_"), label
        capsys.readouterr()
        code = main(["node", "run", "--config", str(node_dir / "node.json")])
        err = capsys.readouterr().err
        assert code != 0 and err.count("\n") == 1 and "TaskRegistry" in err, (label, err)
        assert err.startswith("provnet: error: deployment_"), err
