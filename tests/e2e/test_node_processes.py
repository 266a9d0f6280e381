"""Three node processes, a real anvil, gRPC over mutual TLS, a job created over REST.

The secure-statistics result fetched from the aggregator's API must equal the plaintext
computation over the providers' files, and every process must stop cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.algorithms import stats
from tests.e2e.cluster import PARAMS, Cluster, running_cluster


@pytest.fixture
def cluster(anvil_url: str, tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(anvil_url, tmp_path) as running:
        yield running


def test_stats_job_over_rest_completes_with_the_plaintext_result(cluster: Cluster) -> None:
    cluster.share_datasets()
    aggregator = cluster.nodes["bank-a"]
    with aggregator.api() as api:
        bad = api.post("/tasks", json={"requestId": "r", "algorithm": "secure-stats"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "params"
        unknown = api.get(f"/tasks/0x{'00' * 32}")
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "taskId"
        wrong_token = api.get("/tasks/0x" + "00" * 32, headers={"Authorization": "Bearer x"})
        assert wrong_token.status_code == 401
    task = cluster.create_task("job-1")
    status = cluster.wait_terminal(task)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with aggregator.api() as api:
        result = api.get(f"/tasks/{task}/result").json()["result"]
    expected = stats.plaintext_stats(stats.StatsParams.from_json(PARAMS), cluster.rows).to_json()
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.items() if k != "contributors"
    }
    assert sorted(result["contributors"]) == sorted(p["node"] for p in cluster.providers)
    for node in cluster.nodes.values():
        assert node.stop() == 0, node.log_path.read_text()[-2000:]
