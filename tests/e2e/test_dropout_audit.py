"""`provnet audit verify` after threshold runs and dropouts, between real node processes.

Found by a newcomer: with three or more providers the secure sum finishes once a
threshold of providers answered, so some messages are delivered but never read by the
protocol; the receivers did not record them and `transcripts_agree_pairwise` failed
every healthy run ("... recorded by only one side"). The e2e tests used two providers
and never saw it. Here one anvil and six node processes (bank-a and five provider banks)
run healthy tasks with three and five providers and tasks with one provider SIGKILLed
mid-protocol; every one must verify, and the dropout's report must name the provider
that went away.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.algorithms import output_policy, stats
from node.runner import CRASH_ENV
from tests.e2e.cluster import PARAMS, Cluster, running_cluster

PROVIDERS = 5
# No row filter: a filter that excludes fewer rows than the policy's minimum group size
# is refused (GROUP_TOO_SMALL), and which rows it excludes depends on each bank's data.
QUERY = {k: v for k, v in PARAMS.items() if k != "filter"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("dropout")
    # A generous protocol timeout: a killed provider is restarted (and fails the task)
    # long before any peer gives up waiting on it, even on a loaded machine.
    with (
        running_anvil() as url,
        running_cluster(url, tmp, protocol_timeout=120, providers=PROVIDERS) as running,
    ):
        running.share_datasets(rows_each=60, max_uses=10)
        yield running


def _audit(cluster: Cluster, task: str, where: Path) -> tuple[int, dict[str, Any]]:
    cluster.wait_settled(task)
    transcripts = cluster.dump_transcripts(task, where)
    return cluster.audit(task, "--transcripts", str(transcripts))


def _failed(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if not c["passed"]]


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def _late(transcripts: Path) -> int:
    return sum(p.read_text().count('"received-late"') for p in transcripts.glob("*.json"))


@pytest.mark.parametrize("providers", [3, 5])
def test_a_healthy_threshold_run_verifies(cluster: Cluster, tmp_path: Path, providers: int) -> None:
    chosen = cluster.providers[:providers]
    task = cluster.create_task(f"healthy-{providers}", params=QUERY, providers=chosen)
    status = cluster.wait_terminal(task)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with cluster.nodes["bank-a"].api() as api:
        result = api.get(f"/tasks/{task}/result").json()["result"]
    names = cluster.provider_names[:providers]
    rows = [r for i, name in enumerate(names) for r in cluster.rows[i * 60 : (i + 1) * 60]]
    assert len(rows) == 60 * providers
    expected = stats.plaintext_stats(
        stats.StatsParams.from_json(QUERY), rows, output_policy.effective([2])
    ).to_json()
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.items() if k != "contributors"
    }

    code, report = _audit(cluster, task, tmp_path / "transcripts")
    agree = _check(report, "transcripts_agree_pairwise")
    assert code == 0 and report["verified"], _failed(report)
    assert agree["passed"] and agree["evidence"]["messages"] > 0, agree
    assert agree["evidence"]["wentAway"] == [], agree
    # Whatever the protocol left unread is on record as delivered late, and counted.
    assert agree["evidence"]["deliveredLate"] == _late(tmp_path / "transcripts"), agree


@pytest.mark.parametrize("providers", [3, 5])
def test_a_provider_killed_mid_protocol_is_named_and_the_task_verifies(
    cluster: Cluster, tmp_path: Path, providers: int
) -> None:
    victim = cluster.nodes[cluster.provider_names[1]]
    victim.stop()
    victim.start({CRASH_ENV: "send:masked-input"})
    task = cluster.create_task(
        f"killed-{providers}", params=QUERY, providers=cluster.providers[:providers]
    )
    assert victim.process is not None
    code = victim.process.wait(timeout=120)
    assert code == -signal.SIGKILL, (code, victim.log_path.read_text()[-3000:])
    victim.process = None
    victim.start()  # its recovery fails the task at once instead of peers timing out

    status = cluster.wait_terminal(task, timeout=180)
    assert status["state"] == "FAILED", (status, cluster.logs())
    code, report = _audit(cluster, task, tmp_path / "transcripts")
    agree = _check(report, "transcripts_agree_pairwise")
    assert code == 0 and report["verified"], _failed(report)
    assert report["outcome"]["state"] == "FAILED", report["outcome"]
    assert agree["passed"], agree
    assert agree["evidence"]["wentAway"] == [victim.address], agree
    assert victim.address in agree["detail"], agree
    # Killed right after its masked input reached the aggregator, before recording it.
    assert agree["evidence"]["unconfirmed"] + agree["evidence"]["undelivered"] >= 1, agree


def test_verify_refuses_a_task_the_chain_does_not_know(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts.cli import main

    unknown = "0x" + "ab" * 32
    code = main(["audit", "verify", "--chain", cluster.chain.url,
                 "--manifest", str(cluster.tmp / "manifest.json"), unknown])  # fmt: skip
    captured = capsys.readouterr()
    assert code != 0
    assert f"no such task on chain: {unknown}" in captured.err, captured.err
