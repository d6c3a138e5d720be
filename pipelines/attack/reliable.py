"""The ``reliable`` cascade's share of ``evrobust attack`` (:mod:`evrobust.pipelines.attack.pipeline`).

:func:`reliable_summary` builds the result JSON's ``cascade`` entry (per sample: which paper-protocol attack,
cascade stage or member broke it; per stage: what it broke and the accuracy after it) and ``overestimate``
(paper protocol vs reliable); :func:`render_reliable` renders both as the markdown section under the table;
:func:`cascade_entering` tells which samples the cascade attacked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from evrobust.analysis.evaluate import AttackFlags
from evrobust.attacks.cascade import Cascade
from evrobust.attacks.ensemble import NOT_ATTACKED
from evrobust.attacks.registry import PAPER_PROTOCOL
from evrobust.pipelines.attack.indicators import render_indicators
from evrobust.stats import ci95, format_interval

if TYPE_CHECKING:
    from evrobust.pipelines.attack.core import Job as _Job

__all__ = ["cascade_entering", "reliable_summary", "render_certificate", "render_reliable"]

logger = logging.getLogger(__name__)


def _first_zero(rows: dict[str, torch.Tensor], i: int) -> str | None:
    """The first label in ``rows`` whose flag at sample ``i`` is 0 (broken there), else ``None``."""
    for label, row in rows.items():
        if int(row[i]) == 0:
            return label
    return None


def reliable_summary(
    jobs: list[_Job], flags: dict[str, AttackFlags], acc: dict[str, float]
) -> dict[str, Any]:
    """``reliable``, ``overestimate`` and ``cascade`` entries of the result JSON (empty without a cascade).

    ``reliable`` is the headline: the cascade's accuracy (the per-sample AND over every attack before it and
    every cascade member), its sample count ``n`` and 95 % Clopper–Pearson interval ``ci95``.
    """
    cascades = [j for j in jobs if isinstance(j.attack, Cascade)]
    if not cascades:
        return {}
    job = cascades[0]
    cascade = job.attack
    assert isinstance(cascade, Cascade)
    cflags = flags[job.key]
    before = [j for j in jobs if j.in_table and j.eps == job.eps and j.attack is not None and j is not job]
    clean = flags.get("clean")
    broken_by: list[str | None] = []
    for i in range(cflags.count):
        if int(cflags.correct[i]) == 1:
            broken_by.append(None)
            continue
        if clean is not None and int(clean.correct[i]) == 0:
            broken_by.append("clean")
            continue
        label = None
        for other in before:
            if int(flags[other.key].correct[i]) == 0:
                member = _first_zero(flags[other.key].members, i)
                label = f"paper:{other.key}" + (f"/{member}" if member else "")
                break
        if label is None:
            label = _first_zero(cflags.members, i)
        if label is None:  # misclassified clean input (the cascade never attacks those)
            label = "clean"
        broken_by.append(label)
    counts: dict[str, int] = {}
    for label in broken_by:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    stages = []
    entering = cascade_entering(cflags)
    alive = torch.ones(cflags.count, dtype=torch.bool)
    for stage in cascade.stages:
        for member in stage.members():
            row = cflags.members.get(member)
            if row is not None:
                alive = alive & (row != 0)
        stages.append(
            {
                "name": stage.name,
                "attack": stage.attack.describe(),
                "members": stage.members(),
                "broken": sum(counts.get(m, 0) for m in stage.members()),
                "accuracy_after": float((alive & entering).float().mean()) if cflags.count else 0.0,
                "n": cflags.count,
                "ci95_after": ci95(int((alive & entering).sum()), cflags.count),
            }
        )
    out: dict[str, Any] = {
        "cascade": {
            "attack": job.key,
            "entering": int(entering.sum()),
            "entering_accuracy": float(entering.float().mean()) if cflags.count else 0.0,
            "stages": stages,
            "broken_by": broken_by,
            "counts": counts,
        }
    }
    n = cflags.count
    robust = int((cflags.correct == 1).sum())
    out["reliable"] = {"attack": job.key, "accuracy": acc[job.key], "n": n, "robust": robust,
                       "ci95": ci95(robust, n)}
    paper = [(acc[j.key], j.key) for j in before if j.key in PAPER_PROTOCOL]
    if paper:
        low, key = min(paper)
        paper_robust = int((flags[key].correct == 1).sum())
        out["overestimate"] = {
            "paper": low,
            "paper_attack": key,
            "paper_ci95": ci95(paper_robust, n),
            "reliable": acc[job.key],
            "reliable_ci95": ci95(robust, n),
            "difference": low - acc[job.key],
            # The cascade attacks only what every table attack left standing, so the samples it breaks
            # among the paper protocol's survivors are a binomial count: the difference has an exact
            # Clopper–Pearson interval of its own, narrower than the two accuracies' intervals suggest.
            "difference_robust": paper_robust - robust,
            "difference_ci95": ci95(paper_robust - robust, n),
            "n": n,
        }
    else:
        logger.info("no paper-protocol attack ran beside %s: no overestimate recorded", job.key)
    return out


def cascade_entering(cflags: AttackFlags) -> torch.Tensor:
    """``[N]`` bool: the samples the cascade attacked (robust to everything before it)."""
    if not cflags.members:
        return cflags.correct == 1
    first = next(iter(cflags.members.values()))
    return first != NOT_ATTACKED


def render_reliable(result: dict[str, Any], cascade: dict[str, Any]) -> list[str]:
    """Markdown lines: paper vs reliable vs overestimate, and what each cascade stage broke."""
    lines: list[str] = []
    over = result.get("overestimate")
    if over:
        lines += [
            "Paper protocol vs reliable evaluation (robust accuracy, %; overestimate = paper - reliable):",
            "",
            "| Defense | Paper | Reliable | Overestimate |",
            "|---|---|---|---|",
            f"| {result['defense']} | {format_interval(over['paper'], over.get('paper_ci95'), 2)} | "
            f"{format_interval(over['reliable'], over.get('reliable_ci95'), 2)} | "
            f"{format_interval(over['difference'], over.get('difference_ci95'), 2)} |",
            "",
        ]
    lines += [
        f"Cascade `{cascade['attack']}`: {cascade['entering']} of {result['samples']} samples survived every "
        "attack before it; each stage attacks only the survivors of the previous ones.",
        "",
        "| Stage | Members | Broken | Accuracy after (%, 95 % interval) |",
        "|---|---|---|---|",
    ]
    for stage in cascade["stages"]:
        lines.append(
            f"| {stage['name']} | {len(stage['members'])} | {stage['broken']} | "
            f"{format_interval(stage['accuracy_after'], stage.get('ci95_after'), 2)} |"
        )
    lines.append("")
    lines += render_certificate(result.get("reliable") or {})
    lines += render_cost((result.get("reliable") or {}).get("seconds"))
    lines += render_indicators(result.get("reliable") or {})
    return lines


def render_certificate(reliable: dict[str, Any]) -> list[str]:
    """Markdown lines of the convergence certificate (none when it did not run)."""
    doublings = reliable.get("doublings") or []
    if not doublings:
        return ["Convergence certificate: not run (`--max-doublings 0`); the reliable number is not "
                "certified.", ""]
    verdict = ("converged" if reliable.get("converged") else
               "**not converged**: the last doubling still broke more than the threshold, so the reliable "
               "accuracy is an upper bound that more budget would likely lower")
    lines = [
        "Convergence certificate: the survivors faced SA-PGD and Square again at twice the budget, with new "
        f"random starts, until a doubling broke at most {reliable['threshold']:g} samples (max(1, 0.5 % of "
        f"n)), at most {reliable['max_doublings']} times: {verdict}.",
        "",
        "| Budget | SA-PGD steps | Square queries per draw | Broke | Accuracy after (%, 95 % interval) |",
        "|---|---|---|---|---|",
    ]
    for d in doublings:
        budget = d.get("budget", {})
        lines.append(
            f"| x{d['factor']} | {budget.get('sapgd_steps', '–')} | "
            f"{budget.get('square_queries_per_draw', '–')} | {d['broke']} | "
            f"{format_interval(d['accuracy_after'], d.get('ci95_after'), 2)} |"
        )
    lines.append("")
    return lines


def render_cost(cost: Any) -> list[str]:
    """One markdown line: where the reliable evaluation's seconds went (none when not recorded)."""
    if not isinstance(cost, dict) or not isinstance(cost.get("cascade"), int | float):
        return []
    stages = cost.get("stages") if isinstance(cost.get("stages"), dict) else {}
    per_stage = ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in stages.items() if isinstance(seconds, int | float)
    )
    parts = [f"cascade {cost['cascade']:.1f} s" + (f" ({per_stage})" if per_stage else "")]
    for key in ("certificate", "indicators"):
        if isinstance(cost.get(key), int | float):
            parts.append(f"{key} {cost[key]:.1f} s")
    return [f"Cost of the reliable evaluation (wall clock): {'; '.join(parts)}.", ""]
