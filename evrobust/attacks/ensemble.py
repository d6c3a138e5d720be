"""Surrogate-gradient ensembles: one attack, run once per gradient spec, worst case per sample (paper §5).

A sample counts as robust only if it survives every member. The model is always *evaluated* with its own
forward pass (a gradient spec changes only the backward), so members differ only in how the adversarial
example is crafted. Crafting and judging may use different models: that is the black-box transfer setting
(:mod:`evrobust.attacks.transfer`), where the ensemble is applied to the source model and the examples are
scored on the target. Crafting-only members (``bptr``, ``ann``, ``assg``, ``pdsg``) change the forward pass,
keep per-attack statistics or pool statistics over the attacked batch while the example is crafted; it is
still judged on the true SNN.

Random starts: member ``k`` (0-based) draws with the seed :func:`member_seed` ``(seed, k)``, so every member
gets its own random start (as the reference ensembles do) while member 0 keeps the call's seed and reproduces
the attack run alone. A gradient-free attack (uniform noise) runs once per member with those seeds, and a
sample counts as robust only if it survives every draw: the worst of the ensemble's draws, as the paper
authors' ``val_ensemble`` scores noise (four draws under the paper ensemble).
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
from evrobust.neurons import ASSG_ENSEMBLE, PAPER_ENSEMBLE, WIDE_ENSEMBLE, WIDTH_ENSEMBLE, GradSpec

__all__ = [
    "ENSEMBLES",
    "Ensemble",
    "EnsembleResult",
    "MEMBER_SEED_STRIDE",
    "ensemble_specs",
    "member_name",
    "member_seed",
    "parse_members",
]

logger = logging.getLogger(__name__)

ENSEMBLES: tuple[str, ...] = ("paper", "widths", "single", "wide", "assg")
"""Named member sets: ``paper`` = triangle 1, sigmoid 4, atan 2, rate (Appendix E); ``widths`` = triangle with
gamma 0.1..3.0 step 0.1 (Appendix G, Table 6); ``single`` = the crafting model's own (training) spec;
``wide`` = the paper's four, then the 19-member set of Özdenizci & Legenstein without its duplicate
triangle 1, then PDSG (23 members, :data:`evrobust.neurons.WIDE_ENSEMBLE`); ``assg`` = ASSG at each ``A`` of
:data:`evrobust.neurons.ASSG_GRID` (0.4, 0.425, 0.45)."""

MEMBER_SEED_STRIDE = 0x9E3779B97F4A7C15
"""Odd 64-bit constant (2^64 / golden ratio, the splitmix64 increment) separating the members' seeds."""


def member_seed(seed: int, k: int) -> int:
    """Seed of ensemble member ``k``: ``(seed + k * 0x9E3779B97F4A7C15) mod 2**63``.

    Member 0 keeps ``seed`` (for ``0 <= seed < 2**63``), so a one-member ensemble equals the attack alone;
    distinct members of one call never share a seed (the stride is odd, so ``k`` and ``k'`` collide only when
    ``k - k'`` is a multiple of 2^63).
    """
    return (int(seed) + int(k) * MEMBER_SEED_STRIDE) % (2**63)

NOT_ATTACKED = -1
"""Entry of :attr:`EnsembleResult.member_correct` for a sample a member skipped (fooled by an earlier one)."""


def ensemble_specs(name: str) -> tuple[Any, ...]:
    """The gradient specs of a named member set; ``None`` stands for "the model's own spec"."""
    sets: dict[str, tuple[Any, ...]] = {
        "paper": PAPER_ENSEMBLE,
        "widths": WIDTH_ENSEMBLE,
        "single": (None,),
        "wide": WIDE_ENSEMBLE,
        "assg": ASSG_ENSEMBLE,
    }
    if name not in sets:
        raise UserInputError(f"unknown ensemble {name!r}; valid choices: {', '.join(ENSEMBLES)}")
    return tuple(sets[name])


def parse_members(text: str) -> tuple[Any, ...]:
    """An ensemble name, or a comma-separated list of gradient specs (``"rect:0.5,ste,bptr"``) -> members.

    Raises :class:`UserInputError` (one line) for an unknown ensemble name or member spec.
    """
    if not isinstance(text, str):
        raise UserInputError(f"ensemble must be a name or a list of gradient specs, got {text!r}")
    item = text.strip().lower()
    if item in ENSEMBLES:
        return ensemble_specs(item)
    try:
        members = tuple(GradSpec.parse(part) for part in item.split(",") if part.strip())
    except UserInputError as err:
        raise UserInputError(
            f"unknown ensemble or member in {text!r} ({err}); ensembles: {', '.join(ENSEMBLES)}, or a "
            "comma-separated list of gradient specs (e.g. triangle:1,rect:0.5,ste,bptr,ann)"
        ) from None
    if not members:
        raise UserInputError(f"no ensemble member named in {text!r}; ensembles: {', '.join(ENSEMBLES)}")
    return members


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
            name of a member set in :data:`ENSEMBLES`. An attack that uses no gradient (noise) runs once per
            member with that member's seed (the worst of ``M`` draws); its members are labelled ``draw<k>``.
        skip_fooled: do not attack samples already fooled (by an earlier member, or misclassified when clean).
            The ensemble verdict is the same either way; ``False`` also gives each member's own accuracy.
    """

    def __init__(
        self, attack: Attack, specs: Sequence[Any] | str = "single", *, skip_fooled: bool = True
    ) -> None:
        if isinstance(specs, str):
            specs = parse_members(specs)
        specs = tuple(None if s is None else GradSpec.parse(s) for s in specs)
        if not specs:
            raise UserInputError("an ensemble needs at least one member (gradient spec)")
        self.draws = 1
        if not attack.uses_gradient:
            # No gradient: the spec is irrelevant, but every member still draws its own noise.
            self.draws = len(specs)
            specs = (None,) * len(specs)
        self.attack = attack
        self.specs = specs
        self.skip_fooled = bool(skip_fooled)

    @property
    def members(self) -> list[str]:
        """Member labels, in the order the members run (``draw<k>`` for a gradient-free attack)."""
        if not self.attack.uses_gradient:
            return [f"draw{k}" for k in range(len(self.specs))]
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

        ``x`` ``[N, ...]`` in [0,1], ``y`` ``[N]``. Member ``k`` draws with ``member_seed(seed, k)`` (``seed``
        defaults to the attack's), so its examples equal what the attack alone produces with that spec and
        seed.
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
        base = self.attack.seed if seed is None else int(seed)
        names = self.members
        for m, spec in enumerate(self.specs):
            rows = alive.nonzero().squeeze(1) if self.skip_fooled else everyone
            if rows.numel() == 0:
                logger.debug("ensemble member %s: nothing left to attack", names[m])
                continue
            xa = self.attack(
                model, x[rows], y[rows], seed=member_seed(base, m), spec=spec, rows=rows, total=n
            )
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
            members=names,
        )
