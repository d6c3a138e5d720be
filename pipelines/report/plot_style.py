"""The one look of every evrobust figure: style, colours, the PNG writer and small shared helpers.

:data:`STYLE` is applied per call through ``matplotlib.rc_context`` (:func:`styled`), so nothing global
changes; every defense has one fixed colour (:func:`defense_color`); :func:`save_figure` renders on an Agg
canvas in memory and writes the PNG atomically. :mod:`.plots` (report figures), :mod:`.analysis_plots`,
:mod:`.masking_plots`, :mod:`.event_plots` and the leaderboard's figures all draw through it.
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
    "ATTACK_TITLES", "DPI", "STYLE", "defense_color", "percent_array", "run_label", "save_figure", "styled",
]

DPI = 110
"""Pixels per inch of every PNG: a 5-inch-wide panel is ~550 px, legible at 100 % zoom on a code host."""

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


def styled(function: Callable[P, R]) -> Callable[P, R]:
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


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
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



def run_label(result: dict[str, Any]) -> str:
    """``<arch> <defense> (<run directory name>)``: a run's legend entry."""
    return f"{result.get('arch', '?')} {result.get('defense', '?')} ({Path(str(result.get('run', ''))).name})"


def percent_array(values: Sequence[float | None]) -> np.ndarray:
    """Accuracies in [0, 1] (None = missing) -> % with NaN gaps."""
    return np.asarray([np.nan if v is None else 100.0 * float(v) for v in values], dtype=float)

