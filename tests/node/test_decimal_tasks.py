"""A secure-statistics task over a decimal balance column, through the real runner on
eth-tester: what a bank with cents in its balances asks first."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from ledger.clients.tasks import TaskState
from ledger.rows import decimal_text
from node.algorithms import output_policy, stats
from tests.conftest import Consortium
from tests.node import runner_harness
from tests.node.runner_harness import SEGMENTS, Network, standard_network

COLUMNS = [
    {"name": "account", "type": "string", "identifier": True},
    {"name": "balance", "type": "decimal", "scale": 2},
    {"name": "segment", "type": "string"},
]


def decimal_rows(path: Path, seed: int, rows: int) -> list[dict[str, Any]]:
    """Balances in cents, written as a spreadsheet would: ``12.50``, ``12.5``,
    ``1.5E+2``; the returned rows hold the canonical text the dataset commits to."""
    rng = random.Random(seed)
    data, lines = [], []
    for i in range(rows):
        text = decimal_text(rng.randrange(-50_000, 500_000), 2)
        written = text if i % 3 else str(Decimal(text).normalize())
        data.append({"account": f"ACC{seed}-{i}", "balance": text, "segment": SEGMENTS[i % 4]})
        lines.append(f"ACC{seed}-{i},{written},{SEGMENTS[i % 4]}\n")
    path.write_text("account,balance,segment\n" + "".join(lines))
    return data


@pytest.fixture
def net(consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Network:
    monkeypatch.setattr(runner_harness, "write_rows", decimal_rows)
    return standard_network(
        consortium, tmp_path, rows_each=40, identifier_columns=["account"], protocol_timeout=10.0
    )


def test_a_decimal_sum_equals_the_exact_plaintext(net: Network) -> None:
    params = {
        "columns": COLUMNS,
        "value_column": "balance",
        "filter": {"column": "balance", "op": ">=", "value": "-500.00"},
    }
    task_id = net.create("cents", params)
    assert net.drive(task_id) == TaskState.COMPLETED
    result = net.creator.task_result("0x" + task_id.hex())["result"]
    balances = [Decimal(r["balance"]) for r in net.rows]
    assert any(b != b.to_integral_value() for b in balances)  # cents really are there
    total = sum(balances, Decimal(0))
    mean = Fraction(total) / len(balances)
    variance = sum((Fraction(b) - mean) ** 2 for b in balances) / len(balances)
    assert result["count"] == len(balances)
    assert result["sum"] == decimal_text(int(total * 100), 2)
    assert Fraction(int(result["mean"]["numerator"]), int(result["mean"]["denominator"])) == mean
    got_variance = Fraction(
        int(result["variance"]["numerator"]), int(result["variance"]["denominator"])
    )
    assert got_variance == variance
    policy = output_policy.effective([2])
    expected = stats.plaintext_stats(stats.StatsParams.from_json(params), net.rows, policy)
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.to_json().items() if k != "contributors"
    }
