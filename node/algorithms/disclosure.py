"""A provider's disclosure checks on its own rows, made before it sends anything.

The aggregator runs on the consumer's own node, so suppression there protects nothing
from the consumer: every rule that must hold against the data user is enforced by each
provider on its own rows, where the consumer cannot reach. A refusal names its reason
(the `Reason` code recorded on chain) and reveals only that this provider refused.

The rules (DESIGN §6, thresholds from `output_policy`):

* an equality or inequality filter on a column the owner marked as an identifier, or a
  histogram over one, is refused outright: its purpose is to single out a person;
* the rows a filter selects, and the rows it excludes, must each number zero or at
  least the minimum group size k, so neither "X alone" nor "everyone but X" works;
* every histogram cell on the provider's rows must be empty or hold at least k rows;
* the selected set must differ from every earlier answered query of the same grantee
  on this dataset version by zero or at least k rows (query-set overlap control): two
  queries whose sets differ by one row give that row by subtraction;
* the grantee's history may hold at most ``history_limit`` answered queries, and a
  differentially private query must fit in what is left of the grant's epsilon budget.

What this does not stop, stated plainly: k-row differences are allowed by design, so
a determined analyst with many queries learns about groups of k; DP noise (levels 3 and
4) is what bounds that, and its budget is what ends it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from node.algorithms import columnar
from node.algorithms.output_policy import EffectivePolicy

IDENTITY_OPS = frozenset({"==", "!="})


class QueryRefused(Exception):
    """The query would disclose too much; ``reason`` is the on-chain reason name."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class Query(Protocol):
    """What the checks need of a query's parameters."""

    @property
    def filter(self) -> columnar.Filter | None: ...

    @property
    def group_column(self) -> str | None: ...

    @property
    def categories(self) -> tuple[int | str, ...]: ...


@dataclass(frozen=True)
class Answered:
    """An earlier answered query of the same grantee on the same dataset version."""

    selection: Mapping[str, Any] | None
    epsilon: float | None = None


def selection_json(query: Query) -> dict[str, Any] | None:
    """The selection as recorded in the history (the filter, or None for every row)."""
    f = query.filter
    return None if f is None else {"column": f.column, "op": f.op, "value": f.value}


def check_disclosure(
    query: Query,
    table: pa.Table,
    policy: EffectivePolicy,
    identifier_columns: Collection[str],
    earlier: Sequence[Answered],
    epsilon_spent: float = 0.0,
) -> int:
    """Raise `QueryRefused` unless the query may be answered; return the selected count."""
    k = policy.min_group_size
    f = query.filter
    if f is not None and f.column in identifier_columns and f.op in IDENTITY_OPS:
        raise QueryRefused(
            "IDENTIFIER_FILTER",
            f"filter {f.column} {f.op} ... selects by an identifier column",
        )
    if query.group_column is not None and query.group_column in identifier_columns:
        raise QueryRefused(
            "IDENTIFIER_FILTER", f"histogram over the identifier column {query.group_column}"
        )
    rows = table.num_rows
    mask = columnar.selection_mask(table, f)
    selected = columnar.selected_count(table, mask)
    if 0 < selected < k:
        raise QueryRefused(
            "GROUP_TOO_SMALL", f"the filter selects {selected} of this provider's rows (k={k})"
        )
    if 0 < rows - selected < k:
        raise QueryRefused(
            "GROUP_TOO_SMALL",
            f"the filter excludes {rows - selected} of this provider's rows (k={k})",
        )
    if query.group_column is not None:
        cells = columnar.category_counts(table, query.group_column, mask, query.categories)
        labels: list[object] = [*query.categories, "(other)"]
        cells.append(selected - sum(cells))
        small = [(label, c) for label, c in zip(labels, cells, strict=True) if 0 < c < k]
        if small:
            label, count = small[0]
            raise QueryRefused(
                "GROUP_TOO_SMALL", f"histogram cell {label!r} holds {count} rows here (k={k})"
            )
    if len(earlier) >= policy.history_limit:
        raise QueryRefused(
            "PRIVACY_BUDGET_EXHAUSTED",
            f"{len(earlier)} queries already answered for this grantee on this dataset "
            f"(limit {policy.history_limit})",
        )
    mine = selection_json(query)
    for previous in earlier:
        if previous.selection == mine:
            continue  # the same row set: nothing new to subtract
        other = columnar.selection_mask(table, columnar.filter_from_json(previous.selection))
        differ = columnar.difference(mask, other, rows)
        if 0 < differ < k:
            raise QueryRefused(
                "QUERY_OVERLAP",
                f"the selected rows differ from an answered query's by {differ} (k={k})",
            )
    per_query, budget = policy.epsilon_per_query, policy.epsilon_per_grant
    if per_query is not None and budget is not None and epsilon_spent + per_query > budget + 1e-12:
        raise QueryRefused(
            "PRIVACY_BUDGET_EXHAUSTED",
            f"the grant has spent epsilon {epsilon_spent:g} of {policy.epsilon_per_grant:g}; "
            f"this query needs {policy.epsilon_per_query:g}",
        )
    return selected
