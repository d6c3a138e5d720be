"""The leaderboard's two PNG figures, in the report's style (matplotlib Agg canvas, no pyplot state).

- :func:`plot_robust`: robust accuracy per entry in table order, 95 % interval whiskers; unranked entries
  hollow (their number is an upper bound or in doubt).
- :func:`plot_clean_vs_robust`: clean against robust accuracy, whiskers on both axes, the Pareto front of
  the ranked entries drawn as a step line.

Written atomically through :mod:`evrobust.safeio` by the report's ``save_figure``; PNGs carry no timestamp,
so a rebuilt table gives byte-identical figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from evrobust.pipelines.report.plot_style import defense_color, save_figure, styled

__all__ = ["plot_clean_vs_robust", "plot_robust"]


def _color(entry: dict[str, Any]) -> str:
    return defense_color(str(entry["card"]["defense"] or entry["key"]))


def _whisker(value: float, ci: list[float] | None) -> list[float]:
    return [0.0, 0.0] if ci is None else [max(0.0, value - ci[0]), max(0.0, ci[1] - value)]


@styled
def plot_robust(document: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Robust accuracy (%) per entry with its interval; hollow markers for unranked entries."""
    entries = document["entries"]
    fig = Figure(figsize=(max(4.0, 0.6 * len(entries) + 1.5), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    for i, e in enumerate(entries):
        value = e["robust_acc"] or 0.0
        low, high = _whisker(value, e["robust_ci95"])
        color = _color(e)
        ax.errorbar([i], [value], yerr=[[low], [high]], fmt="o", color=color, capsize=3,
                    markerfacecolor="white" if e["unreliable"] else color)
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels([f"{e['name']}\n({e['rank'] or 'unranked'})" for e in entries], rotation=30,
                       ha="right")
    ax.set_ylabel("robust accuracy (%), reliable suite")
    ax.set_ylim(0, 100)
    p = document["protocol"]
    ax.set_title(f"{p['data']}, eps {p['eps_text']}, {p['test_set']['samples']} samples (95 % intervals)")
    return save_figure(fig, path)


@styled
def plot_clean_vs_robust(document: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Clean vs robust accuracy (%) with whiskers on both axes, and the Pareto front of the ranked entries."""
    fig = Figure(figsize=(4.6, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for e in document["entries"]:
        x, y = e["clean_acc"] or 0.0, e["robust_acc"] or 0.0
        xl, xh = _whisker(x, e["clean_ci95"])
        yl, yh = _whisker(y, e["robust_ci95"])
        color = _color(e)
        ax.errorbar([x], [y], xerr=[[xl], [xh]], yerr=[[yl], [yh]], fmt="o", color=color, capsize=2,
                    markerfacecolor="white" if e["unreliable"] else color,
                    label=e["name"] + ("" if e["rank"] else " (unranked)"))
    by_key = {e["key"]: e for e in document["entries"]}
    front = [(by_key[k]["clean_acc"] or 0.0, by_key[k]["robust_acc"] or 0.0)
             for k in document["pareto_front"]]
    if front:
        # the front ascends in clean accuracy and descends in robust accuracy: a staircase between points
        xs, ys = [front[0][0]], [front[0][1]]
        for x, y in front[1:]:
            xs += [xs[-1], x]
            ys += [y, y]
        ax.plot(xs, ys, color="black", linestyle="--", linewidth=1.0, label="Pareto front")
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy (%), reliable suite")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")
    return save_figure(fig, path)
