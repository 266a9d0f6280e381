"""`make demo` runs the real thing: a secure-statistics task and a PSI job between the
banks' own nodes (built by `node.process.build_node`, over gRPC and mutual TLS) on
anvil, whose figures equal the plaintext ones over the pooled CSV rows and which the
auditor verifies; and a forged transcript or disclosed parameter does not verify."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from ledger.canonical import digest
from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.errors import custom_error
from ledger.ids import InvalidInput, name_id
from ledger.task_params import ParamsEnvelope
from node.algorithms import stats
from node.algorithms.package import package_of
from scripts.demo import (
    PARAMS,
    PROVIDERS,
    ROWS_PER_PROVIDER,
    ScenarioResult,
    audit,
    run_scenario,
    write_accounts,
)
from tests.anvil import running_anvil

EXPECTED_CHECKS = [
    "deployment_bytecode",
    "deployment_origin",
    "deployment_links",
    "task_created",
    "lifecycle_order",
    "membership_active",
    "algorithm_approved_at_start",
    "grants_valid_and_metered",
    "input_commitments_match_datasets",
    "result_digests_agree",
    "failure_reporter_authorised",
    "evidence_roots_match",
    "transcripts_agree_pairwise",
    "transcript_io_matches_chain",
    "anchor_log_consistent",
    "params_commitment",
]


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Chain, ScenarioResult]]:
    """One run of the demo's scenario (its nodes are stopped when it returns)."""
    with running_anvil() as url:
        chain = Chain.connect(url)
        yield chain, run_scenario(chain, lambda _: None)


def assert_verified(report: dict[str, Any]) -> None:
    checks = report["checks"]
    assert [c["name"] for c in checks] == EXPECTED_CHECKS
    assert [c for c in checks if not c["passed"]] == []
    # Every check has evidence to judge in a completed task, except the failure reporter.
    skipped = {c["name"] for c in checks if c["status"] == "not-applicable"}
    assert skipped == {"failure_reporter_authorised"}, checks
    assert report["state"] == "COMPLETED"
    assert report["secureEqualsPlaintext"] is True
    assert report["verified"] is True


def test_the_secure_task_between_the_nodes_verifies(demo: tuple[Chain, ScenarioResult]) -> None:
    chain, scenario = demo
    report = scenario.report
    assert_verified(report)
    assert report["algorithm"]["name"] == stats.NAME  # the real algorithm, approved by vote
    assert report["algorithm"]["digest"] == "0x" + package_of(stats).digest.hex()
    # every provider bank's node and the consumer's took part, each with its transcript
    assert len(report["providers"]) == len(PROVIDERS)
    assert set(scenario.transcripts) == {*report["providers"], scenario.nodes["Bank A"].account}
    pairwise = next(c for c in report["checks"] if c["name"] == "transcripts_agree_pairwise")
    assert pairwise["evidence"]["messages"] > 3 * len(PROVIDERS)
    assert chain.chain_id == 31337


def test_the_secure_figures_equal_a_plaintext_count_over_the_pooled_rows(
    demo: tuple[Chain, ScenarioResult], tmp_path: Path
) -> None:
    """Recomputed here by hand from the same generated rows, not by the stats module."""
    _, scenario = demo
    rows = [
        row
        for seed in range(1, len(PROVIDERS) + 1)
        for row in write_accounts(tmp_path / f"{seed}.csv", seed, ROWS_PER_PROVIDER)
    ]
    balances = [int(r["balance_cents"]) for r in rows]
    count, total = len(balances), sum(balances)
    mean = Fraction(total, count)
    variance = Fraction(sum(b * b for b in balances), count) - mean * mean
    segments = Counter(str(r["segment"]) for r in rows)
    secure = scenario.report["secure"]
    assert secure["count"] == count == len(PROVIDERS) * ROWS_PER_PROVIDER
    assert int(secure["sum"]) == total
    assert Fraction(int(secure["mean"]["numerator"]), int(secure["mean"]["denominator"])) == mean
    assert (
        Fraction(int(secure["variance"]["numerator"]), int(secure["variance"]["denominator"]))
        == variance
    )
    cells = {("other" if c["other"] else c["category"]): c["count"] for c in secure["histogram"]}
    named = PARAMS["categories"]
    assert cells == {
        **{s: segments[s] for s in named},
        "other": sum(n for s, n in segments.items() if s not in named),
    }
    assert sorted(secure["contributors"]) == sorted(scenario.report["providers"])


def test_a_forged_transcript_or_parameter_does_not_verify(
    demo: tuple[Chain, ScenarioResult],
) -> None:
    chain, scenario = demo
    task_id = bytes.fromhex(scenario.report["task"][2:])

    def failed(transcripts: dict[str, Any], params: ParamsEnvelope | None) -> set[str]:
        checks = audit(chain, scenario.deployment, task_id, transcripts, params)
        return {c.name for c in checks if not c.passed}

    assert scenario.params is not None
    assert failed(scenario.transcripts, scenario.params) == set()

    # One message digest rewritten in one node's evidence: it no longer hashes to the
    # root that node anchored, and its peer's record of that message disagrees.
    node, entries = next(iter(scenario.transcripts.items()))
    forged_at = next(i for i, e in enumerate(entries) if e.peer)
    entry = entries[forged_at]
    forged = [*entries]
    forged[forged_at] = dataclasses.replace(entry, digest=digest("test", b"forged"))
    tampered = {**scenario.transcripts, node: forged}
    assert {"evidence_roots_match", "transcripts_agree_pairwise"} <= failed(
        tampered, scenario.params
    )

    # Parameters other than the ones committed on chain (same salt, another query).
    other = ParamsEnvelope({**scenario.params.params, "value_column": None}, scenario.params.salt)
    assert failed(scenario.transcripts, other) == {"params_commitment"}


def test_custom_errors_decode_on_anvil(demo: tuple[Chain, ScenarioResult]) -> None:
    """The same custom errors, with the same decoded arguments, as on eth-tester."""
    _, scenario = demo
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


def test_the_scenario_refuses_a_chain_its_nodes_cannot_reach() -> None:
    chain = Chain.start_embedded()
    head = chain.head()
    with pytest.raises(InvalidInput, match=r"^chain: "):
        run_scenario(chain, lambda _: None)
    assert chain.head() == head  # nothing deployed


def test_provnet_demo_json() -> None:
    """What `make demo` runs, as a newcomer would: one JSON object, verified, exit 0."""
    out = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert_verified(report)
    figures = {k: v for k, v in report["secure"].items() if k != "contributors"}
    assert figures == {k: v for k, v in report["plaintext"].items() if k != "contributors"}
    assert "Handshake failed" not in out.stderr  # gRPC core kept quiet, as for node processes
    # It ends with the auditor service: indexed, verified through its API (the regulator's
    # node fetched the evidence), the task's page address and the signed report's digest.
    auditor = report["auditor"]
    assert auditor["verified"] is True and auditor["failedChecks"] == []
    assert auditor["evidenceProblems"] == {}
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/tasks/" + report["task"], auditor["page"])
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", auditor["reportDigest"])
    assert auditor["queryLogCheckpoint"]["treeSize"] >= 1  # the regulator's query, anchored


def test_the_psi_job_equals_python_sets_and_verifies(
    demo: tuple[Chain, ScenarioResult], tmp_path: Path
) -> None:
    """The demo's PSI job: Bank A's count and sum of Bank B's exposures over the shared
    customers equal Python sets over the same generated files, and the task verifies."""
    from scripts.demo_psi import plaintext_answer, write_customers

    _, scenario = demo
    job = scenario.report["psi"]
    assert job["state"] == "COMPLETED"
    a_rows, b_rows = write_customers(tmp_path / "a.csv", tmp_path / "b.csv")
    expected = plaintext_answer(a_rows, b_rows)
    assert job["secure"]["cardinality"] == expected["cardinality"] > 0
    assert job["secure"]["sum"] == expected["sum"]
    assert job["secure"]["suppressed"] is False and job["secure"]["intersection"] is None
    statuses = {c["name"]: c["status"] for c in job["checks"]}
    assert [c["name"] for c in job["checks"]] == EXPECTED_CHECKS
    assert statuses["transcripts_agree_pairwise"] == "pass"
    assert statuses["params_commitment"] == "pass"
    assert job["verified"] is True and scenario.report["verified"] is True
