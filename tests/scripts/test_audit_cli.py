"""`provnet audit verify` and `provnet task show` against a real anvil deployment."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from eth_typing import HexStr

from ledger.canonical import digest
from ledger.chain import Chain
from ledger.deployment import Deployment
from scripts.cli import main
from scripts.demo import ScenarioResult, run_scenario
from tests.conftest import build_consortium


def _files(tmp_path: Path, scenario: ScenarioResult) -> tuple[Path, Path]:
    manifest = tmp_path / "manifest.json"
    Deployment.from_json(scenario.report["deployment"]).save(manifest)
    transcripts = tmp_path / "transcripts"
    transcripts.mkdir()
    for node, entries in scenario.transcripts.items():
        (transcripts / f"{node}.json").write_text(json.dumps([e.to_json() for e in entries]))
    return manifest, transcripts


def test_verify_show_and_tamper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_url: str
) -> None:
    scenario = run_scenario(Chain.connect(anvil_url), lambda _: None)
    manifest, transcripts = _files(tmp_path, scenario)
    task = scenario.report["task"]
    common = ["--chain", anvil_url, "--manifest", str(manifest), task]

    assert main(["audit", "verify", "--transcripts", str(transcripts), *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and len(report["checks"]) == 16
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["deployment_bytecode", "deployment_origin", "deployment_links"]
    assert "failure_reporter_authorised" in names

    assert main(["task", "show", *common]) == 0
    shown = json.loads(capsys.readouterr().out)
    # the consumer's node (the aggregator) and the three provider banks' nodes
    assert shown["state"] == "COMPLETED" and len(shown["participants"]) == 4

    # Without transcripts neither the evidence nor the nodes' messages can be checked.
    assert main(["audit", "verify", *common]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert failed == {"evidence_roots_match", "transcripts_agree_pairwise"}

    # A tampered transcript no longer hashes to its anchored root.
    node, entries = next(iter(scenario.transcripts.items()))
    forged = [dataclasses.replace(entries[0], digest=digest("test", b"forged")), *entries[1:]]
    (transcripts / f"{node}.json").write_text(json.dumps([e.to_json() for e in forged]))
    assert main(["audit", "verify", "--transcripts", str(transcripts), *common]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in report["checks"] if not c["passed"]} == {"evidence_roots_match"}


def test_the_manifest_is_bound_to_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_url: str
) -> None:
    """The deployment checks pass on a real deployment; a manifest pointing at a
    look-alike (a second copy of the Consortium: same code, same constructor arguments,
    which the other contracts do not point at) fails them, naming the contract."""
    consortium = build_consortium(Chain.connect(anvil_url))
    chain, manifest = consortium.chain, tmp_path / "manifest.json"
    consortium.deployment.save(manifest)
    argv = ["audit", "verify", "--chain", anvil_url, "--manifest", str(manifest), "0x" + "ab" * 32]

    def deployment_checks() -> dict[str, dict[str, Any]]:
        assert main(argv) == 1  # the task does not exist: its own checks fail
        report = json.loads(capsys.readouterr().out)
        return {c["name"]: c for c in report["checks"] if c["name"].startswith("deployment_")}

    checks = deployment_checks()
    assert list(checks) == ["deployment_bytecode", "deployment_origin", "deployment_links"]
    assert all(c["passed"] for c in checks.values()), checks

    original = consortium.deployment.contracts["Consortium"]
    data = chain.w3.eth.get_transaction(HexStr(original.transaction))["input"]
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_transaction({"from": chain.w3.eth.accounts[0], "data": data})
    )
    look_alike = consortium.deployment.to_json()
    look_alike["contracts"]["Consortium"].update(
        address=receipt["contractAddress"],
        block=receipt["blockNumber"],
        transaction="0x" + bytes(receipt["transactionHash"]).hex(),
    )
    manifest.write_text(json.dumps(look_alike))
    checks = deployment_checks()
    assert checks["deployment_bytecode"]["passed"]
    assert not checks["deployment_links"]["passed"]
    assert (
        f"the manifest's Consortium is {receipt['contractAddress']}"
        in (checks["deployment_links"]["detail"])
    )
    assert not checks["deployment_origin"]["passed"]  # not sent by the manifest's deployer
    assert checks["deployment_origin"]["detail"].startswith("Consortium (transaction ")


def test_bad_ids_manifests_and_transcripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.json"
    good_id = "0x" + "ab" * 32
    url = "http://127.0.0.1:9"  # never contacted: input is rejected first
    cases = [
        (["task", "show", "--chain", url, "--manifest", str(manifest), "0x1234"], "task: "),
        (["task", "show", "--chain", url, "--manifest", str(manifest), good_id], "manifest: "),
    ]
    manifest_bad = tmp_path / "bad.json"
    manifest_bad.write_text(json.dumps({"version": 1, "chainId": -1}))
    cases.append(
        (["task", "show", "--chain", url, "--manifest", str(manifest_bad), good_id], "chainId: ")
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0xabc.json").write_text('[{"seq": 0}]')
    cases.append(
        (
            ["audit", "verify", "--transcripts", str(broken), "--chain", url,
             "--manifest", str(manifest), good_id],
            "transcripts/0xabc.json: ",
        )
    )  # fmt: skip
    for argv, field in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"provnet: error: {field}") and err.count("\n") == 1, err


def test_a_manifest_for_another_chain_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anvil_url: str
) -> None:
    manifest = tmp_path / "manifest.json"
    build_consortium(Chain.start_embedded()).deployment.save(manifest)
    task = "0x" + "ab" * 32
    assert main(["task", "show", "--chain", anvil_url, "--manifest", str(manifest), task]) == 2
    err = capsys.readouterr().err
    assert err.startswith("provnet: error: chainId: manifest is for chain ")
