"""The report's paired comparisons: every two runs of a dataset, tested on the samples where they disagree.

Two runs attacked on the same test samples are paired data: whether one is more robust than the other is
decided by the exact McNemar test on the samples one survives and the other does not
(:func:`evrobust.pipelines.common.paired.compare_attack_documents`), never by two accuracies side by side. The
headline verdict of each run is compared: its ``reliable`` cascade where both ran one, else the per-sample
worst case over the table's attacks. A difference is called a lead only at p < 0.05; otherwise the table says
"not established" and how many samples would settle a difference of the observed size.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.common.paired import check_flags_layout, compare_attack_documents
from evrobust.pipelines.report.runs import RunData
from evrobust.stats import format_interval, format_p

__all__ = ["comparison_lines"]


def _document(run: RunData, mode: str) -> dict[str, Any] | None:
    """The run's attack document of ``mode`` with its path, if it holds usable per-sample flags."""
    document = run.attacks.get(mode)
    if document is None:
        return None
    path = run.path / f"attack-{mode}.json"
    try:
        check_flags_layout(document, path)
    except UserInputError:
        return None
    return {**document, "_path": str(path)}


def comparison_lines(runs: Sequence[RunData], mode: str = "whitebox") -> list[str]:
    """Markdown: per dataset, one row per pair of runs with ``mode`` results on the same samples.

    Empty when no dataset has two such runs. Pairs evaluated on different samples are listed as not compared.
    """
    lines: list[str] = []
    skipped: list[str] = []
    rows: list[str] = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        group = [(r, d) for r in runs if r.dataset == dataset and (d := _document(r, mode)) is not None]
        for (ra, da), (rb, db) in combinations(group, 2):
            try:
                result = compare_attack_documents(da, db, ra.label, rb.label)
            except UserInputError:
                skipped.append(f"{ra.label} vs {rb.label} (evaluated on different samples)")
                continue
            head = next(r for r in result["rows"] if r["headline"])
            rows.append(
                f"| {ra.label} | {rb.label} | {head['attack']} | "
                f"{format_interval(head['a']['accuracy'], head['a']['ci95'])} | "
                f"{format_interval(head['b']['accuracy'], head['b']['ci95'])} | {head['a_only']} | "
                f"{head['b_only']} | {format_p(head['p_value'])} | {head['verdict']} |"
            )
    if not rows and not skipped:
        return []
    lines += [
        "## Paired comparisons",
        "",
        f"Each pair of runs of a dataset, {mode}, on the samples both were attacked on: robust accuracy (%) "
        "with its 95 % Clopper–Pearson interval, the samples only A survives and only B survives, and the "
        "exact McNemar p-value on those. A difference is called a lead only at p < 0.05. Compared: the "
        "reliable cascade where both runs ran it, else the per-sample worst case over the table's attacks.",
        "",
    ]
    if rows:
        lines += ["| A | B | compared | A | B | A only | B only | p | verdict |", "|---" * 9 + "|"]
        lines += rows + [""]
    if skipped:
        lines += ["Not compared: " + "; ".join(skipped) + ".", ""]
    return lines
