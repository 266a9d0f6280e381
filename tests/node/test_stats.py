"""Secure statistics over in-memory channels, one thread per party.

Checked: results equal the plaintext reference (and an independent naive oracle);
dropouts before and after the masked input; too many dropouts; an aggregator that lies
about the survivor set; what the aggregator sees is independent of the individual
inputs (concretely, via a simulator); strict parameter and message validation. The
secure sum itself (thresholds, the signed consistency round, the collusion attack, wire
formats) is tested in ``test_secagg.py``.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from Crypto.Protocol import SecretSharing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json, digest_json
from ledger.clients.algorithms import AlgorithmKind
from ledger.transcript import Transcript
from node.algorithms import stats
from node.algorithms.package import package_of
from node.channel import Channel, InMemoryNetwork, PeerTimeout, RecordingChannel
from node.crypto import masking, secagg
from tests.node.faulty_channel import Crashed, FaultyChannel
from tests.node.party_keys import identity, key_ring

Row = dict[str, int | str]
AGG = "aggregator"
COLUMNS = [
    {"name": "amount", "type": "integer"},
    {"name": "region", "type": "string"},
    {"name": "age", "type": "integer"},
]
REGIONS = ["north", "south", "east", "west"]
CATEGORIES = ["north", "south", "east", "nobody"]  # "nobody" never occurs; "west" is other


def make_params(**overrides: Any) -> stats.StatsParams:
    data: dict[str, Any] = {
        "columns": COLUMNS,
        "value_column": "amount",
        "group_column": "region",
        "categories": CATEGORIES,
        "min_group_size": 1,
    }
    data.update(overrides)
    return stats.StatsParams.from_json({k: v for k, v in data.items() if v is not None})


def random_rows(rng: random.Random, count: int) -> list[Row]:
    return [
        {
            "amount": rng.randrange(-(10**9), 10**9),
            "region": rng.choice(REGIONS),
            "age": rng.randrange(18, 90),
        }
        for _ in range(count)
    ]


# ------------------------------------------------------------------------------ harness


@dataclass
class Run:
    result: stats.StatsResult | BaseException
    errors: dict[str, BaseException | None]
    net: InMemoryNetwork
    providers: list[str] = field(default_factory=list)

    def ok(self) -> stats.StatsResult:
        if isinstance(self.result, BaseException):
            raise AssertionError(f"aggregator failed: {self.result!r}; providers: {self.errors}")
        return self.result

    def to_aggregator(self, step: str) -> dict[str, bytes]:
        return {src: p for src, dst, s, p in self.net.sent if dst == AGG and s == step}

    def aggregator_view(self) -> list[tuple[str, str, bytes]]:
        return sorted((src, s, p) for src, dst, s, p in self.net.sent if dst == AGG)


def run_protocol(
    params: stats.StatsParams,
    rows: Mapping[str, Sequence[Row]],
    *,
    timeout: float = 5.0,
    faults: Mapping[str, dict[str, Any]] | None = None,
    randomness: Mapping[str, Callable[[int], bytes]] | None = None,
    provider_params: Mapping[str, stats.StatsParams] | None = None,
) -> Run:
    names = list(rows)
    net = InMemoryNetwork([*names, AGG])
    errors: dict[str, BaseException | None] = {}
    verifier = key_ring(names)

    def provider(name: str) -> None:
        channel: Channel = net.channel(name)
        if faults and name in faults:
            channel = FaultyChannel(channel, **faults[name])
        extra: dict[str, Any] = {}
        if randomness and name in randomness:
            extra["random_bytes"] = randomness[name]
        mine = (provider_params or {}).get(name, params)
        try:
            stats.run_provider(
                channel,
                mine,
                rows[name],
                AGG,
                names,
                timeout,
                identity=identity(name),
                verifier=verifier,
                **extra,
            )
            errors[name] = None
        except BaseException as exc:
            errors[name] = exc

    threads = [threading.Thread(target=provider, args=(n,), name=n, daemon=True) for n in names]
    for t in threads:
        t.start()
    result: stats.StatsResult | BaseException
    try:
        result = stats.run_aggregator(net.channel(AGG), params, names, timeout, verifier=verifier)
    except Exception as exc:
        result = exc
    for t in threads:
        t.join(timeout=4 * timeout + 5)
        assert not t.is_alive(), f"provider {t.name} hung"
    return Run(result, errors, net, names)


def union(rows: Mapping[str, Sequence[Row]], only: Sequence[str] | None = None) -> list[Row]:
    return [r for name, rs in rows.items() if only is None or name in only for r in rs]


def secret_kinds(payload: bytes) -> list[tuple[int, int]]:
    """(party index, secret kind) of each entry of an unmask answer, parsed by hand."""
    body = payload[2:]
    return [(body[1 + 34 * k], body[2 + 34 * k]) for k in range(body[0])]


def assert_never_both_secrets(run: Run) -> dict[int, set[int]]:
    revealed: dict[int, set[int]] = {}
    for payload in run.to_aggregator(secagg.STEP_UNMASK).values():
        for party, kind in secret_kinds(payload):
            revealed.setdefault(party, set()).add(kind)
    assert all(len(kinds) == 1 for kinds in revealed.values()), revealed
    return revealed


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def naive(params: stats.StatsParams, rows: Sequence[Row]) -> stats.StatsResult:
    """An independent oracle for the totals: one obvious loop, no shared code."""
    count = total = squares = 0
    cells = dict.fromkeys(params.categories, 0)
    other = 0
    for row in rows:
        f = params.filter
        if f is not None and not _OPS[f.op](row[f.column], f.value):
            continue
        count += 1
        if params.value_column:
            v = row[params.value_column]
            assert isinstance(v, int)
            total += v
            squares += v * v
        if params.group_column:
            g = row[params.group_column]
            if g in cells:
                cells[g] += 1
            else:
                other += 1
    totals = [count]
    if params.value_column:
        totals += [total, squares]
    if params.group_column:
        totals += [*cells.values(), other]
    return stats.finalise(params, totals)


# ------------------------------------------------------------------------ module contract


def test_module_contract_and_digest_cover_helpers() -> None:
    assert (stats.NAME, stats.VERSION, stats.KIND) == ("secure-stats", "2.1.0", AlgorithmKind.MPC)
    package = package_of(stats)
    assert set(package.source_digests) == {
        "node/algorithms/stats.py",
        "node/crypto/masking.py",
        "node/crypto/shamir.py",
        "node/crypto/secagg.py",
        "node/crypto/dp_noise.py",
        "node/algorithms/output_policy.py",
        "node/algorithms/disclosure.py",
        "node/algorithms/columnar.py",
        "node/algorithms/task_columns.py",
        "node/algorithms/param_fields.py",
    }
    assert len(package.digest) == 32
    canonical_json(stats.PARAMETER_SCHEMA)  # part of the digest: must canonicalise


# ----------------------------------------------------------------------------- params


def test_params_round_trip() -> None:
    params = make_params(
        filter={"column": "age", "op": ">=", "value": 30}, threshold=3, min_group_size=5
    )
    again = stats.StatsParams.from_json(params.to_json())
    assert again == params
    assert params.vector_length == 1 + 2 + len(CATEGORIES) + 1
    counts_only = stats.StatsParams.from_json({"columns": COLUMNS, "min_group_size": 2})
    assert counts_only.vector_length == 1
    assert stats.StatsParams.from_json(counts_only.to_json()) == counts_only


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"value_column": "salary"}, "value_column"),  # unknown column
        ({"value_column": "region"}, "value_column"),  # not an integer column
        ({"group_column": "town"}, "group_column"),
        ({"filter": {"column": "age", "op": "=~", "value": 3}}, "filter.op"),
        ({"filter": {"column": "region", "op": "<", "value": "n"}}, "filter.op"),
        ({"filter": {"column": "ghost", "op": "==", "value": 3}}, "filter.column"),
        ({"filter": {"column": "age", "op": "==", "value": "30"}}, "filter.value"),
        ({"filter": {"column": "age", "op": "==", "value": True}}, "filter.value"),
        ({"filter": {"column": "age", "op": "=="}}, "filter"),
        ({"min_group_size": 0}, "min_group_size"),
        ({"min_group_size": 2.5}, "min_group_size"),
        ({"min_group_size": True}, "min_group_size"),
        ({"value_bound": 0}, "value_bound"),
        ({"value_column": None, "value_bound": 5}, "value_bound"),
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": float("inf")}, "epsilon"),
        ({"epsilon": True}, "epsilon"),
        ({"threshold": 1}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"categories": []}, "categories"),
        ({"categories": ["north", "north"]}, "categories"),
        ({"categories": ["north", 3]}, "categories[1]"),
        ({"group_column": None}, "categories"),  # categories without a group column
        ({"columns": [{"name": "a", "type": "float"}]}, "columns[0].type"),
        ({"columns": [{"name": "a", "type": "integer"}] * 2}, "columns[1].name"),
        ({"columns": None}, "columns"),
        ({"colour": "blue"}, "colour"),
        ({"complementary_suppression": "yes"}, "complementary_suppression"),
    ],
)
def test_bad_params_name_the_field(overrides: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(field_name)}:") as info:
        make_params(**overrides)
    assert isinstance(info.value, stats.InvalidParams)
    assert info.value.field == field_name


def test_threshold_defaults_and_limits() -> None:
    """Delegated to secagg (2t > n + c, c = max(1, floor((n-1)/3))), errors as InvalidParams."""
    params = make_params()
    assert {n: params.threshold_for(n) for n in (2, 3, 4, 5, 6, 7)} == {
        2: 2,
        3: 3,
        4: 3,
        5: 4,
        6: 4,
        7: 5,
    }
    assert make_params(threshold=5).threshold_for(5) == 5  # raising t is allowed
    with pytest.raises(stats.InvalidParams, match="threshold: 4 exceeds the number of providers"):
        make_params(threshold=4).threshold_for(3)
    with pytest.raises(
        stats.InvalidParams, match="threshold: 3 is below the safe minimum 4 for 5 providers"
    ) as info:
        make_params(threshold=3).threshold_for(5)
    assert info.value.field == "threshold"
    with pytest.raises(stats.InvalidParams, match="providers"):
        params.threshold_for(1)


def test_threshold_above_n_is_refused_before_any_message() -> None:
    net = InMemoryNetwork(["p1", "p2", "p3", AGG])
    names = ["p1", "p2", "p3"]
    ring, me = key_ring(names), identity("p1")
    with pytest.raises(stats.InvalidParams) as info:
        stats.run_aggregator(net.channel(AGG), make_params(threshold=4), names, verifier=ring)
    assert info.value.field == "threshold"
    with pytest.raises(stats.InvalidParams) as info:
        stats.run_aggregator(net.channel(AGG), make_params(threshold=2), names, verifier=ring)
    assert info.value.field == "threshold"  # below the safe minimum (3 for 3 providers)
    with pytest.raises(stats.InvalidParams) as info:
        stats.run_provider(
            net.channel("p1"), make_params(), [], AGG, ["p1", "p1", "p2"], identity=me
        )
    assert info.value.field == "providers"
    with pytest.raises(stats.InvalidParams) as info:
        stats.run_provider(net.channel("p1"), make_params(), [], "p2", names, identity=me)
    assert info.value.field == "aggregator"
    # A key that would not verify as this party is refused before anything is sent.
    with pytest.raises(stats.InvalidParams, match=r"^identity: ") as info:
        stats.run_provider(
            net.channel("p1"), make_params(), [], AGG, names, identity=identity("p2"), verifier=ring
        )
    assert net.sent == []


def test_bad_rows_fail_locally_naming_row_and_column() -> None:
    net = InMemoryNetwork(["p1", "p2", AGG])
    rows: list[Row] = [
        {"amount": 1, "region": "north", "age": 40},
        {"amount": "2", "region": "x", "age": 1},
    ]
    with pytest.raises(ValueError, match="row 1: column 'amount' must be int, got str"):
        stats.run_provider(
            net.channel("p1"), make_params(), rows, AGG, ["p1", "p2"], identity=identity("p1")
        )
    with pytest.raises(ValueError, match="row 0: missing column 'age'"):
        stats.plaintext_stats(
            make_params(filter={"column": "age", "op": ">", "value": 3}),
            [{"amount": 1, "region": "north"}],
        )
    bools: list[Row] = [{"amount": True, "region": "north", "age": 40}]
    with pytest.raises(ValueError, match="must be int, got bool"):
        stats.plaintext_stats(make_params(), bools)
    assert net.sent == []  # nothing was sent: peers are not left half-way


def test_totals_that_could_overflow_the_ring_are_refused() -> None:
    huge: list[Row] = [{"amount": 2**63 - 1, "region": "north", "age": 1}] * 3
    with pytest.raises(ValueError, match=r"local sum of squares of amount \(128 bits\)"):
        stats.plaintext_stats(make_params(), huge)
    beyond: list[Row] = [{"amount": 2**64, "region": "north", "age": 1}]
    with pytest.raises(ValueError, match=r"row 0: column 'amount' .* 64-bit"):
        stats.plaintext_stats(make_params(), beyond)
    stats.check_fits([1, 2**62, 2**124], 7)
    with pytest.raises(ValueError, match=r"local element 1 .* shared by 2 providers"):
        stats.check_fits([1, -(2**126), 0], 2)
    assert stats.vector_labels(make_params(categories=["north"])) == [
        "count",
        "sum of amount",
        "sum of squares of amount",
        "count of region='north'",
        "count of other region",
    ]


# ---------------------------------------------------------------------- correctness


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_secure_result_equals_plaintext(n: int) -> None:
    rng = random.Random(n)
    rows = {f"p{i}": random_rows(rng, rng.randrange(0, 40)) for i in range(1, n + 1)}
    rows["p2"] = []  # an empty provider
    params = make_params(filter={"column": "age", "op": ">=", "value": 30}, min_group_size=2)
    run = run_protocol(params, rows)
    result = run.ok()
    assert result == stats.plaintext_stats(params, union(rows)) == naive(params, union(rows))
    assert result.contributors == tuple(sorted(rows))
    assert all(e is None for e in run.errors.values()), run.errors
    assert result.histogram is not None
    assert result.histogram[CATEGORIES.index("nobody")].count is None  # empty group hidden
    digest_json("result", result.to_json())  # the result has a canonical form


ROW = st.fixed_dictionaries(
    {
        "amount": st.integers(min_value=-(2**40), max_value=2**40),
        "region": st.sampled_from(REGIONS),
        "age": st.integers(min_value=0, max_value=5),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.lists(ROW, max_size=6), min_size=2, max_size=4),
    op=st.sampled_from([None, *stats.OPS]),
    pivot=st.integers(min_value=-1, max_value=6),
    min_group_size=st.integers(min_value=1, max_value=4),
    with_value=st.booleans(),
)
def test_secure_result_equals_plaintext_property(
    data: list[list[Row]], op: str | None, pivot: int, min_group_size: int, with_value: bool
) -> None:
    rows = {f"p{i}": r for i, r in enumerate(data)}
    params = make_params(
        filter=None if op is None else {"column": "age", "op": op, "value": pivot},
        min_group_size=min_group_size,
        value_column="amount" if with_value else None,
    )
    result = run_protocol(params, rows).ok()
    assert result == stats.plaintext_stats(params, union(rows)) == naive(params, union(rows))


def test_filter_matching_nothing_suppresses_everything() -> None:
    rng = random.Random(1)
    rows = {f"p{i}": random_rows(rng, 10) for i in range(3)}
    params = make_params(filter={"column": "age", "op": ">", "value": 1000})
    result = run_protocol(params, rows).ok()
    assert result == stats.plaintext_stats(params, union(rows))
    assert result.suppressed and result.count is None and result.mean is None
    assert result.histogram == ()


def _rows_with(values: list[int], region: str = "north") -> list[Row]:
    return [{"amount": v, "region": region, "age": 50} for v in values]


def test_suppression_at_the_threshold_boundary() -> None:
    # 5 rows pass the filter in total: k = 5 shows them, k = 6 suppresses everything.
    rows = {"p1": _rows_with([1, 2, 3]), "p2": _rows_with([-4, 10]), "p3": []}
    shown = run_protocol(make_params(min_group_size=5, categories=["north"]), rows).ok()
    assert (shown.suppressed, shown.count, shown.sum) == (False, 5, 12)
    assert shown.mean == Fraction(12, 5)
    assert shown.variance == Fraction(1 + 4 + 9 + 16 + 100, 5) - Fraction(12, 5) ** 2
    assert shown.histogram == (
        stats.HistogramCell("north", 5),
        stats.HistogramCell(None, None),  # empty 'other' bucket: hidden
    )
    hidden = run_protocol(make_params(min_group_size=6, categories=["north"]), rows).ok()
    assert hidden.suppressed and hidden.count is None and hidden.sum is None
    assert hidden == stats.plaintext_stats(
        make_params(min_group_size=6, categories=["north"]), union(rows)
    )


def test_cells_below_minimum_and_complementary_suppression() -> None:
    params = make_params(min_group_size=3, value_column=None)
    # cells north=5, south=3, east=2, nobody=0, other=4: east is hidden (2 < 3); alone it
    # could be recovered from the total, so the smallest shown cell (south) is hidden too.
    result = stats.finalise(params, [14, 5, 3, 2, 0, 4])
    assert [c.count for c in result.histogram or ()] == [5, None, None, None, 4]
    plain = stats.finalise(
        make_params(min_group_size=3, value_column=None, complementary_suppression=False),
        [14, 5, 3, 2, 0, 4],
    )
    assert [c.count for c in plain.histogram or ()] == [5, 3, None, None, 4]
    # Only an empty cell hidden: nothing to protect, no second cell hidden.
    result = stats.finalise(params, [12, 5, 3, 0, 0, 4])
    assert [c.count for c in result.histogram or ()] == [5, 3, None, None, 4]
    json = result.to_json()
    assert json["histogram"][-1] == {"category": None, "other": True, "count": 4}
    assert json["sum"] is None and json["count"] == 12


def test_negative_values_and_exact_fractions() -> None:
    rows = {"p1": _rows_with([-(2**40), -7]), "p2": _rows_with([3])}
    result = run_protocol(make_params(), rows).ok()
    assert result.sum == -(2**40) - 4
    assert result.mean == Fraction(-(2**40) - 4, 3)
    out = result.to_json()
    assert out["mean"]["numerator"] == str(-(2**40) - 4) and out["mean"]["denominator"] == "3"
    assert out["sum"] == str(-(2**40) - 4)


def test_runs_over_recording_channels_with_agreeing_transcripts() -> None:
    names = ["p1", "p2", "p3"]
    net = InMemoryNetwork([*names, AGG])
    transcripts = {n: Transcript() for n in [*names, AGG]}
    task = bytes(range(32))
    chans = {n: RecordingChannel(net.channel(n), task, transcripts[n]) for n in transcripts}
    rows = {n: _rows_with([i]) for i, n in enumerate(names)}
    ring = key_ring(names)
    threads = [
        threading.Thread(
            target=stats.run_provider,
            args=(chans[n], make_params(), rows[n], AGG, names, 5.0),
            kwargs={"task_id": task, "identity": identity(n), "verifier": ring},
        )
        for n in names
    ]
    for t in threads:
        t.start()
    result = stats.run_aggregator(
        chans[AGG], make_params(), names, 5.0, task_id=task, verifier=ring
    )
    for t in threads:
        t.join()
    assert result.count == 3
    sent = {e.digest for t in transcripts.values() for e in t.entries if e.kind == "sent"}
    received = {e.digest for t in transcripts.values() for e in t.entries if e.kind == "received"}
    assert received <= sent  # everything received was recorded as sent by its sender


# ---------------------------------------------------------------------------- dropouts


def dropout_rows(n: int) -> dict[str, list[Row]]:
    rng = random.Random(100 + n)
    return {f"p{i}": random_rows(rng, 8) for i in range(1, n + 1)}


def test_dropout_before_masked_input_is_recovered_from_pairwise_key_shares() -> None:
    rows = dropout_rows(4)  # threshold 3
    run = run_protocol(
        make_params(), rows, timeout=1.0, faults={"p2": {"crash_on_send": secagg.STEP_MASKED}}
    )
    result = run.ok()
    survivors = ["p1", "p3", "p4"]
    assert result == stats.plaintext_stats(make_params(), union(rows, survivors))
    assert result.contributors == tuple(survivors)
    assert isinstance(run.errors["p2"], Crashed)
    assert all(run.errors[p] is None for p in survivors)
    revealed = assert_never_both_secrets(run)
    assert revealed[1] == {secagg.SecretKind.PAIRWISE_KEY}  # p2 is index 1
    assert revealed[0] == revealed[2] == revealed[3] == {secagg.SecretKind.SELF_SEED}


def test_dropout_after_masked_input_is_recovered_from_self_seed_shares() -> None:
    rows = dropout_rows(4)  # threshold 3
    run = run_protocol(
        make_params(),
        rows,
        timeout=1.0,
        faults={"p4": {"crash_on_receive": secagg.STEP_SURVIVORS}},
    )
    result = run.ok()
    assert result == stats.plaintext_stats(make_params(), union(rows))  # all rows count
    assert result.contributors == ("p1", "p2", "p3", "p4")
    assert set(run.to_aggregator(secagg.STEP_UNMASK)) == {"p1", "p2", "p3"}
    revealed = assert_never_both_secrets(run)
    assert all(kinds == {secagg.SecretKind.SELF_SEED} for kinds in revealed.values())


def test_dropouts_of_both_kinds_at_once() -> None:
    rows = dropout_rows(6)  # threshold 4: two dropouts tolerated
    run = run_protocol(
        make_params(),
        rows,
        timeout=1.0,
        faults={
            "p1": {"crash_on_send": secagg.STEP_MASKED},
            "p4": {"crash_on_receive": secagg.STEP_SURVIVORS},
        },
    )
    result = run.ok()
    assert result == stats.plaintext_stats(
        make_params(), union(rows, ["p2", "p3", "p4", "p5", "p6"])
    )
    revealed = assert_never_both_secrets(run)
    assert revealed[0] == {secagg.SecretKind.PAIRWISE_KEY}
    assert revealed[3] == {secagg.SecretKind.SELF_SEED}


def test_late_provider_is_excluded_and_stays_hidden() -> None:
    """A masked input that arrives after the deadline is never used, and the provider is
    told; its pairwise key is reconstructed but its self mask still hides it."""
    rows = dropout_rows(4)
    run = run_protocol(
        make_params(),
        rows,
        timeout=1.0,
        faults={"p4": {"delay_send": (secagg.STEP_MASKED, 1.4)}},
    )
    result = run.ok()
    assert result == stats.plaintext_stats(make_params(), union(rows, ["p1", "p2", "p3"]))
    assert isinstance(run.errors["p4"], secagg.Excluded)
    revealed = assert_never_both_secrets(run)
    assert revealed[3] == {secagg.SecretKind.PAIRWISE_KEY}


def test_too_many_dropouts_before_masked_input() -> None:
    rows = dropout_rows(4)  # threshold 3
    crash = {"crash_on_send": secagg.STEP_MASKED}
    run = run_protocol(make_params(), rows, timeout=1.0, faults={"p3": crash, "p4": crash})
    assert isinstance(run.result, secagg.BelowThreshold)
    assert str(run.result) == (
        "step 'masked-input': 2 provider(s) took part, the threshold needs 3 (missing: p3, p4)"
    )
    assert (run.result.arrived, run.result.needed, run.result.reason) == (2, 3, "PEER_TIMEOUT")
    assert isinstance(run.errors["p1"], secagg.BelowThreshold)  # told, not left waiting
    assert run.to_aggregator(secagg.STEP_UNMASK) == {}


def test_too_many_dropouts_after_masked_input() -> None:
    rows = dropout_rows(4)
    crash = {"crash_on_receive": secagg.STEP_SURVIVORS}
    run = run_protocol(make_params(), rows, timeout=1.0, faults={"p3": crash, "p4": crash})
    assert isinstance(run.result, secagg.BelowThreshold)
    assert str(run.result) == (
        "step 'survivor-signature': 2 provider(s) took part, the threshold needs 3 "
        "(missing: p3, p4)"
    )
    # p1 and p2 signed but never got t signatures back, so they revealed nothing.
    for name in ("p1", "p2"):
        error = run.errors[name]
        assert isinstance(error, PeerTimeout) and error.step == secagg.STEP_CERTIFICATE
    assert run.to_aggregator(secagg.STEP_UNMASK) == {}


def test_equivocating_aggregator_is_refused() -> None:
    """The aggregator tells p3 that p4 dropped (to get p4's pairwise-key shares) and tells
    the others that p4 survived (to get p4's self-mask shares). p3 never sees t signatures
    on its set, so it refuses, naming the aggregator: nobody reveals p4's pairwise key."""
    names = ["p1", "p2", "p3", "p4"]  # threshold 3
    params = make_params()
    net = InMemoryNetwork([*names, AGG])
    errors: dict[str, BaseException | None] = {}
    ring = key_ring(names)

    def provider(name: str) -> None:
        try:
            stats.run_provider(
                net.channel(name),
                params,
                _rows_with([1]),
                AGG,
                names,
                1.0,
                identity=identity(name),
                verifier=ring,
            )
            errors[name] = None
        except Exception as exc:
            errors[name] = exc

    threads = [threading.Thread(target=provider, args=(n,)) for n in names]
    for t in threads:
        t.start()
    agg = net.channel(AGG)
    for step in (secagg.STEP_COMMIT, secagg.STEP_MASKED):
        for name in names:
            agg.receive(name, step, 5.0)
    told = {"p1": (0, 1, 2, 3), "p2": (0, 1, 2, 3), "p3": (0, 1, 2), "p4": (0, 1, 2, 3)}
    for name, survivors in told.items():
        agg.send(name, secagg.STEP_SURVIVORS, secagg.encode_survivors(survivors))
    signatures = {
        n: secagg.decode_signature(n, agg.receive(n, secagg.STEP_SIGNATURE, 5.0)) for n in names
    }
    # p1, p2, p4 signed (0,1,2,3): a valid certificate for them. p3 alone signed (0,1,2):
    # the aggregator pads p3's certificate with the others' signatures to reach t.
    honest = secagg.encode_certificate(
        [(k, signatures[n]) for k, n in enumerate(names) if n != "p3"]
    )
    padded = secagg.encode_certificate([(k, signatures[n]) for k, n in enumerate(names)])
    for name in names:
        agg.send(name, secagg.STEP_CERTIFICATE, padded if name == "p3" else honest)
    for t in threads:
        t.join(timeout=10)
    assert errors["p1"] is None and errors["p2"] is None and errors["p4"] is None, errors
    p3_error = errors["p3"]
    assert isinstance(p3_error, secagg.ProtocolError) and "refusing" in str(p3_error)
    assert p3_error.peer == AGG and p3_error.step == secagg.STEP_CERTIFICATE
    assert "signature by p1 is not valid on survivor set [0, 1, 2]" in str(p3_error)
    answers = {src for src, dst, step, _ in net.sent if dst == AGG and step == secagg.STEP_UNMASK}
    assert answers == {"p1", "p2", "p4"}
    kinds = {
        kind
        for src, dst, step, payload in net.sent
        if dst == AGG and step == secagg.STEP_UNMASK
        for party, kind in secret_kinds(payload)
        if party == 3
    }
    assert kinds == {secagg.SecretKind.SELF_SEED}  # p4's pairwise key never revealed


def corrupt_last_share(flip: int = 1) -> Callable[[str, str, bytes], bytes]:
    """Flip bits of the last party's share in an unmask answer (format stays valid).

    Two providers must flip *different* bits: Shamir over GF(2^128) is linear, and for
    share indices 1, 2, 3 the Lagrange weights of 1 and 2 at zero are both 1, so the
    same error on both cancels in characteristic 2 and the secret still comes out.
    """

    def tamper(peer: str, step: str, payload: bytes) -> bytes:
        if step != secagg.STEP_UNMASK:
            return payload
        return payload[:-1] + bytes((payload[-1] ^ flip,))

    return tamper


def test_a_bad_share_is_outvoted_by_the_other_survivors() -> None:
    rows = dropout_rows(4)  # threshold 3; any three of four answers reconstruct
    run = run_protocol(make_params(), rows, faults={"p1": {"tamper": corrupt_last_share()}})
    assert run.ok() == stats.plaintext_stats(make_params(), union(rows))


def test_too_many_bad_shares_is_a_named_error() -> None:
    rows = dropout_rows(4)
    faults = {"p1": {"tamper": corrupt_last_share(1)}, "p2": {"tamper": corrupt_last_share(2)}}
    run = run_protocol(make_params(), rows, timeout=1.0, faults=faults)
    assert isinstance(run.result, secagg.InconsistentShares)
    assert str(run.result) == (
        "step 'unmask': no 3 of the 4 shares of p4's secret reconstruct what p4 committed to"
    )


def test_a_provider_sending_different_keys_to_different_peers_is_caught() -> None:
    other_key = masking.public_key(bytes(range(1, 33)))

    def swap_key_for_p3(peer: str, step: str, payload: bytes) -> bytes:
        if step == secagg.STEP_KEYS and peer == "p3":
            return payload[:34] + other_key
        return payload

    rows = dropout_rows(3)
    run = run_protocol(make_params(), rows, timeout=1.0, faults={"p1": {"tamper": swap_key_for_p3}})
    assert isinstance(run.result, secagg.ProtocolError)
    assert "saw different provider public keys than were committed" in str(run.result)
    assert run.result.peer == "p3" and run.result.step == secagg.STEP_MASKED


# ------------------------------------------------------------- what the aggregator sees


def stream(label: bytes) -> Callable[[int], bytes]:
    """A deterministic byte source (SHAKE-256 in counter blocks) for fixing the masks."""
    counter = iter(range(1 << 30))

    def take(n: int) -> bytes:
        return hashlib.shake_256(label + next(counter).to_bytes(4, "big")).digest(n)

    return take


SHAMIR_SOURCES: dict[str, Callable[[int], bytes]] = {}


@pytest.fixture
def deterministic_shamir(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fix the Shamir polynomial coefficients per provider thread (pycryptodome's rng);
    ``seeded_run`` restarts the streams so two runs draw the same coefficients."""
    sources = SHAMIR_SOURCES
    lock = threading.Lock()

    def rng(n: int) -> bytes:
        name = threading.current_thread().name
        with lock:
            source = sources.setdefault(name, stream(b"shamir:" + name.encode()))
        return source(n)

    monkeypatch.setattr(SecretSharing, "rng", rng)
    yield
    sources.clear()


def seeded_run(values: Mapping[str, int]) -> Run:
    SHAMIR_SOURCES.clear()
    rows = {name: _rows_with([v]) for name, v in values.items()}
    randomness = {name: stream(b"masks:" + name.encode()) for name in values}
    return run_protocol(make_params(), rows, randomness=randomness)


@pytest.mark.parametrize(
    ("inputs_a", "inputs_b"),
    [
        ({"p1": 5, "p2": 7}, {"p1": 7, "p2": 5}),
        ({"p1": 5, "p2": 7, "p3": -2}, {"p1": -2, "p2": 5, "p3": 7}),
    ],
)
def test_aggregator_view_is_independent_of_the_individual_inputs(
    deterministic_shamir: None, inputs_a: dict[str, int], inputs_b: dict[str, int]
) -> None:
    """Two input assignments with the same total, all randomness fixed.

    1. Every message except the masked inputs is byte-identical: it does not depend on
       the inputs at all.
    2. The masked inputs differ, yet their sum is identical, as is the result.
    3. Simulator: for assignment B there is a choice of the pairwise masks under which
       the aggregator's view is *exactly* run A's view; the map from A's masks to those
       is a bijection (a shift), so if pairwise masks are uniform (PRG security) both
       assignments give the aggregator identically distributed views. The test also
       recomputes run B's actual masked inputs from the same model, so the model is
       the implementation's.
    """
    run_a, run_b = seeded_run(inputs_a), seeded_run(inputs_b)
    assert run_a.ok() == run_b.ok()
    view_a, view_b = run_a.aggregator_view(), run_b.aggregator_view()
    assert [(s, st_) for s, st_, _ in view_a] == [(s, st_) for s, st_, _ in view_b]
    for (src, step, pa), (_, _, pb) in zip(view_a, view_b, strict=True):
        if step != secagg.STEP_MASKED:
            assert pa == pb, (src, step)
        else:
            assert (pa == pb) == (inputs_a[src] == inputs_b[src]), src

    names = sorted(inputs_a)
    params = make_params()
    length = params.vector_length
    masked_a = {n: run_a.to_aggregator(secagg.STEP_MASKED)[n] for n in names}
    masked_b = {n: run_b.to_aggregator(secagg.STEP_MASKED)[n] for n in names}

    def vectors(masked: Mapping[str, bytes]) -> dict[str, list[int]]:
        return {n: secagg.decode_masked(n, p, length)[1] for n, p in masked.items()}

    def ring_sum(vs: Mapping[str, list[int]]) -> list[int]:
        total = [0] * length
        for v in vs.values():
            total = masking.add(total, v)
        return total

    # Sum of masked inputs = sum of inputs + sum of self masks (pairwise masks cancel);
    # both are the same in the two runs.
    assert ring_sum(vectors(masked_a)) == ring_sum(vectors(masked_b))

    # The simulator, from the seeds the fixed randomness handed out (c_i, then b_i).
    context = run_a.to_aggregator(secagg.STEP_COMMIT)[names[0]][2:34]
    seeds = {}
    for n in names:
        source = stream(b"masks:" + n.encode())
        seeds[n] = (source(32), source(32))
    publics = {n: masking.public_key(seeds[n][0]) for n in names}
    self_masks = {
        n: masking.prg(masking.self_mask_seed(seeds[n][1], context, n), length) for n in names
    }
    pair_masks = {
        (i, j): masking.prg(
            masking.pairwise_seed(
                seeds[names[i]][0], publics[names[j]], context, names[i], names[j]
            ),
            length,
        )
        for i in range(len(names))
        for j in range(i + 1, len(names))
    }
    v_a = {n: stats.local_vector(params, _rows_with([inputs_a[n]])) for n in names}
    v_b = {n: stats.local_vector(params, _rows_with([inputs_b[n]])) for n in names}

    def masked_input(
        vector: list[int], i: int, pairs: Mapping[tuple[int, int], list[int]]
    ) -> bytes:
        y = masking.add(masking.to_ring(vector), self_masks[names[i]])
        for (a, b), r in pairs.items():
            if i in (a, b):
                y = masking.add(y, r, 1 if i == a else -1)
        keyset = secagg.keyset_digest(context, [publics[n] for n in names])
        return secagg.encode_masked(keyset, y)

    # The model reproduces both real runs byte for byte.
    for i, n in enumerate(names):
        assert masked_input(v_a[n], i, pair_masks) == masked_a[n]
        assert masked_input(v_b[n], i, pair_masks) == masked_b[n]
    # Shift the consecutive pairs' masks by the running input difference D_i.
    shifted = dict(pair_masks)
    running = [0] * length
    for i in range(len(names) - 1):
        running = masking.add(
            running, masking.add(masking.to_ring(v_a[names[i]]), masking.to_ring(v_b[names[i]]), -1)
        )
        shifted[(i, i + 1)] = masking.add(pair_masks[(i, i + 1)], running)
    for i, n in enumerate(names):
        assert masked_input(v_b[n], i, shifted) == masked_a[n]  # B's inputs, A's view


def test_fresh_randomness_gives_unrelated_masked_inputs() -> None:
    rows = {"p1": _rows_with([5]), "p2": _rows_with([7])}
    first, second = run_protocol(make_params(), rows), run_protocol(make_params(), rows)
    assert first.ok() == second.ok()
    for name in rows:
        a = first.to_aggregator(secagg.STEP_MASKED)[name]
        b = second.to_aggregator(secagg.STEP_MASKED)[name]
        assert a[38:] != b[38:]  # the masked vector itself


# ------------------------------------------------------------------ malformed messages


def test_malformed_message_from_a_peer_is_a_named_error() -> None:
    names = ["p1", "p2", "p3"]
    net = InMemoryNetwork([*names, AGG])
    garbage = bytes((secagg.WIRE_VERSION, secagg.MessageType.COMMIT)) + b"garbage"
    net.channel("p2").send(AGG, secagg.STEP_COMMIT, garbage)
    with pytest.raises(secagg.MalformedMessage, match="'commit' from p2: body of 7 bytes") as info:
        stats.run_aggregator(
            net.channel(AGG), make_params(), names, timeout=0.5, verifier=key_ring(names)
        )
    assert info.value.step == secagg.STEP_COMMIT


def test_parties_that_disagree_on_parameters_stop_with_a_named_error() -> None:
    rows = {n: _rows_with([1]) for n in ("p1", "p2", "p3")}
    run = run_protocol(
        make_params(),
        rows,
        timeout=1.0,
        provider_params={"p2": make_params(min_group_size=2)},
    )
    assert isinstance(run.result, secagg.ProtocolError)
    assert "from p2: session context differs" in str(run.result)
    assert isinstance(run.errors["p1"], secagg.ProtocolError)
    assert run.to_aggregator(secagg.STEP_MASKED) == {}
