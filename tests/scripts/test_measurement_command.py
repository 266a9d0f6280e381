"""`provnet measurement list|propose|revoke|vote` and `provnet node tee-key`: the CLI steps
a newcomer takes before an attested enclave job (`tee-join`) can run, found missing when
the only way to trust a measurement was a Python call to `propose_measurement`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.consortium import MeasurementStatus
from ledger.deployment import Deployment
from ledger.ids import hex32
from ledger.keys import new_account, write_keystore
from node.algorithms import tee
from node.algorithms.package import package_of
from node.config import NodeConfig
from node.tee.settings import TeeSettings, simulated_platform_key
from node.tee.simulated import simulated_measurement
from scripts.cli import main

PASSWORD = "correct horse"
MEASUREMENT = simulated_measurement(package_of(tee))
DIGEST = package_of(tee).digest


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def tee_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = [r for r in rows if r["measurement"] == hex32(MEASUREMENT)]
    return row


def test_propose_vote_trusts_then_revoke_vote_revokes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    anvil_url: str,
) -> None:
    monkeypatch.setenv("PROVNET_ADMIN_PASSWORD", PASSWORD)
    chain = Chain.connect(anvil_url)
    admins, members = {}, []
    for name in ("a", "b"):
        account = new_account()
        write_keystore(account, tmp_path / f"admin-{name}.json", PASSWORD)
        chain.fund(account.address, 10**20)
        admins[name] = ["--admin-keystore", str(tmp_path / f"admin-{name}.json")]
        members.append({"name": f"Bank {name}", "roles": "provider", "admin": account.address})
    genesis, manifest = tmp_path / "genesis.json", tmp_path / "manifest.json"
    genesis.write_text(
        json.dumps(
            {"thresholdPercent": 50, "minApprovals": 2, "timelockSeconds": 0, "members": members}
        )
    )
    code, _, err = run(
        capsys, "chain", "deploy", "--chain", anvil_url, "--dev-account",
        "--genesis", str(genesis), "--out", str(manifest),
    )  # fmt: skip
    assert code == 0, err
    source = ["--chain", anvil_url, "--manifest", str(manifest)]
    consortium = Clients.bind(chain, Deployment.load(manifest)).consortium

    # Before any vote: this build's measurement is listed, not on chain, labelled simulated.
    code, out, err = run(capsys, "measurement", "list", *source)
    assert code == 0, err
    row = tee_row(json.loads(out))
    assert (row["status"], row["thisBuild"], row["backend"]) == ("NONE", True, "simulated")
    assert row["algorithmDigest"] == hex32(DIGEST) and row["lastProposal"] is None
    assert row["algorithm"] == f"tee-join {tee.VERSION}"
    assert "no hardware isolation" in row["note"]
    assert "provnet measurement propose" in err and hex32(MEASUREMENT) in err

    # Bank A proposes (its vote counts); it cannot propose or vote twice.
    proposed = ok(
        capsys,
        "measurement",
        "propose",
        *source,
        *admins["a"],
        "tee-join",
        "--backend",
        "simulated",
    )
    proposal = proposed["proposal"]
    assert proposed["measurement"] == hex32(MEASUREMENT)
    assert proposed["algorithmDigest"] == hex32(DIGEST)
    assert (proposed["state"], proposed["votes"], proposed["requiredVotes"]) == ("VOTING", 1, 2)
    assert (proposed["status"], proposed["backend"], proposed["action"]) == (
        "NONE",
        "simulated",
        "trust",
    )
    assert "no hardware isolation" in proposed["note"]
    assert (
        f"another member's admin runs: provnet measurement vote --chain {anvil_url}"
        in (proposed["next"])
    )
    assert proposal in proposed["next"]
    # The algorithm itself was never approved: the answer says tasks need that too.
    assert proposed["algorithmStatus"] == "NONE" and "provnet algorithm propose" in proposed["next"]
    code, _, err = run(
        capsys,
        "measurement",
        "propose",
        *source,
        *admins["a"],
        "tee-join",
        "--backend",
        "simulated",
    )
    assert code == 2 and "already proposed" in err and proposal in err, err
    code, _, err = run(capsys, "measurement", "vote", *source, *admins["a"], proposal)
    assert code == 2 and "already voted" in err, err
    code, out, err = run(capsys, "measurement", "list", *source)
    row = tee_row(json.loads(out))
    assert (row["status"], row["lastProposal"]["proposal"], row["lastProposal"]["votes"]) == (
        "PROPOSED",
        proposal,
        1,
    )
    assert f"provnet measurement vote --chain {anvil_url}" in err and proposal in err
    assert not consortium.is_measurement_trusted(MEASUREMENT)

    # Bank B's vote carries it (dev chain: no timelock).
    voted = ok(capsys, "measurement", "vote", *source, *admins["b"], proposal)
    assert (voted["state"], voted["votes"], voted["status"]) == ("EXECUTED", 2, "TRUSTED")
    assert voted["next"].startswith("trusted: data owners accept enclaves with this measurement")
    assert '"tee": {"backend": "simulated"}' in voted["next"]
    assert voted["backend"] == "simulated" and "no hardware isolation" in voted["note"]
    assert voted["algorithm"] == f"tee-join {tee.VERSION}" and voted["thisBuild"] is True
    assert consortium.is_measurement_trusted(MEASUREMENT)
    row = tee_row(ok(capsys, "measurement", "list", *source))
    assert (row["status"], row["thisBuild"], row["algorithmDigest"]) == (
        "TRUSTED",
        True,
        hex32(DIGEST),
    )
    assert row["lastProposal"]["proposal"] == proposal
    assert row["lastProposal"]["state"] == "EXECUTED"
    code, out, _ = run(
        capsys,
        "measurement",
        "propose",
        *source,
        *admins["b"],
        "tee-join",
        "--backend",
        "simulated",
    )
    assert code == 0 and json.loads(out)["next"] == "already trusted; nothing to do"

    # Bank A proposes the revocation; Bank B votes naming the measurement, not the proposal.
    revoking = ok(capsys, "measurement", "revoke", *source, *admins["a"], hex32(MEASUREMENT))
    assert (revoking["action"], revoking["state"], revoking["status"]) == (
        "revoke",
        "VOTING",
        "TRUSTED",
    )
    assert revoking["proposal"] != proposal and revoking["algorithmDigest"] == hex32(DIGEST)
    revoked = ok(capsys, "measurement", "vote", *source, *admins["b"], hex32(MEASUREMENT))
    assert (revoked["proposal"], revoked["state"], revoked["status"]) == (
        revoking["proposal"],
        "EXECUTED",
        "REVOKED",
    )
    assert revoked["next"].startswith("revoked for good")
    assert consortium.measurement_info(MEASUREMENT).status == MeasurementStatus.REVOKED
    code, out, err = run(capsys, "measurement", "list", *source)
    row = tee_row(json.loads(out))
    assert code == 0 and row["status"] == "REVOKED" and row["thisBuild"] is True
    assert f"{hex32(MEASUREMENT)}, revoked for good: owners refuse it" in err

    # Revocation is final: proposing the same build again is refused, naming why.
    code, _, err = run(
        capsys,
        "measurement",
        "propose",
        *source,
        *admins["a"],
        "tee-join",
        "--backend",
        "simulated",
    )
    assert code == 2 and "revoked for good" in err, err
    code, _, err = run(capsys, "measurement", "revoke", *source, *admins["a"], "0x" + "ab" * 32)
    assert code == 2 and "not trusted, so there is nothing to revoke" in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "--backend", "simulated"], "this build has no TEE algorithm 'nope' (known: "),
        (["secure-stats", "--backend", "simulated"], "'secure-stats' is of kind MPC, not an"),
        (["tee-join"], "backend: name the enclave backend the measurement is for"),
        (["tee-join", "--backend", "sgx"], "cannot compute a measurement for 'sgx' (choices: "),
        ([], "name the TEE algorithm to propose, e.g. tee-join"),
    ],
)
def test_propose_refuses_what_it_cannot_measure_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Checked before any chain or keystore: the chain here does not even exist."""
    source = ["--chain", "http://127.0.0.1:9", "--manifest", str(tmp_path / "none.json")]
    admin = ["--admin-keystore", str(tmp_path / "none.json")]
    code, out, err = run(capsys, "measurement", "propose", *source, *admin, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert message in err, err
    if argv[:1] in (["nope"], ["secure-stats"]):
        assert "tee-join" in err
    if argv[:1] == ["tee-join"]:
        assert "simulated" in err


@pytest.mark.parametrize("verb", ["vote", "revoke"])
def test_vote_and_revoke_want_a_32_byte_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    source = ["--chain", "http://127.0.0.1:9", "--manifest", str(tmp_path / "none.json")]
    code, _, err = run(capsys, "measurement", verb, *source, "tee-join")
    assert code == 2 and "0x + 64 hex digits" in err, err


def node_config(tmp_path: Path, tee_settings: TeeSettings | None) -> tuple[Path, bytes]:
    """A node directory with a keystore and a node.json; returns the config and account key."""
    account = new_account()
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_keystore(account, tmp_path / "keystore.json", PASSWORD)
    config = NodeConfig(
        name="host", chain_url="http://127.0.0.1:9", manifest=tmp_path / "m.json",
        keystore=Path("keystore.json"), password_env="HOST_PW", tls_key=Path("k"),
        tls_cert=Path("c"), database_url="sqlite://", peer_listen="127.0.0.1:1",
        peer_endpoint="127.0.0.1:1", api_listen="127.0.0.1:2",
        api_token_file=Path("t"), data_dir=Path("d"), tee=tee_settings,
    )  # fmt: skip
    config.save(tmp_path / "node.json")
    return tmp_path / "node.json", bytes(account.key)


def test_tee_key_prints_the_platform_key_derived_from_the_keystore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_PW", PASSWORD)
    config, account_key = node_config(tmp_path, TeeSettings(backend="simulated"))
    shown = ok(capsys, "node", "tee-key", "--config", str(config))
    expected = simulated_platform_key(account_key).public_key()
    key = expected.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    assert shown["platformKey"] == key and len(key) == 64
    assert shown["backend"] == "simulated" and "no hardware isolation" in shown["note"]
    assert "tee.simulated_platform_keys" in shown["next"]
    # The snippet in `next` is what an owner pastes: it parses, and trusts exactly this key.
    snippet = json.loads(shown["next"][shown["next"].index("{") : shown["next"].rindex("}") + 1])
    owner = TeeSettings.from_json(snippet["tee"], "tee")
    assert owner.allowed_backends == ("simulated",)
    assert owner.simulated_platform_keys == (bytes.fromhex(key),)
    # Another node's account gives another key.
    other, _ = node_config(tmp_path / "other", TeeSettings(backend="simulated"))
    assert ok(capsys, "node", "tee-key", "--config", str(other))["platformKey"] != key


@pytest.mark.parametrize(
    "tee_settings",
    [None, TeeSettings(allowed_backends=("simulated",), simulated_platform_keys=(b"\1" * 32,))],
)
def test_tee_key_without_a_tee_backend_says_what_to_add(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tee_settings: TeeSettings | None,
) -> None:
    """An owner-only node (or one with no `tee` at all) hosts no enclave: no key to show."""
    monkeypatch.setenv("HOST_PW", PASSWORD)
    config, _ = node_config(tmp_path, tee_settings)
    code, out, err = run(capsys, "node", "tee-key", "--config", str(config))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("provnet: error: tee.backend: ")
    assert '"tee": {"backend": "simulated"}' in err
