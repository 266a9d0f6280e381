"""`provnet audit fetch` against real node processes on anvil.

The regulator's node asks every participant (read from the chain) for its transcript
with signed evidence requests over mutual TLS; what it writes must be byte for byte what
each node holds in its own evidence database, and `provnet audit verify` must verify the
task from those files. A node of a non-regulator organisation is refused before anything
is written, as are an unknown task and a directory holding another node's transcript.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.cli import main
from tests.e2e.cluster import running_cluster


def test_the_regulator_fetches_every_transcript_and_the_task_verifies(
    anvil_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_cluster(anvil_url, tmp_path) as cluster:
        cluster.share_datasets()
        task = cluster.create_task("audited")
        assert cluster.wait_terminal(task)["state"] == "COMPLETED", cluster.logs()
        regulator = str(cluster.nodes["regulator"].config_path)
        out = tmp_path / "fetched"
        capsys.readouterr()

        # A bank's node is no regulator: refused up front, nothing written.
        bank_b = str(cluster.nodes["bank-b"].config_path)
        assert main(["audit", "fetch", "--config", bank_b, task, "--out", str(out)]) == 2
        assert "lacks the REGULATOR role" in capsys.readouterr().err
        assert not out.exists()

        unknown = "0x" + "11" * 32
        assert main(["audit", "fetch", "--config", regulator, unknown, "--out", str(out)]) == 2
        assert f"no such task on chain: {unknown}" in capsys.readouterr().err
        assert not out.exists()

        # A directory with another node's transcript would be judged with this task's.
        stale = tmp_path / "stale"
        stale.mkdir()
        (stale / f"0x{'ab' * 20}.json").write_text("[]")
        assert main(["audit", "fetch", "--config", regulator, task, "--out", str(stale)]) == 2
        assert "not a participant of this task" in capsys.readouterr().err
        assert sorted(p.name for p in stale.iterdir()) == [f"0x{'ab' * 20}.json"]

        assert main(["audit", "fetch", "--config", regulator, task, "--out", str(out)]) == 0
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert report["failed"] == [] and report["state"] == "COMPLETED"
        assert f"provnet audit verify --chain {anvil_url}" in captured.err
        addresses = sorted(node.address for node in cluster.nodes.values())
        assert sorted(t["node"] for t in report["transcripts"]) == addresses
        assert all(t["consistent"] and t["entries"] > 0 for t in report["transcripts"])
        assert sorted(p.stem for p in out.glob("*.json")) == addresses

        # What was fetched is what each node holds, read from its own database.
        cluster.wait_settled(task)
        direct = cluster.dump_transcripts(task, tmp_path / "direct")
        for address in addresses:
            fetched = json.loads((out / f"{address}.json").read_text())
            assert fetched == json.loads((direct / f"{address}.json").read_text()), address

        with cluster.nodes["bank-a"].api() as api:
            answer = api.get(f"/tasks/{task}/result").json()
        (tmp_path / "result.json").write_text(json.dumps(answer))
        code, verdict = cluster.audit(
            task, "--transcripts", str(out), "--params", str(tmp_path / "result.json")
        )
        assert code == 0 and verdict["verified"], verdict
