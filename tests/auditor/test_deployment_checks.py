"""The auditor reports the deployment binding as named checks, ahead of the task's own."""

from __future__ import annotations

import dataclasses

from auditor.replay import deployment_checks
from auditor.verifier import Check, TaskHistory, verify_task
from tests.conftest import Consortium

NAMES = ["deployment_bytecode", "deployment_origin", "deployment_links"]


def test_the_deployment_checks_pass_on_the_real_deployment(consortium: Consortium) -> None:
    checks = deployment_checks(consortium.chain, consortium.deployment)
    assert [c.name for c in checks] == NAMES
    assert all(isinstance(c, Check) and c.passed for c in checks), [c.detail for c in checks]
    assert all(c.evidence["block"] == consortium.chain.head() for c in checks)
    # Read behind a confirmation depth, at the same head the events are read up to.
    behind = deployment_checks(consortium.chain, consortium.deployment, confirmations=1)
    assert behind[0].evidence["block"] == consortium.chain.head() - 1


def test_a_swapped_address_fails_and_is_reported_first(consortium: Consortium) -> None:
    d = consortium.deployment
    swapped = dataclasses.replace(
        d,
        contracts={
            **d.contracts,
            "AlgorithmRegistry": d.contracts["DatasetRegistry"],
            "DatasetRegistry": d.contracts["AlgorithmRegistry"],
        },
    )
    checks = deployment_checks(consortium.chain, swapped)
    failed = {c.name: c.detail for c in checks if not c.passed}
    assert set(failed) == set(NAMES)
    assert "AlgorithmRegistry at " in failed["deployment_bytecode"]
    assert "TaskRegistry.algorithms() is " in failed["deployment_links"]
    report = verify_task(TaskHistory(b"\x01" * 32, [], {}), {}, deployment=checks)
    assert [c.name for c in report[:3]] == NAMES
