"""A completed multi-party task, built once per session for the verifier and report
tests (see `verify_scenario`)."""

from __future__ import annotations

import pytest

from tests.auditor.verify_scenario import Completed, complete_a_task


@pytest.fixture(scope="session")
def completed_task(tmp_path_factory: pytest.TempPathFactory) -> Completed:
    return complete_a_task(tmp_path_factory.mktemp("completed-task"))
