"""The consortium scenario end to end: on eth-tester, on a real anvil, and via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.errors import custom_error
from ledger.ids import name_id
from scripts.demo import ScenarioResult, run_scenario

EXPECTED_CHECKS = {
    "task_created",
    "lifecycle_order",
    "membership_active",
    "algorithm_approved_at_start",
    "grants_valid_and_metered",
    "input_commitments_match_datasets",
    "result_digests_agree",
    "evidence_roots_match",
    "transcripts_agree_pairwise",
    "failure_reporter_authorised",
}


def assert_verified(report: dict[str, object]) -> None:
    checks = report["checks"]
    assert isinstance(checks, list)
    assert {c["name"] for c in checks} == EXPECTED_CHECKS
    failed = [c for c in checks if not c["passed"]]
    assert failed == []
    assert report["verified"] is True
    assert report["state"] == "COMPLETED"


def assert_reverts_decode(scenario: ScenarioResult) -> None:
    """The same custom errors, with the same decoded arguments, on every backend."""
    task_id = bytes.fromhex(scenario.report["task"][2:])
    bank_a = scenario.nodes["Bank A"]
    with pytest.raises(custom_error("InvalidTaskState")) as exc:
        bank_a.tasks.accept(task_id)
    assert exc.value.arguments == {
        "taskId": task_id,
        "expected": int(TaskState.CREATED),
        "actual": int(TaskState.COMPLETED),
    }
    bank_a.anchors.create_log(name_id("log", "decode"), 5, name_id("root", "5"))
    log_id = bank_a.anchors.own_log_id(name_id("log", "decode"))
    with pytest.raises(custom_error("TreeSizeNotIncreasing")) as exc:
        bank_a.anchors.checkpoint(log_id, 5, name_id("root", "5b"))
    assert exc.value.arguments == {"logId": log_id, "previous": 5, "given": 5}
    assert bank_a.anchors.latest(log_id) == (5, name_id("root", "5"))


def test_scenario_on_eth_tester() -> None:
    scenario = run_scenario(Chain.start_embedded(), lambda _: None)
    assert_verified(scenario.report)
    assert_reverts_decode(scenario)


def test_scenario_on_anvil(anvil_url: str) -> None:
    chain = Chain.connect(anvil_url)
    assert chain.chain_id == 31337
    scenario = run_scenario(chain, lambda _: None)
    assert_verified(scenario.report)
    assert_reverts_decode(scenario)


def test_cli_demo_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    assert_verified(report)
    assert report["algorithm"]["placeholder"] is True
