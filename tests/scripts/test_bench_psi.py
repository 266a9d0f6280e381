"""The PSI benchmark runs every contender and reports its figures (no timing asserted).

Where ``.venv-psi-baselines`` is missing (CI), openmined-psi and spu must be reported as
skipped, exactly; where it exists (``make bench-baselines``), they must have run and
matched the plaintext intersection like everything else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from node.channel import InMemoryNetwork
from node.fastpsi.driver import is_available as fast_psi_available
from scripts.bench import psi as bench

BASELINES = ("openmined-psi", "spu-ecdh-fourq", "spu-rr22", "spu-rr22-tls")
PROVNET = ("provnet-intersection", "provnet-cardinality")


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", ["scripts.bench.psi", "--quick", *args])
    bench.main()
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def check_baseline(name: str, fig: dict[str, Any]) -> None:
    assert "error" not in fig, fig
    assert fig["equals_plaintext"] is True, fig
    assert fig["checked"] == "items"
    assert fig["seconds"] > 0 and fig["bytes"] > 0 and fig["peak_rss_mb"] > 0
    assert fig["library"].startswith("spu " if name.startswith("spu") else "openmined-psi ")
    if name.startswith("spu"):
        assert fig["processes"] == 2 and len(fig["peak_rss_mb_by_party"]) == 2
        assert fig["intersection_count_reported"] == fig["intersection_size"]
        assert ("mutual TLS" in fig["transport"]) == name.endswith("-tls")
    else:
        assert set(fig["bytes_by_message"]) == {"setup", "request", "response"}
        assert sum(fig["bytes_by_message"].values()) == fig["bytes"]


def test_quick_benchmark_reports_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_main(monkeypatch, capsys)
    assert report["benchmark"] == "psi"
    assert report["sizes"] == bench.QUICK["n"]
    assert {"python", "cpu", "cpu_count", "platform", "rbcl", "duckdb"} <= set(report["machine"])
    assert len(report["loadavg_before"]) == 3 and len(report["loadavg_after"]) == 3
    ops = report["single_op_us"]
    assert ops["ristretto255_scalarmult"] > 0 and ops["hash_to_ristretto255"] > 0
    assert report["model"]["per_item_us"] > 0
    present = bench.BASELINES_PYTHON.exists()
    assert report["baselines_venv"] == (str(bench.BASELINES_PYTHON) if present else None)

    [run] = report["runs"]
    n = bench.QUICK["n"][0]
    assert run["n"] == n
    assert run["expected_intersection_size"] == round(n * run["overlap"]) > 0
    assert run["model_seconds"] > 0
    contenders = run["contenders"]
    assert set(contenders) == set(bench.CONTENDERS)

    for name in PROVNET:
        fig = contenders[name]
        assert "error" not in fig, fig
        assert fig["equals_plaintext"] is True
        assert fig["intersection_size"] == run["expected_intersection_size"]
        assert fig["through"] == "node.algorithms.psi"
        assert fig["mode"] == bench.PROVNET[name]
        assert fig["bytes"] > 0 and fig["messages"] > 0
        assert sum(fig["bytes_by_step"].values()) == fig["bytes"]
        assert fig["seconds"] > 0 and fig["processes"] == 2
        assert fig["peak_rss_mb"] >= fig["peak_rss_mb_main"] >= fig["rss_at_start_mb"] > 0
        assert fig["protocol_mb"] == pytest.approx(
            fig["peak_rss_mb_main"] - fig["rss_at_start_mb"], abs=0.11
        )
        assert fig["protocol_bytes_per_item_per_side"] == pytest.approx(
            fig["protocol_mb"] * 2**20 / (2 * n), abs=0.06 * 2**20 / (2 * n)
        )
        assert len(fig["workers_memory"]["private_mb"]) == 2
    assert contenders["provnet-intersection"]["checked"] == "items"
    assert contenders["provnet-cardinality"]["checked"] == "size"

    fast = contenders[bench.FAST]
    if fast_psi_available():  # `make test` installs it, as a node's operator does
        assert "error" not in fast, fast
        assert fast["equals_plaintext"] is True and fast["checked"] == "items"
        assert fast["seconds"] > 0 and fast["messages"] == 2  # the two link announcements
    else:
        assert fast == {"skipped": "run `make fast-psi` first"}

    for name in bench.PLAINTEXT:
        fig = contenders[name]
        assert fig["equals_plaintext"] is True and fig["checked"] == "items"
        assert fig["bytes"] == 0 and fig["peak_rss_mb"] > 0

    for name in BASELINES:
        if present:
            check_baseline(name, contenders[name])
        else:
            assert contenders[name] == {"skipped": "run `make bench-baselines` first"}

    ratios = run["ratios"]
    assert set(ratios) == {r[0] for r in bench.RATIOS}
    for label in ("provnet_intersection_over_model", "provnet_over_duckdb"):
        assert ratios[label]["value"] > 0
    assert ratios["provnet_intersection_over_model"]["target"] == "<= 1.3"
    assert isinstance(ratios["provnet_intersection_over_model"]["met"], bool)
    for label in ("openmined_over_provnet", "provnet_over_spu_ecdh_fourq"):
        assert (ratios[label]["value"] is not None) == present


def test_missing_baselines_venv_reports_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = run_main(
        monkeypatch,
        capsys,
        "--contenders",
        "python-set",
        *BASELINES,
        "--baselines-python",
        str(tmp_path / "no-such-venv" / "python"),
    )
    assert report["baselines_venv"] is None
    contenders = report["runs"][0]["contenders"]
    for name in BASELINES:
        assert contenders[name] == {"skipped": "run `make bench-baselines` first"}
    ratios = report["runs"][0]["ratios"]
    assert ratios["openmined_over_provnet"] == {
        "value": None,
        "of": "openmined-psi / provnet-intersection (seconds)",
        "target": ">= 5",
        "met": None,
    }


def test_a_wrong_result_is_flagged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plaintext check can fail: one item off, or the right size with other items."""
    answers: dict[str, dict[str, Any]] = {
        "python-set": {"seconds": 1.0, "intersection_size": 199},
        "duckdb": {"seconds": 1.0, "intersection_size": 200, "intersection_sha256": "0" * 64},
    }
    monkeypatch.setattr(bench, "run_contender", lambda name, *_: dict(answers[name]))
    report = run_main(monkeypatch, capsys, "--contenders", "python-set", "duckdb")
    contenders = report["runs"][0]["contenders"]
    assert contenders["python-set"]["equals_plaintext"] is False
    assert contenders["duckdb"]["equals_plaintext"] is False


def test_sets_overlap_and_wire_count(tmp_path: Path) -> None:
    a, b = bench.make_sets(1000, 0.1)
    assert len(set(a)) == len(set(b)) == 1000 and len(set(a) & set(b)) == 100
    assert all(x.startswith(bench.TAG) for x in a + b)
    assert bench.untagged(a[:1]) == ["+8613800000000"]
    # the provnet contenders read each file straight into the untagged Arrow column
    paths = bench.write_sets(tmp_path, 1000, 0.1)
    assert bench.read_column(str(paths[0])).to_pylist() == bench.untagged(a)
    assert bench.read_column(str(paths[1])).to_pylist() == bench.untagged(b)
    reports = []
    # the metered network (sizes only, payloads freed) counts exactly as the plain one
    for net in (InMemoryNetwork(["x", "y"]), bench.MeteredNetwork(["x", "y"])):
        net.channel("x").send("y", "psi/set/0", b"abc")
        net.channel("x").send("y", "psi/set/1", b"de")
        net.channel("y").send("x", "psi/count", b"f")
        assert net.channel("y").receive("x", "psi/set/1", 1.0) == b"de"
        reports.append(bench.wire(net))
    assert (
        reports[0]
        == reports[1]
        == {
            "bytes": 6,
            "bytes_by_step": {"psi/set/*": 5, "psi/count": 1},
            "messages": 3,
        }
    )
    sizes: list[Any] = [entry[3] for entry in net.sent]
    assert sizes == [3, 2, 1]  # the metered network kept sizes, not payloads
