"""The FL benchmark runs every part and reports its figures (no timing asserted).

Each measured result must equal its baseline's: the secure FedAvg model equals the
initial model plus the decoded plain sum of the same encoded updates, the vertical
model equals the plaintext numpy replay bit for bit, the scores (of the library's
logit exchange and of the whole ``fl-score`` task, PSI included) equal plaintext
scoring. Where ``.venv-fl-baselines`` is missing (CI), flwr is reported as skipped,
exactly; where it exists (``make bench-fl-baselines``), it must have run on the vector.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from scripts.bench import fl as bench


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", ["scripts.bench.fl", "--quick", *args])
    bench.main()
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def check_target(entry: dict[str, Any]) -> None:
    assert entry["value"] is not None and entry["value"] > 0, entry
    assert isinstance(entry["met"], bool) and entry["target"].split()[0] in ("<=", ">=")


def test_quick_benchmark_reports_every_part(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_main(monkeypatch, capsys)
    assert report["benchmark"] == "fl" and report["issue"] == 16 and report["quick"] is True
    assert {"python", "cpu", "cpu_count", "phe", "gmpy2", "numpy"} <= set(report["machine"])
    assert len(report["loadavg_before"]) == 3 and len(report["loadavg_after"]) == 3

    [fedavg] = report["fedavg"]
    assert fedavg["providers"] == bench.QUICK["providers"][0]
    assert fedavg["equals_plain_sum_of_encoded_updates"] is True
    assert fedavg["max_abs_diff_from_float_average"] < 1e-6  # 2^-32 rounding per coordinate
    assert fedavg["secure_round_seconds"] > 0 and fedavg["plain_round_seconds"] > 0
    assert fedavg["secure_over_plain"] > 0

    [mask] = report["masking"]
    assert mask["parameters"] == bench.QUICK["mask_sizes"][0] and mask["neighbours"] == 10
    mine = mask["provnet"]
    assert mine["seconds"] > 0 and set(mine["seconds_by_part"]) == {
        "encode",
        "seeds",
        "mask",
        "wire",
    }
    theirs = mask["flwr_secaggplus"]
    if bench.BASELINES_PYTHON.exists():
        assert "error" not in theirs, theirs
        assert theirs["library"] == "flwr 1.42.0" and theirs["seconds"] > 0
        assert theirs["masked_elements"] == mask["parameters"] + 1  # the weight factor first
        check_target(mask["ratios"]["provnet_over_flwr"])
    else:
        assert theirs == bench.SKIPPED
        assert mask["ratios"]["provnet_over_flwr"]["value"] is None

    [vert] = report["vertical"]
    assert vert["rows"] == bench.QUICK["rows"][0] and vert["features"] == bench.FEATURES
    assert vert["key_bits"] == bench.QUICK["key_bits"]
    assert vert["equals_replay"] is True
    assert vert["train_accuracy_after_epoch"] > 0.6  # one epoch on a learnable signal
    counts = vert["operation_counts"]
    assert counts["nude_encryption"] == counts["crt_obfuscation"] == vert["rows"]
    # Packed: fewer decryptions and mask encryptions than columns per batch.
    packed = counts["packed_ciphertexts_per_batch"]
    assert 1 <= packed < vert["feature_holder_columns"]
    assert counts["decryption"] == counts["obfuscation"] == counts["batches"] * packed
    assert counts["pack_column"] == counts["batches"] * vert["feature_holder_columns"]
    assert 0 < counts["product"] <= vert["rows"] * vert["feature_holder_columns"]
    assert all(cost > 0 for cost in vert["single_op_us"].values())
    assert vert["operation_bound_seconds"] > 0 and vert["epoch_seconds"] > 0
    check_target(vert["ratios"]["epoch_over_operation_bound"])
    check_target(vert["ratios"]["fate_over_provnet_per_core"])
    assert vert["ratios"]["epoch_over_plaintext"]["value"] > 0

    score = report["scoring"]
    assert score["rows"] == bench.QUICK["score_rows"] and score["rows_per_second"] > 0
    assert score["max_abs_diff_from_plaintext"] < 1e-9

    [task] = report["scoring_task"]
    assert task["aligned_rows"] == bench.QUICK["score_task_rows"][0]
    extra = round(task["aligned_rows"] * bench.EXTRA_IDS)
    assert task["label_holder_rows"] == task["feature_holder_rows"] == task["aligned_rows"] + extra
    assert task["psi_set_sizes"] == [task["label_holder_rows"], task["feature_holder_rows"]]
    assert task["rows_per_second"] > 0 and all(s >= 0 for s in task["seconds_by_phase"].values())
    assert set(task["wire_bytes_by_phase"]) <= {
        "readiness",
        "alignment_psi",
        "alignment_order",
        "scoring",
    }
    assert task["wire_bytes_by_phase"]["scoring"] >= 8 * task["aligned_rows"]
    assert task["max_abs_diff_from_plaintext"] < 1e-9
    for engine in ("pyarrow", "duckdb"):
        assert task["plaintext"][engine]["max_abs_diff_from_provnet"] < 1e-9
        assert task["plaintext"][engine]["provnet_over_plaintext_seconds"] > 0


def test_flwr_is_reported_skipped_without_its_venv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    missing = str(tmp_path / "no-venv" / "python")
    report = run_main(monkeypatch, capsys, "--parts", "masking", "--baselines-python", missing)
    assert set(report) >= {"masking", "machine"} and "vertical" not in report
    [mask] = report["masking"]
    assert mask["flwr_secaggplus"] == bench.SKIPPED
    assert mask["ratios"]["provnet_over_flwr"]["met"] is None
    assert report["baselines_venv"] is None
