"""Distributed discrete-Laplace noise for the secure sum (DESIGN §6, "Output policy").

Why distributed noise
---------------------
When a dataset's classification requires differential privacy, the released sum must
carry noise that *nobody* removes: not the aggregator, not a provider. A trusted party
adding the noise after the sum would see the noiseless total, and the secure sum has
no such party. So each provider adds a *share* of the noise to its own vector before
masking it (``node/crypto/secagg.py``); the masks cancel in the sum, the shares add up,
and the only total anybody ever sees is the noisy one. This is the distributed
geometric mechanism compared by Goryczka & Xiong, "A comprehensive comparison of
multiparty secure additions with differential privacy".

The mechanism
-------------
For an integer query of L1 sensitivity ``sensitivity`` (Δ) the geometric mechanism of
Ghosh, Roughgarden & Sundararajan, "Universally utility-maximizing privacy mechanisms",
releases f(D) + Z with Z two-sided geometric (discrete Laplace)::

    P(Z = z) = (1 - a) / (1 + a) * a**|z|,   a = exp(-epsilon / Δ),
    Var(Z)   = 2a / (1 - a)**2.

Shifting Z by any d with |d| <= Δ changes each probability by a factor of at most
a**-Δ = e**epsilon, which is pure epsilon-DP. The geometric distribution is infinitely
divisible: if G counts failures before the first success (success probability 1 - a),
then G is the sum of k i.i.d. Pólya (negative binomial) variables NB(r = 1/k, p = 1 - a).
So when each of k parties adds X - Y with X, Y i.i.d. NB(1/k, 1 - a), the k shares add up
to G1 - G2, exactly the discrete Laplace Z. One share X - Y has variance
(1/k) * 2a / (1 - a)**2: a single share is k times *less* noisy than the total, which
is why a share must only ever travel masked inside the secure-aggregation vector.

Dropouts: shares are drawn for k = t, the threshold
---------------------------------------------------
The secure sum completes with any t <= n of the n providers. Drawing shares for k = n
would leave a sum of only t shares with t/n of the required variance whenever providers
drop out. Drawing them for k = t (the ``parties`` argument) makes every completed sum
carry *at least* the configured discrete Laplace: t shares make it exactly, and each
further contributor only adds independent noise. The cost: with m >= t contributors the
noise variance is (m / t) * 2a / (1 - a)**2, so with all n present it is n/t times the
minimum (``noise_variance`` and ``NoisePlan.variances`` report it).

Accounting, in plain words
--------------------------
* Neighbouring datasets differ by adding or removing one row. One noisy release of a
  vector whose L1 sensitivity (in the encoded integer units, after the provider has
  clipped every value) is Δ, with every element noised at ``a = exp(-epsilon/Δ)``, is
  pure epsilon-DP. Elements noised at their own (epsilon_i, Δ_i) spend the sum of the
  epsilon_i (basic sequential composition; ``split_epsilon``). A histogram is one
  figure: adding or removing a row changes exactly one cell by one, so its L1
  sensitivity is 1 and every cell gets the histogram's one epsilon with sensitivity 1.
* Releases compose sequentially as well: the epsilons of all releases made under one
  grant add up, and the policy's per-grant budget caps that sum. Tracking the budget
  is the caller's job; this module only turns an (epsilon, sensitivity) into noise.
* Post-processing (rounding, clamping a negative count to 0) costs no privacy.

What the noise does NOT protect against
---------------------------------------
* Colluders. A provider knows its own share and can subtract it; c colluding providers
  (with the aggregator) subtract c shares. With shares drawn for k parties and k
  contributors, the noise left is the sum of k - c shares: its variance is (k - c)/k of
  the minimum, and it is no longer a discrete Laplace at ``a`` (it is a difference of
  NB((k - c)/k) variables), so the guarantee is weaker than epsilon. A deployment that
  must tolerate c colluders draws shares for k = t - c (variance n/(t - c) times the
  minimum when all n contribute); the policy's minimum number of provider
  organisations, and the rule that providers never join a task with the creator's own
  organisation, are what keep c small.
* A person who contributes several rows: the guarantee is per row, so r rows of one
  person get r * epsilon (group privacy).
* Values outside the clipping bound: the sensitivity is a promise the provider must
  keep by clipping before summing; an unclipped value voids the guarantee.
* Floating point. numpy samples NB through a float64 Gamma-Poisson mixture, so the pmf
  is realised only up to floating-point error, not by an exact sampler (the concern of
  Mironov, "On significance of the least significant bits for differential privacy").
  The output is an integer and no float ever leaves the provider, but the guarantee in
  the far tails is the textbook one only up to that error. ``MAX_NOISE_STD`` keeps every
  sample far below 2**53, where float64 still represents every integer.
* A predictable generator. Noise from a seeded or otherwise guessable generator can be
  recomputed and subtracted; production code must use ``new_rng()``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import numpy.typing as npt

SEED_BITS = 256
MAX_NOISE_STD = 2.0**46
"""Largest standard deviation of the full noise (one element, k shares) we will draw.

With sigma <= 2**46 (so a >= 1/2 and 1 - a >= 1/sigma whenever sigma >= 2) every tail
involved is at most 2 * exp(-2**53 / sigma) <= 2 * exp(-128) at 2**53: the discrete
Laplace, each NB(1/k) part (stochastically below a Geometric), and the
Gamma(1/k, a/(1-a)) intensity numpy feeds to its Poisson sampler (below an
Exponential). Samples therefore stay exact float64 integers, far inside int64 and far
below numpy's Poisson limit of about 2**63; a larger scale means a unit error.
"""
MAX_PARTIES = 1 << 16  # far above any consortium; catches a value that is not a count
MAX_ELEMENTS = 1 << 20  # as node/crypto/masking.py: bounds memory on bad input


class NoiseParameterError(ValueError):
    """An epsilon, sensitivity, party count or size that must not be used for noise."""


def new_rng() -> np.random.Generator:
    """A fresh generator seeded with 256 bits from the OS CSPRNG (``secrets``).

    Noise must never come from a seeded or otherwise predictable generator in
    production: whoever can reproduce a provider's stream can subtract its share (and,
    with every provider's stream, the whole noise). Tests may pass their own seeded
    generator to the functions below; production code calls this once per task.

    The bit generator is numpy's PCG64, seeded through ``SeedSequence`` so the full
    256 bits reach its 128-bit state and 128-bit increment. PCG64 is not a
    cryptographic generator; that is acceptable here because none of its raw output
    leaves the process: only sums of shares, masked and then aggregated, are revealed.
    """
    seed = np.random.SeedSequence(secrets.randbits(SEED_BITS))
    return np.random.Generator(np.random.PCG64(seed))


def noise_parameter(epsilon: float, sensitivity: int) -> float:
    """a = exp(-epsilon / sensitivity), the ratio of neighbouring noise probabilities.

    ``epsilon`` must be a finite number > 0 and ``sensitivity`` (the L1 sensitivity in
    encoded integer units) an integer >= 1; anything else would silently yield no or
    meaningless noise, so it raises ``NoiseParameterError`` naming the argument.
    """
    eps = _check_epsilon(epsilon, "epsilon")
    sens = _check_count(sensitivity, "sensitivity", 1)
    return math.exp(-eps / sens)


def noise_variance(epsilon: float, sensitivity: int, shares: int = 1, parties: int = 1) -> float:
    """Variance of the sum of ``shares`` shares, each drawn for ``parties`` parties.

    (shares / parties) * 2a / (1 - a)**2: with shares == parties it is the discrete
    Laplace's variance; one share alone (shares=1) is ``parties`` times smaller; m > t
    contributors with shares drawn for t give m/t times the minimum. 1 - a is computed
    as -expm1(-epsilon/sensitivity) so small epsilons keep their precision.
    """
    eps = _check_epsilon(epsilon, "epsilon")
    sens = _check_count(sensitivity, "sensitivity", 1)
    m = _check_count(shares, "shares", 0)
    k = _check_count(parties, "parties", 1, MAX_PARTIES)
    return m / k * _full_variance(eps / sens)


def noise_shares(
    rng: np.random.Generator, epsilon: float, sensitivity: int, parties: int, size: int
) -> npt.NDArray[np.int64]:
    """One party's noise share for each of ``size`` vector elements.

    Each element is X - Y with X, Y i.i.d. NB(1/parties, 1 - a), so the shares of
    ``parties`` parties add up to a discrete Laplace at a = exp(-epsilon/sensitivity).
    Pass the secure sum's threshold t as ``parties`` (see the module docstring for why,
    and for t - c when c colluders must be tolerated). Refuses a full-noise standard
    deviation above ``MAX_NOISE_STD``.
    """
    _check_rng(rng)
    eps, sens = _check_element(epsilon, sensitivity, "epsilon", "sensitivity")
    k = _check_count(parties, "parties", 1, MAX_PARTIES)
    n = _check_count(size, "size", 0, MAX_ELEMENTS)
    return _draw(rng, _success_probability(eps / sens), k, n)


def split_epsilon(epsilon: float, components: int) -> float:
    """The epsilon each of ``components`` noisy figures of one release may spend.

    Basic sequential composition: figures noised independently at epsilon_1, ...,
    epsilon_c together are (epsilon_1 + ... + epsilon_c)-DP, so an even split of a
    release's epsilon is epsilon / components. A histogram counts as one component.
    """
    eps = _check_epsilon(epsilon, "epsilon")
    return eps / _check_count(components, "components", 1)


@dataclass(frozen=True)
class NoisePlan:
    """Per vector element: the epsilon and L1 sensitivity its noise is drawn for.

    Kept generic so one plan serves any secure-sum vector. The statistics code builds
    e.g. (count, sum clipped at B, sum of squares, histogram) as::

        eps = split_epsilon(release_epsilon, 4)
        plan = (
            NoisePlan.figure(eps, 1)            # a row changes the count by 1
            + NoisePlan.figure(eps, B)          # ... the sum by at most B
            + NoisePlan.figure(eps, B * B)      # ... the sum of squares by at most B**2
            + NoisePlan.histogram(eps, cells)   # ... exactly one cell, by 1
        )

    Elements are validated on construction, so a plan that exists can be drawn from.
    """

    epsilons: tuple[float, ...]
    sensitivities: tuple[int, ...]

    def __post_init__(self) -> None:
        epsilons = tuple(self.epsilons)
        sensitivities = tuple(self.sensitivities)
        if len(epsilons) != len(sensitivities):
            raise NoiseParameterError(
                f"epsilons and sensitivities differ in length: "
                f"{len(epsilons)} != {len(sensitivities)}"
            )
        if len(epsilons) > MAX_ELEMENTS:
            raise NoiseParameterError(
                f"a plan has at most MAX_ELEMENTS = {MAX_ELEMENTS} elements, got {len(epsilons)}"
            )
        checked = [
            _check_element(eps, sens, f"epsilons[{i}]", f"sensitivities[{i}]")
            for i, (eps, sens) in enumerate(zip(epsilons, sensitivities, strict=True))
        ]
        object.__setattr__(self, "epsilons", tuple(eps for eps, _ in checked))
        object.__setattr__(self, "sensitivities", tuple(sens for _, sens in checked))

    @classmethod
    def figure(cls, epsilon: float, sensitivity: int, count: int = 1) -> NoisePlan:
        """``count`` elements, each noised at (epsilon, sensitivity)."""
        eps, sens = _check_element(epsilon, sensitivity, "epsilon", "sensitivity")
        n = _check_count(count, "count", 0, MAX_ELEMENTS)
        return cls._checked((eps,) * n, (sens,) * n)

    @classmethod
    def histogram(cls, epsilon: float, cells: int) -> NoisePlan:
        """A histogram: every cell at the histogram's one epsilon, sensitivity 1.

        Adding or removing one row changes exactly one cell by exactly one, so the
        whole histogram vector has L1 sensitivity 1 and spends epsilon once, not once
        per cell.
        """
        return cls.figure(epsilon, 1, cells)

    def __add__(self, other: NoisePlan) -> NoisePlan:
        """The concatenation: ``other``'s elements follow this plan's."""
        if not isinstance(other, NoisePlan):
            return NotImplemented
        if len(self) + len(other) > MAX_ELEMENTS:
            raise NoiseParameterError(
                f"a plan has at most MAX_ELEMENTS = {MAX_ELEMENTS} elements, "
                f"got {len(self)} + {len(other)}"
            )
        return NoisePlan._checked(
            self.epsilons + other.epsilons, self.sensitivities + other.sensitivities
        )

    @classmethod
    def _checked(cls, epsilons: tuple[float, ...], sensitivities: tuple[int, ...]) -> NoisePlan:
        """A plan from elements already validated (by ``figure`` or by the operands of
        ``+``): skips the per-element check, which dominates for large histograms."""
        plan = object.__new__(cls)
        object.__setattr__(plan, "epsilons", epsilons)
        object.__setattr__(plan, "sensitivities", sensitivities)
        return plan

    def __len__(self) -> int:
        return len(self.epsilons)

    def shares(self, rng: np.random.Generator, parties: int) -> list[int]:
        """One party's share vector: element i drawn as in ``noise_shares``."""
        _check_rng(rng)
        k = _check_count(parties, "parties", 1, MAX_PARTIES)
        if not self.epsilons:
            return []
        ratios = np.array(self.epsilons) / np.array(self.sensitivities, dtype=np.float64)
        out: list[int] = _draw(rng, -np.expm1(-ratios), k, len(self)).tolist()
        return out

    def variances(self, parties: int, contributors: int) -> list[float]:
        """Each element's total noise variance when ``contributors`` parties each add
        a share drawn for ``parties``: (contributors / parties) * 2a / (1 - a)**2."""
        k = _check_count(parties, "parties", 1, MAX_PARTIES)
        m = _check_count(contributors, "contributors", 0)
        return [
            m / k * _full_variance(eps / sens)
            for eps, sens in zip(self.epsilons, self.sensitivities, strict=True)
        ]


def _draw(
    rng: np.random.Generator,
    p: float | npt.NDArray[np.float64],
    parties: int,
    size: int,
) -> npt.NDArray[np.int64]:
    """X - Y, X and Y i.i.d. NB(1/parties, p), ``size`` of them (p broadcasts)."""
    shape = 1.0 / parties
    x = rng.negative_binomial(shape, p, size)
    y = rng.negative_binomial(shape, p, size)
    return (x - y).astype(np.int64, copy=False)


def _success_probability(ratio: float) -> float:
    """1 - a = 1 - exp(-ratio), precise for small ratios (numpy's p)."""
    return -math.expm1(-ratio)


def _full_variance(ratio: float) -> float:
    """2a / (1 - a)**2 for a = exp(-ratio); 0 when a underflows (no noise at all)."""
    a = math.exp(-ratio)
    return 2.0 * a / _success_probability(ratio) ** 2


def _check_element(
    epsilon: object, sensitivity: object, eps_name: str, sens_name: str
) -> tuple[float, int]:
    """Valid epsilon and sensitivity whose full noise stays within ``MAX_NOISE_STD``."""
    eps = _check_epsilon(epsilon, eps_name)
    sens = _check_count(sensitivity, sens_name, 1)
    std = math.sqrt(_full_variance(eps / sens))
    if std > MAX_NOISE_STD:
        raise NoiseParameterError(
            f"{eps_name}={epsilon!r} with {sens_name}={sensitivity!r} needs noise of "
            f"standard deviation {std:.3g}, above MAX_NOISE_STD = 2**46 ({MAX_NOISE_STD:.3g})"
        )
    return eps, sens


def _check_epsilon(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise NoiseParameterError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise NoiseParameterError(f"{name} must be finite and > 0, got {value!r}")
    return number


def _check_count(value: object, name: str, low: int, high: int | None = None) -> int:
    """An integer (bool refused: True is not a count) within low..high."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise NoiseParameterError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise NoiseParameterError(f"{name} must be {bound}, got {value!r}")
    return number


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise NoiseParameterError(
            f"rng must be a numpy.random.Generator (use new_rng()), got {type(rng).__name__}"
        )


__all__ = [
    "MAX_ELEMENTS",
    "MAX_NOISE_STD",
    "MAX_PARTIES",
    "SEED_BITS",
    "NoiseParameterError",
    "NoisePlan",
    "new_rng",
    "noise_parameter",
    "noise_shares",
    "noise_variance",
    "split_epsilon",
]
