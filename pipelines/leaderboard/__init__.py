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

from evrobust.pipelines.leaderboard.build import DEFAULT_OUT, build_leaderboard, execute_leaderboard
from evrobust.pipelines.leaderboard.spec import ENTRIES, build_leaderboard_spec

__all__ = ["DEFAULT_OUT", "ENTRIES", "build_leaderboard", "build_leaderboard_spec", "execute_leaderboard"]
