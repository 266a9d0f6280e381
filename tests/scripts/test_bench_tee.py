"""The TEE job benchmark runs at a tiny size and reports its figures (no timing asserted).

What must hold: the enclave's output equals the plaintext join in every repeat, every
phase is timed and the totals are their sums, the report written to ``--out`` is the one
printed, and a differing output makes the benchmark exit non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from scripts.bench import tee as bench


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = bench.main(list(args))
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return status, report


def test_tiny_benchmark_reports_every_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "bench" / "tee.json"
    status, report = run(capsys, "--n", "2000", "--repeat", "1", "--out", str(out))
    assert status == 0
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert report["benchmark"] == "tee" and report["issue"] == 17
    assert report["backend"] == "simulated" and report["algorithm"]["name"] == "tee-join"
    assert report["command"].endswith("-m scripts.bench.tee --n 2000 --repeat 1 --out " + str(out))
    assert {"python", "cpu", "cpu_count", "pyarrow", "cryptography"} <= set(report["machine"])
    assert len(report["loadavg_before"]) == 3 and len(report["loadavg_after"]) == 3
    assert report["outputs_equal"] is True

    [one] = report["runs"]
    assert one["n"] == 2000 and one["rows_per_owner"] == {"bank": 2000, "carrier": 2000}
    assert one["outputs_equal"] is True and one["outputs_equal_all"] == [True]
    output = one["output"]
    assert output["matched"] == one["shared_keys"] == 1000 and output["suppressed"] is None
    assert set(output["sums"]) == {"balance", "calls"}
    assert isinstance(output["sums"]["balance"], str)  # decimal text, scale 2
    assert output["sums"]["balance"].split(".")[1].isdigit()

    assert one["plaintext"]["seconds"] > 0
    job = one["job"]
    phases = job["phases_seconds"]
    assert set(phases) == set(bench.PHASES) and all(s > 0 for s in phases.values())
    assert job["total_seconds"] == pytest.approx(sum(phases.values()), abs=1e-5)
    assert job["provisioning_seconds"] == pytest.approx(
        sum(phases[p] for p in bench.PROVISIONING), abs=1e-5
    )
    for owner in ("bank", "carrier"):
        figures = job["per_owner"][owner]
        assert all(figures[f"{p}_seconds"] > 0 for p in bench.OWNER_PHASES)
        assert (
            figures["sealed_bytes"] == figures["plaintext_bytes"] + figures["seal_overhead_bytes"]
        )
        assert figures["seal_overhead_bytes"] > 0  # HPKE enc (32) + AES-GCM tag (16)
    ratios = one["ratios"]
    assert set(ratios) >= {"job_over_plaintext", "provisioning_over_plaintext"}
    assert all(value is not None and value > 0 for value in ratios.values())


def test_tables_share_the_requested_keys() -> None:
    tables = bench.make_tables(1000, 0.5, seed=3)
    bank, carrier = tables[bench.BANK], tables[bench.CARRIER]
    assert bank.column_names == ["account", "balance"] and carrier.column_names == [
        "account",
        "calls",
    ]
    assert pa.types.is_decimal(bank.schema.field("balance").type)
    keys = set(bank.column("account").to_pylist()), set(carrier.column("account").to_pylist())
    assert len(keys[0]) == len(keys[1]) == 1000 and len(keys[0] & keys[1]) == 500
    assert bench.make_tables(1000, 0.5, seed=3)[bench.BANK].equals(bank)  # seeded


def test_a_differing_output_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = bench.plaintext_join

    def off_by_one(tables: Any) -> dict[str, Any]:
        result = real(tables)
        return {**result, "matched": result["matched"] + 1}

    monkeypatch.setattr(bench, "plaintext_join", off_by_one)
    status, report = run(capsys, "--n", "200", "--repeats", "1")
    assert status == 1
    assert report["outputs_equal"] is False and report["runs"][0]["outputs_equal"] is False
