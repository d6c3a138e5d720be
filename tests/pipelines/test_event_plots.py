"""The report's event-attack figures: the budget curve by hand, and both figures drawn from a result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evrobust.pipelines.report.event_plots import budget_curve, fig_event_budget, fig_event_example
from evrobust.pipelines.report.figures import SkipPlot
from evrobust.pipelines.report.runs import RunData


def test_budget_curve_by_hand() -> None:
    """Six samples: one wrong when clean, one robust, four fooled with 3, 3, 7 and 20 events.

    At budget b the attacker breaks the fooled samples that needed at most b events: accuracy 5/6 at 0
    (every clean-correct sample), 3/6 after 3 events, 2/6 after 7, 1/6 after 20 (the robust one)."""
    clean = "011111"
    entry = {"robust_flags": "001000", "events_changed": [None, 3, 0, 7, 3, 20]}
    budgets, accuracy = budget_curve(entry, clean, 6)
    assert budgets == [0.0, 3.0, 7.0, 20.0]
    assert accuracy == pytest.approx([5 / 6, 3 / 6, 2 / 6, 1 / 6])


def _doc(threat: str, name: str, label: str) -> dict[str, Any]:
    return {
        "threat": threat,
        "samples": 4,
        "attacks": [
            {"name": "clean", "label": "Clean", "accuracy": 0.75, "ci95": [0.19, 0.99]},
            {"name": name, "label": label, "accuracy": 0.25, "ci95": [0.006, 0.81],
             "events_changed": [None, 2, 5, 0]},
        ],
        "flags": {"clean": {"correct": "0111"}, name: {"correct": "0001"}},
        "example": {"attack": name, "sample": 1, "label": 3, "shape": [2, 2, 3, 3], "clean_events": 9,
                    "changes": [[0, 1, 0, 0, 1], [1, 1, 0, 0, -1]] if threat == "retiming"
                    else [[0, 0, 1, 1, 1], [1, 1, 2, 2, -1]]},
    }


def test_event_figures_are_drawn(tmp_path: Path) -> None:
    run = RunData(path=tmp_path, config={"data": {"dataset": "digits-dvs"}, "defense": {"name": "sr"}})
    run.event_attacks = {"events": _doc("events", "sda", "SDA"),
                         "retiming": _doc("retiming", "retime-inf", "Retiming B∞")}
    for draw, name in ((fig_event_budget, "budget.png"), (fig_event_example, "example.png")):
        path = draw([run], tmp_path / name)
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_event_figures_skip_without_results(tmp_path: Path) -> None:
    run = RunData(path=tmp_path, config={})
    for draw in (fig_event_budget, fig_event_example):
        with pytest.raises(SkipPlot):
            draw([run], tmp_path / "none.png")
