"""Fixed-point encoding of model updates for the secure sum (node/fl/fixed_point.py)."""

from __future__ import annotations

import numpy as np
import pytest

from node.crypto import masking
from node.fl.fixed_point import ClippingError, FixedPoint, RingOverflow, check_fits


def test_round_trip_is_exact_to_the_resolution() -> None:
    enc = FixedPoint(frac_bits=32, clip_norm=100.0)
    update = np.random.default_rng(1).normal(size=50)
    vector = enc.encode_update(update, weight=7)
    assert vector[-1] == 7
    decoded = enc.decode_mean(vector)
    assert np.max(np.abs(decoded - update)) <= 0.5 / enc.scale
    # Through the ring: two's complement in, signed read out.
    ring = masking.to_ring(vector)
    assert enc.decode_mean([masking.signed(v) for v in ring]).tolist() == decoded.tolist()


def test_weighted_mean_of_several_updates() -> None:
    enc = FixedPoint(frac_bits=20, clip_norm=10.0)
    a, b = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    total = [x + y for x, y in zip(enc.encode_update(a, 1), enc.encode_update(b, 3), strict=True)]
    np.testing.assert_allclose(enc.decode_mean(total), (a + 3 * b) / 4, atol=1e-6)


def test_clipping_is_enforced_on_the_l2_norm() -> None:
    enc = FixedPoint(frac_bits=24, clip_norm=1.0)
    big = np.array([30.0, -40.0])  # norm 50, direction (0.6, -0.8)
    decoded = enc.decode_mean(enc.encode_update(big, 5))
    np.testing.assert_allclose(decoded, [0.6, -0.8], atol=1e-6)
    assert np.linalg.norm(decoded) <= 1.0 + np.sqrt(2) / enc.scale
    small = np.array([0.3, 0.4])
    np.testing.assert_allclose(enc.decode_mean(enc.encode_update(small, 1)), small, atol=1e-7)


def test_bad_updates_and_weights_are_refused() -> None:
    enc = FixedPoint(max_weight=100)
    with pytest.raises(ClippingError, match="NaN"):
        enc.encode_update(np.array([np.nan, 1.0]))
    with pytest.raises(ClippingError, match="outside"):
        enc.encode_update(np.array([1.0]), weight=101)
    with pytest.raises(ClippingError, match="outside"):
        enc.encode_update(np.array([1.0]), weight=0)


def test_overflow_is_refused_by_name() -> None:
    FixedPoint(frac_bits=32, clip_norm=10.0, max_weight=1 << 32).check_capacity(255)
    risky = FixedPoint(frac_bits=52, clip_norm=1e9, max_weight=1 << 50)
    with pytest.raises(RingOverflow, match="beyond 2\\^126"):
        risky.check_capacity(8)
    check_fits([(1 << 126) // 3], 2)
    with pytest.raises(RingOverflow, match="element 1"):
        check_fits([0, (1 << 127) // 3], 4)


def test_l1_sensitivity_bounds_any_clipped_update() -> None:
    enc = FixedPoint(frac_bits=16, clip_norm=2.0)
    d = 9
    worst = np.full(d, 2.0 / np.sqrt(d))  # all mass spread evenly: the L1 maximum
    vector = enc.encode_update(worst * 5, 1)[:-1]
    assert sum(abs(v) for v in vector) <= enc.l1_sensitivity(d)
