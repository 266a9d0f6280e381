"""Latency summaries for the benchmarks: percentiles of a sample, in one place."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks
    (numpy's default), so p50 of an even sample is the mean of the middle two."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(
    seconds: Sequence[float], points: Sequence[float] = (50, 95, 99)
) -> dict[str, float]:
    """``p50_ms`` ... and ``max_ms`` of a sample of durations in seconds, in milliseconds."""
    out = {f"p{q:g}_ms": round(percentile(seconds, q) * 1_000, 3) for q in points}
    out["max_ms"] = round(max(seconds) * 1_000, 3)
    return out
