"""PNG figures of the masking study's analyses (``landscape``, ``fidelity``; docs/masking-study.md).

The same conventions as :mod:`evrobust.pipelines.report.plot_style` (its style, its colours per defense,
atomic writes through its ``save_figure``): every function takes the JSON documents ``evrobust analyze``
writes.

- :func:`plot_landscape`: cross-entropy vs radius (log x), one panel per direction, the median over samples
  as a line and the quartiles as a band; SR's step h and the attack radius eps as vertical lines;
- :func:`plot_landscape_compare`: the same panels with one run (defense) per colour;
- :func:`plot_fidelity`: per finite-difference step, a histogram of the per-(sample, direction) disagreement
  between the surrogate derivative and the finite difference, one line per gradient spec.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evrobust.pipelines.report.plot_style import defense_color, run_label, save_figure, styled

__all__ = ["plot_fidelity", "plot_landscape", "plot_landscape_compare"]

MAX_PANELS = 8
"""Most directions (or steps) drawn as panels: a document may hold up to 16 random directions."""


def _values(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)


def _directions(results: Sequence[dict[str, Any]]) -> list[str]:
    """The directions of the first result that every result has, in its order (at most :data:`MAX_PANELS`)."""
    names = [n for n in results[0]["directions"] if all(n in r["directions"] for r in results)]
    return names[:MAX_PANELS]


ARCH_STYLES: tuple[str, ...] = ("-", "--", ":", "-.")
"""Line styles of the architectures on one landscape figure, in the order they first appear."""


def _landscape_axes(results: Sequence[dict[str, Any]], labels: Sequence[str], colors: Sequence[str | None],
                    title: str, path: str | os.PathLike[str], styles: Sequence[str] | None = None) -> Path:
    names = _directions(results)
    cols = min(len(names), 4) or 1
    rows = max(1, -(-len(names) // cols))
    fig = Figure(figsize=(3.4 * cols, 3.0 * rows), layout="constrained")
    first = results[0]
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        for result, label, color, style in zip(results, labels, colors, styles or ["-"] * len(results),
                                               strict=True):
            radii = _values(result["radii"])
            ce = result["directions"][name]["ce"]
            line = ax.plot(radii, _values(ce["median"]), color=color, ls=style, label=label)[0]
            ax.fill_between(radii, _values(ce["q1"]), _values(ce["q3"]), color=line.get_color(), alpha=0.2,
                            linewidth=0)
        ax.axvline(float(first.get("sr_h", 0.01)), color="grey", ls=":", lw=0.9, label="SR step h")
        ax.axvline(float(first["eps"]), color="black", ls="--", lw=0.9, label=f"eps {first.get('eps_text')}")
        ax.set_xscale("log")
        ax.set_title(f"direction: {name}")
        ax.set_xlabel("radius r (L-inf, input units)")
        ax.set_ylabel("cross-entropy (nats)")
        if k == 0:
            ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


@styled
def plot_landscape(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Loss vs radius of one ``landscape`` result: median line, quartile band, one panel per direction."""
    return _landscape_axes([result], ["median (band: quartiles)"], [None],
                           f"Loss landscape: {run_label(result)}", path)


@styled
def plot_landscape_compare(
    results: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Several runs' ``landscape`` results on the same axes: one colour per defense (its fixed colour), one
    line style per architecture (solid for the first that appears, then dashed, dotted, dash-dotted)."""
    names = list(labels) if labels is not None else [run_label(r) for r in results]
    archs = list(dict.fromkeys(str(r.get("arch", "?")) for r in results))
    styles = [ARCH_STYLES[archs.index(str(r.get("arch", "?"))) % len(ARCH_STYLES)] for r in results]
    colors = [defense_color(str(r.get("defense", "?"))) for r in results]
    if len(set(zip(colors, styles, strict=True))) < len(colors):
        colors = [None] * len(results)  # two runs of one defense and architecture: matplotlib's colour cycle
    return _landscape_axes(results, names, colors, title or "Loss landscape by defense", path, styles)


@styled
def plot_fidelity(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Histograms of the surrogate vs finite-difference disagreement: a panel per step, a line per spec."""
    steps = list(result["steps"])[:MAX_PANELS]
    fig = Figure(figsize=(4.2 * len(steps), 4.2), layout="constrained")
    edges = np.linspace(0.0, 2.0, 21)
    for s, step in enumerate(steps):
        ax = fig.add_subplot(1, len(steps), s + 1)
        for spec, body in result["specs"].items():
            entry = body["results"][s]
            values = _values(np.ravel(entry["per_sample"]["disagreement"]).tolist())
            values = values[np.isfinite(values)]
            counts, _ = np.histogram(values, bins=edges)
            share = counts / max(values.size, 1)
            cosine, flat = entry.get("cosine"), entry.get("flat_changes_share")
            label = (f"{spec}: cos {'n/a' if cosine is None else f'{cosine:.2f}'}, flat but moving at eps "
                     f"{'n/a' if flat is None else f'{100 * flat:.0f}%'}")
            ax.stairs(share, edges, label=label, linewidth=1.4)
        ax.set_title(f"finite-difference step {step:g}")
        ax.set_xlabel("|surrogate - fd| / max (0 agree, 1 one zero, 2 opposite)")
        ax.set_ylabel("share of (sample, direction) pairs")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6)
    fig.suptitle(f"Surrogate fidelity: {run_label(result)}")
    return save_figure(fig, path)

