"""Material shared by the auditor's tests.

``completed_task``: a completed multi-party task on eth-tester, built once per session
for the verifier and report tests (see `verify_scenario`).

``service_scenario``: a task completed by real nodes on anvil whose evidence the
regulator's node fetches over gRPC + mutual TLS, and the chain's index (see
`service_scenario`), for the service and browser tests. Package-scoped, not
session-scoped: the suite runs under xdist ``--dist loadgroup`` and tests/conftest.py
groups the tests sharing a package fixture onto one worker, so it is built once; a
session fixture would be built again on every worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auditor.service_scenario import Scenario, build_scenario
from tests.auditor.verify_scenario import Completed, complete_a_task


@pytest.fixture(scope="session")
def completed_task(tmp_path_factory: pytest.TempPathFactory) -> Completed:
    return complete_a_task(tmp_path_factory.mktemp("completed-task"))


@pytest.fixture(scope="package")
def service_scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with build_scenario(tmp_path_factory.mktemp("service-scenario")) as scenario:
        yield scenario
