"""The masking checks of an ``evrobust attack`` run (DESIGN §6, :mod:`evrobust.analysis.masking`).

:func:`masking_checks` turns the accuracies of a finished run into checks: adversarial below uniform noise,
PGD10 monotone in eps and near 0 at a large eps, few all-zero input gradients, white box below black box
(against the other mode's finished result, :func:`read_other_mode`), and for a cascade
(:func:`cascade_checks`) Square not beating the white-box stages and reliable not above the paper protocol.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evrobust.analysis.evaluate import AttackFlags
from evrobust.analysis.masking import (
    CheckResult,
    ZeroGradientStats,
    check_adversarial_below_noise,
    check_large_eps,
    check_monotone_in_eps,
    check_reliable_below_paper,
    check_whitebox_below_blackbox,
    check_whitebox_below_square,
    check_zero_gradients,
)
from evrobust.attacks.cascade import Cascade
from evrobust.attacks.registry import PAPER_PROTOCOL
from evrobust.pipelines.attack.inputs import eps_text, read_json_or_warn, result_paths
from evrobust.pipelines.attack.reliable import cascade_entering

if TYPE_CHECKING:
    from evrobust.pipelines.attack.core import Job as _Job

__all__ = ["CHECK_TOL", "LARGE_EPS", "SQUARE_TOL", "cascade_checks", "masking_checks", "read_other_mode"]

logger = logging.getLogger(__name__)

LARGE_EPS = 64 / 255
"""Radius of the large-eps masking check (PGD10 with step eps/4 must reach ~0 accuracy there)."""
CHECK_TOL = 0.01
SQUARE_TOL = 0.002
"""Slack of the Square-beats-white-box check: AutoAttack's ``checks.py`` warns above a 0.2-point drop."""


def masking_checks(
    mode: str,
    eps: float,
    acc: dict[str, float],
    jobs: list[_Job],
    zero: ZeroGradientStats | None,
    other_mode: dict[str, Any] | None,
    flags: dict[str, AttackFlags] | None = None,
) -> list[CheckResult]:
    flags = flags or {}
    out: list[CheckResult] = []
    table = [j for j in jobs if j.in_table and j.attack is not None]
    if "noise" in acc:
        for job in table:
            if job.attack is not None and job.attack.uses_gradient:
                out.append(check_adversarial_below_noise(acc[job.key], acc["noise"], CHECK_TOL, job.key))
    if mode == "whitebox" and "pgd10" in acc:
        curve = {0.0: acc["clean"]} if "clean" in acc else {}
        for job in jobs:
            if job.name == "pgd10" and job.key in acc:
                curve[job.eps] = acc[job.key]
        out.append(check_monotone_in_eps(curve, CHECK_TOL, "pgd10"))
        large = f"pgd10@{eps_text(LARGE_EPS)}"
        if large in acc:
            out.append(check_large_eps(acc[large], LARGE_EPS, 0.05, "pgd10"))
    if zero is not None and zero.samples:
        out.append(check_zero_gradients(zero, 0.1, "pgd10" if "pgd10" in acc else ""))
    for job in jobs:
        if isinstance(job.attack, Cascade) and job.key in flags:
            out += cascade_checks(job, flags, jobs, acc)
    if other_mode is not None:
        # accuracy is optional in the schema (a hand-made file may lack it): only numbers are compared
        entries = other_mode.get("attacks", [])
        other = {a["name"]: a["accuracy"] for a in entries if a.get("accuracy") is not None}
        for job in table:
            if job.key in other and job.key != "clean":
                wb, bb = acc[job.key], other[job.key]
                if mode == "blackbox":
                    wb, bb = bb, wb
                out.append(check_whitebox_below_blackbox(wb, bb, CHECK_TOL, job.key))
    return out


def read_other_mode(run: Path, mode: str, eps: float, samples: int, ensemble: str) -> dict[str, Any] | None:
    """The other mode's finished results on the same samples, eps and ensemble, if any.

    Read through :func:`read_json_or_warn` (kind ``attack_result``): a damaged, hand-edited or unsafe file is
    one warning and no comparison, never the end of an attack that has just finished its work.
    """
    other = "blackbox" if mode == "whitebox" else "whitebox"
    path = result_paths(run, other)[0]
    document = read_json_or_warn(path, "attack_result", f"the {other} result", "not comparing with it")
    if document is None:
        return None
    other_eps = document.get("eps")
    same = (
        other_eps is not None
        and math.isclose(other_eps, eps)
        and document["samples"] == samples
        and document.get("ensemble") == ensemble
    )
    if not same:
        logger.info("not comparing with %s: other eps, sample count or ensemble", path.name)
    return document if same else None


def cascade_checks(
    job: _Job, flags: dict[str, AttackFlags], jobs: list[_Job], acc: dict[str, float]
) -> list[CheckResult]:
    """Square beats the white-box stages (masking); reliable <= paper protocol."""
    cascade = job.attack
    assert isinstance(cascade, Cascade)
    cflags = flags[job.key]
    out: list[CheckResult] = []
    entering = cascade_entering(cflags)
    alive = entering.clone()
    whitebox: float | None = None
    for stage in cascade.stages:
        if not stage.attack.uses_gradient and whitebox is None:
            whitebox = float(alive.float().mean()) if cflags.count else 0.0
        for member in stage.members():
            row = cflags.members.get(member)
            if row is not None:
                alive &= row != 0
    if whitebox is not None:
        final = float(alive.float().mean()) if cflags.count else 0.0
        out.append(check_whitebox_below_square(whitebox, final, SQUARE_TOL, job.key))
    paper = [acc[j.key] for j in jobs if j.in_table and j.key in PAPER_PROTOCOL and j.eps == job.eps]
    if paper:
        out.append(check_reliable_below_paper(acc[job.key], min(paper), CHECK_TOL, job.key))
    return out
