"""Surrogate-gradient ensembles: one attack, run once per gradient spec, worst case per sample (paper §5).

A sample counts as robust only if it survives every member. The model is always *evaluated* with its own
forward pass (a gradient spec changes only the backward), so members differ only in how the adversarial
example is crafted. Crafting and judging may use different models: that is the black-box transfer setting
(:mod:`evrobust.attacks.transfer`), where the ensemble is applied to the source model and the examples are
scored on the target.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import Attack, check_batch, predict
from evrobust.errors import UserInputError
from evrobust.neurons import PAPER_ENSEMBLE, WIDTH_ENSEMBLE

__all__ = ["ENSEMBLES", "Ensemble", "EnsembleResult", "ensemble_specs", "member_name"]

logger = logging.getLogger(__name__)

ENSEMBLES: tuple[str, ...] = ("paper", "widths", "single")
"""Named member sets: ``paper`` = triangle 1, sigmoid 4, atan 2, rate (Appendix E); ``widths`` = triangle with
gamma 0.1..3.0 step 0.1 (Appendix G, Table 6); ``single`` = the crafting model's own (training) spec."""

NOT_ATTACKED = -1
"""Entry of :attr:`EnsembleResult.member_correct` for a sample a member skipped (fooled by an earlier one)."""


def ensemble_specs(name: str) -> tuple[Any, ...]:
    """The gradient specs of a named member set; ``None`` stands for "the model's own spec"."""
    sets: dict[str, tuple[Any, ...]] = {"paper": PAPER_ENSEMBLE, "widths": WIDTH_ENSEMBLE, "single": (None,)}
    if name not in sets:
        raise UserInputError(f"unknown ensemble {name!r}; valid choices: {', '.join(ENSEMBLES)}")
    return tuple(sets[name])


def member_name(spec: Any) -> str:
    """Text label of a member: the spec's text form, or ``own`` for the model's own spec."""
    return "own" if spec is None else str(spec)


@dataclass
class EnsembleResult:
    """Outcome of an ensemble attack on one batch of ``N`` samples and ``M`` members.

    Attributes:
        x_adv: ``[N, ...]`` per sample the first member's example that fooled the judge, else the last
            member's example (the clean input for samples misclassified before any attack).
        correct: ``[N]`` bool, the judge is right on the clean input and on every member's example.
        clean_correct: ``[N]`` bool, the judge is right on the clean input.
        member_correct: ``[M, N]`` int8: 1 the judge survives that member's example, 0 fooled (or, with
            ``skip_fooled``, misclassified when clean), :data:`NOT_ATTACKED` (-1) skipped because an earlier
            member fooled it (only with ``skip_fooled``).
        members: ``M`` member labels (:func:`member_name`).
    """

    x_adv: Tensor
    correct: Tensor
    clean_correct: Tensor
    member_correct: Tensor
    members: list[str]

    def member_accuracy(self) -> dict[str, float | None]:
        """Accuracy under each member alone; ``None`` where the member skipped samples (unknown)."""
        out: dict[str, float | None] = {}
        for name, row in zip(self.members, self.member_correct, strict=True):
            out[name] = None if bool((row == NOT_ATTACKED).any()) else float((row == 1).float().mean())
        return out

    def cumulative_accuracy(self) -> dict[str, float]:
        """Accuracy under the first ``m`` members together, for each ``m`` (non-increasing; exact)."""
        alive = self.clean_correct.clone()
        out: dict[str, float] = {}
        for name, row in zip(self.members, self.member_correct, strict=True):
            alive &= row != 0
            out[name] = float(alive.float().mean())
        return out


class Ensemble:
    """Run ``attack`` once per gradient spec and keep, per sample, the first example that fools the judge.

    Args:
        attack: the attack to run (its own ``spec`` is overridden by each member).
        specs: gradient specs (``GradSpec``, their text forms, or ``None`` for the model's own spec), or the
            name of a member set in :data:`ENSEMBLES`. An attack that uses no gradient (noise) runs once.
        skip_fooled: do not attack samples already fooled (by an earlier member, or misclassified when clean).
            The ensemble verdict is the same either way; ``False`` also gives each member's own accuracy.
    """

    def __init__(
        self, attack: Attack, specs: Sequence[Any] | str = "single", *, skip_fooled: bool = True
    ) -> None:
        if isinstance(specs, str):
            specs = ensemble_specs(specs)
        specs = tuple(specs)
        if not specs:
            raise UserInputError("an ensemble needs at least one member (gradient spec)")
        if not attack.uses_gradient:
            specs = (None,)
        self.attack = attack
        self.specs = specs
        self.skip_fooled = bool(skip_fooled)

    @property
    def members(self) -> list[str]:
        """Member labels, in the order the members run."""
        return [member_name(s) for s in self.specs]

    def __repr__(self) -> str:
        return f"Ensemble({self.attack!r}, members={self.members}, skip_fooled={self.skip_fooled})"

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        judge: nn.Module | None = None,
        seed: int | None = None,
    ) -> EnsembleResult:
        """Attack ``model`` (the crafting model) and score on ``judge`` (default: ``model`` itself).

        ``x`` ``[N, ...]`` in [0,1], ``y`` ``[N]``. Every member uses the same ``seed`` (default: the
        attack's), so a member's examples here equal what the attack alone with that spec produces.
        """
        check_batch(x, y)
        judge = model if judge is None else judge
        x = x.detach()
        y = y.detach().to(device=x.device, dtype=torch.long)
        n = x.shape[0]
        clean_correct = predict(judge, x) == y
        alive = clean_correct.clone()
        x_adv = x.clone()
        member_correct = torch.full((len(self.specs), n), NOT_ATTACKED, dtype=torch.int8, device=x.device)
        if self.skip_fooled:
            # Misclassified clean inputs are not attacked: no member can make them robust, so they count as
            # fooled by every member and each member's own accuracy stays exact where it skipped nothing else.
            member_correct[:, ~clean_correct] = 0
        everyone = torch.arange(n, device=x.device)
        for m, spec in enumerate(self.specs):
            rows = alive.nonzero().squeeze(1) if self.skip_fooled else everyone
            if rows.numel() == 0:
                logger.debug("ensemble member %s: nothing left to attack", member_name(spec))
                continue
            xa = self.attack(model, x[rows], y[rows], seed=seed, spec=spec, rows=rows, total=n)
            ok = predict(judge, xa) == y[rows]
            member_correct[m, rows] = ok.to(torch.int8)
            was_alive = alive[rows]
            # Only samples not yet fooled take this member's example: the first fooling example wins, and
            # survivors carry the latest member's example.
            x_adv[rows[was_alive]] = xa[was_alive]
            alive[rows[~ok]] = False
        return EnsembleResult(
            x_adv=x_adv,
            correct=alive,
            clean_correct=clean_correct,
            member_correct=member_correct,
            members=self.members,
        )
