"""The masking study's landscape figure: every run on the same axes, a colour per defense and a line style per
architecture, so that VGG-11 and WRN-16 runs of one defense stay apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

import evrobust.pipelines.report.masking_plots as masking_plots


def _landscape(defense: str, arch: str, level: float) -> dict[str, Any]:
    radii = [1e-3, 1e-2, 3e-2, 1e-1]
    curve = {"q1": [level] * 4, "median": [level + 0.1] * 4, "q3": [level + 0.2] * 4}
    return {"kind": "landscape", "defense": defense, "arch": arch, "radii": radii, "eps": 8 / 255,
            "eps_text": "8/255", "sr_h": 0.01,
            "directions": {"gradient": {"ce": curve}, "random-0": {"ce": curve}}}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    figures: list[Figure] = []

    def keep(fig: Figure, path: str) -> Path:
        figures.append(fig)
        return Path(path)

    monkeypatch.setattr(masking_plots, "save_figure", keep)
    return figures


def _styles(fig: Figure) -> list[tuple[str, str]]:
    """(label, line style) of the run lines of the first panel (the h and eps markers left out)."""
    ax = fig.axes[0]
    return [(line.get_label(), line.get_linestyle()) for line in ax.get_lines()
            if not line.get_label().startswith(("SR step", "eps"))]


def test_architectures_get_their_own_line_style_and_defenses_keep_their_colour(
        drawn: list[Figure], tmp_path: Path) -> None:
    results = [_landscape("sr", "wrn16", 1.0), _landscape("at", "wrn16", 2.0), _landscape("sr", "vgg11", 3.0),
               _landscape("at", "vgg11", 4.0)]
    masking_plots.plot_landscape_compare(results, tmp_path / "l.png", labels=["a", "b", "c", "d"])
    (fig,) = drawn
    assert len(fig.axes) == 2  # one panel per direction
    assert _styles(fig) == [("a", "-"), ("b", "-"), ("c", "--"), ("d", "--")]
    colors = [line.get_color() for line in fig.axes[0].get_lines()[:4]]
    assert colors[0] == colors[2] == masking_plots.defense_color("sr")  # one colour per defense
    assert colors[1] == colors[3] == masking_plots.defense_color("at")


def test_two_runs_of_one_defense_and_architecture_fall_back_to_the_colour_cycle(
        drawn: list[Figure], tmp_path: Path) -> None:
    results = [_landscape("sr", "wrn16", 1.0), _landscape("sr", "wrn16", 2.0), _landscape("sr", "vgg11", 3.0)]
    masking_plots.plot_landscape_compare(results, tmp_path / "l.png", labels=["h1", "h2", "vgg"])
    (fig,) = drawn
    colors = [line.get_color() for line in fig.axes[0].get_lines()[:3]]
    assert len(set(colors)) == 3
    assert _styles(fig) == [("h1", "-"), ("h2", "-"), ("vgg", "--")]
