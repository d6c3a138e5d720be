"""PNG figures of analysis and attack results (matplotlib Agg canvas; no pyplot global state, no display).

Every function takes plain JSON-like data (the documents ``evrobust analyze`` / ``evrobust attack`` write,
or rows built from them by :mod:`evrobust.pipelines.report.figures`), writes one PNG atomically (temp file +
rename) and returns its path. All figures share one style (:data:`STYLE`, applied through
``matplotlib.rc_context`` so nothing global changes), one colour per defense (:func:`defense_color`) and axis
labels with units.

Analysis figures (one run, or several overlaid):

- :func:`plot_vulnerability`: accuracy vs eps under noise / FGSM / PGD (paper Fig. 1);
- :func:`plot_distribution`: histograms of gradient components, log share, several runs overlaid (Fig. 4);
- :func:`plot_heatmaps`: inputs in the first row, ``|grad_x f_y|`` of each run below (Fig. 5);
- :func:`plot_frame_heatmaps`: the same for one event sample, both polarity channels along the time steps;
- :func:`plot_theorem`: measured ``rho_adv / rho_rand`` against ``3 l1^2 / l2^2`` (Theorem 1).

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

import functools
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evrobust.errors import UserInputError
from evrobust.safeio.atomic import write_bytes_atomic

__all__ = [
    "ATTACK_TITLES",
    "DPI",
    "STYLE",
    "defense_color",
    "plot_accuracy_scatter",
    "plot_defense_comparison",
    "plot_distribution",
    "plot_ensemble_members",
    "plot_eps_curves",
    "plot_frame_heatmaps",
    "plot_heatmaps",
    "plot_lambda_sweep",
    "plot_theorem",
    "plot_tradeoff",
    "plot_training_curves",
    "plot_vulnerability",
]

DPI = 110
"""Pixels per inch of every PNG: a 5-inch-wide panel is ~550 px, legible at 100 % zoom on a code host."""

HEATMAP_COLUMNS = 16
"""Most samples :func:`plot_heatmaps` draws (the first ones). Each is a column of subplots: the figure's
width, its pixel buffer and matplotlib's layout work grow with the columns, so a document claiming thousands
of samples would otherwise keep a report busy for minutes."""
FRAME_COLUMNS = 16
"""Most time steps :func:`plot_frame_heatmaps` draws (evenly spread over the sample, the first and last ones
included), for the same reason: ``evrobust train`` allows 1,024 steps."""

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7,
    "legend.framealpha": 0.85,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
}
"""The one style of every figure (applied per call; the caller's matplotlib settings are restored)."""

_DEFENSE_COLORS = {
    "vanilla": "#d62728",
    "at": "#ff7f0e",
    "rat": "#8c564b",
    "sr": "#2ca02c",
    "sr_star": "#1f77b4",
}
_OTHER_COLORS = ("#9467bd", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
ATTACK_TITLES = {
    "noise": "uniform noise",
    "fgsm": "FGSM",
    "pgd10": "PGD-10",
    "apgd10": "APGD-CE-10",
    "reliable": "reliable cascade",
}
"""Display names of attacks in figures (other names are shown as they are)."""

P = ParamSpec("P")
R = TypeVar("R")


def _styled(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` inside ``rc_context(STYLE)``: the figure gets the style, the process keeps its own."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def defense_color(defense: str) -> str:
    """One fixed colour per defense name, the same in every figure (unknown names get a stable spare)."""
    if defense in _DEFENSE_COLORS:
        return _DEFENSE_COLORS[defense]
    return _OTHER_COLORS[sum(map(ord, defense)) % len(_OTHER_COLORS)]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render into memory, then write the PNG atomically (never through a link: see :mod:`evrobust.safeio`).

    Raises:
        UserInputError: the file cannot be written (one line: a full disk, no permission, a link there).
    """
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    try:
        return write_bytes_atomic(path, buffer.getvalue())
    except OSError as exc:
        raise UserInputError(
            f"cannot write {path} ({exc.strerror or exc}); check free space and permissions"
        ) from None


def _peak(arrays: Sequence[np.ndarray]) -> float:
    """The largest finite value over ``arrays`` (0.0 when there is none: all-null maps draw as one colour)."""
    finite = [float(np.max(a[np.isfinite(a)])) for a in arrays if np.isfinite(a).any()]
    return max(finite, default=0.0)


def _steps(count: int, most: int) -> list[int]:
    """At most ``most`` indices spread evenly over ``range(count)``, the first and the last included."""
    if count <= most:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, most)})


def _label(result: dict[str, Any]) -> str:
    return f"{result.get('arch', '?')} {result.get('defense', '?')} ({Path(str(result.get('run', ''))).name})"


def _percent(values: Sequence[float | None]) -> np.ndarray:
    """Accuracies in [0, 1] (None = missing) -> % with NaN gaps."""
    return np.asarray([np.nan if v is None else 100.0 * float(v) for v in values], dtype=float)


# ------------------------------------------------------------------------------------------ analysis figures


@_styled
def plot_vulnerability(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy (%) vs eps (in /255) per attack of a ``vulnerability`` result."""
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    eps = np.asarray(result["eps"], dtype=float) * 255
    for name, curve in result["curves"].items():
        style = "--" if name == "noise" else "-"
        ax.plot(eps, _percent(curve), style, marker="o", label=ATTACK_TITLES.get(name, name))
    ax.set_xlabel("eps (L-inf, in 1/255)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Random vs adversarial: {_label(result)}")
    ax.legend()
    return _save(fig, path)


@_styled
def plot_distribution(
    results: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    colors: Sequence[str | None] | None = None,
    title: str | None = None,
) -> Path:
    """Share of gradient components per bin (log scale) of one or more ``distribution`` results, overlaid."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    names = list(labels) if labels is not None else [_label(r) for r in results]
    palette = list(colors) if colors is not None else [None] * len(results)
    for result, name, color in zip(results, names, palette, strict=True):
        edges = np.asarray(result["edges"], dtype=float)
        counts = np.asarray(result["counts"], dtype=float)
        share = counts / max(float(result["total"]), 1.0)
        # Empty bins are drawn at the bottom of the log axis instead of being dropped from the step line.
        ax.stairs(np.where(share > 0, share, np.nan), edges, label=name, color=color, linewidth=1.4)
    ax.set_yscale("log")
    ax.set_xlabel("gradient component of f_y (1 / input unit)")
    ax.set_ylabel("share of components")
    ax.set_title(title or "Distribution of grad_x f_y (Fig. 4)")
    ax.legend()
    return _save(fig, path)


def _input_image(data: Any) -> tuple[np.ndarray, str | None]:
    image = np.asarray(data, dtype=float)
    if image.ndim == 3:  # H, W, 3 RGB in [0, 1]
        return np.clip(image, 0.0, 1.0), None
    return image, "gray"


def _no_ticks(axes: Any) -> None:
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)


@_styled
def plot_heatmaps(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """Inputs (first row) and ``|grad|`` heatmaps of each ``heatmap`` result (one row per run).

    All results must be for the same samples (same ``indices``); the inputs are taken from the first. Every
    heatmap shares one colour scale (one colour bar), so a smaller or sparser gradient reads as a darker row.
    At most :data:`HEATMAP_COLUMNS` samples are drawn (the first ones).
    """
    names = list(labels) if labels is not None else [_label(r) for r in results]
    first = results[0]
    cols = min(len(first["input_maps"]), HEATMAP_COLUMNS)
    rows = 1 + len(results)
    fig = Figure(figsize=(1.7 * cols + 1.4, 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for j, data in enumerate(first["input_maps"][:cols]):
        image, cmap = _input_image(data)
        axes[0][j].imshow(image, cmap=cmap)
        axes[0][j].set_title(f"input #{first['indices'][j]}, class {first['labels'][j]}", fontsize=7)
    axes[0][0].set_ylabel("input", fontsize=8)
    maps = [[np.asarray(data, dtype=float) for data in result["grad_maps"][:cols]] for result in results]
    top = _peak([m for row in maps for m in row]) or 1.0
    shown = None
    for i, (row, name) in enumerate(zip(maps, names, strict=True), start=1):
        for j, grad in enumerate(row):
            shown = axes[i][j].imshow(grad, cmap="hot", vmin=0.0, vmax=top)
        axes[i][0].set_ylabel(f"|grad| {name}", fontsize=7)
    _no_ticks(axes)
    if shown is not None:
        fig.colorbar(shown, ax=axes[1:, :].ravel().tolist(), shrink=0.8, label="|grad_x f_y| (1/unit)")
    return _save(fig, path)


@_styled
def plot_frame_heatmaps(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """One event sample, polarity by polarity and step by step: input events, then ``|grad|`` of each run.

    ``results`` are ``heatmap`` results of event-frame runs holding ``input_frames`` / ``grad_frames``
    (``[samples][T][2][H][W]``); the first sample of the first result is drawn. Columns are time steps (at
    most :data:`FRAME_COLUMNS`, spread evenly); rows are the ON and OFF channel of the input, then the ON and
    OFF channel of each run's ``|grad_x f_y|``, all on one colour scale.
    """
    names = list(labels) if labels is not None else [_label(r) for r in results]
    frames = np.asarray(results[0]["input_frames"][0], dtype=float)  # [T, 2, H, W]
    shown_steps = _steps(frames.shape[0], FRAME_COLUMNS)
    steps = len(shown_steps)
    rows = 2 * (1 + len(results))
    fig = Figure(figsize=(1.3 * steps + 1.8, 1.15 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, steps, squeeze=False)
    polarity = ("ON", "OFF")
    events = None
    peak = max(_peak([frames]), 1e-12)
    for p in range(2):
        for col, t in enumerate(shown_steps):
            events = axes[p][col].imshow(frames[t, p], cmap="gray", vmin=0.0, vmax=peak)
            if p == 0:
                axes[p][col].set_title(f"t = {t}", fontsize=7)
        axes[p][0].set_ylabel(f"events {polarity[p]}", fontsize=7)
    grads = [np.abs(np.asarray(result["grad_frames"][0], dtype=float)) for result in results]
    top = _peak(grads) or 1.0
    shown = None
    for i, (grad, name) in enumerate(zip(grads, names, strict=True)):
        for p in range(2):
            row = 2 * (i + 1) + p
            for col, t in enumerate(shown_steps):
                shown = axes[row][col].imshow(grad[t, p], cmap="hot", vmin=0.0, vmax=top)
            axes[row][0].set_ylabel(f"{name}\n|grad| {polarity[p]}", fontsize=6)
    _no_ticks(axes)
    fig.colorbar(events, ax=axes[:2, :].ravel().tolist(), shrink=0.8, label="events per bin")
    fig.colorbar(shown, ax=axes[2:, :].ravel().tolist(), shrink=0.6, label="|grad_x f_y| (1/unit)")
    fig.suptitle(
        f"Event sample #{results[0]['indices'][0]} (class {results[0]['labels'][0]}): input events and "
        "|grad_x f_y| per polarity and time step (Fig. 5)",
        fontsize=8,
    )
    return _save(fig, path)


@_styled
def plot_theorem(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Measured ratio vs the first-order estimate per sample, one colour per eps, with the line y = x."""
    fig = Figure(figsize=(4.6, 4.0))
    ax = fig.add_subplot()
    low, high = np.inf, 0.0
    for entry in result["results"]:
        ratio = np.asarray([np.nan if v is None else v for v in entry["per_sample"]["ratio"]], dtype=float)
        est = np.asarray([np.nan if v is None else v for v in entry["per_sample"]["estimate"]], dtype=float)
        keep = np.isfinite(ratio) & np.isfinite(est) & (ratio > 0) & (est > 0)
        if keep.any():
            ax.scatter(est[keep], ratio[keep], s=8, alpha=0.6, label=f"eps {entry['eps_text']}")
            low = min(low, float(est[keep].min()), float(ratio[keep].min()))
            high = max(high, float(est[keep].max()), float(ratio[keep].max()))
    if high > 0:
        ax.plot([low, high], [low, high], "k--", lw=0.8, label="ratio = estimate")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    ax.axhline(3.0, color="grey", lw=0.8)
    ax.set_xlabel("3 l1^2 / l2^2 (first order, unitless)")
    ax.set_ylabel("measured rho_adv / rho_rand (unitless)")
    ax.set_title(f"Theorem 1: {_label(result)}")
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ report figures


@_styled
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
                _percent(line["accuracy"]),
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
    return _save(fig, path)


_BAR_COLORS = {"clean": "#7f7f7f", "white-box": "#d62728", "black-box": "#ff7f0e", "reliable": "#4b0082"}


@_styled
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
            heights = _percent(values)
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
    return _save(fig, path)


@_styled
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
                np.nan_to_num(_percent(series)),
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
    return _save(fig, path)


@_styled
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
    return _save(fig, path)


@_styled
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
    return _save(fig, path)


@_styled
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
    return _save(fig, path)


@_styled
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
    return _save(fig, path)
