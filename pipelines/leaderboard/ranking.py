"""The leaderboard's ranking: paired tests between entries, Holm's correction, rank groups, the Pareto front.

Pure Python (:mod:`evrobust.stats` only): no torch, no numpy, so a table is re-ranked from its JSON alone and
the tests check every number against ``scipy.stats.binomtest``.

The rule (``docs/leaderboard.md``, "Ranking"):

1. Only *rankable* entries take part: the reliable number converged, and no masking check or attack-failure
   indicator failed. Every other entry is shown below them, marked, without a rank.
2. Rankable entries are sorted by robust accuracy (highest first; ties by clean accuracy, then by key, so the
   order is total and reproducible).
3. Every pair of rankable entries is compared with the exact McNemar test on the per-sample verdict flags of
   their reliable evaluations (the same samples, in the same order). The ``m = k (k - 1) / 2`` p-values of
   the family are adjusted with Holm's step-down method; a pair is *separated* when its adjusted p-value is
   below :data:`evrobust.stats.SIGNIFICANCE` (0.05).
4. Groups are formed top-down: the first entry opens group 1; each next entry joins the group of the entry
   above it unless it is separated from *every* member of that group, in which case it opens a new group.
   An entry that some member of the group above cannot be told apart from is never ranked below that group.
5. An entry's rank is its group's span of positions: ``"1"`` for a group of one at the top, ``"2–4"`` for a
   group holding positions 2, 3 and 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from evrobust.stats import SIGNIFICANCE, compare_paired

__all__ = ["PairTest", "group_ranks", "holm_adjust", "pair_tests", "pareto_front", "rank_label"]


@dataclass(frozen=True)
class PairTest:
    """One paired comparison of the family.

    Attributes:
        a, b: entry keys (``a`` ranked above ``b``).
        a_only: samples robust under ``a`` and broken under ``b``; ``b_only`` the reverse.
        p_value: exact two-sided McNemar p-value.
        p_holm: the Holm-adjusted p-value over the family.
    """

    a: str
    b: str
    a_only: int
    b_only: int
    p_value: float
    p_holm: float

    @property
    def separated(self) -> bool:
        """Whether the two are told apart at the family-wise level :data:`SIGNIFICANCE`."""
        return self.p_holm < SIGNIFICANCE

    def to_json(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "a_only": self.a_only, "b_only": self.b_only,
                "p_value": self.p_value, "p_holm": self.p_holm, "separated": self.separated}


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    With the p-values sorted ascending ``p_(1) <= ... <= p_(m)``, ``adj_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j))``; a hypothesis is rejected at family-wise level alpha exactly when its adjusted value is below
    alpha. Ties get the same adjusted value whatever order they are visited in (the running maximum).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pair_tests(order: Sequence[str], flags: Mapping[str, Sequence[bool]]) -> list[PairTest]:
    """Exact McNemar tests of every pair of ``order`` (each pair once, the higher-placed entry first), with
    Holm's adjustment over all of them.

    Raises:
        ValueError: two entries' flags cover different numbers of samples.
    """
    raw = []
    for a, b in combinations(order, 2):
        cmp = compare_paired(list(flags[a]), list(flags[b]))
        raw.append((a, b, cmp.a_only, cmp.b_only, cmp.p_value))
    adjusted = holm_adjust([r[4] for r in raw])
    return [PairTest(a, b, ao, bo, p, q) for (a, b, ao, bo, p), q in zip(raw, adjusted, strict=True)]


def group_ranks(order: Sequence[str], tests: Sequence[PairTest]) -> list[list[str]]:
    """Rank groups of ``order`` (best first) under rule 4 of the module docstring.

    Args:
        order: rankable entry keys, best first.
        tests: :func:`pair_tests` of ``order`` (any pair missing counts as not separated).

    Returns:
        The groups, in order; their concatenation is ``order``.
    """
    separated = {frozenset((t.a, t.b)) for t in tests if t.separated}
    groups: list[list[str]] = []
    for key in order:
        if groups and not all(frozenset((key, member)) in separated for member in groups[-1]):
            groups[-1].append(key)
        else:
            groups.append([key])
    return groups


def rank_label(start: int, size: int) -> str:
    """``"3"`` for one position, ``"2–4"`` (en dash) for a group of positions 2 to 4 (1-based)."""
    return str(start) if size == 1 else f"{start}–{start + size - 1}"


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Keys of the points no other point dominates, by the first coordinate ascending.

    A point ``(clean, robust)`` is dominated when another is at least as good in both and strictly better in
    one. Equal points both stay on the front.
    """
    front = [
        key for key, (x, y) in points.items()
        if not any(ox >= x and oy >= y and (ox > x or oy > y) for other, (ox, oy) in points.items()
                   if other != key)
    ]
    return sorted(front, key=lambda k: (points[k][0], -points[k][1], k))
