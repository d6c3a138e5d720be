"""How sure a robust accuracy is: exact binomial intervals, the exact McNemar test on paired per-sample flags,
and the sample count that would settle a paired difference.

Pure Python (``math`` and ``statistics`` only): no torch, no scipy, so the report and ``evrobust compare``
load fast and the tests can check these numbers against scipy as an independent reference.

- :func:`clopper_pearson`: the two-sided exact interval of a binomial proportion ``k / n`` (Clopper and
  Pearson, 1934), the interval certified-robustness code reports. It is the set of ``p`` that a two-sided
  exact test at level ``1 - confidence`` does not reject, so it is conservative: its coverage is at least
  ``confidence`` for every ``p``.
- :func:`mcnemar_exact`: two accuracies measured on the *same* samples are paired, and only the discordant
  samples (robust under A and broken under B, or the reverse) carry information about their difference.
  Under "no difference" each discordant sample falls either way with probability 1/2, so the exact two-sided
  p-value is a binomial tail: ``min(1, 2 P(X <= min(b, c)))``, ``X ~ Bin(b + c, 1/2)``.
- :func:`mcnemar_sample_size`: the samples a paired McNemar test needs to detect the observed discordant
  rates at a given power (Connor, 1987, normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "CONFIDENCE",
    "SIGNIFICANCE",
    "PairedComparison",
    "ci95",
    "clopper_pearson",
    "compare_paired",
    "format_interval",
    "mcnemar_bounds",
    "mcnemar_exact",
    "mcnemar_sample_size",
]

CONFIDENCE = 0.95
"""Two-sided confidence of every interval evrobust reports."""
SIGNIFICANCE = 0.05
"""A difference is called a lead only when the paired test's p-value is below this."""


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    """``log P(X = k)`` for ``X ~ Bin(n, p)``, ``0 < p < 1``."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Bin(n, p)``, summed in log space from the mode outwards (stable for any n)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    logs = [_log_binom_pmf(i, n, p) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def _solve_decreasing(f, target: float) -> float:  # noqa: ANN001 - a float -> float callable
    """The ``p`` in [0, 1] where the decreasing function ``f`` crosses ``target`` (bisection, 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval of the proportion ``k / n``.

    The lower end solves ``P(X >= k | p) = alpha / 2`` (0 when ``k = 0``), the upper end
    ``P(X <= k | p) = alpha / 2`` (1 when ``k = n``), with ``alpha = 1 - confidence``; both by bisection on
    the exact binomial tail.

    Args:
        k: successes (robust samples), ``0 <= k <= n``.
        n: trials (evaluated samples), ``n >= 1``.

    Returns:
        ``(low, high)`` as fractions in [0, 1].

    Raises:
        ValueError: ``n < 1``, ``k`` outside ``[0, n]``, or ``confidence`` outside (0, 1).
    """
    k, n = _count(k, "k"), _count(n, "n")
    if n < 1 or k > n:
        raise ValueError(f"clopper_pearson needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    tail = (1.0 - confidence) / 2.0
    # P(X <= k - 1 | p) falls as p grows: the lower end is where it reaches 1 - tail.
    low = 0.0 if k == 0 else _solve_decreasing(lambda p: _binom_cdf(k - 1, n, p), 1.0 - tail)
    high = 1.0 if k == n else _solve_decreasing(lambda p: _binom_cdf(k, n, p), tail)
    return low, high


def ci95(k: int, n: int) -> list[float] | None:
    """``[low, high]`` of :func:`clopper_pearson` at 95 % as the JSON stores it; ``None`` for ``n = 0``."""
    return list(clopper_pearson(k, n)) if n else None


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts ``b`` and ``c``.

    ``b`` = samples robust under A and broken under B, ``c`` = the reverse. With ``m = b + c``,
    ``p = min(1, 2 P(X <= min(b, c)))`` for ``X ~ Bin(m, 1/2)``; 1 when there is no discordant sample. Equal
    to ``scipy.stats.binomtest(b, m, 0.5).pvalue`` (its two-sided p-value sums the outcomes no likelier than
    the one observed, which for p = 1/2 are the two tails).
    """
    b, c = _count(b, "b"), _count(c, "c")
    m = b + c
    if m == 0:
        return 1.0
    low = min(b, c)
    # exact rational tail: sum_{i <= low} C(m, i) / 2^m
    if m <= 1000:
        tail = math.fsum(math.comb(m, i) for i in range(low + 1)) / 2.0**m
    else:
        tail = _binom_cdf(low, m, 0.5)
    return min(1.0, 2.0 * tail)


def mcnemar_bounds(robust_a: int, robust_b: int, n: int) -> tuple[float, float]:
    """The smallest and largest exact McNemar p-value over every per-sample pairing consistent with two
    robust counts on the same ``n`` samples.

    For a published pair of accuracies without per-sample flags: the discordant difference ``b - c`` equals
    ``robust_a - robust_b`` whatever the pairing, while ``c`` can range from 0 to ``min(robust_b,
    n - robust_a)``. If even the largest p is below 0.05 the difference is established for every pairing;
    if even the smallest is above, for none.
    """
    ka, kb, n = _count(robust_a, "robust_a"), _count(robust_b, "robust_b"), _count(n, "n")
    if ka > n or kb > n:
        raise ValueError(f"robust counts must be <= n, got {ka}, {kb} of {n}")
    hi, lo = max(ka, kb), min(ka, kb)
    d = hi - lo
    values = [mcnemar_exact(c + d, c) for c in range(0, min(lo, n - hi) + 1)]
    return min(values), max(values)


def mcnemar_sample_size(
    b: int, c: int, n: int, alpha: float = SIGNIFICANCE, power: float = 0.8
) -> int | None:
    """Samples a paired test needs to detect the observed discordant rates (Connor, 1987).

    With ``p10 = b / n``, ``p01 = c / n``, ``pd = p10 + p01`` and ``delta = p10 - p01``:
    ``N = (z_{1-alpha/2} sqrt(pd) + z_{power} sqrt(pd - delta^2))^2 / delta^2``, rounded up. A normal
    approximation: it says how far off a settled answer is, not an exact design.

    Returns:
        ``None`` when the two are level on these samples (``b == c``): no sample count settles a difference
        that was not observed.
    """
    b, c, n = _count(b, "b"), _count(c, "c"), _count(n, "n")
    if n < 1 or b + c > n:
        raise ValueError(f"need b + c <= n and n >= 1, got b={b}, c={c}, n={n}")
    if b == c:
        return None
    p10, p01 = b / n, c / n
    pd, delta = p10 + p01, p10 - p01
    z_a = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    z_b = NormalDist().inv_cdf(power)
    return math.ceil((z_a * math.sqrt(pd) + z_b * math.sqrt(max(pd - delta * delta, 0.0))) ** 2 / delta**2)


@dataclass(frozen=True)
class PairedComparison:
    """Two robust-accuracy measurements on the same ``n`` samples.

    Attributes:
        n: paired samples.
        robust_a, robust_b: robust samples under A and under B.
        a_only: robust under A and broken under B (``b`` of McNemar); ``b_only`` the reverse (``c``).
        p_value: exact two-sided McNemar p-value.
        samples_needed: :func:`mcnemar_sample_size` at 80 % power (None when level).
    """

    n: int
    robust_a: int
    robust_b: int
    a_only: int
    b_only: int
    p_value: float
    samples_needed: int | None

    @property
    def accuracy_a(self) -> float:
        return self.robust_a / self.n

    @property
    def accuracy_b(self) -> float:
        return self.robust_b / self.n

    @property
    def ci95_a(self) -> tuple[float, float]:
        return clopper_pearson(self.robust_a, self.n)

    @property
    def ci95_b(self) -> tuple[float, float]:
        return clopper_pearson(self.robust_b, self.n)

    @property
    def established(self) -> bool:
        """Whether the difference is significant (p < :data:`SIGNIFICANCE`)."""
        return self.p_value < SIGNIFICANCE and self.a_only != self.b_only

    def verdict(self, name_a: str = "A", name_b: str = "B", quality: str = "robust") -> str:
        """One sentence: which is more ``quality`` (robust; accurate for clean flags), or that it is not
        established (and what would settle it)."""
        p = format_p(self.p_value)
        p = f"p {p}" if p.startswith("<") else f"p = {p}"
        if self.established:
            more, less = (name_a, name_b) if self.a_only > self.b_only else (name_b, name_a)
            return f"{more} is more {quality} than {less} ({p})"
        if self.samples_needed is None:
            return f"not established ({p}); the two are level on these {self.n} samples"
        return (f"not established ({p}); about {self.samples_needed} samples would settle a difference "
                "this size at 80 % power")

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "a": {"robust": self.robust_a, "accuracy": self.accuracy_a, "ci95": list(self.ci95_a)},
            "b": {"robust": self.robust_b, "accuracy": self.accuracy_b, "ci95": list(self.ci95_b)},
            "a_only": self.a_only,
            "b_only": self.b_only,
            "p_value": self.p_value,
            "samples_needed": self.samples_needed,
            "established": self.established,
        }


def compare_paired(a: Sequence[bool], b: Sequence[bool]) -> PairedComparison:
    """Compare per-sample robust flags of A and B (same samples, same order).

    Raises:
        ValueError: the two cover different numbers of samples, or none.
    """
    if len(a) != len(b):
        raise ValueError(f"paired flags must cover the same samples, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired flags are empty")
    a_only = sum(1 for u, v in zip(a, b, strict=True) if u and not v)
    b_only = sum(1 for u, v in zip(a, b, strict=True) if v and not u)
    n = len(a)
    return PairedComparison(
        n=n,
        robust_a=sum(1 for u in a if u),
        robust_b=sum(1 for v in b if v),
        a_only=a_only,
        b_only=b_only,
        p_value=mcnemar_exact(a_only, b_only),
        samples_needed=mcnemar_sample_size(a_only, b_only, n),
    )


def format_p(p: float) -> str:
    """A p-value for a sentence: 3 significant digits, ``< 0.001`` below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def format_interval(accuracy: float, ci95: Sequence[float] | None, digits: int = 1) -> str:
    """``"12.5 [9.1, 16.8]"``: an accuracy and its interval, in %."""
    text = f"{100 * accuracy:.{digits}f}"
    if ci95 is None:
        return text
    return f"{text} [{100 * ci95[0]:.{digits}f}, {100 * ci95[1]:.{digits}f}]"


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)
