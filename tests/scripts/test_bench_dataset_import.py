"""The dataset-import benchmark runs, reports its figures, and its import's commitment
equals the row-wise reference (no timing asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scripts.bench import dataset_import as bench


def test_quick_benchmark_reports_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["scripts.bench.dataset_import", "--quick"])
    bench.main()
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "dataset-import"
    assert {"python", "cpu", "cpu_count", "usable_cpus", "pyarrow", "numpy"} <= set(
        report["machine"]
    )
    assert report["inputs"]["rows"] == bench.QUICK_ROWS
    assert report["inputs"]["columns"] == bench.COLUMNS
    (run,) = report["runs"]
    assert run["rows"] == bench.QUICK_ROWS[0] and run["file_bytes"] > 0
    imported, read, reference = run["import"], run["read_csv"], run["row_wise_reference"]
    assert {"seconds", "rows_per_s", "peak_rss_mib", "workers", "workers_peak_rss_mib"} <= set(
        imported
    )
    assert imported["seconds"] > 0 and imported["peak_rss_mib"] > 0
    assert imported["total_peak_rss_mib_bound"] >= imported["peak_rss_mib"]
    assert len(bytes.fromhex(imported["root"])) == 32
    assert set(read) == {"seconds", "rows_per_s", "peak_rss_mib"}
    # The whole file went through the reference, under the same key: same root.
    assert reference["rows"] == run["rows"]
    assert reference["root_equals_new_path"] is True
    assert run["import_over_read_csv"] > 0 and run["reference_over_import"] > 0


def test_generated_files_have_no_quotes_and_the_promised_shape(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    bench.write_csv(path, 5, seed=3)
    lines = path.read_text().splitlines()
    assert lines[0] == "account,balance,region,age" and len(lines) == 6
    assert '"' not in path.read_text()
    account, balance, region, age = lines[1].split(",")
    assert account.startswith("AC") and len(account) == 12 and account[2:].isdigit()
    assert int(balance) >= -(10**6) and region in bench.REGIONS and 18 <= int(age) < 90
