"""Secure statistics: count, sum, mean, variance and histograms over several providers' rows.

An aggregator (the requesting node, which holds no data) learns only the total over
all providers' rows: the count, sum, mean and population variance of one integer column
and a histogram of one categorical column, after an optional row filter, with small
groups suppressed. No provider's individual figures are revealed to anyone.

Protocol: secure aggregation in the style of Bonawitz et al., "Practical Secure
Aggregation for Privacy-Preserving Machine Learning" (CCS 2017), semi-honest version,
adapted to provnet's mutually authenticated point-to-point channels (DESIGN §5): keys
and Shamir shares go directly provider to provider, never through the aggregator, so
the aggregator cannot substitute keys or read shares.

Each provider i turns its rows into a vector v_i = (count, sum, sum of squares,
one count per category, "other") and sends the aggregator

    y_i = v_i + PRG(b_i) + sum_{j != i} (+1 if i < j else -1) * PRG(s_ij)   in Z_{2^128}^L

where b_i is a random self-mask seed and s_ij a seed agreed with provider j over X25519
(see ``node/crypto/masking.py``). Pairwise masks cancel in the sum over all providers.
Both b_i and the X25519 private key c_i are Shamir-shared among the providers with
threshold t, so the aggregator can finish when providers drop out:

* a provider that dropped before sending y_d: survivors reveal their shares of c_d, and
  the aggregator removes d's pairwise masks from the survivors' sum;
* a provider that dropped after sending y_i: survivors reveal their shares of b_i.

A provider never reveals both for the same party (the request names a single set U of
survivors and the answer is b-shares for U and c-shares for the rest), and the survivors
check with each other that the aggregator told all of them the same U before answering,
so an aggregator cannot get b_i from some providers and c_i from others. Because t is
more than half the providers, two disjoint groups that were told different sets cannot
both reach t confirmations.

Messages (step name: direction, size in bytes for n providers and vector length L;
every message starts with the wire version and a type byte and is checked strictly):

=================  ========================  ============================================
step               direction                 body
=================  ========================  ============================================
commit             provider -> aggregator    2 + 32 context + 32 X25519 key + 32 H(b_i) = 98
keys               provider -> provider      2 + 32 context + 32 X25519 key = 66
shares             provider -> provider      2 + 1 index + 32 b-share + 32 c-share = 67
masked-input       provider -> aggregator    2 + 32 key-set digest + 2 + 16 L
survivors          aggregator -> provider    2 + 1 + |U| (indices of the survivors)
survivors-echo     provider -> provider      2 + 1 + |U| (the set this provider was told)
unmask             provider -> aggregator    2 + 1 + 34 n (index, kind, 32-byte share each)
=================  ========================  ============================================

Providers receive no result. What the aggregator learns besides the statistics is the
set of contributing providers, which the result names. Overflow: totals must fit in
127 bits; each provider checks its own share of that budget before sending anything.

Threat model and limits: semi-honest aggregator and providers, up to t-1 providers
colluding with the aggregator. A malicious provider can still skew the result by lying
about its own data (no input validation beyond the local schema check), and nothing
here stops an analyst from differencing overlapping queries (query budgets are planned
separately, DESIGN §11); small-group suppression only stops a single query from
isolating fewer than ``min_group_size`` rows.
"""

from __future__ import annotations

import itertools
import operator
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from ledger.canonical import digest, digest_json
from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import COLUMN_TYPES, Column
from node.channel import DEFAULT_TIMEOUT, Channel, ChannelError, PeerTimeout
from node.crypto import masking, shamir

NAME = "secure-stats"
VERSION = "1.0.0"
KIND = AlgorithmKind.MPC

_CRYPTO_DIR = Path(__file__).resolve().parent.parent / "crypto"
EXTRA_SOURCES: tuple[str, ...] = (
    str(_CRYPTO_DIR / "masking.py"),
    str(_CRYPTO_DIR / "shamir.py"),
)

INT_LIMIT = 2**53 - 1  # integers in params must survive RFC 8785 canonical JSON
MAX_COLUMNS = 256
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

_SCALAR: dict[str, Any] = {"type": ["integer", "string"]}
PARAMETER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "secure-stats parameters",
    "type": "object",
    "required": ["columns", "min_group_size"],
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
                },
            },
        },
        "value_column": {
            "description": "Integer column for sum, mean and variance; omit for counts only.",
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
            "description": "Cells and totals below this count are suppressed.",
            "type": "integer",
            "minimum": 1,
            "maximum": INT_LIMIT,
        },
        "threshold": {
            "description": "Providers needed to finish; default floor(n/2)+1, at least 2.",
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


class InvalidParams(ValueError):
    """Parameters the computation cannot run with; ``field`` names the offending one."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class RowFilter:
    """``column op value``: a row is counted only if this holds."""

    column: str
    op: str
    value: int | str

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class StatsParams:
    """What to compute. Validated on construction from JSON; see ``PARAMETER_SCHEMA``."""

    columns: tuple[Column, ...]
    min_group_size: int
    value_column: str | None = None
    group_column: str | None = None
    categories: tuple[int | str, ...] = ()
    filter: RowFilter | None = None
    threshold: int | None = None
    complementary_suppression: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatsParams:
        if not isinstance(data, Mapping):
            raise InvalidParams("params", "must be a JSON object")
        unknown = sorted(set(data) - set(PARAMETER_SCHEMA["properties"]))
        if unknown:
            raise InvalidParams(unknown[0], "unknown parameter")
        columns = _parse_columns(data.get("columns"))
        types = {c.name: c.type for c in columns}

        def column_ref(name: str, value: object, required_type: str | None = None) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                raise InvalidParams(name, "must be a column name (string)")
            if value not in types:
                raise InvalidParams(name, f"unknown column {value!r}")
            if required_type is not None and types[value] != required_type:
                raise InvalidParams(
                    name, f"column {value!r} is {types[value]}, must be {required_type}"
                )
            return value

        value_column = column_ref("value_column", data.get("value_column"), "integer")
        group_column = column_ref("group_column", data.get("group_column"))
        categories = _parse_categories(data.get("categories"), group_column, types)
        row_filter = _parse_filter(data.get("filter"), types)

        min_group_size = data.get("min_group_size")
        if min_group_size is None:
            raise InvalidParams("min_group_size", "is required")
        if not _is_int(min_group_size) or not 1 <= min_group_size <= INT_LIMIT:
            raise InvalidParams(
                "min_group_size", f"must be an integer >= 1, got {min_group_size!r}"
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
        )

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (``from_json(p.to_json()) == p``); absent options omitted."""
        out: dict[str, Any] = {
            "columns": [{"name": c.name, "type": c.type} for c in self.columns],
            "min_group_size": self.min_group_size,
            "complementary_suppression": self.complementary_suppression,
        }
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
    def vector_length(self) -> int:
        """Elements of a provider's vector: count, [sum, sumsq], [categories..., other]."""
        length = 1
        if self.value_column is not None:
            length += 2
        if self.group_column is not None:
            length += len(self.categories) + 1
        return length

    def threshold_for(self, providers: int) -> int:
        """The Shamir threshold t for ``providers`` parties, validated.

        t must exceed n/2: the survivors' cross-check of the aggregator's survivor set
        relies on two disjoint groups of t providers being impossible. t >= 2 so that
        no result ever covers a single provider's rows.
        """
        if providers < 2:
            raise InvalidParams("providers", f"need at least 2 providers, got {providers}")
        if providers > MAX_PROVIDERS:
            raise InvalidParams("providers", f"at most {MAX_PROVIDERS} providers")
        majority = providers // 2 + 1
        if self.threshold is None:
            return max(2, majority)
        if self.threshold > providers:
            raise InvalidParams(
                "threshold", f"{self.threshold} exceeds the number of providers ({providers})"
            )
        if self.threshold < majority:
            raise InvalidParams(
                "threshold",
                f"{self.threshold} is not a majority of {providers} providers (need >= {majority})",
            )
        return self.threshold


def _parse_columns(value: object) -> tuple[Column, ...]:
    if value is None:
        raise InvalidParams("columns", "is required")
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_COLUMNS:
        raise InvalidParams("columns", f"must be a list of 1..{MAX_COLUMNS} columns")
    out: list[Column] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"columns[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "type"}:
            raise InvalidParams(where, 'must be {"name": ..., "type": ...}')
        name, kind = item["name"], item["type"]
        if not isinstance(name, str) or not name:
            raise InvalidParams(f"{where}.name", "must be a non-empty string")
        if kind not in COLUMN_TYPES:
            raise InvalidParams(f"{where}.type", f"must be one of {list(COLUMN_TYPES)}")
        if name in seen:
            raise InvalidParams(f"{where}.name", f"duplicate column {name!r}")
        seen.add(name)
        out.append(Column(name, kind))
    return tuple(out)


def _check_scalar(where: str, value: object, column_type: str) -> int | str:
    if column_type == "integer":
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= INT_LIMIT:
            return value
        raise InvalidParams(where, f"must be an integer within +-(2^53-1), got {value!r}")
    if isinstance(value, str):
        return value
    raise InvalidParams(where, f"must be a string, got {value!r}")


def _parse_categories(
    value: object, group_column: str | None, types: Mapping[str, str]
) -> tuple[int | str, ...]:
    if group_column is None:
        if value not in (None, [], ()):
            raise InvalidParams("categories", "given without group_column")
        return ()
    if not isinstance(value, list | tuple) or not value:
        raise InvalidParams("categories", "must be a non-empty list when group_column is set")
    if len(value) > MAX_CATEGORIES:
        raise InvalidParams("categories", f"at most {MAX_CATEGORIES} categories")
    out = tuple(
        _check_scalar(f"categories[{i}]", v, types[group_column]) for i, v in enumerate(value)
    )
    if len(set(out)) != len(out):
        raise InvalidParams("categories", "categories must be distinct")
    return out


def _parse_filter(value: object, types: Mapping[str, str]) -> RowFilter | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"column", "op", "value"}:
        raise InvalidParams("filter", 'must be {"column": ..., "op": ..., "value": ...}')
    column, op = value["column"], value["op"]
    if not isinstance(column, str) or column not in types:
        raise InvalidParams("filter.column", f"unknown column {column!r}")
    if op not in OPS:
        raise InvalidParams("filter.op", f"must be one of {list(OPS)}, got {op!r}")
    if op in ORDERING_OPS and types[column] != "integer":
        raise InvalidParams("filter.op", f"{op!r} needs an integer column; {column!r} is a string")
    return RowFilter(column, op, _check_scalar("filter.value", value["value"], types[column]))


# ---------------------------------------------------------------- local (plaintext) work


def _column(rows: Sequence[Mapping[str, int | str]], name: str, kind: type) -> list[Any]:
    """One column of every row, each value checked to be exactly ``kind`` (no bools).

    Vectorised through ``map``/``itemgetter`` (C loops), so 10^6 rows take well under
    a second; the slow per-row scan runs only to name the first bad row.
    """
    try:
        values = list(map(operator.itemgetter(name), rows))
    except KeyError:
        row = next(i for i, r in enumerate(rows) if name not in r)
        raise ValueError(f"row {row}: missing column {name!r}") from None
    if values and set(map(type, values)) != {kind}:
        row = next(i for i, v in enumerate(values) if type(v) is not kind)
        raise ValueError(
            f"row {row}: column {name!r} must be {kind.__name__}, got {type(values[row]).__name__}"
        )
    return values


_PY_TYPES: dict[str, type] = {"integer": int, "string": str}


def local_vector(params: StatsParams, rows: Sequence[Mapping[str, int | str]]) -> list[int]:
    """This provider's exact (unreduced) totals in the layout of ``vector_length``."""
    types = {c.name: _PY_TYPES[c.type] for c in params.columns}
    keep: list[bool] | None = None
    if params.filter is not None:
        f = params.filter
        keep = list(
            map(OPS[f.op], _column(rows, f.column, types[f.column]), itertools.repeat(f.value))
        )

    def selected(name: str) -> list[Any]:
        values = _column(rows, name, types[name])
        return values if keep is None else list(itertools.compress(values, keep))

    count = len(rows) if keep is None else sum(keep)
    out = [count]
    if params.value_column is not None:
        values: list[int] = selected(params.value_column)
        out += [sum(values), sum(map(operator.mul, values, values))]
    if params.group_column is not None:
        counts = Counter(selected(params.group_column))
        cells = [counts.get(c, 0) for c in params.categories]
        out += [*cells, count - sum(cells)]
    return out


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
    sum: int | None
    mean: Fraction | None
    variance: Fraction | None
    histogram: tuple[HistogramCell, ...] | None
    contributors: tuple[str, ...] = field(default=(), compare=False)

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
            "sum": None if self.sum is None else str(self.sum),
            "mean": exact(self.mean),
            "variance": exact(self.variance),
            "histogram": None
            if self.histogram is None
            else [
                {"category": c.category, "other": c.category is None, "count": c.count}
                for c in self.histogram
            ],
            "contributors": list(self.contributors),
        }


def finalise(
    params: StatsParams, totals: Sequence[int], contributors: Sequence[str] = ()
) -> StatsResult:
    """Statistics from exact totals, with suppression; shared by both code paths so the
    secure and plaintext results follow literally the same rules."""
    if len(totals) != params.vector_length:
        raise ValueError(f"expected {params.vector_length} totals, got {len(totals)}")
    k = params.min_group_size
    count = totals[0]
    has_hist = params.group_column is not None
    if count < k:
        return StatsResult(
            k, True, None, None, None, None, () if has_hist else None, tuple(contributors)
        )
    total = mean = variance = None
    position = 1
    if params.value_column is not None:
        total, sumsq = totals[1], totals[2]
        mean = Fraction(total, count)
        variance = Fraction(sumsq, count) - mean * mean
        position = 3
    histogram = None
    if has_hist:
        cells = list(totals[position:])
        shown = _suppress_cells(cells, k, params.complementary_suppression)
        labels: list[int | str | None] = [*params.categories, None]
        histogram = tuple(
            HistogramCell(label, cell if ok else None)
            for label, cell, ok in zip(labels, cells, shown, strict=True)
        )
    return StatsResult(k, False, count, total, mean, variance, histogram, tuple(contributors))


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


def plaintext_stats(params: StatsParams, rows: Sequence[Mapping[str, int | str]]) -> StatsResult:
    """The reference: the same statistics computed in the clear over all rows at once."""
    totals = local_vector(params, rows)
    check_fits(totals, 1, vector_labels(params))
    return finalise(params, totals)


# -------------------------------------------------------------------------------- errors


class ProtocolError(ChannelError):
    """A peer sent something the protocol does not allow; names the peer and the step."""

    reason = "PROTOCOL_ERROR"

    def __init__(self, peer: str, step: str, detail: str) -> None:
        self.peer, self.step = peer, step
        super().__init__(f"{step!r} from {peer}: {detail}")


class MalformedMessage(ProtocolError):
    """Wrong version, type, length or field value: the bytes are not a valid message."""


class InconsistentShares(ProtocolError):
    """No threshold subset of the shares of ``peer``'s secret matches its commitment:
    some survivor sent a bad share (or ``peer`` committed to something it did not share)."""

    def __init__(self, owner: str, threshold: int, shares: int) -> None:
        self.peer, self.step = owner, STEP_UNMASK
        ChannelError.__init__(
            self,
            f"step {STEP_UNMASK!r}: no {threshold} of the {shares} shares of {owner}'s secret "
            f"reconstruct what {owner} committed to",
        )


class BelowThreshold(ChannelError):
    """Too few providers took part in a step for the protocol to finish."""

    reason = "PEER_TIMEOUT"

    def __init__(self, step: str, arrived: int, needed: int, missing: Sequence[str]) -> None:
        self.step, self.arrived, self.needed = step, arrived, needed
        self.missing = tuple(missing)
        super().__init__(
            f"step {step!r}: {arrived} provider(s) took part, the threshold needs {needed}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )


class SetupIncomplete(ChannelError):
    """A provider missed key or share exchange; every provider must finish setup."""

    reason = "PEER_TIMEOUT"

    def __init__(self, step: str, missing: Sequence[str], timeout: float) -> None:
        self.step, self.missing = step, tuple(missing)
        super().__init__(
            f"step {step!r}: no message from {', '.join(missing)} within {timeout:g} s; "
            "setup needs every provider"
        )


class Excluded(ChannelError):
    """The aggregator finished without this provider (its masked input came too late)."""

    reason = "PEER_TIMEOUT"


# ---------------------------------------------------------------------------------- wire

WIRE_VERSION = 1
STEP_COMMIT = "commit"
STEP_KEYS = "keys"
STEP_SHARES = "shares"
STEP_MASKED = "masked-input"
STEP_SURVIVORS = "survivors"
STEP_ECHO = "survivors-echo"
STEP_UNMASK = "unmask"
KEY = masking.KEY_BYTES
DIGEST = 32


class MessageType(IntEnum):
    COMMIT = 1
    KEYS = 2
    SHARES = 3
    MASKED_INPUT = 4
    SURVIVORS = 5
    SURVIVORS_ECHO = 6
    UNMASK = 7


class SecretKind(IntEnum):
    """Which of a party's two shared secrets an unmask entry carries."""

    SELF_SEED = 0  # b_j, for a survivor j
    PAIRWISE_KEY = 1  # c_d, for a dropped party d


def _frame(kind: MessageType, body: bytes) -> bytes:
    return bytes((WIRE_VERSION, kind)) + body


def _body(peer: str, step: str, payload: bytes, kind: MessageType, length: int | None) -> bytes:
    """Check version, type and (if fixed) exact length; return the body."""
    if len(payload) < 2:
        raise MalformedMessage(peer, step, f"truncated: {len(payload)} bytes")
    if payload[0] != WIRE_VERSION:
        raise MalformedMessage(
            peer, step, f"wire version {payload[0]} (this node speaks {WIRE_VERSION})"
        )
    if payload[1] != kind:
        raise MalformedMessage(peer, step, f"message type {payload[1]}, expected {int(kind)}")
    body = payload[2:]
    if length is not None and len(body) != length:
        raise MalformedMessage(peer, step, f"body of {len(body)} bytes, expected {length}")
    return body


def encode_commit(context: bytes, public: bytes, commitment: bytes) -> bytes:
    return _frame(MessageType.COMMIT, context + public + commitment)


def decode_commit(peer: str, payload: bytes) -> tuple[bytes, bytes, bytes]:
    body = _body(peer, STEP_COMMIT, payload, MessageType.COMMIT, DIGEST + KEY + DIGEST)
    return body[:DIGEST], body[DIGEST : DIGEST + KEY], body[DIGEST + KEY :]


def encode_keys(context: bytes, public: bytes) -> bytes:
    return _frame(MessageType.KEYS, context + public)


def decode_keys(peer: str, payload: bytes) -> tuple[bytes, bytes]:
    body = _body(peer, STEP_KEYS, payload, MessageType.KEYS, DIGEST + KEY)
    return body[:DIGEST], body[DIGEST:]


def encode_shares(index: int, self_share: bytes, key_share: bytes) -> bytes:
    return _frame(MessageType.SHARES, bytes((index,)) + self_share + key_share)


def decode_shares(peer: str, payload: bytes) -> tuple[int, bytes, bytes]:
    size = shamir.SHARE_BYTES
    body = _body(peer, STEP_SHARES, payload, MessageType.SHARES, 1 + 2 * size)
    return body[0], body[1 : 1 + size], body[1 + size :]


def encode_masked(keyset: bytes, vector: Sequence[int]) -> bytes:
    return _frame(
        MessageType.MASKED_INPUT,
        keyset + len(vector).to_bytes(2, "big") + masking.encode_vector(vector),
    )


def decode_masked(peer: str, payload: bytes, length: int) -> tuple[bytes, list[int]]:
    body = _body(
        peer,
        STEP_MASKED,
        payload,
        MessageType.MASKED_INPUT,
        DIGEST + 2 + length * masking.ELEMENT_BYTES,
    )
    declared = int.from_bytes(body[DIGEST : DIGEST + 2], "big")
    if declared != length:
        raise MalformedMessage(
            peer, STEP_MASKED, f"vector of {declared} elements, expected {length}"
        )
    return body[:DIGEST], masking.decode_vector(body[DIGEST + 2 :], length)


def encode_survivors(survivors: Sequence[int], echo: bool = False) -> bytes:
    kind = MessageType.SURVIVORS_ECHO if echo else MessageType.SURVIVORS
    return _frame(kind, bytes((len(survivors), *survivors)))


def decode_survivors(
    peer: str, payload: bytes, providers: int, echo: bool = False
) -> tuple[int, ...]:
    step, kind = (
        (STEP_ECHO, MessageType.SURVIVORS_ECHO) if echo else (STEP_SURVIVORS, MessageType.SURVIVORS)
    )
    body = _body(peer, step, payload, kind, None)
    if not body or len(body) != 1 + body[0]:
        raise MalformedMessage(peer, step, "survivor list length does not match its count")
    survivors = tuple(body[1:])
    if any(b <= a for a, b in itertools.pairwise(survivors)):
        raise MalformedMessage(peer, step, "survivor indices must be strictly increasing")
    if survivors and survivors[-1] >= providers:
        raise MalformedMessage(peer, step, f"survivor index {survivors[-1]} >= {providers}")
    return survivors


_ENTRY = 2 + shamir.SHARE_BYTES


def encode_unmask(entries: Sequence[tuple[int, SecretKind, bytes]]) -> bytes:
    body = bytearray((len(entries),))
    for party, kind, share in entries:
        body += bytes((party, kind)) + share
    return _frame(MessageType.UNMASK, bytes(body))


def decode_unmask(
    peer: str, payload: bytes, providers: int, survivors: Sequence[int]
) -> list[bytes]:
    """The shares of an unmask answer, one per provider, after checking that each entry
    is exactly the kind the survivor set calls for (b for survivors, c for the rest)."""
    body = _body(peer, STEP_UNMASK, payload, MessageType.UNMASK, 1 + providers * _ENTRY)
    if body[0] != providers:
        raise MalformedMessage(peer, STEP_UNMASK, f"{body[0]} entries, expected {providers}")
    alive = set(survivors)
    shares = []
    for k in range(providers):
        entry = body[1 + k * _ENTRY : 1 + (k + 1) * _ENTRY]
        expected = SecretKind.SELF_SEED if k in alive else SecretKind.PAIRWISE_KEY
        if entry[0] != k:
            raise MalformedMessage(peer, STEP_UNMASK, f"entry {k} is for party {entry[0]}")
        if entry[1] != expected:
            raise ProtocolError(
                peer, STEP_UNMASK, f"entry {k} carries secret kind {entry[1]}, expected {expected}"
            )
        shares.append(entry[2:])
    return shares


# ------------------------------------------------------------------------------ protocol
#
# The secure-sum core below knows nothing about statistics: it adds integer vectors of a
# fixed length. Only `run_provider`/`run_aggregator` and `_decode_totals` are specific.


@dataclass(frozen=True)
class _Session:
    """What every party must agree on; its digest (``context``) binds keys and seeds."""

    providers: tuple[str, ...]  # sorted: the index order for signs and share indices
    aggregator: str
    threshold: int
    length: int  # ring elements per vector
    context: bytes

    def index(self, name: str) -> int:
        return self.providers.index(name)


def _session(
    channel: Channel,
    params: StatsParams,
    providers: Sequence[str],
    aggregator: str,
    task_id: bytes,
) -> _Session:
    names = list(providers)
    if any(not isinstance(p, str) or not p for p in names) or len(set(names)) != len(names):
        raise InvalidParams("providers", "must be distinct non-empty names")
    if aggregator in names:
        raise InvalidParams("aggregator", f"{aggregator} is also listed as a provider")
    threshold = params.threshold_for(len(names))
    reachable = {channel.me, *channel.peers}
    unreachable = sorted({*names, aggregator} - reachable)
    if unreachable:
        raise InvalidParams("providers", f"not on this channel: {', '.join(unreachable)}")
    ordered = tuple(sorted(names))
    context = digest_json(
        "secure-stats-session",
        {
            "algorithm": NAME,
            "version": VERSION,
            "wire": WIRE_VERSION,
            "task": task_id.hex(),
            "params": params.to_json(),
            "aggregator": aggregator,
            "providers": list(ordered),
            "threshold": threshold,
        },
    )
    return _Session(ordered, aggregator, threshold, params.vector_length, context)


def seed_commitment(context: bytes, owner: str, self_seed: bytes) -> bytes:
    """H(b_i): lets the aggregator check a reconstructed b_i (b_i is 256 random bits, so
    the hash reveals nothing about it)."""
    return digest("secure-stats-seed-commitment", context + self_seed + owner.encode("utf-8"))


def keyset_digest(context: bytes, publics: Sequence[bytes]) -> bytes:
    """All providers' public keys in index order: equal at every honest party, so a
    provider that sent different keys to different parties is caught."""
    return digest("secure-stats-keyset", context + b"".join(publics))


T = TypeVar("T")
_POLL = 0.005


def _gather(
    channel: Channel,
    peers: Sequence[str],
    step: str,
    timeout: float,
    decode: Callable[[str, bytes], T],
    enough: int | None = None,
) -> dict[str, T]:
    """Receive ``step`` from each peer until all arrived, ``enough`` did, or the deadline.

    Waiting for all, it blocks on each peer in turn (one shared deadline). Waiting for
    the first ``enough``, it polls the peers round-robin so that an absent peer cannot
    hold up the ones that answered. Decoding errors propagate: a malformed message is a
    protocol violation, never a dropout.
    """
    deadline = time.monotonic() + timeout
    pending = list(peers)
    got: dict[str, T] = {}
    while pending and (enough is None or len(got) < enough):
        for peer in list(pending):
            remaining = deadline - time.monotonic()
            if enough is None or len(pending) == 1:
                wait = max(remaining, 0.0)
            else:
                wait = max(min(_POLL, remaining), 0.0)
            try:
                payload = channel.receive(peer, step, timeout=wait)
            except PeerTimeout:
                continue
            got[peer] = decode(peer, payload)
            pending.remove(peer)
            if enough is not None and len(got) >= enough:
                break
        if deadline - time.monotonic() <= 0:
            break
    return got


def _send_to_maybe_gone(channel: Channel, peer: str, step: str, payload: bytes) -> bool:
    """Send to a peer that may have dropped out; a failed send is a dropout, not an error.

    Used only where the protocol already tolerates the peer's absence (the survivor
    announcement, the survivors' cross-check): the missing answer is handled there.
    """
    try:
        channel.send(peer, step, payload)
    except ChannelError:
        return False
    return True


def _provide(
    channel: Channel,
    s: _Session,
    vector: Sequence[int],
    timeout: float,
    random_bytes: Callable[[int], bytes],
) -> None:
    """A provider's side of the secure sum of ``vector`` (steps 1-4 of the module doc)."""
    me = channel.me
    n, t, i = len(s.providers), s.threshold, s.index(me)
    others = [p for p in s.providers if p != me]

    # 1. Keys: an ephemeral X25519 key per task, straight to every other provider.
    key_seed, self_seed = random_bytes(KEY), random_bytes(KEY)
    if len(key_seed) != KEY or len(self_seed) != KEY:
        raise ValueError("random_bytes returned the wrong number of bytes")
    public = masking.public_key(key_seed)
    commitment = seed_commitment(s.context, me, self_seed)
    channel.send(s.aggregator, STEP_COMMIT, encode_commit(s.context, public, commitment))
    for peer in others:
        channel.send(peer, STEP_KEYS, encode_keys(s.context, public))

    def on_keys(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        context, peer_public = decode_keys(peer, payload)
        if context != s.context:
            raise ProtocolError(
                peer, STEP_KEYS, "session context differs (task, parameters or parties)"
            )
        try:
            seed = masking.pairwise_seed(key_seed, peer_public, s.context, me, peer)
        except masking.KeyAgreementError as exc:
            raise ProtocolError(peer, STEP_KEYS, str(exc)) from None
        return peer_public, seed

    keys = _gather(channel, others, STEP_KEYS, timeout, on_keys)
    if len(keys) < len(others):
        raise SetupIncomplete(STEP_KEYS, [p for p in others if p not in keys], timeout)

    # 2. Shares of b_i and c_i, straight to each provider (index k+1 goes to provider k).
    self_split = shamir.split(self_seed, t, n)
    key_split = shamir.split(key_seed, t, n)
    for peer in others:
        k = s.index(peer)
        channel.send(peer, STEP_SHARES, encode_shares(k + 1, self_split[k][1], key_split[k][1]))

    def on_shares(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        index, self_share, key_share = decode_shares(peer, payload)
        if index != i + 1:
            raise MalformedMessage(peer, STEP_SHARES, f"share index {index}, expected {i + 1}")
        return self_share, key_share

    held = _gather(channel, others, STEP_SHARES, timeout, on_shares)
    if len(held) < len(others):
        raise SetupIncomplete(STEP_SHARES, [p for p in others if p not in held], timeout)
    held[me] = (self_split[i][1], key_split[i][1])

    # 3. The masked input.
    masked = masking.mask(
        vector,
        masking.self_mask_seed(self_seed, s.context, me),
        [(masking.pairwise_sign(i, s.index(p)), keys[p][1]) for p in others],
    )
    publics = [public if p == me else keys[p][0] for p in s.providers]
    channel.send(
        s.aggregator, STEP_MASKED, encode_masked(keyset_digest(s.context, publics), masked)
    )

    # 4. Unmasking: check the survivor set with the other survivors, then reveal.
    announced = channel.receive(s.aggregator, STEP_SURVIVORS, 2 * timeout)
    survivors = decode_survivors(s.aggregator, announced, n)
    if i not in survivors:
        raise Excluded(f"{s.aggregator} finished without this provider's input")
    if len(survivors) < t:
        missing = [p for k, p in enumerate(s.providers) if k not in survivors]
        raise BelowThreshold(STEP_SURVIVORS, len(survivors), t, missing)

    members = [s.providers[k] for k in survivors if k != i]
    for peer in members:
        _send_to_maybe_gone(channel, peer, STEP_ECHO, encode_survivors(survivors, echo=True))

    def on_echo(peer: str, payload: bytes) -> None:
        theirs = decode_survivors(peer, payload, n, echo=True)
        if theirs != survivors:
            raise ProtocolError(
                s.aggregator,
                STEP_SURVIVORS,
                f"told survivors {list(survivors)} but {peer} was told {list(theirs)}; "
                "refusing to reveal shares",
            )

    confirmed = _gather(channel, members, STEP_ECHO, timeout, on_echo, enough=t - 1)
    if 1 + len(confirmed) < t:
        missing = [p for p in members if p not in confirmed]
        raise BelowThreshold(STEP_ECHO, 1 + len(confirmed), t, missing)

    # One secret per party, chosen by the single confirmed set: b for survivors, c for
    # the dropped. This is the only answer this provider ever gives for the task.
    alive = set(survivors)
    entries = [
        (k, SecretKind.SELF_SEED, held[p][0])
        if k in alive
        else (k, SecretKind.PAIRWISE_KEY, held[p][1])
        for k, p in enumerate(s.providers)
    ]
    channel.send(s.aggregator, STEP_UNMASK, encode_unmask(entries))


def _collect(channel: Channel, s: _Session, timeout: float) -> tuple[list[int], tuple[int, ...]]:
    """The aggregator's side of the secure sum: (sum over survivors in the ring, survivors)."""
    n, t, length = len(s.providers), s.threshold, s.length

    def on_commit(peer: str, payload: bytes) -> tuple[bytes, bytes]:
        context, public, commitment = decode_commit(peer, payload)
        if context != s.context:
            raise ProtocolError(
                peer, STEP_COMMIT, "session context differs (task, parameters or parties)"
            )
        return public, commitment

    commits = _gather(channel, s.providers, STEP_COMMIT, timeout, on_commit)
    if len(commits) < n:
        raise SetupIncomplete(STEP_COMMIT, [p for p in s.providers if p not in commits], timeout)
    expected_keyset = keyset_digest(s.context, [commits[p][0] for p in s.providers])

    def on_masked(peer: str, payload: bytes) -> list[int]:
        keyset, vector = decode_masked(peer, payload, length)
        if keyset != expected_keyset:
            raise ProtocolError(
                peer, STEP_MASKED, "saw different provider public keys than were committed"
            )
        return vector

    masked = _gather(channel, s.providers, STEP_MASKED, timeout, on_masked)
    survivors = tuple(k for k, p in enumerate(s.providers) if p in masked)
    # Everyone hears the outcome, also below threshold, so live providers stop at once.
    announcement = encode_survivors(survivors)
    for peer in s.providers:
        _send_to_maybe_gone(channel, peer, STEP_SURVIVORS, announcement)
    if len(survivors) < t:
        raise BelowThreshold(
            STEP_MASKED, len(survivors), t, [p for p in s.providers if p not in masked]
        )

    members = [s.providers[k] for k in survivors]

    def on_unmask(peer: str, payload: bytes) -> list[bytes]:
        return decode_unmask(peer, payload, n, survivors)

    # Proceed with the first t answers; wait for more only if they do not reconstruct.
    deadline = time.monotonic() + timeout
    answers = _gather(channel, members, STEP_UNMASK, timeout, on_unmask, enough=t)
    while True:
        if len(answers) < t:
            missing = [p for p in members if p not in answers]
            raise BelowThreshold(STEP_UNMASK, len(answers), t, missing)
        try:
            self_seeds, key_seeds = _reconstruct(s, survivors, commits, answers)
            break
        except InconsistentShares:
            rest = [p for p in members if p not in answers]
            remaining = deadline - time.monotonic()
            more = _gather(channel, rest, STEP_UNMASK, remaining, on_unmask) if rest else {}
            if not more:
                raise
            answers.update(more)

    total = [0] * length
    for k in survivors:
        name = s.providers[k]
        total = masking.add(total, masked[name])
        self_key = masking.self_mask_seed(self_seeds[k], s.context, name)
        total = masking.add(total, masking.prg(self_key, length), -1)
    for d, key_seed in key_seeds.items():
        for j in survivors:
            peer = s.providers[j]
            try:
                seed = masking.pairwise_seed(
                    key_seed, commits[peer][0], s.context, s.providers[d], peer
                )
            except masking.KeyAgreementError as exc:
                raise ProtocolError(peer, STEP_COMMIT, str(exc)) from None
            # j added sign(j, d) * PRG(s_jd) for the dropped d; take it back out.
            total = masking.add(total, masking.prg(seed, length), -masking.pairwise_sign(j, d))
    return total, survivors


def _reconstruct(
    s: _Session,
    survivors: Sequence[int],
    commits: Mapping[str, tuple[bytes, bytes]],
    answers: Mapping[str, list[bytes]],
) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """b_j for every survivor and c_d for every dropped party, each checked against what
    its owner committed to (H(b_j), the public key C_d) before it is used."""
    alive = set(survivors)
    self_seeds: dict[int, bytes] = {}
    key_seeds: dict[int, bytes] = {}
    for k, name in enumerate(s.providers):
        shares = sorted((s.index(r) + 1, answer[k]) for r, answer in answers.items())
        public, commitment = commits[name]
        if k in alive:
            self_seeds[k] = _combine_checked(
                name, shares, s.threshold, _matches_commitment(s.context, name, commitment)
            )
        else:
            key_seeds[k] = _combine_checked(name, shares, s.threshold, _matches_public(public))
    return self_seeds, key_seeds


def _matches_commitment(context: bytes, owner: str, commitment: bytes) -> Callable[[bytes], bool]:
    return lambda seed: seed_commitment(context, owner, seed) == commitment


def _matches_public(public: bytes) -> Callable[[bytes], bool]:
    return lambda seed: masking.public_key(seed) == public


MAX_SUBSETS = 256


def _combine_checked(
    owner: str,
    shares: Sequence[tuple[int, bytes]],
    threshold: int,
    check: Callable[[bytes], bool],
) -> bytes:
    """The first threshold-subset of shares whose secret passes ``check``.

    With honest survivors the first subset works; trying others tolerates a few bad
    shares without trusting any one survivor. Bounded, so bad input cannot make it slow.
    """
    for subset in itertools.islice(itertools.combinations(shares, threshold), MAX_SUBSETS):
        secret = shamir.combine(list(subset))
        if check(secret):
            return secret
    raise InconsistentShares(owner, threshold, len(shares))


# --------------------------------------------------------------------------- entry points


def run_provider(
    channel: Channel,
    params: StatsParams,
    rows: Sequence[Mapping[str, int | str]],
    aggregator: str,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    task_id: bytes = b"",
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> None:
    """Contribute ``rows`` to the aggregate. Returns once the shares for unmasking are sent.

    ``timeout`` bounds each wait; the wait for the survivor set is twice as long because
    the aggregator itself waits up to ``timeout`` for late masked inputs first.
    ``task_id`` binds all derived keys to the task; ``random_bytes`` exists so tests can
    fix the masks, and must otherwise stay the OS CSPRNG.

    The local totals are computed (and the rows checked) before any message is sent, so
    bad data fails here without leaving peers half-way through a round.
    """
    s = _session(channel, params, providers, aggregator, task_id)
    if channel.me not in s.providers:
        raise InvalidParams("providers", f"this party ({channel.me}) is not a provider")
    vector = local_vector(params, rows)
    check_fits(vector, len(s.providers), vector_labels(params))
    _provide(channel, s, vector, timeout, random_bytes)


def run_aggregator(
    channel: Channel,
    params: StatsParams,
    providers: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    task_id: bytes = b"",
) -> StatsResult:
    """Collect masked inputs, unmask their sum with the survivors' help, publish statistics.

    ``timeout`` bounds each collection round (commitments, masked inputs, unmask answers).
    """
    s = _session(channel, params, providers, channel.me, task_id)
    total, survivors = _collect(channel, s, timeout)
    return finalise(params, _decode_totals(params, total), [s.providers[k] for k in survivors])


class InconsistentAggregate(ProtocolError):
    """The unmasked totals are impossible (e.g. histogram != count): some input was bad."""


def _decode_totals(params: StatsParams, total: Sequence[int]) -> list[int]:
    """Ring totals back to integers, with sanity checks a corrupted input would fail."""
    count = total[0]
    out = [count]

    def bad(detail: str) -> InconsistentAggregate:
        return InconsistentAggregate("(providers)", STEP_MASKED, detail)

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
