"""The anonymous-lookup benchmark reports every figure and checks its own answers.

No timing is asserted. What is: the JSON's shape, that every measured answer (single
queries, the batch, the screening; in process and over gRPC, sequential and pooled)
equals the plaintext union's, that the two plaintext baselines agree with each other,
and — so that the self-check itself can fail — that a plaintext union differing from
the one the querier was served is reported as a mismatch.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from node.lookup.union import Listing
from scripts.bench import lookup as bench


def run_quick(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    argv = ["scripts.bench.lookup", "--quick", "--transport", "grpc"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_quick_benchmark_reports_every_figure_and_equals_plaintext(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_quick(monkeypatch, capsys)
    assert report["benchmark"] == "lookup" and report["issue"] == 15
    assert report["transport"] == "grpc"
    assert report["transports_measured"] == ["in-process", "grpc"]
    assert report["sizes"] == bench.QUICK["sizes"]
    assert report["providers"] == bench.QUICK["providers"]
    assert len(report["loadavg_before"]) == 3 and len(report["loadavg_after"]) == 3
    assert {"python", "cpu", "cpu_count", "rbcl", "duckdb"} <= set(report["machine"])
    assert report["relay_policy"]["min_batch"] == 1
    ops = report["single_op_us"]
    for name in ("blind", "blind_evaluate", "finalize", "verify_proof_1"):
        assert ops[name] > 0
    for p in bench.QUICK["providers"]:
        model = report["model"][str(p)]
        assert model["single_sequential_us"] >= model["single_holders_parallel_us"] > 0
    assert report["targets"]["asserted"] is False

    runs = report["runs"]
    assert len(runs) == len(bench.QUICK["sizes"]) * len(bench.QUICK["providers"])
    for run in runs:
        assert "error" not in run, run
        assert run["equals_plaintext"] is True
        assert run["t"] == bench.threshold_of(run["providers"])
        thr = run["threshold_evaluation"]
        assert thr["sample_entries"] > 0 and thr["us_per_entry"] > 0
        assert "extrapolated" in thr["extrapolated_note"]
        build = run["build_union"]
        assert build["entries"] == run["entries"] and build["seconds"] > 0
        assert build["provider_rows"] > build["entries"]  # some identifiers listed twice
        size = run["size"]
        assert size["table_bytes"] == 9 * run["entries"]
        assert size["table_bytes_per_entry"] == 9.0
        assert size["union_bytes_with_buckets"] > size["table_bytes"]
        plain = run["plaintext"]
        for q in (run["queries"], run["queries_grpc"]):
            assert q["single"]["queries"] == bench.QUICK["queries"]
            assert q["single"]["wrong_answers"] == 0 and q["batch"]["wrong_answers"] == 0
            assert q["single"]["p50_ms"] > 0 and q["batch"]["queries_per_second"] > 0
            assert q["batch"]["size"] == bench.QUICK["batch"]
            # Hits found by the protocol equal the plaintext hits; both baselines agree.
            assert q["hits_found"] == q["hits_expected_plaintext"] == plain["python_dict"]["hits"]
        setup = run["grpc_setup"]
        assert setup["holders_asked"] == run["t"]
        assert setup["union_download_bytes"] >= run["size"]["table_bytes"]
        assert run["grpc_over_in_process"]["single_p50"] > 0
        assert plain["duckdb_join"]["hits"] == plain["python_dict"]["hits"] > 0
        assert plain["lookups"] == bench.QUICK["queries"] + bench.QUICK["batch"]
        assert run["peak_rss_mb"] > 0

    screening = report["screening"]
    assert len(screening) == len(bench.QUICK["providers"])
    rounds = -(-bench.QUICK["screen_rows"] // bench.QUICK["screen_chunk"])
    for screen in screening:
        assert "error" not in screen, screen
        measured = {(r["transport"], r["mode"]) for r in screen["runs"]}
        assert measured == {
            (t, m) for t in ("in-process", "grpc") for m in bench.QUICK["screen_modes"]
        }
        for run in screen["runs"]:
            assert run["rows_screened"] == run["rows_requested"] == bench.QUICK["screen_rows"]
            assert run["seconds_all_rows_is"] == "measured"
            assert run["hits_found"] == run["hits_expected_plaintext"] > 0
            assert run["wrong_answers"] == 0 and run["equals_plaintext"] is True
            assert run["progress_callbacks"] == rounds
            assert run["speedup_vs_sequential"] > 0
        assert screen["equals_plaintext"] is True
    targets = report["targets"]["screen_1e6_seconds"]
    assert set(targets) == {
        f"{p} providers, {t}" for p in bench.QUICK["providers"] for t in ("in-process", "grpc")
    }
    assert report["all_equal_plaintext"] is True
    assert str(bench.EXTRAPOLATE_TO) in report["skipped_sizes"]


def test_a_plaintext_union_that_differs_is_reported_as_a_mismatch(tmp_path: Path) -> None:
    """The self-check must be able to fail: list every sampled identifier once more in
    the plaintext union only, and the protocol's answers no longer equal it."""
    rng = random.Random(3)
    epoch = bench.make_epoch(400, 3, 20, rng)
    querier, meter, hop = bench.open_querier(epoch, tmp_path, 100)
    try:
        honest = bench.measure_queries(epoch, querier, hop, random.Random(4), 6, 10)
        assert honest["equals_plaintext"] is True
        for phone in epoch.listed:
            epoch.plain.listings[bench.x_of(phone)].append(Listing(1, ("extra",)))
        tampered = bench.measure_queries(epoch, querier, hop, random.Random(4), 6, 10)
    finally:
        meter.close()
    assert tampered["equals_plaintext"] is False
    assert tampered["single"]["wrong_answers"] + tampered["batch"]["wrong_answers"] > 0
