"""The auditor indexing benchmark runs at a tiny size and reports every figure."""

from __future__ import annotations

import json
import sys

import pytest

from scripts.bench import auditor as bench

pytestmark = pytest.mark.anvil


def test_quick_benchmark_indexes_every_event_it_made(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["scripts.bench.auditor", "--quick"])
    bench.main()
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "auditor-index"
    assert {"python", "cpu", "cpu_count", "sqlalchemy", "alembic"} <= set(report["machine"])
    total = report["inputs"]["deployment_events"]
    assert total >= bench.QUICK_EVENTS  # the checkpoints plus the deployment's own events
    for side in ("get_logs", "web3_decode", "sqlite", "postgresql"):
        assert report[side]["events"] == total, side
        assert report[side]["events_per_s"] > 0
    for side in ("sqlite", "postgresql"):
        assert report[side]["blocks"] == report["inputs"]["blocks"]
        assert report[side]["over_get_logs"] > 0
