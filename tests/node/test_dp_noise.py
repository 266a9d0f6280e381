"""Distributed discrete-Laplace noise: the shares add up to the right distribution.

Statistical checks run on seeded generators, so every run draws the same numbers; the
tolerances are chosen so that a *correct* sampler would fail for a fresh seed only with
a probability of about 1e-6 per check, while the mistakes that matter (wrong shape
1/k, wrong p, wrong a, a share that is not a difference of two NB variables) move the
statistics by many tolerances.

Moments used below, for Z the sum of s "units" of noise (one unit = the full discrete
Laplace at a; one share drawn for k parties is s = 1/k units; m such shares are m/k):
Z is a difference of two i.i.d. NB(s, 1 - a), whose cumulants scale with s, so

    Var(Z)   = s * 2a / (1 - a)**2
    kappa4   = s * 2a (1 + 4a + a**2) / (1 - a)**4        (4th cumulant)
    Var(Z^2) = kappa4 + 2 Var(Z)**2                        (Z has mean 0)

For s = 1 this gives the discrete Laplace's kurtosis (1 + 10a + a**2) / (2a), which is
>= 6 (the continuous Laplace's) and grows as a -> 0: the variance tolerance has to come
from it, not from a Gaussian rule of thumb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from node.crypto.dp_noise import (
    MAX_ELEMENTS,
    MAX_NOISE_STD,
    NoiseParameterError,
    NoisePlan,
    new_rng,
    noise_parameter,
    noise_shares,
    noise_variance,
    split_epsilon,
)

DRAWS = 40_000  # independent draws of the summed noise per statistical check
Z_TOL = 5.0  # standard errors; two-sided normal tail P(|N(0,1)| > 5) ~ 5.7e-7
CHI2_X = math.log(1e6)  # Laurent-Massart tail: P(chi2 > crit) <= exp(-x) = 1e-6

Ints = npt.NDArray[np.int64]


def full_variance(a: float) -> float:
    return 2 * a / (1 - a) ** 2


def variance_of_square(a: float, units: float) -> float:
    kappa4 = units * 2 * a * (1 + 4 * a + a * a) / (1 - a) ** 4
    return kappa4 + 2 * (units * full_variance(a)) ** 2


def summed(
    rng: np.random.Generator, epsilon: float, sensitivity: int, parties: int, contributors: int
) -> Ints:
    """DRAWS independent totals, each the sum of ``contributors`` shares drawn for
    ``parties`` parties (one vectorised call: all shares are i.i.d.)."""
    shares = noise_shares(rng, epsilon, sensitivity, parties, contributors * DRAWS)
    total: Ints = shares.reshape(contributors, DRAWS).sum(axis=0)
    return total


def assert_moments(z: Ints, a: float, units: float) -> None:
    """Mean 0 and variance units * 2a/(1-a)^2, each within Z_TOL standard errors."""
    n = len(z)
    variance = units * full_variance(a)
    mean = float(z.mean())
    assert abs(mean) <= Z_TOL * math.sqrt(variance / n), (mean, variance)
    # Mean of Z^2 around the true mean 0: its standard error comes from Var(Z^2).
    second = float(np.mean(z.astype(np.float64) ** 2))
    tolerance = Z_TOL * math.sqrt(variance_of_square(a, units) / n)
    assert abs(second - variance) <= tolerance, (second, variance, tolerance)


def chi_square(z: Ints, a: float) -> tuple[float, float]:
    """Pearson's statistic of ``z`` against the discrete Laplace pmf, and its critical value.

    Bins: every z with |z| <= K, plus the two tails z < -K and z > K, where K is the
    largest value at which every bin (tails included) expects at least 5 draws, the
    usual condition for Pearson's statistic to be close to chi-square with
    (bins - 1) degrees of freedom (no parameter is estimated). The critical value is
    the Laurent-Massart bound (Ann. Statist. 2000, Lemma 1): for X ~ chi2_d,
    P(X >= d + 2 sqrt(d x) + 2x) <= exp(-x); with x = ln 1e6 it is conservative (a
    rigorous tail bound, looser than the exact quantile) at a 1e-6 false-failure rate.
    """
    n = len(z)
    norm = (1 - a) / (1 + a)

    def tail(k: int) -> float:  # P(Z > k) = P(Z < -k)
        return a ** (k + 1) / (1 + a)

    k_max = 0
    while n * norm * a ** (k_max + 1) >= 5 and n * tail(k_max + 1) >= 5:
        k_max += 1
    assert n * norm * a**k_max >= 5 and n * tail(k_max) >= 5
    values = np.arange(-k_max, k_max + 1)
    expected = [n * tail(k_max)]
    expected += [n * norm * a ** abs(int(v)) for v in values]
    expected += [n * tail(k_max)]
    observed = [int(np.count_nonzero(z < -k_max))]
    counts = np.bincount(z[np.abs(z) <= k_max] + k_max, minlength=2 * k_max + 1)
    observed += [int(c) for c in counts]
    observed += [int(np.count_nonzero(z > k_max))]
    assert sum(observed) == n
    assert math.isclose(sum(expected), n)
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    dof = len(expected) - 1
    critical = dof + 2 * math.sqrt(dof * CHI2_X) + 2 * CHI2_X
    return statistic, critical


# (epsilon, sensitivity, parties): a from 0.22 to 0.90, including a single party.
CASES = [
    (1.0, 1, 1),
    (0.5, 1, 3),
    (3.0, 2, 7),
    (1.0, 10, 5),
    (0.7, 3, 2),
]


@pytest.mark.parametrize(("epsilon", "sensitivity", "parties"), CASES)
def test_sum_of_parties_shares_has_discrete_laplace_moments(
    epsilon: float, sensitivity: int, parties: int
) -> None:
    rng = np.random.default_rng([11, parties, sensitivity])
    a = noise_parameter(epsilon, sensitivity)
    z = summed(rng, epsilon, sensitivity, parties, parties)
    assert z.dtype == np.int64
    assert noise_variance(epsilon, sensitivity, parties, parties) == pytest.approx(full_variance(a))
    assert_moments(z, a, 1.0)


@pytest.mark.parametrize(("epsilon", "sensitivity", "parties"), CASES)
def test_sum_of_parties_shares_follows_discrete_laplace_pmf(
    epsilon: float, sensitivity: int, parties: int
) -> None:
    rng = np.random.default_rng([23, parties, sensitivity])
    a = noise_parameter(epsilon, sensitivity)
    statistic, critical = chi_square(summed(rng, epsilon, sensitivity, parties, parties), a)
    assert statistic <= critical, (statistic, critical)


def test_chi_square_check_rejects_a_wrong_distribution_of_the_same_variance() -> None:
    """The goodness-of-fit check has power: a rounded Gaussian with the discrete
    Laplace's variance, and the discrete Laplace of a slightly different a, both fail."""
    rng = np.random.default_rng(5)
    a = noise_parameter(0.5, 1)
    gaussian = np.rint(rng.normal(0.0, math.sqrt(full_variance(a)), DRAWS)).astype(np.int64)
    statistic, critical = chi_square(gaussian, a)
    assert statistic > critical
    other = summed(rng, 0.45, 1, 3, 3)  # a = exp(-0.45) instead of exp(-0.5)
    statistic, critical = chi_square(other, a)
    assert statistic > critical


@pytest.mark.parametrize(
    ("epsilon", "sensitivity", "threshold", "contributors"),
    [(1.0, 2, 3, 5), (0.5, 1, 2, 7), (2.0, 1, 4, 5)],
)
def test_more_contributors_than_the_threshold_add_noise(
    epsilon: float, sensitivity: int, threshold: int, contributors: int
) -> None:
    """Shares drawn for k = t, summed over m > t parties: (m/t) times the minimum."""
    rng = np.random.default_rng([31, threshold, contributors])
    a = noise_parameter(epsilon, sensitivity)
    units = contributors / threshold
    assert noise_variance(epsilon, sensitivity, contributors, threshold) == pytest.approx(
        units * full_variance(a)
    )
    assert_moments(summed(rng, epsilon, sensitivity, threshold, contributors), a, units)


@pytest.mark.parametrize(("epsilon", "sensitivity", "parties"), [(1.0, 1, 5), (0.3, 2, 10)])
def test_a_single_share_is_much_less_noisy_than_the_sum(
    epsilon: float, sensitivity: int, parties: int
) -> None:
    """One share is X - Y with X, Y ~ NB(1/k, 1-a): variance 2 (1/k) a / (1-a)^2, k times
    below the full noise. This is why a share may only travel masked inside the secure
    sum, and why c colluders who subtract their shares leave (k - c)/k of the noise."""
    rng = np.random.default_rng([41, parties])
    a = noise_parameter(epsilon, sensitivity)
    share = noise_shares(rng, epsilon, sensitivity, parties, DRAWS)
    assert_moments(share, a, 1 / parties)
    assert float(np.var(share)) < full_variance(a) / 2
    assert noise_variance(epsilon, sensitivity, 1, parties) == pytest.approx(
        full_variance(a) / parties
    )
    # Nor is it a discrete Laplace of smaller scale: far too many zeros for that.
    statistic, critical = chi_square(share, a)
    assert statistic > critical
    # c colluders of k: the other k - c shares carry (k - c)/k of the minimum.
    colluders = 2
    rest = summed(rng, epsilon, sensitivity, parties, parties - colluders)
    assert_moments(rest, a, (parties - colluders) / parties)


def test_noise_plan_for_a_statistics_vector() -> None:
    bound = 7
    eps = split_epsilon(2.0, 4)
    assert eps == 0.5
    plan = (
        NoisePlan.figure(eps, 1)
        + NoisePlan.figure(eps, bound)
        + NoisePlan.figure(eps, bound * bound)
        + NoisePlan.histogram(eps, 5)
    )
    assert len(plan) == 8
    assert plan.epsilons == (0.5,) * 8
    assert plan.sensitivities == (1, 7, 49, 1, 1, 1, 1, 1)
    expected = [noise_variance(0.5, s, 5, 3) for s in plan.sensitivities]
    assert plan.variances(parties=3, contributors=5) == pytest.approx(expected)
    assert plan.variances(parties=3, contributors=3)[1] == pytest.approx(
        full_variance(noise_parameter(0.5, 7))
    )
    share = plan.shares(new_rng(), parties=3)
    assert len(share) == 8
    assert all(type(v) is int for v in share)
    assert NoisePlan((), ()).shares(new_rng(), 3) == []
    listed = NoisePlan([0.5, 1], [1, 2])  # type: ignore[arg-type]
    assert listed == NoisePlan((0.5, 1.0), (1, 2))  # normalised to tuples of float, int


def test_noise_plan_draws_each_element_at_its_own_scale() -> None:
    """Elements of different (epsilon, sensitivity) in one plan each get their own
    variance: catches a vectorisation that uses one element's parameter for all."""
    per_group = DRAWS // 2
    groups = [(0.5, 1), (1.0, 9), (2.0, 1)]
    plan = NoisePlan.figure(0.5, 1, per_group)
    for eps, sens in groups[1:]:
        plan = plan + NoisePlan.figure(eps, sens, per_group)
    rng = np.random.default_rng(53)
    threshold, contributors = 3, 4
    total = np.sum(
        [np.array(plan.shares(rng, threshold), dtype=np.int64) for _ in range(contributors)],
        axis=0,
    )
    variances = plan.variances(threshold, contributors)
    for g, (eps, sens) in enumerate(groups):
        part = total[g * per_group : (g + 1) * per_group]
        assert variances[g * per_group] == pytest.approx(
            noise_variance(eps, sens, contributors, threshold)
        )
        assert_moments(part, noise_parameter(eps, sens), contributors / threshold)


def test_formulas() -> None:
    assert noise_parameter(1.0, 1) == pytest.approx(math.exp(-1))
    assert noise_parameter(2.0, 4) == pytest.approx(math.exp(-0.5))
    assert noise_variance(1.0, 1) == pytest.approx(2 * math.e / (math.e - 1) ** 2)
    assert noise_variance(1.0, 1, shares=0, parties=3) == 0
    # Small epsilon: 1 - a is computed without cancellation; Var ~ 2/r^2 - 1/6.
    r = 1e-9
    assert noise_variance(r, 1) == pytest.approx(2 / r**2 - 1 / 6, rel=1e-12)
    assert split_epsilon(1.0, 3) == pytest.approx(1 / 3)


def test_same_seed_same_shares_and_new_rng_streams_differ() -> None:
    one = noise_shares(np.random.default_rng(7), 1.0, 1, 3, 100)
    two = noise_shares(np.random.default_rng(7), 1.0, 1, 3, 100)
    assert np.array_equal(one, two)
    first, second = new_rng(), new_rng()
    assert isinstance(first, np.random.Generator)
    assert not np.array_equal(first.integers(0, 2**63, 4), second.integers(0, 2**63, 4))
    # 256 bits of seed entropy: a 128-bit (or smaller) seed would have < 129 bits.
    seeds = [rng.bit_generator.seed_seq for rng in (first, second)]
    assert all(isinstance(s, np.random.SeedSequence) for s in seeds)
    entropy = [s.entropy for s in seeds if isinstance(s, np.random.SeedSequence)]
    assert all(isinstance(e, int) and 128 < e.bit_length() <= 256 for e in entropy)
    assert entropy[0] != entropy[1]


def test_largest_allowed_scale_stays_exact_and_larger_is_refused() -> None:
    ok = 1.5 / 2**46  # full-noise sigma ~ 0.94 * 2**46
    assert math.sqrt(noise_variance(ok, 1)) < MAX_NOISE_STD
    shares = noise_shares(np.random.default_rng(3), ok, 1, 3, 10_000)
    assert shares.dtype == np.int64
    assert int(np.max(np.abs(shares))) < 2**53
    assert float(np.std(shares)) > 2**40  # it really is that noisy
    with pytest.raises(NoiseParameterError, match="MAX_NOISE_STD"):
        noise_shares(np.random.default_rng(3), 1.3 / 2**46, 1, 3, 1)
    with pytest.raises(NoiseParameterError, match="MAX_NOISE_STD"):
        noise_shares(np.random.default_rng(3), 0.01, 10**14, 3, 1)
    with pytest.raises(NoiseParameterError, match=r"epsilons\[1\].*MAX_NOISE_STD"):
        NoisePlan((1.0, 1e-15), (1, 1))


@pytest.mark.parametrize("epsilon", [0, 0.0, -1.0, math.nan, math.inf, True, "1", None])
def test_bad_epsilon_is_named(epsilon: object) -> None:
    for call in (
        lambda: noise_parameter(epsilon, 1),  # type: ignore[arg-type]
        lambda: noise_variance(epsilon, 1),  # type: ignore[arg-type]
        lambda: noise_shares(new_rng(), epsilon, 1, 2, 3),  # type: ignore[arg-type]
        lambda: split_epsilon(epsilon, 2),  # type: ignore[arg-type]
    ):
        with pytest.raises(NoiseParameterError, match="epsilon"):
            call()


@pytest.mark.parametrize("sensitivity", [0, -3, 1.0, 1.5, True, "2", None])
def test_bad_sensitivity_is_named(sensitivity: object) -> None:
    for call in (
        lambda: noise_parameter(1.0, sensitivity),  # type: ignore[arg-type]
        lambda: noise_variance(1.0, sensitivity),  # type: ignore[arg-type]
        lambda: noise_shares(new_rng(), 1.0, sensitivity, 2, 3),  # type: ignore[arg-type]
    ):
        with pytest.raises(NoiseParameterError, match="sensitivity"):
            call()


def test_other_bad_arguments_are_named() -> None:
    rng = new_rng()
    assert issubclass(NoiseParameterError, ValueError)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("parties", lambda: noise_shares(rng, 1.0, 1, 0, 3)),
        ("parties", lambda: noise_shares(rng, 1.0, 1, 2.0, 3)),  # type: ignore[arg-type]
        ("parties", lambda: noise_variance(1.0, 1, 1, 0)),
        ("shares", lambda: noise_variance(1.0, 1, -1, 2)),
        ("size", lambda: noise_shares(rng, 1.0, 1, 2, -1)),
        ("size", lambda: noise_shares(rng, 1.0, 1, 2, MAX_ELEMENTS + 1)),
        ("rng", lambda: noise_shares(np.random.RandomState(1), 1.0, 1, 2, 3)),  # type: ignore[arg-type]
        ("rng", lambda: NoisePlan.figure(1.0, 1).shares(None, 2)),  # type: ignore[arg-type]
        ("components", lambda: split_epsilon(1.0, 0)),
        ("components", lambda: split_epsilon(1.0, 2.5)),  # type: ignore[arg-type]
        ("parties", lambda: NoisePlan.figure(1.0, 1).shares(rng, 0)),
        ("contributors", lambda: NoisePlan.figure(1.0, 1).variances(2, -1)),
        ("count", lambda: NoisePlan.figure(1.0, 1, -1)),
        ("differ in length", lambda: NoisePlan((1.0, 1.0), (1,))),
        (r"epsilons\[1\]", lambda: NoisePlan((1.0, -1.0), (1, 1))),
        (r"sensitivities\[0\]", lambda: NoisePlan((1.0,), (0,))),
        ("sensitivity", lambda: NoisePlan.figure(1.0, 0)),
        ("epsilon", lambda: NoisePlan.histogram(math.nan, 3)),
    ]
    for name, call in cases:
        with pytest.raises(NoiseParameterError, match=name):
            call()
