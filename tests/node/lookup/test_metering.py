"""Metering of anonymous lookups, attacked the way a member would: against a plaintext tally.

The rules under test: a query beyond the paid blocks is refused with nothing counted;
the chain sees one settlement per org/purpose/grant/period, dated by period boundaries
and released only after the period ends (never one write per query, never a query's
time); a settlement is handed out once, also across a restart.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from node.lookup.metering import (
    InvalidMeterInput,
    InvalidMeterPolicy,
    Meter,
    MeterPolicy,
    MeterPolicyMismatch,
    PeriodClosed,
    QuotaExhausted,
    Settlement,
)

DAY = 86_400
T0 = 1_790_000_000 - 1_790_000_000 % DAY  # a UTC midnight
GRANT_A = bytes([0xA1]) * 32
GRANT_B = bytes([0xB2]) * 32


def ref(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meter.db'}"


def test_settlements_are_one_per_org_purpose_grant_period_and_match_a_plaintext_tally(
    db_url: str,
) -> None:
    policy = MeterPolicy(block_size=7, period_seconds=DAY)
    meter = Meter(db_url, policy)
    keys = [
        ("bank-a", "account-opening", GRANT_A),
        ("bank-a", "screening", GRANT_A),
        ("bank-b", "account-opening", GRANT_B),
    ]
    for n, key in enumerate(keys):
        meter.add_blocks(*key, 100, reference=ref(n))
    rng = random.Random(15)
    queries = []  # (key, time, count): 3 days of traffic at random non-aligned times
    for _ in range(120):
        key = rng.choice(keys)
        moment = T0 + rng.uniform(0, 3 * DAY - 1)
        queries.append((key, moment, rng.randint(1, 4)))
    queries.sort(key=lambda q: q[1])
    for key, moment, count in queries:
        meter.charge(*key, count, moment)

    # Plaintext tally, independent of the meter.
    per_period: Counter[tuple[tuple[str, str, bytes], int]] = Counter()
    for key, moment, count in queries:
        per_period[(key, int(moment // DAY) * DAY)] += count
    now = T0 + 3 * DAY  # all three days are over
    settlements = meter.settlements(now)
    got = {((s.org, s.purpose, s.grant_id), s.period_start): s for s in settlements}
    assert len(got) == len(settlements) == len(per_period)  # one row per key and period
    assert {k: s.count for k, s in got.items()} == dict(per_period)
    query_times = {moment for _, moment, _ in queries}
    for s in settlements:
        assert s.period_start % DAY == 0 and s.period_end == s.period_start + DAY
        assert s.period_start not in query_times and s.period_end not in query_times
    assert len(settlements) < len(queries)  # not one settlement per query

    # Completed blocks: cumulative counts crossing multiples of the block size.
    running: Counter[tuple[str, str, bytes]] = Counter()
    for key, start in sorted(per_period, key=lambda kp: kp[1]):
        before = running[key]
        running[key] += per_period[(key, start)]
        expected = running[key] // 7 - before // 7
        assert got[(key, start)].blocks_completed == expected
    meter.close()


def test_no_settlement_while_the_period_is_open_and_each_is_issued_once(url: str) -> None:
    meter = Meter(url, MeterPolicy(block_size=10, period_seconds=3600))
    meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=ref(1))
    hour = T0 + 5 * 3600
    meter.charge("bank-a", "screening", GRANT_A, 3, hour + 12.5)
    # Right after the query, and until the hour is over, nothing goes on chain.
    for later in (hour + 13, hour + 1800, hour + 3599.999):
        assert meter.settlements(later) == []
    issued = meter.settlements(hour + 3600)
    assert issued == [Settlement("bank-a", "screening", GRANT_A, hour, hour + 3600, 3, 0)]
    assert meter.settlements(hour + 7200) == []  # not again
    meter.close()
    restarted = Meter(url, MeterPolicy(block_size=10, period_seconds=3600))
    assert restarted.settlements(hour + 99_999) == []  # not after a restart either
    assert restarted.issued() == issued
    assert (
        issued[0].settlement_id
        != Settlement("bank-a", "screening", GRANT_A, hour, hour + 3600, 4, 0).settlement_id
    )
    restarted.close()


def test_quota_exhaustion_refuses_with_nothing_counted(url: str) -> None:
    meter = Meter(url, MeterPolicy(block_size=5))
    # No block bought at all: refused, naming the grant.
    with pytest.raises(QuotaExhausted, match=GRANT_A.hex()) as no_grant:
        meter.charge("bank-a", "screening", GRANT_A, 1, T0)
    assert no_grant.value.capacity == 0
    meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=ref(1))
    assert meter.charge("bank-a", "screening", GRANT_A, 3, T0 + 1).used == 3
    with pytest.raises(QuotaExhausted) as exc:  # 3 + 3 > 5: refused whole, not 2 of 3
        meter.charge("bank-a", "screening", GRANT_A, 3, T0 + 2)
    assert (exc.value.used, exc.value.requested, exc.value.capacity) == (3, 3, 5)
    assert "3 of 5" in str(exc.value)
    assert meter.usage("bank-a", "screening", GRANT_A).used == 3
    assert meter.charge("bank-a", "screening", GRANT_A, 2, T0 + 3).remaining == 0
    with pytest.raises(QuotaExhausted):
        meter.charge("bank-a", "screening", GRANT_A, 1, T0 + 4)
    # Another purpose or grant of the same org has its own quota.
    with pytest.raises(QuotaExhausted):
        meter.charge("bank-a", "account-opening", GRANT_A, 1, T0 + 5)
    # A replayed purchase does not credit twice; a new one does.
    assert meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=ref(1)) is False
    assert meter.usage("bank-a", "screening", GRANT_A).capacity == 5
    assert meter.add_blocks("bank-a", "screening", GRANT_A, 2, reference=ref(2)) is True
    assert meter.charge("bank-a", "screening", GRANT_A, 10, T0 + 6).used == 15
    settled = meter.settlements(T0 + DAY)
    assert [s.count for s in settled] == [15]  # refused charges left no trace
    meter.close()


def test_a_settled_period_takes_no_late_charges(url: str) -> None:
    meter = Meter(url, MeterPolicy(block_size=10))
    meter.add_blocks("bank-a", "screening", GRANT_A, 5, reference=ref(1))
    meter.charge("bank-a", "screening", GRANT_A, 2, T0 + 10)
    assert len(meter.settlements(T0 + DAY)) == 1
    with pytest.raises(PeriodClosed, match="already settled"):
        meter.charge("bank-a", "screening", GRANT_A, 1, T0 + 20)  # backdated
    assert meter.usage("bank-a", "screening", GRANT_A).used == 2
    meter.charge("bank-a", "screening", GRANT_A, 1, T0 + DAY + 1)  # the next period is open
    meter.close()


def test_reopening_under_another_policy_is_refused(url: str) -> None:
    Meter(url, MeterPolicy(block_size=10)).close()
    with pytest.raises(MeterPolicyMismatch, match="block size"):
        Meter(url, MeterPolicy(block_size=20))
    Meter(url, MeterPolicy(block_size=10)).close()


@pytest.mark.parametrize(
    ("field", "value"),
    [("block_size", 0), ("block_size", True), ("period_seconds", -1), ("period_seconds", 1.5)],
)
def test_bad_policy_is_named(field: str, value: object) -> None:
    with pytest.raises(InvalidMeterPolicy, match=field):
        MeterPolicy(**{field: value})  # type: ignore[arg-type]


def test_bad_input_is_named_and_changes_nothing(url: str) -> None:
    meter = Meter(url)
    meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=ref(1))
    cases: list[tuple[tuple[object, ...], str]] = [
        (("", "screening", GRANT_A, 1, T0), "querier_org"),
        (("bank-a", "", GRANT_A, 1, T0), "purpose"),
        (("bank-a", "scr\neening", GRANT_A, 1, T0), "purpose"),
        (("bank-a", "screening", b"short", 1, T0), "grant_id"),
        (("bank-a", "screening", GRANT_A, 0, T0), "count"),
        (("bank-a", "screening", GRANT_A, 1, float("nan")), "now"),
        (("bank-a", "screening", GRANT_A, 1, -5), "now"),
    ]
    for args, field in cases:
        with pytest.raises(InvalidMeterInput, match=field):
            meter.charge(*args)  # type: ignore[arg-type]
    with pytest.raises(InvalidMeterInput, match="reference"):
        meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=b"x")
    assert meter.usage("bank-a", "screening", GRANT_A).used == 0
    meter.close()


def test_metering_tables_are_append_only(url: str) -> None:
    meter = Meter(url)
    meter.add_blocks("bank-a", "screening", GRANT_A, 1, reference=ref(1))
    meter.charge("bank-a", "screening", GRANT_A, 1, T0)
    meter.settlements(T0 + DAY)
    for sql in (
        "UPDATE lookup_meter_charges SET count = 0",
        "DELETE FROM lookup_meter_charges",
        "UPDATE lookup_meter_blocks SET blocks = 99",
        "DELETE FROM lookup_meter_settlements",
    ):
        with pytest.raises(DBAPIError, match="append-only"), meter.db.engine.begin() as conn:
            conn.execute(text(sql))
    assert meter.usage("bank-a", "screening", GRANT_A).used == 1
    meter.close()
