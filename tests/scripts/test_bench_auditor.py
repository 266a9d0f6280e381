"""The auditor benchmark runs at a tiny size and reports every figure (the verification
part, which first completes the demo's task with real nodes, is left to full runs: it
alone would take half a minute)."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest

from scripts.bench import auditor as bench
from scripts.bench.latency import percentile


def test_percentile_matches_numpy_linear_interpolation() -> None:
    rng = random.Random(7)
    for size in (1, 2, 5, 101, 1000):
        sample = [rng.random() for _ in range(size)]
        for q in (0, 50, 95, 99, 100):
            assert percentile(sample, q) == pytest.approx(float(np.percentile(sample, q)))
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


@pytest.mark.anvil
def test_quick_benchmark_reports_index_lag_and_trail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["scripts.bench.auditor", "--quick", "--only", "index", "--only", "lag"]
    monkeypatch.setattr(sys, "argv", [*argv, "--only", "trail"])
    bench.main()
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "auditor"
    assert {"python", "cpu", "cpu_count", "sqlalchemy", "alembic"} <= set(report["machine"])
    assert set(report["seconds"]) == {"index", "lag", "trail"}
    assert "verify" not in report

    index = report["index"]
    total = index["inputs"]["deployment_events"]
    assert total >= bench.QUICK_EVENTS  # the checkpoints plus the deployment's own events
    for side in ("get_logs", "web3_decode", "sqlite", "postgresql"):
        assert index[side]["events"] == total, side
        assert index[side]["events_per_s"] > 0
    for side in ("sqlite", "postgresql"):
        assert index[side]["blocks"] == index["inputs"]["blocks"]
        assert index[side]["over_get_logs"] > 0

    quick = bench.QUICK
    for side in ("sqlite", "postgresql"):
        lag = report["lag"][side]
        assert lag["sent"] == int(quick.lag_rate * quick.lag_seconds), lag
        assert lag["send_errors"] == 0, lag
        # What the chain holds of the load is exactly what the index holds.
        assert lag["included_on_chain"] == lag["indexed"] == lag["sent"], lag
        assert lag["index_complete"] is True, lag
        assert lag["lag_samples"] == lag["indexed"], lag  # every block seen and indexed
        assert 0 <= lag["lag_p50_s"] <= lag["lag_p95_s"] <= lag["lag_max_s"], lag

    for side in ("sqlite", "postgresql"):
        levels = report["trail"][side]
        assert list(levels) == [str(n) for n in quick.trail_levels]
        for level, figures in levels.items():
            assert figures["events"] >= int(level), figures
            assert figures["queries"] == quick.trail_queries, figures
            assert figures["wrong_lengths"] == 0, figures  # every trail as long as generated
            assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], figures
    for level in report["trail"]["sqlite"]:  # both databases got the same synthetic pages
        sqlite, postgresql = (report["trail"][side][level] for side in ("sqlite", "postgresql"))
        for count in ("events", "task_steps", "tasks", "blocks"):
            assert sqlite[count] == postgresql[count], (level, count)

    summary = report["summary"]
    assert summary["index_postgresql_events_per_s"]["target_at_least"] == 5_000
    assert summary["lag_postgresql_p95_s"]["target_below"] == 2.0
    top = max(quick.trail_levels)
    assert summary[f"trail_postgresql_p99_ms_at_{top}"]["target_below"] == 50.0
    assert all(isinstance(figure["met"], bool) for figure in summary.values())
