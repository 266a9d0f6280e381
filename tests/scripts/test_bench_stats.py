"""The secure-statistics benchmark runs and reports its figures (no timing asserted)."""

from __future__ import annotations

import json
import sys

import pytest

from scripts.bench import stats as bench


def test_quick_benchmark_reports_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["scripts.bench.stats", "--quick"])
    bench.main()
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "secure-stats"
    assert {"python", "cpu", "cpu_count", "platform"} <= set(report["machine"])
    runs = report["runs"]
    assert [(r["parties"], r["rows_per_party"]) for r in runs] == [
        (p, n) for p in bench.QUICK["parties"] for n in bench.QUICK["rows"]
    ]
    for run in runs:
        assert run["results_equal"] is True
        assert run["total_rows"] == run["parties"] * run["rows_per_party"]
        assert run["columnar_agrees"] is True
        assert run["secure_over_columnar_seconds"] > 0
        for side in ("secure", "plaintext", "columnar"):
            assert set(run[side]) == {"seconds", "rows_per_s"}
        assert "plaintext_over_secure" in run
        per_party = run["wire"]["per_party_bytes"]
        assert set(per_party) == {f"provider-{i + 1}" for i in range(run["parties"])} | {
            bench.AGGREGATOR
        }
        assert all(v["sent"] > 0 and v["received"] > 0 for v in per_party.values())
        assert sum(v["sent"] for v in per_party.values()) == run["wire"]["total_bytes"]
        assert run["result"]["algorithm"] == "secure-stats"
