"""Float model updates in the secure sum's ring Z_{2^128} (``node/crypto/secagg.py``).

The secure sum adds integer vectors exactly, so a provider's update (a float64 vector)
is clipped, scaled by 2^``frac_bits`` and rounded to integers before masking, and the
coordinator divides the integer total afterwards. Exact integer sums are what make a
secure round reproduce plain averaging bit for bit: the only rounding happens once, at
each provider, before anything leaves it.

Clipping is on the L2 norm of the whole update (the update is scaled down to norm
``clip_norm`` when longer), not per coordinate, because:

* it keeps the update's direction, where per-coordinate clipping bends it (a large
  coordinate is cut while the small ones are kept), which slows FedAvg down;
* it bounds every coordinate too (|x_j| <= ||x||_2 <= C), which is all the overflow
  bound needs;
* it is the bound DP-FedAvg (McMahan et al., "Learning Differentially Private
  Recurrent Language Models", ICLR 2018) reasons with; the discrete Laplace noise of
  ``node/crypto/dp_noise.py`` needs the L1 bound, which follows as sqrt(d) * C.

Each provider clips its own update before encoding (``encode_update`` always clips: a
caller cannot skip it), so a bound that held for the overflow check and the DP
sensitivity holds for what is really sent.

Encoding of one provider's update x (d floats) with sample weight w (an integer):

    q_j = w * round_half_even(clip(x)_j * 2^f)       (j = 1..d)
    v   = (q_1, ..., q_d, w)

The weight rides along as the last element so the coordinator learns the total weight
W (the sum of the survivors' sample counts) needed for the weighted average
sum_j q_j / (W * 2^f), and nothing else about the weights. With differential privacy
the weights are all 1 (plain averaging; see ``horizontal``).

Overflow: the ring holds signed totals below 2^127. Per coordinate |q_j| <= w_max *
ceil(C * 2^f), so n providers need n * w_max * ceil(C * 2^f) < 2^126 (half the signed
range; the other half is left for the noise shares). ``check_capacity`` refuses a plan
that breaks this before any round starts, and ``check_fits`` refuses, at each provider
before it sends anything, a vector (noise included) above its 1/n share of 2^127 - 1;
both raise ``RingOverflow``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from node.crypto import masking

__all__ = [
    "RING_BUDGET",
    "ClippingError",
    "FixedPoint",
    "RingOverflow",
    "check_fits",
    "clip_l2",
]

RING_BUDGET = (1 << (masking.RING_BITS - 1)) - 1  # largest signed total the ring decodes
_DETERMINISTIC_BUDGET = 1 << (masking.RING_BITS - 2)  # the updates' half of the range
_INT64_LIMIT = 1 << 63
MAX_FRAC_BITS = 52  # beyond float64's mantissa, more bits only encode rounding noise

FloatVector = npt.NDArray[np.float64]


class RingOverflow(ValueError):
    """Encoded updates of ``providers`` providers could exceed the ring's signed range."""


class ClippingError(ValueError):
    """A clipping bound, weight or update that cannot be encoded safely."""


def clip_l2(update: FloatVector, bound: float) -> FloatVector:
    """``update`` scaled down to L2 norm ``bound`` when longer, unchanged otherwise."""
    values = np.asarray(update, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ClippingError("update contains NaN or infinite values")
    norm = float(np.linalg.norm(values))
    if norm <= bound:
        return values.copy()
    return values * (bound / norm)


@dataclass(frozen=True)
class FixedPoint:
    """The shared encoding: every party must use the same one (it is part of the
    round's session purpose, so parties that disagree stop at the first message)."""

    frac_bits: int = 32
    clip_norm: float = 10.0  # L2 bound on one provider's update, in model units
    max_weight: int = 1 << 32  # largest sample weight a provider may declare

    def __post_init__(self) -> None:
        if not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ClippingError(f"frac_bits must be an integer in 0..{MAX_FRAC_BITS}")
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ClippingError(f"clip_norm must be finite and > 0, got {self.clip_norm!r}")
        if not isinstance(self.max_weight, int) or self.max_weight < 1:
            raise ClippingError(f"max_weight must be an integer >= 1, got {self.max_weight!r}")

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    def coordinate_bound(self) -> int:
        """The largest |q_j| one provider can produce (weight included)."""
        return self.max_weight * math.ceil(self.clip_norm * self.scale)

    def check_capacity(self, providers: int) -> None:
        """Refuse a plan whose worst-case total (``providers`` providers at the maximum
        weight and the clipping bound) would not fit half the signed ring."""
        if providers < 1:
            raise RingOverflow(f"need at least one provider, got {providers}")
        worst = providers * (self.coordinate_bound() + self.max_weight)
        if worst >= _DETERMINISTIC_BUDGET:
            raise RingOverflow(
                f"{providers} providers with weight up to {self.max_weight}, clip norm "
                f"{self.clip_norm} and {self.frac_bits} fractional bits could add up to "
                f"2^{worst.bit_length()}, beyond 2^126; lower frac_bits, clip_norm or "
                "max_weight"
            )

    def l1_sensitivity(self, length: int) -> int:
        """The L1 norm bound of one weight-1 encoded update of ``length`` coordinates:
        sqrt(d) * C * 2^f for the clipped vector plus d/2 for rounding."""
        return math.ceil(math.sqrt(length) * self.clip_norm * self.scale + length / 2)

    def encode_update(self, update: FloatVector, weight: int = 1) -> list[int]:
        """Clip, scale, round half to even, multiply by ``weight``; append the weight."""
        if isinstance(weight, bool) or not isinstance(weight, int | np.integer):
            raise ClippingError(f"weight must be an integer, got {weight!r}")
        if not 1 <= int(weight) <= self.max_weight:
            raise ClippingError(f"weight {weight} is outside 1..{self.max_weight}")
        clipped = clip_l2(update, self.clip_norm)
        quantised = np.rint(clipped * float(self.scale))
        w = int(weight)
        largest = int(np.max(np.abs(quantised))) if quantised.size else 0
        if largest * w < _INT64_LIMIT:
            # Every product fits int64: the same integers as the Python loop below (q is
            # integral, so the cast is exact), without a Python multiply per coordinate.
            products: list[int] = (quantised.astype(np.int64) * w).tolist()
            products.append(w)
            return products
        return [w * int(q) for q in quantised.tolist()] + [w]

    def decode_mean(self, totals: Sequence[int]) -> FloatVector:
        """The weighted average update from signed integer totals (q sums, then W)."""
        if len(totals) < 2:
            raise ClippingError("a total needs at least one coordinate and the weight")
        weight = int(totals[-1])
        if weight < 1:
            raise ClippingError(f"total weight {weight} is not positive: a contribution was bad")
        denominator = weight * self.scale
        # int / int is correctly rounded in Python, so every party decodes the same floats.
        return np.array([int(t) / denominator for t in totals[:-1]], dtype=np.float64)

    def to_json(self) -> dict[str, int | float]:
        return {
            "frac_bits": self.frac_bits,
            "clip_norm": float(self.clip_norm),
            "max_weight": self.max_weight,
        }


def check_fits(vector: Sequence[int], providers: int) -> None:
    """Refuse a vector above its 1/``providers`` share of the signed ring (noise
    included), before it is masked and sent, so any sum of n such vectors decodes
    exactly."""
    budget = RING_BUDGET // providers
    if len(vector) == 0 or (max(vector) <= budget and min(vector) >= -budget):
        return  # max/min loop in C; the element-wise loop below finds and names a breach
    for position, value in enumerate(vector):
        if abs(value) > budget:
            raise RingOverflow(
                f"element {position} ({abs(value).bit_length()} bits) exceeds this provider's "
                f"share of the 128-bit ring shared by {providers} providers"
            )
