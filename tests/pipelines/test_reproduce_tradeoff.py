"""The trade-off study's points and rank correlations, against scipy-free hand computations."""

from __future__ import annotations

import pytest

from evrobust.pipelines.common.results import RESULTS_FORMAT
from evrobust.pipelines.report.tradeoff import TradeoffPoint, spearman, summarize, tradeoff_points
from evrobust.pipelines.reproduce import build_spec


def test_spearman_hand_computed_cases() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Monotone but non-linear still counts fully.
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)
    # Ties get average ranks: x ranks (1, 2.5, 2.5, 4) vs y ranks (1, 2, 3, 4):
    # cov = 4.5, var_x = 4.5, var_y = 5 -> 4.5 / sqrt(22.5).
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / 22.5**0.5)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1, 2], [1, 2]) is None


def test_points_follow_the_table_and_summary_uses_complete_points() -> None:
    spec = build_spec("tradeoff", "tiny")
    attacks = {}
    analyses = {}
    for i, a in enumerate(spec.attacks):
        attacks[a.key] = {"attacks": [{"name": "clean", "accuracy": 0.5 + i / 100, "checks": []},
                                      {"name": "pgd10", "accuracy": i / 100, "checks": []}]}
    for i, a in enumerate(spec.analyses):
        analyses[a.key] = {"targets": {"two_class": {"mean": {"l1": float(10 - i), "l2": 1.0 / (i + 1),
                                                              "density": 0.25}}}}
    import json

    results = {"format": RESULTS_FORMAT, "spec": json.loads(json.dumps(spec.to_json())), "runs": {},
               "attacks": attacks, "analyses": analyses}
    points = tradeoff_points(results)
    assert len(points) == len(spec.tables[0].rows)
    assert points[0].setting == "T" and points[-1].setting == "SR lambda"
    # Every row, the lambda rows too, takes its norms from its own run's sparsity analysis.
    assert all(p.density == 0.25 and p.grad_zero == pytest.approx(0.75) for p in points)
    assert [p.grad_l1 for p in points] == [float(10 - i) for i in range(len(points))]
    summary = summarize(points)
    # Robust accuracy rises along the list while l1 falls: a perfect negative rank correlation.
    assert summary["l1_vs_robust"] == pytest.approx(-1.0)
    assert summary["clean_vs_robust"] == pytest.approx(1.0)
    assert summary["points"] == len(points)


def test_summary_skips_incomplete_points() -> None:
    pts = [TradeoffPoint("a", str(i), 50.0 + i, None if i == 0 else 10.0 * i, 1.0 / (i + 1), 0.0, None)
           for i in range(4)]
    assert summarize(pts)["points"] == 3


def test_spearman_matches_scipy_on_random_data_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(3, 30)
        x = [float(rng.randint(0, 5)) for _ in range(n)]
        y = [rng.random() for _ in range(n)]
        expected = stats.spearmanr(x, y).statistic
        got = spearman(x, y)
        if len(set(x)) == 1:
            assert got is None
        else:
            assert got == pytest.approx(expected)
