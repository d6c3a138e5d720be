"""PNG figures of one run's analyses (``evrobust analyze``), one run or several overlaid:

- :func:`plot_vulnerability`: accuracy vs eps under noise / FGSM / PGD (paper Fig. 1);
- :func:`plot_distribution`: histograms of gradient components, log share, several runs overlaid (Fig. 4);
- :func:`plot_heatmaps`: inputs in the first row, ``|grad_x f_y|`` of each run below (Fig. 5);
- :func:`plot_frame_heatmaps`: the same for one event sample, both polarity channels along the time steps;
- :func:`plot_theorem`: measured ``rho_adv / rho_rand`` against ``3 l1^2 / l2^2`` (Theorem 1).

Style, colours and the PNG writer are :mod:`.plot_style`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evrobust.pipelines.report.plot_style import ATTACK_TITLES, percent_array, run_label, save_figure, styled

__all__ = [
    "FRAME_COLUMNS",
    "HEATMAP_COLUMNS",
    "plot_distribution",
    "plot_frame_heatmaps",
    "plot_heatmaps",
    "plot_theorem",
    "plot_vulnerability",
]

HEATMAP_COLUMNS = 16
"""Most samples :func:`plot_heatmaps` draws (the first ones). Each is a column of subplots: the figure's
width, its pixel buffer and matplotlib's layout work grow with the columns, so a document claiming thousands
of samples would otherwise keep a report busy for minutes."""
FRAME_COLUMNS = 16
"""Most time steps :func:`plot_frame_heatmaps` draws (evenly spread over the sample, the first and last ones
included), for the same reason: ``evrobust train`` allows 1,024 steps."""


def _peak(arrays: Sequence[np.ndarray]) -> float:
    """The largest finite value over ``arrays`` (0.0 when there is none: all-null maps draw as one colour)."""
    finite = [float(np.max(a[np.isfinite(a)])) for a in arrays if np.isfinite(a).any()]
    return max(finite, default=0.0)


def _steps(count: int, most: int) -> list[int]:
    """At most ``most`` indices spread evenly over ``range(count)``, the first and the last included."""
    if count <= most:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, most)})




@styled
def plot_vulnerability(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy (%) vs eps (in /255) per attack of a ``vulnerability`` result."""
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    eps = np.asarray(result["eps"], dtype=float) * 255
    for name, curve in result["curves"].items():
        style = "--" if name == "noise" else "-"
        ax.plot(eps, percent_array(curve), style, marker="o", label=ATTACK_TITLES.get(name, name))
    ax.set_xlabel("eps (L-inf, in 1/255)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Random vs adversarial: {run_label(result)}")
    ax.legend()
    return save_figure(fig, path)


@styled
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
    names = list(labels) if labels is not None else [run_label(r) for r in results]
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
    return save_figure(fig, path)


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


@styled
def plot_heatmaps(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """Inputs (first row) and ``|grad|`` heatmaps of each ``heatmap`` result (one row per run).

    All results must be for the same samples (same ``indices``); the inputs are taken from the first. Every
    heatmap shares one colour scale (one colour bar), so a smaller or sparser gradient reads as a darker row.
    At most :data:`HEATMAP_COLUMNS` samples are drawn (the first ones).
    """
    names = list(labels) if labels is not None else [run_label(r) for r in results]
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
    return save_figure(fig, path)


@styled
def plot_frame_heatmaps(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """One event sample, polarity by polarity and step by step: input events, then ``|grad|`` of each run.

    ``results`` are ``heatmap`` results of event-frame runs holding ``input_frames`` / ``grad_frames``
    (``[samples][T][2][H][W]``); the first sample of the first result is drawn. Columns are time steps (at
    most :data:`FRAME_COLUMNS`, spread evenly); rows are the ON and OFF channel of the input, then the ON and
    OFF channel of each run's ``|grad_x f_y|``, all on one colour scale.
    """
    names = list(labels) if labels is not None else [run_label(r) for r in results]
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
    return save_figure(fig, path)


@styled
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
    ax.set_title(f"Theorem 1: {run_label(result)}")
    return save_figure(fig, path)
