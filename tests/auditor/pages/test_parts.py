"""The pages' pure parts: form parsing, the sign-in redirect target, the chart geometry.

Fast (no chain): the edge cases a regulator's hand-typed input and odd data produce.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditor.pages import forms
from auditor.pages.chart import axis, grouped_bars, usage_chart
from auditor.pages.render import fmt_time, short_hex, verdict, zero_id
from auditor.pages.session import local_path


def test_dates_are_utc_days_and_until_includes_its_day() -> None:
    start = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())
    assert forms.day("2026-11-30", "since") == start
    assert forms.day(" 2026-11-30 ", "until", end=True) == start + 86_399
    assert forms.day("", "since") is None
    with pytest.raises(forms.FormError, match="since: expected a date as YYYY-MM-DD"):
        forms.day("30/11/2026", "since")
    assert fmt_time(start + 3661) == "2026-11-30 01:01:01"


def test_ids_are_32_bytes_of_hex() -> None:
    assert forms.hex32("0x" + "ab" * 32, "org") == b"\xab" * 32
    assert forms.hex32("AB" * 32, "org") == b"\xab" * 32  # 0x optional, any case
    assert forms.hex32("  ", "org") is None
    for bad in ("0x12", "0x" + "zz" * 32, "0x" + "ab" * 33):
        with pytest.raises(forms.FormError, match="org: expected 0x followed by 64 hex"):
            forms.hex32(bad, "org")
    assert forms.offset("-3") == 0 and forms.offset("x") == 0 and forms.offset("50") == 50
    assert forms.period("month") == "month" and forms.period(None) == "day"
    with pytest.raises(forms.FormError, match="period"):
        forms.period("year")


def test_signin_only_redirects_to_a_path_of_this_site() -> None:
    assert local_path("/tasks?status=failed") == "/tasks?status=failed"
    for hostile in ("//evil.example/x", "https://evil.example", "/\\evil.example", "", None):
        assert local_path(hostile) == "/tasks"


def test_display_helpers() -> None:
    full = "0x" + "12" * 32
    assert short_hex(full) == "0x121212…121212"
    assert short_hex("0x1234") == "0x1234"
    assert [verdict(s) for s in ("pass", "fail", "not-applicable")] == ["PASS", "FAIL", "N/A"]
    assert zero_id("0x" + "0" * 64) and not zero_id(full) and not zero_id(None)


@pytest.mark.parametrize(
    ("peak", "top", "step"), [(0, 1, 1), (2, 2, 1), (7, 8, 2), (37, 40, 10), (41, 60, 20)]
)
def test_the_axis_ends_on_a_round_number(peak: int, top: int, step: int) -> None:
    assert axis(peak) == (top, step)


def test_bars_stand_on_the_baseline_with_heights_in_proportion() -> None:
    chart = grouped_bars(["d1", "d2"], [("a", [3, 0]), ("b", [1, 4])])
    base = chart.top + chart.plot_height
    assert len(chart.bars) == 4
    assert [b.title for b in chart.bars] == ["a, d1: 3", "b, d1: 1", "a, d2: 0", "b, d2: 4"]
    for bar, value in zip(chart.bars, (3, 1, 0, 4), strict=True):
        assert bar.y + bar.height == pytest.approx(base, abs=0.02)
        assert bar.height == pytest.approx(chart.plot_height * value / 4, abs=0.02)
    xs = [b.x for b in chart.bars]
    assert xs == sorted(xs)  # groups left to right, series in order inside each
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    assert chart.legend[0][1] == "a" and chart.legend[0][0] != chart.legend[1][0]
    assert grouped_bars([], []).empty


def test_the_usage_chart_fills_missing_periods_with_zero() -> None:
    day = 86_400
    rows = [
        {"org": "0xa", "orgName": "bank-a", "periodStart": 0, "tasksCreated": 2},
        {"org": "0xb", "orgName": "bank-b", "periodStart": day, "tasksCreated": 5},
    ]
    chart = usage_chart(rows, "tasksCreated", "day")
    assert [t.label for t in chart.x_labels] == ["1970-01-01", "1970-01-02"]
    assert [b.title for b in chart.bars] == [
        "bank-a, 1970-01-01: 2",
        "bank-b, 1970-01-01: 0",
        "bank-a, 1970-01-02: 0",
        "bank-b, 1970-01-02: 5",
    ]
