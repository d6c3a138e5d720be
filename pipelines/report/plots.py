"""PNG figures of a report over many runs (matplotlib Agg canvas; no pyplot global state, no display).

Every function takes plain JSON-like data (the documents ``evrobust analyze`` / ``evrobust attack`` write,
or rows built from them by :mod:`evrobust.pipelines.report.figures`), writes one PNG atomically (temp file +
rename) and returns its path. All figures share one style (:data:`STYLE`, applied through
``matplotlib.rc_context`` so nothing global changes), one colour per defense (:func:`defense_color`) and axis
labels with units (:mod:`.plot_style`). The figures of one run's analyses are :mod:`.analysis_plots`'.

Report figures (many runs):

- :func:`plot_eps_curves`: accuracy vs eps, one panel per (dataset, attack), one line per defense, the paper's
  published points as hollow markers;
- :func:`plot_defense_comparison`: clean / white-box / black-box / reliable accuracy per defense (bars);
- :func:`plot_ensemble_members`: share of samples each surrogate of the attack ensemble breaks;
- :func:`plot_accuracy_scatter`: clean vs robust accuracy, coloured by the gradient l1 norm;
- :func:`plot_training_curves`: loss and accuracy per epoch from ``metrics.jsonl``;
- :func:`plot_lambda_sweep` and :func:`plot_tradeoff`: the reproduction figures (Fig. 3, the trade-off study).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evrobust.pipelines.report.plot_style import (
    ATTACK_TITLES,
    defense_color,
    percent_array,
    save_figure,
    styled,
)

__all__ = [
    "ATTACK_TITLES",
    "plot_accuracy_scatter",
    "plot_defense_comparison",
    "plot_ensemble_members",
    "plot_eps_curves",
    "plot_lambda_sweep",
    "plot_tradeoff",
    "plot_training_curves",
]


@styled
def plot_eps_curves(panels: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Accuracy (%) vs eps (1/255): a grid of panels, one line per defense, paper points as hollow markers.

    ``panels``: ``[{"title", "row", "col", "lines": [{"label", "defense", "eps": [float in 0..1],
    "accuracy": [0..1 | None]}], "points": [{"label", "eps", "accuracy" (%), "defense"}]}]``; ``row`` /
    ``col`` place the panel (rows = datasets, columns = attacks). A single-eps line is drawn as a marker.
    """
    rows = 1 + max(p["row"] for p in panels)
    cols = 1 + max(p["col"] for p in panels)
    fig = Figure(figsize=(3.1 * cols + 0.4, 2.8 * rows + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    used = set()
    for panel in panels:
        ax = axes[panel["row"]][panel["col"]]
        used.add((panel["row"], panel["col"]))
        for line in panel["lines"]:
            eps = 255 * np.asarray(line["eps"], dtype=float)
            style = "-" if len(eps) > 1 else "none"
            ax.plot(
                eps,
                percent_array(line["accuracy"]),
                linestyle=style,
                marker="o",
                color=defense_color(line["defense"]),
                label=line["label"],
            )
        for point in panel.get("points", []):
            ax.plot(
                [255 * point["eps"]],
                [point["accuracy"]],
                marker="D",
                markersize=6,
                linestyle="none",
                markerfacecolor="none",
                markeredgewidth=1.3,
                color=defense_color(point["defense"]),
                label=point["label"],
            )
        ax.set_title(panel["title"])
        ax.set_ylim(-3, 103)
        ax.set_xlabel("eps (L-inf, in 1/255)")
        if panel["col"] == 0:
            ax.set_ylabel("accuracy (%)")
        ax.legend(loc="best")
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in used:
                axes[r][c].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


_BAR_COLORS = {"clean": "#7f7f7f", "white-box": "#d62728", "black-box": "#ff7f0e", "reliable": "#4b0082"}


@styled
def plot_defense_comparison(groups: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Grouped bars: clean, white-box, black-box and reliable accuracy (%) per defense, one panel per dataset.

    ``groups``: ``[{"title", "defenses": [str], "bars": {"clean": [0..1 | None per defense], "white-box":
    [...], ...}, "subtitle": str}]``; a series that is None for every defense is left out of its panel.
    """
    width_in = max(4.6, 1.25 * max(len(g["defenses"]) for g in groups) + 1.4)
    fig = Figure(figsize=(width_in * len(groups), 3.8), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for ax, group in zip(axes, groups, strict=True):
        series = [(k, v) for k, v in group["bars"].items() if any(x is not None for x in v)]
        x = np.arange(len(group["defenses"]))
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series):
            heights = percent_array(values)
            bars = ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                np.nan_to_num(heights),
                width,
                label=name,
                color=_BAR_COLORS.get(name),
            )
            for bar, h in zip(bars, heights, strict=True):
                if np.isfinite(h):
                    ax.annotate(
                        f"{h:.0f}",
                        (bar.get_x() + bar.get_width() / 2, h),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
        ax.set_xticks(x, group["defenses"])
        ax.set_ylim(0, 108)
        ax.set_xlabel("defense")
        ax.set_title(group["title"] + (f"\n{group['subtitle']}" if group.get("subtitle") else ""))
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("accuracy (%)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=len(names))
    return save_figure(fig, path)


@styled
def plot_ensemble_members(groups: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Share of samples (%) each ensemble member's attack breaks on its own, and the whole ensemble.

    ``groups``: ``[{"title", "defenses": [str], "members": [str], "broken": {member: [0..1 | None per
    defense]}, "ensemble": [0..1 | None per defense]}]`` (one panel each, e.g. per dataset).
    """
    import matplotlib as mpl

    most = max(len(g["members"]) for g in groups) + 1
    width_in = max(4.8, (0.9 + 0.09 * most) * max(len(g["defenses"]) for g in groups) + 1.4)
    fig = Figure(figsize=(width_in * len(groups), 3.8), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for ax, group in zip(axes, groups, strict=True):
        names = list(group["members"]) + ["ensemble (any member)"]
        values = [group["broken"][m] for m in group["members"]] + [group["ensemble"]]
        # Up to 10 members: the default cycle; up to 20: tab20; more (the `wide` ensemble): a sequential map,
        # so no two members share a colour.
        count = len(names) - 1
        palette = (None if count <= 10 else [mpl.colormaps["tab20"](i) for i in range(count)] if count <= 20
                   else [mpl.colormaps["turbo"](i / max(count - 1, 1)) for i in range(count)])
        x = np.arange(len(group["defenses"]))
        width = 0.8 / len(names)
        for i, (name, series) in enumerate(zip(names, values, strict=True)):
            color = "black" if i == len(names) - 1 else (None if palette is None else palette[i])
            ax.bar(
                x + (i - (len(names) - 1) / 2) * width,
                np.nan_to_num(percent_array(series)),
                width,
                label=name,
                color=color,
                alpha=0.85,
            )
        ax.set_xticks(x, group["defenses"])
        ax.set_ylim(0, 105)
        ax.set_xlabel("defense")
        ax.set_title(group["title"])
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("samples misclassified (%)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=min(len(names), 6))
    return save_figure(fig, path)


@styled
def plot_accuracy_scatter(
    points: Sequence[dict[str, Any]], path: str | os.PathLike[str], robust_label: str = "PGD-10 accuracy (%)"
) -> Path:
    """Clean vs robust accuracy (%) per run, coloured by the mean gradient l1 norm.

    ``points``: ``[{"label", "clean" (%), "robust" (%), "l1", "marker"}]``; the label is written beside each.
    The colour scale is logarithmic when the l1 norms span more than a factor of 10, linear otherwise.
    """
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(5.6, 4.2))
    ax = fig.add_subplot()
    l1 = np.asarray([p["l1"] for p in points], dtype=float)
    low, high = float(l1.min()), float(l1.max())
    norm = LogNorm(low, high) if low > 0 and high > 10 * low else Normalize(low, max(high, low + 1e-12))
    shown = None
    for marker in dict.fromkeys(p.get("marker", "o") for p in points):
        subset = [p for p in points if p.get("marker", "o") == marker]
        shown = ax.scatter(
            [p["clean"] for p in subset],
            [p["robust"] for p in subset],
            c=[p["l1"] for p in subset],
            cmap="viridis",
            norm=norm,
            marker=marker,
            s=46,
            edgecolors="black",
            linewidths=0.5,
        )
    for p in points:
        ax.annotate(
            p["label"], (p["clean"], p["robust"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    bar = fig.colorbar(shown, ax=ax, label="mean l1 norm of grad_x f_y (1/unit)")
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    bar.ax.yaxis.set_minor_formatter(FormatStrFormatter(""))
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(robust_label)
    ax.set_title("Clean vs robust accuracy; colour: input-gradient l1")
    return save_figure(fig, path)


@styled
def plot_training_curves(runs: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Training loss and validation accuracy (%) per epoch, one line per run.

    ``runs``: ``[{"label", "defense", "linestyle", "marker", "records": metrics.jsonl records}]``.
    """
    fig = Figure(figsize=(10.0, 3.6))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for run in runs:
        records = run["records"]
        epochs = [r.get("epoch") for r in records]
        style = {
            "color": defense_color(run["defense"]),
            "linestyle": run.get("linestyle", "-"),
            "marker": run.get("marker", "o"),
            "markersize": 3,
        }
        loss_ax.plot(epochs, [r.get("loss", np.nan) for r in records], label=run["label"], **style)
        acc_ax.plot(epochs, [r.get("val_acc", np.nan) for r in records], label=run["label"], **style)
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    loss_ax.set_yscale("log")
    loss_ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    loss_ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss per sample (CE + regulariser)")
    loss_ax.set_title("Training loss")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy (%)")
    acc_ax.set_title("Validation accuracy")
    acc_ax.legend(loc="lower right", ncols=2)
    fig.tight_layout()
    return save_figure(fig, path)


@styled
def plot_lambda_sweep(rows: Sequence[dict[str, float | None]], path: str | os.PathLike[str]) -> Path:
    """Fig. 3 layout: (a) clean and PGD10 accuracy (%) against lambda, (b) gradient l1 / l2 norms."""
    lam = [r["lambda"] for r in rows]
    fig = Figure(figsize=(9, 3.5))
    a, b = fig.subplots(1, 2)
    for key, style in (("Clean", "o-"), ("PGD10", "s-")):
        a.plot(lam, [r.get(key) for r in rows], style, label=key)
    a.set_xlabel("lambda (SR weight, unitless)")
    a.set_ylabel("accuracy (%)")
    a.legend()
    for key, style in (("grad l1", "o-"), ("grad l2", "s-")):
        b.plot(lam, [r.get(key) for r in rows], style, label=key)
    b.set_xlabel("lambda (SR weight, unitless)")
    b.set_ylabel("mean norm of grad_x f_y (1/unit)")
    b.set_yscale("log")
    b.legend()
    fig.tight_layout()
    return save_figure(fig, path)


@styled
def plot_tradeoff(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Clean vs PGD10 accuracy (%) per setting (colour = input-gradient l1 norm), and PGD10 vs grad l1."""
    fig = Figure(figsize=(10, 4))
    a, b = fig.subplots(1, 2)
    l1 = [r.get("grad l1") or 0.0 for r in rows]
    sc = a.scatter([r.get("Clean") for r in rows], [r.get("PGD10") for r in rows], c=l1, cmap="viridis")
    for r in rows:
        if r.get("Clean") is not None and r.get("PGD10") is not None:
            a.annotate(r["label"], (r["Clean"], r["PGD10"]), fontsize=6)
    fig.colorbar(sc, ax=a, label="mean l1 norm of grad_x f_y (1/unit)")
    a.set_xlabel("clean accuracy (%)")
    a.set_ylabel("PGD10 accuracy (%)")
    b.scatter(l1, [r.get("PGD10") for r in rows])
    b.set_xscale("symlog", linthresh=1e-3)
    b.set_xlabel("mean l1 norm of grad_x f_y (1/unit)")
    b.set_ylabel("PGD10 accuracy (%)")
    fig.tight_layout()
    return save_figure(fig, path)
