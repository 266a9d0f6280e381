"""A provider's disclosure checks, tried the way a data user would try to get round them.

Each attack is written as the analyst would send it, on one provider's own table; the
check must refuse it with the named reason, and the honest queries next to it must pass.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.algorithms import columnar, output_policy, stats
from node.algorithms.disclosure import Answered, QueryRefused, check_disclosure, selection_json
from node.algorithms.output_policy import effective

COLUMNS = [
    {"name": "account", "type": "string"},
    {"name": "balance", "type": "integer"},
    {"name": "segment", "type": "string"},
    {"name": "age", "type": "integer"},
]
TARGET = "ACC-0042"


def make_table(rows: int = 200, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    ages = [20 + (i % 50) for i in range(rows)]
    ages[min(42, rows - 1)] = 99  # exactly one customer is 99
    return pa.table(
        {
            "account": [f"ACC-{i:04d}" for i in range(rows)],
            "balance": [rng.randrange(-1000, 100_000) for _ in range(rows)],
            "segment": [("retail", "business", "private")[i % 3] for i in range(rows)],
            "age": ages,
        }
    )


def params(**overrides: Any) -> stats.StatsParams:
    data: dict[str, Any] = {"columns": COLUMNS, "value_column": "balance"}
    data.update(overrides)
    return stats.StatsParams.from_json(data)


POLICY = effective([2])  # k = 10
IDENTIFIERS = ("account",)


def refused(query: stats.StatsParams, earlier: list[Answered] | None = None, **kw: Any) -> str:
    with pytest.raises(QueryRefused) as exc:
        check_disclosure(query, make_table(), kw.get("policy", POLICY), IDENTIFIERS, earlier or [])
    return exc.value.reason


def test_policy_is_the_strictest_level_and_the_consumer_can_only_tighten() -> None:
    assert effective([1, 2]).min_group_size == output_policy.POLICY[2].min_group_size
    assert effective([2], requested_min_group_size=1).min_group_size == 10
    assert effective([2], requested_min_group_size=25).min_group_size == 25
    assert effective([1]).epsilon_per_query is None
    assert effective([1, 3]).epsilon_per_query == output_policy.POLICY[3].epsilon_per_query
    assert effective([3], requested_epsilon=100.0).epsilon_per_query == 1.0
    assert effective([3], requested_epsilon=0.1).epsilon_per_query == 0.1
    assert effective([1], requested_epsilon=0.5).epsilon_per_query == 0.5
    assert effective([4, 1]).min_provider_orgs == 3
    with pytest.raises(output_policy.PolicyError, match="classification level"):
        effective([5])
    with pytest.raises(output_policy.PolicyError):
        effective([])


def test_a_filter_on_one_customer_by_identifier_is_refused() -> None:
    """Attack 1 as reported: `account == X` with a sum of balance."""
    query = params(filter={"column": "account", "op": "==", "value": TARGET}, min_group_size=1)
    assert refused(query) == "IDENTIFIER_FILTER"
    # ... and "everyone but X" by identifier is refused the same way.
    assert refused(params(filter={"column": "account", "op": "!=", "value": TARGET})) == (
        "IDENTIFIER_FILTER"
    )


def test_a_filter_on_one_customer_by_another_column_is_refused() -> None:
    """The same single-row query, not naming the identifier: the minimum catches it."""
    query = params(filter={"column": "age", "op": "==", "value": 99}, min_group_size=1)
    assert refused(query) == "GROUP_TOO_SMALL"


def test_everyone_but_one_customer_is_refused() -> None:
    """Half of the two-query difference: the excluded rows are a group too."""
    query = params(filter={"column": "age", "op": "!=", "value": 99})
    assert refused(query) == "GROUP_TOO_SMALL"


def test_two_queries_differing_by_one_row_are_refused() -> None:
    """The difference attack with each query individually harmless: `age >= 60` and
    `age > 60` select many rows each and exclude many, but differ by the one customer
    aged exactly 60 ... so the second is refused once the first was answered."""
    table = pa.table(
        {
            "account": [f"ACC-{i:04d}" for i in range(60)],
            "balance": list(range(60)),
            "segment": ["retail"] * 60,
            "age": list(range(20, 80)),  # every age once: one customer is exactly 50
        }
    )
    first = params(filter={"column": "age", "op": ">=", "value": 50})
    second = params(filter={"column": "age", "op": ">", "value": 50})
    assert check_disclosure(first, table, POLICY, IDENTIFIERS, []) == 30
    assert check_disclosure(second, table, POLICY, IDENTIFIERS, []) == 29  # alone: fine
    history = [Answered(selection_json(first))]
    with pytest.raises(QueryRefused) as exc:
        check_disclosure(second, table, POLICY, IDENTIFIERS, history)
    assert exc.value.reason == "QUERY_OVERLAP"
    # Against "every row", a query passes only if it excludes at least k rows anyway.
    everyone = [Answered(selection_json(params()))]
    ten_fewer = params(filter={"column": "age", "op": "<", "value": 70})
    assert check_disclosure(ten_fewer, table, POLICY, IDENTIFIERS, everyone) == 50


def test_queries_differing_by_at_least_k_rows_and_repeats_are_answered() -> None:
    table = make_table()
    first = params(filter={"column": "age", "op": ">=", "value": 40})
    far = params(filter={"column": "age", "op": ">=", "value": 50})  # differs by 40 rows
    history = [Answered(selection_json(first))]
    assert check_disclosure(far, table, POLICY, IDENTIFIERS, history) > 0
    # The same selection again (say, another value column) reveals nothing new.
    assert check_disclosure(first, table, POLICY, IDENTIFIERS, history) > 0


def test_small_histogram_cells_on_own_rows_are_refused() -> None:
    table = make_table(rows=31)  # segments 11/10/10 ... and one row of age 99
    query = params(
        group_column="age", categories=[99, 20], filter={"column": "age", "op": ">", "value": 0}
    )
    with pytest.raises(QueryRefused) as exc:
        check_disclosure(query, table, POLICY, IDENTIFIERS, [])
    assert exc.value.reason == "GROUP_TOO_SMALL" and "99" in str(exc.value)
    by_segment = params(group_column="segment", categories=["retail", "business", "private"])
    assert check_disclosure(by_segment, table, POLICY, IDENTIFIERS, []) == 31


def test_histogram_over_an_identifier_is_refused() -> None:
    query = params(group_column="account", categories=[TARGET])
    assert refused(query) == "IDENTIFIER_FILTER"


def test_history_limit_and_privacy_budget_end_the_queries() -> None:
    table = make_table()
    full = [Answered(None)] * POLICY.history_limit
    with pytest.raises(QueryRefused) as exc:
        check_disclosure(params(), table, POLICY, IDENTIFIERS, full)
    assert exc.value.reason == "PRIVACY_BUDGET_EXHAUSTED"
    dp = effective([3])
    assert dp.epsilon_per_query is not None and dp.epsilon_per_grant is not None
    spent_all_but_one = dp.epsilon_per_grant - dp.epsilon_per_query
    assert check_disclosure(params(), table, dp, IDENTIFIERS, [], spent_all_but_one) == 200
    with pytest.raises(QueryRefused) as exc:
        check_disclosure(params(), table, dp, IDENTIFIERS, [], spent_all_but_one + 0.01)
    assert exc.value.reason == "PRIVACY_BUDGET_EXHAUSTED"


# ------------------------------------------------------------------ columnar exactness


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=300))
def test_exact_sums_match_python_integers(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    assert columnar.exact_sums(array) == (sum(values), sum(v * v for v in values))


def test_exact_sums_across_chunks() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(-(2**60), 2**60, size=200_000, dtype=np.int64)
    py = [int(v) for v in values]
    assert columnar.exact_sums(values) == (sum(py), sum(v * v for v in py))


def test_local_vector_on_a_table_equals_the_row_wise_definition() -> None:
    table = make_table(500)
    rows = table.to_pylist()
    query = params(
        group_column="segment",
        categories=["retail", "private", "nobody"],
        filter={"column": "balance", "op": ">", "value": 500},
        value_bound=50_000,
    )
    kept = [r for r in rows if r["balance"] > 500]
    clipped = [max(-50_000, min(50_000, r["balance"])) for r in kept]
    cells = [sum(1 for r in kept if r["segment"] == c) for c in ("retail", "private", "nobody")]
    expected = [len(kept), sum(clipped), sum(v * v for v in clipped), *cells]
    expected.append(len(kept) - sum(cells))
    assert stats.local_vector(query, table) == expected
    assert stats.local_vector(query, rows) == expected


def test_a_table_of_another_schema_is_refused() -> None:
    table = make_table().set_column(1, "balance", pa.array(["x"] * 200))
    with pytest.raises(ValueError, match="balance"):
        stats.local_vector(params(), table)
