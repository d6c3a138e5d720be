"""The report's figures of the event-domain attacks (``evrobust attack --threat events|retiming``).

- **Accuracy against the event budget.** The event attacks stop at the first misclassification and record per
  sample the events they changed (or moved), so one run gives the whole curve: at budget ``b`` the attacker
  breaks exactly the samples it fooled with at most ``b`` events, and
  ``accuracy(b) = (robust + #{fooled with events_changed > b}) / n``. It starts at the clean accuracy
  (``b = 0``) and falls to the attack's accuracy; the x axis is logarithmic (one panel per dataset and
  attack, one line per defense), as accuracy against eps is for the frame attacks. For SDA the curve is exact
  (its search does not depend on the budget, and it undoes every change it can); for retiming the counts are
  the events the attack moved, which it does not minimise, so its curve is an upper bound on what it needs.
- **Where events were added or deleted**, on the first sample an attack fooled: the changes summed over the
  frames, per polarity (red: added, blue: deleted); for retiming, which keeps every pixel's total, the
  events moved per pixel.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.pipelines.report.plot_style import defense_color, save_figure
from evrobust.pipelines.report.runs import RunData

__all__ = ["budget_curve", "fig_event_budget", "fig_event_example"]


def budget_curve(entry: dict[str, Any], clean: str, n: int) -> tuple[list[float], list[float]]:
    """``(budgets, accuracy)`` of one event attack entry: the step curve described in the module docstring.

    ``clean`` is the clean flag string (``1`` correct), ``entry["robust_flags"]`` the attack's (``1`` robust)
    and ``entry["events_changed"]`` the per-sample changes (``None`` where not attacked).
    """
    flags = entry["robust_flags"]
    changed = entry.get("events_changed") or [None] * n
    fooled = sorted(c for f, ok, c in zip(flags, clean, changed, strict=True)
                    if ok == "1" and f != "1" and c is not None)
    robust = flags.count("1")
    budgets = [0.0]
    accuracy = [(robust + len(fooled)) / n]
    for i, c in enumerate(fooled):
        if i + 1 < len(fooled) and fooled[i + 1] == c:
            continue
        budgets.append(float(c))
        accuracy.append((robust + len(fooled) - (i + 1)) / n)
    return budgets, accuracy


def _event_entries(run: RunData) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(threat, document, entry)`` of each event attack of a run, its flags attached as ``robust_flags``."""
    out = []
    for threat, doc in sorted(run.event_attacks.items()):
        for entry in doc.get("attacks", []):
            if entry.get("name") != "clean":
                flags = (doc.get("flags", {}).get(entry["name"]) or {}).get("correct")
                if flags is not None:
                    out.append((threat, doc, {**entry, "robust_flags": flags}))
    return out


def fig_event_budget(runs: Sequence[RunData], path: Path) -> Path:
    """Robust accuracy (%) against the events changed/moved, one panel per (dataset, attack)."""
    from matplotlib.figure import Figure

    panels: dict[tuple[str, str], list[tuple[str, list[float], list[float]]]] = {}
    units: dict[tuple[str, str], str] = {}
    for run in runs:
        for threat, doc, entry in _event_entries(run):
            clean = doc["flags"]["clean"]["correct"]
            x, y = budget_curve(entry, clean, int(doc["samples"]))
            key = (run.dataset, entry["label"])
            panels.setdefault(key, []).append((run.defense, x, y))
            # SDA stops at the first misclassification and undoes what it can: its counts are the events it
            # needed. Retiming spends its budget while optimising: the events it moved, not a minimum.
            units[key] = "events the attack moved" if threat == "retiming" else "events added + deleted"
    if not panels:
        raise _skip("accuracy against the event budget: no run has an event attack result")
    keys = sorted(panels)
    fig = Figure(figsize=(4.2 * len(keys), 3.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        for defense, x, y in panels[key]:
            # the budget axis is logarithmic: budget 0 is drawn at 0.5 event
            xs = [max(v, 0.5) for v in x]
            ax.step(xs, [100 * v for v in y], where="post", label=defense, color=defense_color(defense))
        ax.set_xscale("log")
        ax.set_xlabel(f"budget: {units[key]} per sample (0 at 0.5)")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{key[0]}: {key[1]}", fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def fig_event_example(runs: Sequence[RunData], path: str | os.PathLike[str]) -> Path:
    """Per run, the first fooled sample's changes summed over frames: ON and OFF panels, red added, blue
    deleted, one colour scale per run."""
    from matplotlib.figure import Figure

    rows = []
    for run in runs:
        for threat, doc in sorted(run.event_attacks.items()):
            example = doc.get("example")
            if example and example.get("changes"):
                rows.append((run, threat, example))
    if not rows:
        raise _skip("event attack example: no event attack fooled a sample")
    fig = Figure(figsize=(6.4, 2.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (run, threat, example), pair in zip(rows, axes, strict=True):
        t, p, h, w = example["shape"]
        grid = np.zeros((p, h, w))
        for _t, pi, yi, xi, delta in example["changes"]:
            # retiming keeps every pixel's total, so a sum over frames would cancel: count the arrivals
            grid[pi, yi, xi] += max(delta, 0) if threat == "retiming" else delta
        top = max(1.0, float(np.abs(grid).max()))
        for pol, ax in enumerate(pair):
            side = "ON" if pol else "OFF"
            if threat == "retiming":
                image = ax.imshow(grid[pol], cmap="Purples", vmin=0, vmax=top)
                detail = f"{int(grid[pol].sum())} events moved"
            else:
                image = ax.imshow(grid[pol], cmap="bwr", vmin=-top, vmax=top)
                detail = f"+{int(grid[pol][grid[pol] > 0].sum())} / -{int(-grid[pol][grid[pol] < 0].sum())}"
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{side} (p={pol}): {detail} over {t} frames", fontsize=7)
            if pol == 0:  # the row's label: which run, attack and sample
                ax.set_ylabel(f"{run.dataset} {run.defense}\n{example['attack']}, sample {example['sample']}",
                              fontsize=7)
        label = "events moved (per pixel)" if threat == "retiming" else "events (red added, blue deleted)"
        fig.colorbar(image, ax=list(pair), shrink=0.8, label=label)
    return save_figure(fig, path)


def _skip(message: str) -> Exception:
    from evrobust.pipelines.report.figures import SkipPlot

    return SkipPlot(message)
