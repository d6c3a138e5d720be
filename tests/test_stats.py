"""evrobust.stats against independent references: scipy's beta quantiles (Clopper–Pearson), scipy's exact
binomial test (McNemar), hand-computed cases, and the coverage the interval promises."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as sps

from evrobust.stats import (
    clopper_pearson,
    compare_paired,
    format_interval,
    mcnemar_exact,
    mcnemar_sample_size,
)


def _scipy_cp(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


@pytest.mark.parametrize(
    ("k", "n"),
    [(0, 1), (1, 1), (0, 10), (10, 10), (4, 100), (8, 100), (20, 200), (25, 200), (102, 1017), (500, 1017),
     (1, 50), (49, 50), (3, 7), (1000, 10000)],
)
def test_clopper_pearson_equals_scipy_beta_quantiles(k: int, n: int) -> None:
    ours = clopper_pearson(k, n)
    ref = _scipy_cp(k, n)
    assert ours == pytest.approx(ref, abs=1e-9)


def test_clopper_pearson_hand_case() -> None:
    # k = 0 of n: the upper end solves (1 - p)^n = 0.025 exactly.
    low, high = clopper_pearson(0, 20)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 20), abs=1e-10)
    # k = n: mirror image
    low, high = clopper_pearson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 20), abs=1e-10)


def test_clopper_pearson_other_confidence_equals_scipy() -> None:
    assert clopper_pearson(7, 40, 0.9) == pytest.approx(_scipy_cp(7, 40, 0.9), abs=1e-9)


def test_clopper_pearson_covers_at_least_95_percent() -> None:
    """Exact coverage at fixed p, summed over every k: the interval is conservative."""
    n = 60
    for p in (0.04, 0.1, 0.37, 0.5, 0.93):
        covered = 0.0
        for k in range(n + 1):
            low, high = clopper_pearson(k, n)
            if low <= p <= high:
                covered += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        assert covered >= 0.95 - 1e-9, (p, covered)


@pytest.mark.parametrize("bad", [(-1, 5), (6, 5), (0, 0), (1.5, 5)])
def test_clopper_pearson_refuses_bad_counts(bad: tuple[float, int]) -> None:
    with pytest.raises(ValueError):
        clopper_pearson(*bad)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (0, 5), (3, 3), (12, 4), (4, 12), (30, 51), (0, 40),
                                      (600, 700), (1200, 1100)])
def test_mcnemar_equals_scipy_binomtest(b: int, c: int) -> None:
    ref = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_mcnemar_hand_case() -> None:
    # b = 0, c = 5: 2 * (1/2)^5 = 1/16
    assert mcnemar_exact(0, 5) == pytest.approx(1 / 16)
    # b = 1, c = 4: 2 * (1 + 5) / 32 = 0.375
    assert mcnemar_exact(1, 4) == pytest.approx(0.375)


def test_sample_size_matches_connor_formula_by_hand() -> None:
    # p10 = 0.10, p01 = 0.05, pd = 0.15, delta = 0.05; z = 1.959964, 0.841621
    expected = math.ceil((1.959964 * math.sqrt(0.15) + 0.841621 * math.sqrt(0.15 - 0.0025)) ** 2 / 0.0025)
    assert mcnemar_sample_size(10, 5, 100) == expected
    assert mcnemar_sample_size(5, 5, 100) is None


def test_sample_size_reaches_power_in_simulation() -> None:
    """At the size it names, the exact test rejects in about 80 % of paired draws (a normal approximation:
    allow 70-90 %)."""
    rng = random.Random(0)
    p10, p01 = 0.10, 0.04
    n = mcnemar_sample_size(10, 4, 100)
    assert n is not None
    rejections = 0
    trials = 400
    for _ in range(trials):
        b = c = 0
        for _ in range(n):
            u = rng.random()
            if u < p10:
                b += 1
            elif u < p10 + p01:
                c += 1
        rejections += mcnemar_exact(b, c) < 0.05
    assert 0.7 <= rejections / trials <= 0.9


def test_compare_paired_counts_and_verdict() -> None:
    a = [True] * 30 + [False] * 70
    b = [True] * 10 + [False] * 90
    cmp = compare_paired(a, b)
    assert (cmp.n, cmp.robust_a, cmp.robust_b, cmp.a_only, cmp.b_only) == (100, 30, 10, 20, 0)
    assert cmp.p_value == pytest.approx(2 * 0.5**20)
    assert cmp.established
    assert cmp.verdict("SR*", "AT") == "SR* is more robust than AT (p < 0.001)"
    # the reverse order names the same winner
    assert compare_paired(b, a).verdict("AT", "SR*").startswith("SR* is more robust than AT")


def test_compare_paired_not_established_names_a_sample_count() -> None:
    a = [True] * 8 + [False] * 92
    b = [True] * 4 + [False] * 96
    cmp = compare_paired(a, b)
    assert not cmp.established
    text = cmp.verdict("SR*", "AT")
    assert text.startswith("not established (p = 0.125)")
    assert f"about {cmp.samples_needed} samples" in text


def test_compare_paired_refuses_unpaired_flags() -> None:
    with pytest.raises(ValueError):
        compare_paired([True, False], [True])


def test_format_interval() -> None:
    assert format_interval(0.125, (0.091, 0.168)) == "12.5 [9.1, 16.8]"
    assert format_interval(0.125, None) == "12.5"


def test_verdict_spells_tiny_p_values() -> None:
    cmp = compare_paired([True] * 40 + [False] * 10, [False] * 50)
    assert cmp.verdict("SR", "vanilla") == "SR is more robust than vanilla (p < 0.001)"


def test_mcnemar_bounds_over_every_pairing_by_hand() -> None:
    from evrobust.stats import mcnemar_bounds

    # 14 vs 2 robust of 200: b - c = 12, c in 0..2 -> p from 2/2^12 to 2 P(X <= 2 | Bin(16, 1/2))
    low, high = mcnemar_bounds(14, 2, 200)
    assert low == pytest.approx(2 / 4096)
    assert high == pytest.approx(2 * (1 + 16 + 120) / 65536)
    # 8 vs 4 of 100: b - c = 4, c in 0..4 -> p from 0.125 (b = 4, c = 0) to 2 P(X <= 4 | Bin(12))
    low, high = mcnemar_bounds(8, 4, 100)
    assert low == pytest.approx(0.125) and high == pytest.approx(2 * (1 + 12 + 66 + 220 + 495) / 4096)
    # the bounds contain the p-value of every concrete pairing (brute force on a small case)
    import itertools

    n, ka, kb = 6, 3, 2
    seen = []
    for a in itertools.combinations(range(n), ka):
        for b in itertools.combinations(range(n), kb):
            fa = [i in a for i in range(n)]
            fb = [i in b for i in range(n)]
            seen.append(compare_paired(fa, fb).p_value)
    assert mcnemar_bounds(ka, kb, n) == pytest.approx((min(seen), max(seen)))
