"""Options that ``evrobust reproduce`` and ``evrobust leaderboard`` share (both build runs under one output
root)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ScaleName(StrEnum):
    """The scales of ``evrobust reproduce`` (:data:`evrobust.pipelines.reproduce.scales.SCALES`)."""

    tiny = "tiny"
    smoke = "smoke"
    cpu = "cpu"
    paper = "paper"


RunsFrom = Annotated[
    list[Path] | None,
    typer.Option("--runs-from", help="A directory of completed runs (an `evrobust train --out`, or another "
                 "output root): a run with exactly the same options on the same store is copied in instead "
                 "of trained (repeatable)."),
]
"""``--runs-from DIR`` (:mod:`evrobust.pipelines.reproduce.reuse`)."""


def runs_from_texts(runs_from: list[Path] | None) -> list[str]:
    """The ``--runs-from`` directories as the strings the pipelines take."""
    return [str(p) for p in runs_from or []]
