"""PNG figures of the analysis results (matplotlib, Agg canvas; no pyplot global state, no display needed).

Every function takes analysis JSON documents (the dicts :func:`evrobust.pipelines.analyze.run_analysis`
returns), writes one PNG atomically (temp file + rename) and returns its path:

- :func:`plot_vulnerability`: accuracy vs eps under noise / FGSM / PGD (paper Fig. 1);
- :func:`plot_distribution`: histograms of gradient components, log count, several runs overlaid (Fig. 4);
- :func:`plot_heatmaps`: inputs in the first row, ``|grad_x f_y|`` of each run below (Fig. 5);
- :func:`plot_theorem`: measured ``rho_adv / rho_rand`` against ``3 l1^2 / l2^2`` (Theorem 1).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evrobust.atomic import write_bytes_atomic

__all__ = ["plot_distribution", "plot_heatmaps", "plot_theorem", "plot_vulnerability"]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def _label(result: dict[str, Any]) -> str:
    return f"{result.get('arch', '?')} {result.get('defense', '?')} ({Path(str(result.get('run', ''))).name})"


def plot_vulnerability(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy (%) vs eps (in /255) per attack of a ``vulnerability`` result."""
    fig = Figure(figsize=(5.0, 3.6))
    ax = fig.add_subplot()
    eps = np.asarray(result["eps"], dtype=float) * 255
    for name, curve in result["curves"].items():
        style = "--" if name == "noise" else "-"
        ax.plot(eps, 100 * np.asarray(curve, dtype=float), style, marker="o", label=name)
    ax.set_xlabel("eps (/255, L-inf)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Random vs adversarial: {_label(result)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_distribution(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """Share of gradient components per bin (log scale) of one or more ``distribution`` results, overlaid."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    names = list(labels) if labels is not None else [_label(r) for r in results]
    for result, name in zip(results, names, strict=True):
        edges = np.asarray(result["edges"], dtype=float)
        counts = np.asarray(result["counts"], dtype=float)
        share = counts / max(float(result["total"]), 1.0)
        # Empty bins are drawn at the bottom of the log axis instead of being dropped from the step line.
        ax.stairs(np.where(share > 0, share, np.nan), edges, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("gradient component of f_y")
    ax.set_ylabel("share of components")
    ax.set_title("Distribution of grad_x f_y", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _input_image(data: Any) -> tuple[np.ndarray, str | None]:
    image = np.asarray(data, dtype=float)
    if image.ndim == 3:  # H, W, 3 RGB in [0, 1]
        return np.clip(image, 0.0, 1.0), None
    return image, "gray"


def plot_heatmaps(
    results: Sequence[dict[str, Any]], path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> Path:
    """Inputs (first row) and ``|grad|`` heatmaps of each ``heatmap`` result (one row per run).

    All results must be for the same samples (same ``indices``); the inputs are taken from the first.
    """
    names = list(labels) if labels is not None else [_label(r) for r in results]
    first = results[0]
    cols = len(first["input_maps"])
    rows = 1 + len(results)
    fig = Figure(figsize=(1.8 * cols + 0.6, 1.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for j, data in enumerate(first["input_maps"]):
        image, cmap = _input_image(data)
        axes[0][j].imshow(image, cmap=cmap)
        axes[0][j].set_title(f"#{first['indices'][j]} y={first['labels'][j]}", fontsize=7)
    for i, (result, name) in enumerate(zip(results, names, strict=True), start=1):
        for j, data in enumerate(result["grad_maps"]):
            axes[i][j].imshow(np.asarray(data, dtype=float), cmap="hot")
        axes[i][0].set_ylabel(name, fontsize=6)
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)


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
        ax.legend(fontsize=7)
    ax.axhline(3.0, color="grey", lw=0.8)
    ax.set_xlabel("3 l1^2 / l2^2 (first order)")
    ax.set_ylabel("measured rho_adv / rho_rand")
    ax.set_title(f"Theorem 1: {_label(result)}", fontsize=9)
    return _save(fig, path)
