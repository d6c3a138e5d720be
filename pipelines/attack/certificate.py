"""The convergence certificate of the reliable evaluation (``evrobust attack`` with a cascade).

A robust accuracy is an upper bound that holds only for the attacks that ran. Carlini et al. ("On Evaluating
Adversarial Robustness") ask that doubling the attack budget no longer lower it. After the cascade has run on
every batch, the samples still robust face the cascade's strongest stages again with twice the budget and new
random starts: SA-PGD with twice the steps and Square with twice the queries per draw (its schedule rescaled
to the longer budget). Each doubling is a new :class:`~evrobust.attacks.cascade.Cascade` whose stage names
carry the factor (``x2/sapgd``, ``x2/square``), so every member draws starts of its own
(:func:`~evrobust.attacks.cascade.cascade_member_seed` hashes the label), and whose members' flags join the
cascade's own: the reliable verdict stays the per-sample AND over every attack that ran.

If a doubling breaks more than :func:`threshold` samples (``max(1, 0.5 % of n)``), the budget doubles again
(x4, x8, ...), up to ``max_doublings``; the number *converged* when the last doubling broke no more than that.
Each doubling is recorded as ``{"doubling", "factor", "budget", "broke", "accuracy_after", "ci95_after"}``.

Resumable: the progress (doubling, batches done, what each finished doubling broke) lives in the attack's
partial file, written after every batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from evrobust.analysis.evaluate import AttackFlags
from evrobust.attacks.cascade import Cascade, Stage
from evrobust.attacks.ensemble import NOT_ATTACKED
from evrobust.attacks.sapgd import SAPGD
from evrobust.attacks.square import Square
from evrobust.errors import UserInputError
from evrobust.pipelines.common.options import MAX_DOUBLINGS
from evrobust.stats import ci95

__all__ = [
    "DEFAULT_MAX_DOUBLINGS",
    "MAX_DOUBLINGS",
    "check_max_doublings",
    "doubled_cascade",
    "needs_another_doubling",
    "run_certificate",
    "threshold",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_DOUBLINGS = 3
"""Budget x2, x4, x8 at most."""


def check_max_doublings(value: Any) -> int:
    """``--max-doublings`` as an int in ``[0, MAX_DOUBLINGS]`` (0 = no certificate); one-line error else."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DOUBLINGS:
        raise UserInputError(
            f"--max-doublings must be an integer from 0 (no certificate) to {MAX_DOUBLINGS}, got {value!r}"
        )
    return value


def threshold(n: int) -> float:
    """Samples a doubling may break and still count as converged: ``max(1, 0.5 % of n)``."""
    return max(1.0, 0.005 * n)


def needs_another_doubling(broke: int, n: int, doubling: int, max_doublings: int) -> bool:
    """After doubling ``doubling`` (1-based) broke ``broke`` of ``n`` samples: double again?"""
    return broke > threshold(n) and doubling < max_doublings


def doubled_cascade(cascade: Cascade, doubling: int) -> Cascade:
    """The strongest stages of ``cascade`` at ``2**doubling`` times their budget, with new random starts.

    SA-PGD stages get ``steps * 2**doubling``; Square stages ``n_queries * 2**doubling`` per draw (the same
    draws, warm start and ties). Other stages are left out.

    Raises:
        UserInputError: the cascade has neither an SA-PGD nor a Square stage.
    """
    factor = 2**doubling
    stages = []
    for stage in cascade.stages:
        attack = stage.attack
        if isinstance(attack, SAPGD):
            new: SAPGD | Square = SAPGD(attack.eps, steps=attack.steps * factor, loss=attack.loss,
                                        seed=attack.seed, spec=attack.spec)
        elif isinstance(attack, Square):
            new = Square(attack.eps, n_queries=attack.n_queries * factor, p_init=attack.p_inits,
                         loss=attack.loss, n_restarts=attack.n_restarts, warm_start=attack.warm_start,
                         accept_ties=attack.accept_ties, seed=attack.seed, spec=attack.spec)
        else:
            continue
        stages.append(Stage(f"x{factor}/{stage.name}", new, stage.specs))
    if not stages:
        raise UserInputError("the convergence certificate needs a cascade with an SA-PGD or a Square stage")
    return Cascade(stages)


def _budget(cascade: Cascade) -> dict[str, int]:
    out: dict[str, int] = {}
    for stage in cascade.stages:
        if isinstance(stage.attack, SAPGD):
            out["sapgd_steps"] = stage.attack.steps
        elif isinstance(stage.attack, Square):
            out["square_queries_per_draw"] = stage.attack.n_queries
    return out


def _merge_slice(flags: AttackFlags, start: int, result: Any, alive: torch.Tensor) -> int:
    """Write one batch's doubled-cascade outcome into the cascade's flags; returns the samples it broke."""
    stop = start + alive.shape[0]
    before = flags.correct[start:stop].clone()
    now = before.clone()
    alive_cpu = alive.cpu()
    now[alive_cpu] = result.correct.cpu()[alive_cpu].to(torch.int8)
    flags.correct[start:stop] = now
    for label, row in zip(result.members, result.member_correct, strict=True):
        flags.members[label][start:stop] = row.cpu().to(torch.int8)
    return int(((before == 1) & (now == 0)).sum())


def run_certificate(
    cascade: Cascade,
    flags: AttackFlags,
    batches: Callable[[int], Any],
    batch_size: int,
    crafter: nn.Module,
    judge: nn.Module,
    batch_seed: Callable[[int], int],
    max_doublings: int,
    state: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Run the certificate over the samples still robust under ``flags`` (the cascade's); update ``flags``.

    Args:
        cascade: the cascade that ran (its stages are doubled).
        flags: the cascade's per-sample flags over all ``n`` samples; updated in place.
        batches: ``batches(first)`` yields ``(batch index, x, y)`` from batch ``first`` on (on the device);
            batch ``b`` holds samples ``b * batch_size`` onwards.
        crafter, judge: the model that crafts (the source in black-box mode) and the one that is scored.
        batch_seed: the seed of batch ``b`` (the attack's, so a resumed run draws the same).
        max_doublings: at most this many doublings (>= 1).
        state: the saved progress (None: start); ``save(progress)`` is called after every batch.

    Returns:
        ``{"max_doublings", "threshold", "doublings": [...], "converged"}``.
    """
    n = flags.count
    progress = state or {"doubling": 1, "batches_done": 0, "doublings": [], "broke": 0, "finished": False}
    while not progress["finished"]:
        k = int(progress["doubling"])
        doubled = doubled_cascade(cascade, k)
        for label in doubled.members:  # every member gets a full row: samples it never saw stay "-"
            flags.members.setdefault(label, torch.full((n,), NOT_ATTACKED, dtype=torch.int8))
        for b, x, y in batches(int(progress["batches_done"])):
            start = b * batch_size
            alive = flags.correct[start : start + x.shape[0]] == 1
            if bool(alive.any()):
                result = doubled(crafter, x, y, judge=judge, seed=batch_seed(b), alive=alive.to(x.device))
                progress["broke"] = int(progress["broke"]) + _merge_slice(flags, start, result, alive)
            progress["batches_done"] = b + 1
            save(progress)
            # a doubling of a large evaluation runs for hours on a CPU: say how far it is, batch by batch
            logger.info("certificate x%d: batch %d/%d, %d broken in this doubling so far", 2**k, b + 1,
                        -(-n // batch_size), int(progress["broke"]))
        robust = int((flags.correct == 1).sum())
        broke = int(progress["broke"])
        record = {
            "doubling": k,
            "factor": 2**k,
            "budget": _budget(doubled),
            "broke": broke,
            "accuracy_after": robust / n if n else 0.0,
            "ci95_after": ci95(robust, n),
        }
        progress["doublings"] = [*progress["doublings"], record]
        logger.info("certificate: budget x%d broke %d of %d samples (threshold %.1f); accuracy %.2f%%",
                    2**k, broke, n, threshold(n), 100 * record["accuracy_after"])
        if needs_another_doubling(broke, n, k, max_doublings):
            progress.update({"doubling": k + 1, "batches_done": 0, "broke": 0})
        else:
            progress["finished"] = True
        save(progress)
    last = progress["doublings"][-1]
    return {
        "max_doublings": max_doublings,
        "threshold": threshold(n),
        "doublings": progress["doublings"],
        "converged": last["broke"] <= threshold(n),
    }

