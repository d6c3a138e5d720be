"""Narrow a reproduction spec to the runs whose key contains a text (``evrobust reproduce ... --only``).

Why: a table such as Table 1 trains three groups of runs (VGG-11 / WRN-16 on CIFAR-10, WRN-16 on
CIFAR-100) one after another. On a CPU the whole table does not fit in one sitting, and a group whose runs
another pipeline already trained (Table 3's WRN-16 vanilla, AT and SR*) should not wait behind a group that
trains from scratch. ``--only wrn16`` runs the WRN-16 rows alone, reusing every run already under ``--out``.

What is kept:

* runs whose key contains the text (keys look like ``cifar10_subset-wrn16-sr_star``; they are listed in
  ``results.json`` and in the log);
* attacks whose run, and black-box source if any, are kept; analyses whose run is kept;
* table rows every cell of which refers to something kept (a row is never shown half-filled from a
  selection); a table left without rows is dropped.

The narrowed spec is named ``<name>-<text>`` so that its ``results.json`` and report never overwrite the full
pipeline's; its runs, attacks and analyses are the same objects as the full pipeline's, so the run
directories and the attack/analysis cache are shared with it.
"""

from __future__ import annotations

import dataclasses
import re

from evrobust.errors import UserInputError
from evrobust.pipelines.reproduce.specs import Cell, PipelineSpec


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "only"


def select_runs(spec: PipelineSpec, only: str) -> PipelineSpec:
    """The part of ``spec`` about the runs whose key contains ``only`` (see the module docstring).

    Raises:
        UserInputError: an empty text, or a text that matches no run of the pipeline (the line lists the
            run keys there are).
    """
    text = only.strip()
    if not text:
        raise UserInputError("--only needs a non-empty text that is part of a run key, e.g. --only wrn16")
    runs = tuple(r for r in spec.runs if text in r.key)
    if not runs:
        keys = ", ".join(r.key for r in spec.runs)
        raise UserInputError(f"--only {text!r} matches no run of {spec.name}; its runs are: {keys}")
    kept_runs = {r.key for r in runs}
    attacks = tuple(a for a in spec.attacks
                    if a.run in kept_runs and (a.source is None or a.source in kept_runs))
    analyses = tuple(a for a in spec.analyses if a.run in kept_runs)
    kept = {"metric": kept_runs, "attack": {a.key for a in attacks}, "analysis": {a.key for a in analyses}}

    def keeps(cell: Cell) -> bool:
        return cell.ref in kept[cell.source]

    tables = []
    for table in spec.tables:
        rows = tuple(row for row in table.rows if row.cells and all(keeps(c) for c in row.cells.values()))
        if rows:
            tables.append(dataclasses.replace(table, rows=rows))
    return dataclasses.replace(
        spec,
        name=f"{spec.name}-{_slug(text)}",
        title=f"{spec.title} (only the runs matching '{text}')",
        runs=runs,
        attacks=attacks,
        analyses=analyses,
        tables=tuple(tables),
        notes=spec.notes + (f"Selection: --only {text} ({len(runs)} of {len(spec.runs)} runs; rows of other "
                            "runs are left out).",),
    )
