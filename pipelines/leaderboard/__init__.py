"""``evrobust leaderboard``: one protocol, one table, every entry rerunnable (RobustBench's idea, for SNNs).

- :mod:`.spec`: the entries (vanilla, AT, RAT, SR, SR*, TRADES, DSD, DLIF, TGO) and the evaluation protocol
  at one of ``evrobust reproduce``'s scales;
- :mod:`.evaluate`: one entry's evaluation (``evrobust attack --suite reliable``), cached with its flags;
- :mod:`.entries`: an entry's RobustBench-style fields, SNN fields and card; ``--add`` runs;
- :mod:`.ranking`: exact McNemar tests, Holm's correction, rank groups, the Pareto front;
- :mod:`.table`: the leaderboard document; :mod:`.render`: its markdown; :mod:`.figures`: its PNGs;
- :mod:`.build`: the command's function, :func:`build_leaderboard`.

Only :mod:`.build` (training and attacks, imported inside its functions) loads torch; re-ranking and rendering
a table read documents only.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT_OUT", "ENTRIES", "build_leaderboard", "build_leaderboard_spec", "execute_leaderboard"]

_EXPORTS = {
    "DEFAULT_OUT": "build",
    "build_leaderboard": "build",
    "execute_leaderboard": "build",
    "ENTRIES": "spec",
    "build_leaderboard_spec": "spec",
}


def __getattr__(name: str) -> Any:
    """Load :mod:`.build` / :mod:`.spec` on first use: they import the reproduction package (and torch),
    which re-ranking, rendering or validating a table never needs."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
