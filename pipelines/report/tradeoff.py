"""The dense–sparse trade-off study (follow-up paper): points and their summary from ``reproduce tradeoff``.

``evrobust reproduce tradeoff`` (:func:`~evrobust.pipelines.reproduce.runner.run_tradeoff`) runs the
study: vanilla runs varying T, leak tau, threshold theta, surrogate width, pooling and readout one at a
time, plus the SR lambda sweep on the same architecture;
:func:`tradeoff_points` turns its ``results.json`` into one :class:`TradeoffPoint` per run, and
:func:`summarize` measures how robust accuracy goes with gradient density across them (Spearman rank
correlations, so a monotone but non-linear relation counts fully).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.common.results import load_results
from evrobust.pipelines.report.pipeline import cell_value


@dataclass(frozen=True)
class TradeoffPoint:
    """One run of the study. Accuracies in %; ``grad_l1`` / ``grad_l2`` = mean l1 / l2 norm of grad_x f_y
    (input units) and ``density`` = mean share of its non-zero elements, all three from the sparsity
    analysis of the checkpoint the accuracies evaluate, over the same test samples (None where missing)."""

    setting: str
    value: str
    clean: float | None
    robust: float | None
    grad_l1: float | None
    grad_l2: float | None
    density: float | None

    @property
    def grad_zero(self) -> float | None:
        """Mean share of (numerically) zero gradient elements: ``1 - density``."""
        return None if self.density is None else 1.0 - self.density


def tradeoff_points(results: dict[str, Any] | str | Path) -> list[TradeoffPoint]:
    """One point per row of the trade-off table of a ``results.json`` (document or path)."""
    if not isinstance(results, dict):
        results = load_results(results)
    table = next((t for t in results["spec"].get("tables") or [] if t["name"] == "tradeoff"), None)
    if table is None:
        raise UserInputError("the results hold no table named 'tradeoff'; give the output of "
                             "`evrobust reproduce tradeoff`")
    points = []
    for row in table["rows"]:
        value = {h: cell_value(results, c)[0] for h, c in row["cells"].items()}
        if len(row["labels"]) != 2:  # load_results refuses it; a document built in memory is not checked
            raise UserInputError(f"a tradeoff row has the labels {row['labels']!r}, not (setting, value)")
        setting, setting_value = row["labels"]
        points.append(TradeoffPoint(setting, setting_value, value.get("Clean"), value.get("PGD10"),
                                    value.get("grad l1"), value.get("grad l2"), value.get("density")))
    return points


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation of two equal-length lists; None for < 3 pairs or a constant list."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / (vx * vy) ** 0.5


def summarize(points: list[TradeoffPoint]) -> dict[str, float | None]:
    """Rank correlations across all points with the three numbers present.

    Keys: ``l1_vs_robust`` (the paper's thesis predicts < 0: sparser/smaller gradients, more robust),
    ``l1_vs_clean`` (the trade-off predicts > 0: smaller gradients, lower clean accuracy),
    ``clean_vs_robust``.
    """
    full = [p for p in points if None not in (p.clean, p.robust, p.grad_l1)]
    l1 = [float(p.grad_l1) for p in full]  # type: ignore[arg-type]
    clean = [float(p.clean) for p in full]  # type: ignore[arg-type]
    robust = [float(p.robust) for p in full]  # type: ignore[arg-type]
    return {
        "points": float(len(full)),
        "l1_vs_robust": spearman(l1, robust),
        "l1_vs_clean": spearman(l1, clean),
        "clean_vs_robust": spearman(clean, robust),
    }
