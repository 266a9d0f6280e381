"""Secure statistics: count, sum, mean, variance and histograms over several providers' rows.

An aggregator (the requesting node, which holds no data) learns only the total over
all providers' rows: the count, sum, mean and population variance of one integer or
decimal column and a histogram of one categorical column, after an optional row filter, with small
groups suppressed. No provider's individual figures are revealed to anyone.

Protocol: each provider turns its rows into a vector v_i = (count, sum, sum of squares,
one count per category, "other") and the aggregator learns the sum over the surviving
providers through the secure sum of ``node/crypto/secagg.py`` (Bonawitz et al., CCS
2017, with its signed consistency round: pairwise and self masks over Z_{2^128},
Shamir-shared seeds for dropout recovery, a survivor set every survivor signs). The
session context binds this algorithm's name, version and parameters, the task, the
aggregator, the providers and the threshold; its message formats, threshold rule
(default: t with 2t > n + c for c = max(1, floor((n-1)/3)) colluding providers) and
threat model are documented there.

Decimal columns (``ledger.rows``: exact fixed point, ``scale`` digits after the point)
enter the secure sum as their scaled integers (value x 10^scale), exactly as integers
do, so the 127-bit budget (``check_fits``) is judged on what is really added. The
result is exact in the column's units: ``sum`` is the decimal text with the column's
scale (``"1234.50"``), ``mean`` and ``variance`` the exact fractions (the scaled figures
divided by 10^scale and 10^(2 scale)). ``value_bound`` is in the column's units (a bound
of 100 on a scale-2 column clips to [-100.00, 100.00]), and the noise sensitivities are
scaled with it. Filter values and categories for a decimal column are decimal strings
(``"12.5"``) or JSON numbers, with at most ``scale`` digits after the point; they are
held as the canonical text (``"12.50"``) and compared exactly.

Providers receive no result. What the aggregator learns besides the statistics is the
set of contributing providers, which the result names. Overflow: totals must fit in
127 bits; each provider checks its own share of that budget before sending anything.

Output privacy: the aggregator runs at the consumer, so every disclosure rule is a
provider's, checked on its own rows before it sends anything (``disclosure``, called by
the node's runner): minimum group sizes for the selected and excluded rows and every
histogram cell, no differencing against the grantee's earlier queries, no filters on
identifier columns, independent provider organisations, and, where the classification
level calls for it, distributed discrete-Laplace noise added inside the secure sum
(``noise_plan``, ``contribution``) against a per-grant epsilon budget. The thresholds
come from the consortium's policy table (``output_policy``), part of this algorithm's
approved digest; parameters can only tighten them. See docs/output-privacy.md.

Threat model and limits: the secure sum's (``secagg``): privacy against a malicious
aggregator colluding with up to min(t-1, 2t-n-1) providers; such a coalition can still
choose which survivors' sum it learns (at least t providers). A malicious provider can
still skew the result by lying about its own data (no input validation beyond the local
schema check and the aggregator's consistency checks of the totals).
"""

from __future__ import annotations

import math
import operator
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import COLUMN_TYPES, MAX_SCALE, MAX_SCALED, Column, decimal_text
from node.algorithms import columnar
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.param_fields import json_object
from node.algorithms.task_columns import MAX_COLUMNS, InvalidParams, column_json, parse_columns
from node.channel import DEFAULT_TIMEOUT, Channel
from node.crypto import dp_noise, masking, secagg, shamir
from node.crypto.dp_noise import NoisePlan

NAME = "secure-stats"
# An aggregate disclosed to the task's creator: its providers enforce the output policy
# (``output_policy``), including independence from the creator (``node.admission``).
OUTPUT_POLICY = True
VERSION = "2.1.0"  # 2: output policy, distributed DP, signed survivor sets; .1: decimals
KIND = AlgorithmKind.MPC

_CRYPTO_DIR = Path(__file__).resolve().parent.parent / "crypto"
EXTRA_SOURCES: tuple[str, ...] = (
    str(_CRYPTO_DIR / "masking.py"),
    str(_CRYPTO_DIR / "shamir.py"),
    str(_CRYPTO_DIR / "secagg.py"),
    str(_CRYPTO_DIR / "dp_noise.py"),
    # The output policy table and the checks every provider makes: covered by the digest
    # the consortium votes on, so no participant can run with its own rules.
    str(Path(__file__).resolve().parent / "output_policy.py"),
    str(Path(__file__).resolve().parent / "disclosure.py"),
    str(Path(__file__).resolve().parent / "columnar.py"),
    str(Path(__file__).resolve().parent / "task_columns.py"),
    str(Path(__file__).resolve().parent / "param_fields.py"),
)

# Decimal filter values and categories as text: no signs but a leading '-', no NaN.
_DECIMAL_TEXT = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$", re.ASCII)
INT_LIMIT = 2**53 - 1  # integers in params must survive RFC 8785 canonical JSON
MAX_EPSILON = 10.0  # beyond this the noise protects nothing worth the name
MAX_VALUE_BOUND = 2**31  # keeps the sum of squares' DP sensitivity (bound^2) in int64
MAX_CATEGORIES = 1024
MAX_PROVIDERS = shamir.MAX_SHARES
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ORDERING_OPS = frozenset({"<", "<=", ">", ">="})
# Totals are decoded from Z_{2^128} as signed values: they must stay below 2^127.
RING_BUDGET = (1 << (masking.RING_BITS - 1)) - 1

_SCALAR: dict[str, Any] = {"type": ["integer", "number", "string"]}
NUMERIC_TYPES = frozenset({"integer", "decimal"})
PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "secure-stats parameters",
    "type": "object",
    "required": ["columns"],
    "additionalProperties": False,
    "properties": {
        "columns": {
            "description": "The dataset schema, as in the registered schema digest.",
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_COLUMNS,
            "items": {
                "type": "object",
                "required": ["name", "type"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "type": {"enum": list(COLUMN_TYPES)},
                    "scale": {
                        "description": "Digits after the point; required for, and only for, "
                        "a decimal column.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_SCALE,
                    },
                    "identifier": {
                        "description": "The owner marked the column as an identifier (as in "
                        "the schema digest); omitted means false.",
                        "type": "boolean",
                    },
                },
                "if": {"properties": {"type": {"const": "decimal"}}},
                "then": {"required": ["scale"]},
                "else": {"not": {"required": ["scale"]}},
            },
        },
        "value_column": {
            "description": (
                "Integer or decimal column for sum, mean and variance; omit for counts only."
            ),
            "type": ["string", "null"],
        },
        "group_column": {
            "description": "Column for the histogram; requires categories.",
            "type": ["string", "null"],
        },
        "categories": {
            "description": "Histogram cells; rows with any other value count as 'other'.",
            "type": "array",
            "maxItems": MAX_CATEGORIES,
            "uniqueItems": True,
            "items": _SCALAR,
        },
        "filter": {
            "description": "Only rows where `column op value` holds are counted.",
            "type": ["object", "null"],
            "required": ["column", "op", "value"],
            "additionalProperties": False,
            "properties": {
                "column": {"type": "string"},
                "op": {"enum": list(OPS)},
                "value": _SCALAR,
            },
        },
        "min_group_size": {
            "description": (
                "Raise the output policy's minimum group size for this query; it can never "
                "lower the minimum set for the datasets' classification levels."
            ),
            "type": "integer",
            "minimum": 1,
            "maximum": INT_LIMIT,
        },
        "value_bound": {
            "description": (
                "Each provider clips value_column to [-value_bound, value_bound] (in the "
                "column's units) before summing; required where the policy adds "
                "differential-privacy noise (it is the sum's sensitivity)."
            ),
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_VALUE_BOUND,
        },
        "epsilon": {
            "description": (
                "Ask for differential-privacy noise with this epsilon per query (stricter "
                "than the policy's, or where the policy needs none)."
            ),
            "type": "number",
            "exclusiveMinimum": 0,
        },
        "threshold": {
            "description": (
                "Providers needed to finish; default and minimum: the smallest t that resists "
                "the aggregator plus max(1, (n-1)//3) colluding providers (node/crypto/"
                "secagg.py); may only be raised."
            ),
            "type": ["integer", "null"],
            "minimum": 2,
            "maximum": MAX_PROVIDERS,
        },
        "complementary_suppression": {
            "description": "Hide the smallest shown cell when one non-empty cell is hidden.",
            "type": "boolean",
        },
    },
}


# --------------------------------------------------------------------------- parameters


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RowFilter:
    """``column op value``: a row is counted only if this holds."""

    column: str
    op: str
    value: int | str  # a decimal column's value as its canonical text

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class StatsParams:
    """What to compute. Validated on construction from JSON; see ``PARAMETER_SCHEMA``."""

    columns: tuple[Column, ...]
    min_group_size: int | None = None
    value_column: str | None = None
    group_column: str | None = None
    categories: tuple[int | str, ...] = ()
    filter: RowFilter | None = None
    threshold: int | None = None
    complementary_suppression: bool = True
    value_bound: int | None = None
    epsilon: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatsParams:
        data = json_object(data, PARAMETER_SCHEMA)
        columns = parse_columns(data.get("columns"))
        types = {c.name: c.type for c in columns}
        scales = {c.name: c.scale for c in columns}

        def column_ref(name: str, value: object, required_type: str | None = None) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                raise InvalidParams(name, "must be a column name (string)")
            if value not in types:
                raise InvalidParams(name, f"unknown column {value!r}")
            if required_type is not None and types[value] not in NUMERIC_TYPES:
                raise InvalidParams(
                    name, f"column {value!r} is {types[value]}, must be integer or decimal"
                )
            return value

        value_column = column_ref("value_column", data.get("value_column"), "numeric")
        group_column = column_ref("group_column", data.get("group_column"))
        categories = _parse_categories(data.get("categories"), group_column, types, scales)
        row_filter = _parse_filter(data.get("filter"), types, scales)

        min_group_size = data.get("min_group_size")
        if min_group_size is not None and (
            not _is_int(min_group_size) or not 1 <= min_group_size <= INT_LIMIT
        ):
            raise InvalidParams(
                "min_group_size", f"must be an integer >= 1, got {min_group_size!r}"
            )
        value_bound = data.get("value_bound")
        if value_bound is not None and (
            not _is_int(value_bound) or not 1 <= value_bound <= MAX_VALUE_BOUND
        ):
            raise InvalidParams(
                "value_bound", f"must be an integer in 1..{MAX_VALUE_BOUND}, got {value_bound!r}"
            )
        if value_bound is not None and value_column is None:
            raise InvalidParams("value_bound", "given without value_column")
        epsilon = data.get("epsilon")
        if epsilon is not None and (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, int | float)
            or not math.isfinite(epsilon)
            or not 0 < epsilon <= MAX_EPSILON
        ):
            raise InvalidParams(
                "epsilon", f"must be a number in (0, {MAX_EPSILON}], got {epsilon!r}"
            )

        threshold = data.get("threshold")
        if threshold is not None and (
            not _is_int(threshold) or not 2 <= threshold <= MAX_PROVIDERS
        ):
            raise InvalidParams(
                "threshold", f"must be an integer in 2..{MAX_PROVIDERS}, got {threshold!r}"
            )
        complementary = data.get("complementary_suppression", True)
        if not isinstance(complementary, bool):
            raise InvalidParams("complementary_suppression", "must be true or false")
        return cls(
            columns=columns,
            min_group_size=min_group_size,
            value_column=value_column,
            group_column=group_column,
            categories=categories,
            filter=row_filter,
            threshold=threshold,
            complementary_suppression=complementary,
            value_bound=value_bound,
            epsilon=None if epsilon is None else float(epsilon),
        )

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (``from_json(p.to_json()) == p``); absent options omitted."""
        out: dict[str, Any] = {
            "columns": [column_json(c) for c in self.columns],
            "complementary_suppression": self.complementary_suppression,
        }
        if self.min_group_size is not None:
            out["min_group_size"] = self.min_group_size
        if self.value_bound is not None:
            out["value_bound"] = self.value_bound
        if self.epsilon is not None:
            out["epsilon"] = self.epsilon
        if self.value_column is not None:
            out["value_column"] = self.value_column
        if self.group_column is not None:
            out["group_column"] = self.group_column
            out["categories"] = list(self.categories)
        if self.filter is not None:
            out["filter"] = self.filter.to_json()
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    @property
    def value_scale(self) -> int:
        """Digits after the point of ``value_column`` (0 for an integer column or none)."""
        return next((c.scale for c in self.columns if c.name == self.value_column), 0)

    @property
    def vector_length(self) -> int:
        """Elements of a provider's vector: count, [sum, sumsq], [categories..., other]."""
        length = 1
        if self.value_column is not None:
            length += 2
        if self.group_column is not None:
            length += len(self.categories) + 1
        return length

    def threshold_for(self, providers: int) -> int:
        """The secure sum's threshold t for ``providers`` parties (``secagg.threshold_for``):
        the safe minimum, or the requested ``threshold`` if higher; a lower one is refused."""
        try:
            return secagg.threshold_for(providers, self.threshold)
        except secagg.InvalidSession as exc:
            raise InvalidParams(exc.field, exc.detail) from None


def _check_scalar(where: str, value: object, column_type: str, scale: int = 0) -> int | str:
    if column_type == "decimal":
        return _decimal_value(where, value, scale)
    if column_type == "integer":
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= INT_LIMIT:
            return value
        raise InvalidParams(where, f"must be an integer within +-(2^53-1), got {value!r}")
    if isinstance(value, str):
        return value
    raise InvalidParams(where, f"must be a string, got {value!r}")


def _decimal_value(where: str, value: object, scale: int) -> str:
    """A decimal filter value or category as its canonical text at the column's scale.

    A decimal string (``"12.5"``, ``"-3"``, ``"1e2"``) or a JSON number; a JSON number
    with a fraction arrives as a binary float and is read as its shortest decimal form
    (``12.5`` -> ``"12.5"``), which is what the sender wrote. At most ``scale`` digits
    after the point, and within the column's 18 digits.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParams(where, f'must be a decimal string such as "12.5", got {value!r}')
    text = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str) and not _DECIMAL_TEXT.match(value):
        raise InvalidParams(where, f"{value!r} is not a decimal number")
    try:
        scaled = Decimal(text).scaleb(scale, Context(prec=80))
    except ArithmeticError:  # a float's inf/nan, or an exponent beyond any range
        raise InvalidParams(where, f"{value!r} is not a decimal number within range") from None
    if not scaled.is_finite():
        raise InvalidParams(where, f"{value!r} is not a decimal number")
    if scaled != scaled.to_integral_value():
        raise InvalidParams(
            where, f"{value!r} has more than the column's {scale} digits after the point"
        )
    if abs(scaled) > MAX_SCALED:
        raise InvalidParams(where, f"{value!r} is beyond the column's 18 digits")
    return decimal_text(int(scaled), scale)


def _parse_categories(
    value: object,
    group_column: str | None,
    types: Mapping[str, str],
    scales: Mapping[str, int] | None = None,
) -> tuple[int | str, ...]:
    if group_column is None:
        if value not in (None, [], ()):
            raise InvalidParams("categories", "given without group_column")
        return ()
    if not isinstance(value, list | tuple) or not value:
        raise InvalidParams("categories", "must be a non-empty list when group_column is set")
    if len(value) > MAX_CATEGORIES:
        raise InvalidParams("categories", f"at most {MAX_CATEGORIES} categories")
    scale = (scales or {}).get(group_column, 0)
    out = tuple(
        _check_scalar(f"categories[{i}]", v, types[group_column], scale)
        for i, v in enumerate(value)
    )
    if len(set(out)) != len(out):
        raise InvalidParams("categories", "categories must be distinct")
    return out


def _parse_filter(
    value: object, types: Mapping[str, str], scales: Mapping[str, int] | None = None
) -> RowFilter | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"column", "op", "value"}:
        raise InvalidParams("filter", 'must be {"column": ..., "op": ..., "value": ...}')
    column, op = value["column"], value["op"]
    if not isinstance(column, str) or column not in types:
        raise InvalidParams("filter.column", f"unknown column {column!r}")
    if op not in OPS:
        raise InvalidParams("filter.op", f"must be one of {list(OPS)}, got {op!r}")
    if op in ORDERING_OPS and types[column] not in NUMERIC_TYPES:
        raise InvalidParams(
            "filter.op", f"{op!r} needs an integer or decimal column; {column!r} is a string"
        )
    scale = (scales or {}).get(column, 0)
    return RowFilter(
        column, op, _check_scalar("filter.value", value["value"], types[column], scale)
    )


# ---------------------------------------------------------------- local (plaintext) work


Rows: TypeAlias = "pa.Table | Sequence[Mapping[str, int | str]]"


def local_vector(params: StatsParams, rows: Rows) -> list[int]:
    """This provider's exact (unreduced) totals in the layout of ``vector_length``.

    Column-wise over the provider's Arrow table (``columnar``); a list of dicts is
    accepted for small callers and checked row by row.
    """
    table = columnar.as_table(rows, params.columns)
    mask = columnar.selection_mask(table, params.filter)
    count = columnar.selected_count(table, mask)
    out = [count]
    if params.value_column is not None:
        values = columnar.int_values(table, params.value_column, mask)  # scaled decimals
        if params.value_bound is not None:
            bound = min(params.value_bound * 10**params.value_scale, MAX_SCALED)
            values = np.clip(values, -bound, bound)
        out += list(columnar.exact_sums(values))
    if params.group_column is not None:
        cells = columnar.category_counts(table, params.group_column, mask, params.categories)
        out += [*cells, count - sum(cells)]
    return out


def contribution(
    params: StatsParams,
    rows: Rows,
    policy: EffectivePolicy | None,
    threshold: int,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """What one provider puts into the secure sum: its totals plus, where the policy
    calls for it, its share of the noise (drawn for ``threshold`` contributors)."""
    vector = local_vector(params, rows)
    plan = noise_plan(params, policy)
    if plan is None:
        return vector
    shares = plan.shares(rng or dp_noise.new_rng(), threshold)
    return [v + n for v, n in zip(vector, shares, strict=True)]


def noise_plan(params: StatsParams, policy: EffectivePolicy | None) -> NoisePlan | None:
    """The differential-privacy noise each provider adds, or None where none is due.

    The query's epsilon is split evenly over the figures it releases (sequential
    composition): the count (sensitivity 1), the sum (``value_bound``), the sum of
    squares (``value_bound``^2) and the histogram (sensitivity 1 as a whole: one row
    moves exactly one cell). Neighbouring datasets differ by adding or removing a row.
    """
    if policy is None or policy.epsilon_per_query is None:
        return None
    if params.value_column is not None and params.value_bound is None:
        raise InvalidParams(
            "value_bound",
            f"required: classification level {policy.level} adds differential-privacy noise "
            "and the sum's sensitivity is the clipping bound",
        )
    parts = 1 + (2 if params.value_column is not None else 0) + (1 if params.group_column else 0)
    eps = dp_noise.split_epsilon(policy.epsilon_per_query, parts)
    plan = dp_noise.NoisePlan.figure(eps, 1)
    if params.value_column is not None and params.value_bound is not None:
        bound = params.value_bound * 10**params.value_scale  # in the summed (scaled) units
        try:
            plan = (
                plan
                + dp_noise.NoisePlan.figure(eps, bound)
                + dp_noise.NoisePlan.figure(eps, bound * bound)
            )
        except dp_noise.NoiseParameterError as exc:
            raise InvalidParams("value_bound", str(exc)) from None
    if params.group_column is not None:
        plan = plan + dp_noise.NoisePlan.histogram(eps, len(params.categories) + 1)
    return plan


def vector_labels(params: StatsParams) -> list[str]:
    """What each vector element counts, for messages and reports."""
    labels = ["count"]
    if params.value_column is not None:
        labels += [f"sum of {params.value_column}", f"sum of squares of {params.value_column}"]
    if params.group_column is not None:
        labels += [f"count of {params.group_column}={c!r}" for c in params.categories]
        labels.append(f"count of other {params.group_column}")
    return labels


def check_fits(vector: Sequence[int], providers: int, labels: Sequence[str] = ()) -> None:
    """Refuse totals that could overflow the 128-bit ring once n providers are added.

    Each provider may use 1/n of the signed 127-bit range, so the sum of all providers'
    figures is exact; real data (|value| < 2^48 and < 2^31 rows in all) is far inside.
    Checked before anything is sent, so the refusal reveals nothing to the peers.
    """
    budget = RING_BUDGET // providers
    for position, value in enumerate(vector):
        if abs(value) > budget:
            label = labels[position] if position < len(labels) else f"element {position}"
            raise ValueError(
                f"rows: the local {label} ({abs(value).bit_length()} bits) is too large for "
                f"the 128-bit ring shared by {providers} providers"
            )


# -------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class HistogramCell:
    """One histogram cell; ``category`` None is the 'other' bucket, ``count`` None suppressed."""

    category: int | str | None
    count: int | None


@dataclass(frozen=True)
class StatsResult:
    """The published statistics. ``None`` means suppressed, or not asked for.

    ``contributors`` (the providers whose rows are included) is informative only and not
    part of equality, so a secure result compares equal to the plaintext reference.
    """

    min_group_size: int
    suppressed: bool  # the whole result, because the filtered count is below the minimum
    count: int | None
    sum: int | Decimal | None  # Decimal (exponent -scale) for a decimal value column
    mean: Fraction | None
    variance: Fraction | None
    histogram: tuple[HistogramCell, ...] | None
    contributors: tuple[str, ...] = field(default=(), compare=False)
    # The rules applied (classification, minimum group size, epsilon) and, where noise
    # was added, how much: a reader must know a figure is noisy to read it right.
    policy: EffectivePolicy | None = field(default=None, compare=False)
    noise: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """JSON with exact values: big integers and fractions as decimal strings."""

        def exact(value: Fraction | None) -> dict[str, Any] | None:
            if value is None:
                return None
            return {
                "value": float(value),
                "numerator": str(value.numerator),
                "denominator": str(value.denominator),
            }

        return {
            "algorithm": NAME,
            "version": VERSION,
            "min_group_size": self.min_group_size,
            "suppressed": self.suppressed,
            "count": self.count,
            "sum": None if self.sum is None else _sum_text(self.sum),
            "mean": exact(self.mean),
            "variance": exact(self.variance),
            "histogram": None
            if self.histogram is None
            else [
                {"category": c.category, "other": c.category is None, "count": c.count}
                for c in self.histogram
            ],
            "contributors": list(self.contributors),
            "policy": None if self.policy is None else self.policy.to_json(),
            "noise": None if self.noise is None else dict(self.noise),
        }


def finalise(
    params: StatsParams,
    totals: Sequence[int],
    contributors: Sequence[str] = (),
    policy: EffectivePolicy | None = None,
    noise: Mapping[str, Any] | None = None,
) -> StatsResult:
    """Statistics from totals, with suppression; shared by both code paths so the
    secure and plaintext results follow literally the same rules.

    With ``noise`` the totals carry differential-privacy noise: figures are clamped to
    their possible range (post-processing, which costs no privacy) and suppression
    judges the noisy count, never the true one.
    """
    if len(totals) != params.vector_length:
        raise ValueError(f"expected {params.vector_length} totals, got {len(totals)}")
    k = policy.min_group_size if policy is not None else (params.min_group_size or 1)
    count = max(totals[0], 0) if noise is not None else totals[0]
    has_hist = params.group_column is not None
    contributors = tuple(contributors)
    if count < k or count == 0:
        return StatsResult(
            k, True, None, None, None, None, () if has_hist else None, contributors, policy, noise
        )
    total: int | Decimal | None = None
    mean = variance = None
    position = 1
    if params.value_column is not None:
        scaled, sumsq = totals[1], totals[2]
        if noise is not None:
            sumsq = max(sumsq, 0)
        mean = Fraction(scaled, count)
        variance = Fraction(sumsq, count) - mean * mean
        if noise is not None and variance < 0:
            variance = Fraction(0)
        total = scaled
        if params.value_scale:  # back from the scaled units to the column's, exactly
            unit = 10**params.value_scale
            total = Decimal(scaled).scaleb(-params.value_scale, Context(prec=80))
            mean, variance = mean / unit, variance / (unit * unit)
        position = 3
    histogram = None
    if has_hist:
        cells = (
            [max(c, 0) for c in totals[position:]] if noise is not None else list(totals[position:])
        )
        shown = _suppress_cells(cells, k, params.complementary_suppression)
        labels: list[int | str | None] = [*params.categories, None]
        histogram = tuple(
            HistogramCell(label, cell if ok else None)
            for label, cell, ok in zip(labels, cells, shown, strict=True)
        )
    return StatsResult(
        k, False, count, total, mean, variance, histogram, contributors, policy, noise
    )


def _sum_text(value: int | Decimal) -> str:
    """A sum as exact decimal text: an integer's digits, a decimal's with its scale."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        return decimal_text(int(value.scaleb(-exponent, Context(prec=80))), -exponent)
    return str(value)


def _suppress_cells(cells: Sequence[int], k: int, complementary: bool) -> list[bool]:
    """Which cells may be shown: count >= k, plus complementary suppression.

    The total count is published, so the hidden cells' sum is always known. When exactly
    one hidden cell is non-empty, that sum is its count to anyone who knows the other
    hidden cells are structurally empty; so the smallest shown cell is hidden as well.
    Hidden cells that are all empty need no protection (no record to disclose).
    """
    shown = [c >= k for c in cells]
    nonempty_hidden = [i for i, ok in enumerate(shown) if not ok and cells[i] > 0]
    if complementary and len(nonempty_hidden) == 1 and any(shown):
        smallest = min((i for i, ok in enumerate(shown) if ok), key=lambda i: (cells[i], i))
        shown[smallest] = False
    return shown


#: The parameters' type under the name the runner and the node service look up.
Params = StatsParams


def plaintext_stats(
    params: StatsParams, rows: Rows, policy: EffectivePolicy | None = None
) -> StatsResult:
    """The reference: the same statistics computed in the clear over all rows at once
    (without noise: it is what a noisy result must be close to)."""
    totals = local_vector(params, rows)
    check_fits(totals, 1, vector_labels(params))
    return finalise(params, totals, policy=policy)


# --------------------------------------------------------------------------- entry points


def run_provider(
    channel: Channel,
    params: StatsParams,
    rows: Rows,
    aggregator: str,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    identity: secagg.Identity,
    verifier: secagg.SignatureVerifier | None = None,
    task_id: bytes = b"",
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    policy: EffectivePolicy | None = None,
    noise_rng: np.random.Generator | None = None,
) -> None:
    """Contribute ``rows`` to the aggregate. Returns once the shares for unmasking are sent.

    ``timeout`` bounds each wait (see ``secagg.provide``). ``identity`` is this node's
    key, which signs the survivor set; ``verifier`` checks the other providers'
    signatures (default: parties are named by their node addresses). ``task_id`` binds
    all derived keys to the task; ``random_bytes`` exists so tests can fix the masks,
    and must otherwise stay the OS CSPRNG.

    The local totals are computed (and the rows checked) before any message is sent, so
    bad data fails here without leaving peers half-way through a round. Where
    ``policy`` calls for differential privacy, this provider's share of the noise is
    added to its vector before masking (``noise_rng`` only for tests: by default the
    OS CSPRNG seeds it), so no party ever sees a noiseless total.
    """
    s = _session(channel, params, providers, aggregator, task_id, policy)
    if channel.me not in s.providers:
        raise InvalidParams("providers", f"this party ({channel.me}) is not a provider")
    vector = contribution(params, rows, policy, s.threshold, noise_rng)
    check_fits(vector, len(s.providers), vector_labels(params))
    try:
        secagg.provide(channel, s, vector, identity, timeout, random_bytes, verifier=verifier)
    except secagg.InvalidSession as exc:
        raise InvalidParams(exc.field, exc.detail) from None


def run_aggregator(
    channel: Channel,
    params: StatsParams,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    verifier: secagg.SignatureVerifier,
    task_id: bytes = b"",
    policy: EffectivePolicy | None = None,
) -> StatsResult:
    """Collect masked inputs, unmask their sum with the survivors' help, publish statistics.

    ``timeout`` bounds each collection round (commitments, masked inputs, signatures,
    unmask answers); ``verifier`` checks the providers' signatures on the survivor set.
    ``policy`` must be the one the providers derive (it is bound into the session).
    """
    s = _session(channel, params, providers, channel.me, task_id, policy)
    total, survivors = secagg.collect(channel, s, verifier, timeout)
    plan = noise_plan(params, policy)
    contributors = [s.providers[k] for k in survivors]
    if plan is None:
        return finalise(params, _decode_totals(params, total), contributors, policy)
    noise = {
        "mechanism": "distributed discrete Laplace",
        "epsilon": policy.epsilon_per_query if policy is not None else None,
        "shares_drawn_for": s.threshold,
        "contributors": len(survivors),
        "standard_deviation": {
            label: math.sqrt(variance)
            for label, variance in zip(
                vector_labels(params), plan.variances(s.threshold, len(survivors)), strict=True
            )
        },
    }
    totals = [masking.signed(t) for t in total]
    return finalise(params, totals, contributors, policy, noise)


def _session(
    channel: Channel,
    params: StatsParams,
    providers: Sequence[str],
    aggregator: str,
    task_id: bytes,
    policy: EffectivePolicy | None = None,
) -> secagg.Session:
    """The secure-sum session of this query: the parameters and the output policy are
    its purpose, so parties that derived different rules cannot run it together."""
    purpose = {
        "algorithm": NAME,
        "version": VERSION,
        "params": params.to_json(),
        "policy": None if policy is None else policy.to_json(),
    }
    try:
        return secagg.session(
            channel,
            providers,
            aggregator,
            params.threshold,
            params.vector_length,
            purpose,
            task_id,
        )
    except secagg.InvalidSession as exc:
        raise InvalidParams(exc.field, exc.detail) from None


class InconsistentAggregate(secagg.ProtocolError):
    """The unmasked totals are impossible (e.g. histogram != count): some input was bad."""


def _decode_totals(params: StatsParams, total: Sequence[int]) -> list[int]:
    """Ring totals back to integers, with sanity checks a corrupted input would fail."""
    count = total[0]
    out = [count]

    def bad(detail: str) -> InconsistentAggregate:
        return InconsistentAggregate("(providers)", secagg.STEP_MASKED, detail)

    if count > RING_BUDGET:
        raise bad("count out of range")
    position = 1
    if params.value_column is not None:
        value_sum, sumsq = masking.signed(total[1]), total[2]
        if sumsq > RING_BUDGET or value_sum * value_sum > sumsq * count:
            raise bad("sum of squares is inconsistent with the sum and count")
        out += [value_sum, sumsq]
        position = 3
    if params.group_column is not None:
        cells = list(total[position:])
        if sum(cells) != count:
            raise bad("histogram cells do not add up to the count")
        out += cells
    return out
