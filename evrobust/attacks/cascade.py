"""An AutoAttack-style cascade: stages of (attack, gradient-spec ensemble), each run only on survivors.

A sample counts as robust only if it survives every member of every stage, so running a stage only on the
samples that all earlier stages left unbroken changes no verdict and saves most of the cost: the cascade's
per-sample flags equal the AND of its stages run alone (each sample gets the same random draws either way;
see :class:`~evrobust.attacks.base.RandomSource`). The result is an
:class:`~evrobust.attacks.ensemble.EnsembleResult` whose members are ``"<stage>/<member>"``, so the usual
per-sample bookkeeping (:class:`~evrobust.analysis.evaluate.AttackFlags`) records which stage and member broke
each sample.

:func:`reliable_cascade` builds the ``reliable`` evaluation: SA-PGD (100 iterations) under the adaptive
surrogate ASSG first, APGD-CE (100 iterations) over a wide surrogate ensemble, APGD-T (9 targets, 100
iterations) under ASSG, then two gradient-free stages that no gradient masking can fool: Square (three draws
of 5000 queries, one warm-started from the cascade's best point) and the label-only RayS (5000 queries).
:func:`exhaustive_cascade` is the same cascade with APGD-T over the whole wide ensemble as well: 22 times the
APGD-T cost, for the researcher who wants every member on every stage.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.apgd import APGD, APGDT
from evrobust.attacks.base import Attack, check_batch, judge_logits, predict
from evrobust.attacks.ensemble import NOT_ATTACKED, EnsembleResult, ensemble_specs, member_name
from evrobust.attacks.rays import RayS
from evrobust.attacks.sapgd import SAPGD
from evrobust.attacks.square import Square
from evrobust.errors import UserInputError
from evrobust.neurons import ASSG_DEFAULT_A, GradSpec

__all__ = [
    "Cascade",
    "BATCH_COUPLED_MODES",
    "RELIABLE_ENSEMBLE",
    "RELIABLE_SAPGD_SPEC",
    "RELIABLE_SQUARE_P_INITS",
    "RELIABLE_TARGETED_SPECS",
    "Stage",
    "cascade_member_seed",
    "exhaustive_cascade",
    "reliable_cascade",
    "stage_member",
]

logger = logging.getLogger(__name__)

RELIABLE_ENSEMBLE = "wide"
"""Gradient-spec ensemble of the APGD stages of :func:`reliable_cascade`: the ``wide`` set without its
batch-coupled members (:data:`BATCH_COUPLED_MODES`), 22 members: the paper's four, the surrogate shapes and
widths of Özdenizci & Legenstein, BPTR and the ReLU-ANN forward."""

BATCH_COUPLED_MODES: tuple[str, ...] = ("pdsg",)
"""Gradient modes whose backward pools statistics over the attacked batch (PDSG's width is the standard
deviation of the membrane potential over batch, space and time). A cascade attacks the survivors of each
stage, a subset that depends on the other samples, so such a member would make one sample's verdict depend
on which others survived; and the cascade's members are part of every resume fingerprint and measured
budget. A cascade built from a member-set *name* leaves them out; specs given explicitly are kept."""

RELIABLE_SAPGD_SPEC: str | None = f"assg:{ASSG_DEFAULT_A}"
"""Gradient spec of the SA-PGD stage: ASSG with the authors' evaluation value ``A = 0.425``, as their
ASSG-SAPGD attack runs it."""

RELIABLE_TARGETED_SPECS: tuple[Any, ...] = (f"assg:{ASSG_DEFAULT_A}",)
"""Gradient specs of the APGD-T stage of :func:`reliable_cascade`: ASSG alone, the SNN counterpart of
AutoAttack's single-model APGD-T. APGD-T costs ``n_targets`` (9) x 100 gradient evaluations per member and
sample, so over the 22 wide members it would dominate the cascade's cost (19,800 of about 24,000 evaluations
per robust sample); on the four digits-dvs demo runs the verdict under ASSG alone equals the one over all
22 members on 199 of 200 samples and breaks one more on the last (docs/results.md).
:func:`exhaustive_cascade` keeps it over the whole ensemble."""


RELIABLE_SQUARE_P_INITS: tuple[float, ...] = (0.8, 0.3)
"""Square's draws in :func:`reliable_cascade`: AutoAttack's ``p_init`` 0.8 (large squares, a global search)
and 0.3, the value the Square authors used against models with masked gradients (smaller squares, a local
search); plus a third draw warm-started from the cascade's best point with the smaller value. Ties are
accepted (spike-count readouts make the margin piecewise constant)."""


def stage_member(stage: str, spec: Any) -> str:
    """Member label in a cascade: ``"<stage>/<member>"``, e.g. ``"apgd-ce/sigmoid:4"``."""
    return f"{stage}/{member_name(spec)}"


def cascade_member_seed(seed: int, label: str) -> int:
    """Seed of one cascade member: a stable function of the call's seed and the member's label.

    Every member draws its own random start, and the draw does not depend on the member's position, so a
    stage run alone and inside a cascade sees the same numbers.
    """
    return (int(seed) * 1_000_003 + zlib.crc32(label.encode())) % (2**62)


@dataclass(frozen=True)
class Stage:
    """One cascade stage: ``attack`` run once per gradient spec in ``specs`` (one run if gradient-free)."""

    name: str
    attack: Attack
    specs: tuple[Any, ...] = (None,)

    def members(self) -> list[str]:
        """Member labels of this stage (``<stage>/<spec>``)."""
        specs = self.specs if self.attack.uses_gradient else (None,)
        return [stage_member(self.name, s) for s in specs]


class Cascade:
    """Run stages in order; each member attacks only the samples no earlier member has broken.

    Args:
        stages: the stages, cheapest-to-strongest is the sensible order (survivors shrink as it goes).
    """

    name = "cascade"
    uses_gradient = True

    def __init__(self, stages: Sequence[Stage]) -> None:
        stages = tuple(stages)
        if not stages:
            raise UserInputError("a cascade needs at least one stage")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise UserInputError(f"cascade stage names must be unique, got {names}")
        for stage in stages:
            if not stage.specs:
                raise UserInputError(f"cascade stage {stage.name!r} has no gradient spec")
        self.stages = stages
        # Wall-clock seconds spent in each stage by this object's calls (its members' attacks and the judge's
        # forward passes): where a reliable evaluation's cost goes. Bookkeeping only; never read by a stage.
        self.stage_seconds: dict[str, float] = {s.name: 0.0 for s in stages}

    @property
    def members(self) -> list[str]:
        """All member labels, in the order they run."""
        return [m for s in self.stages for m in s.members()]

    @property
    def eps(self) -> float:
        """The radius shared by every stage."""
        return self.stages[0].attack.eps

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings of every stage (for reports and resume fingerprints)."""
        return {
            "stages": [
                {"name": s.name, "attack": s.attack.describe(), "members": s.members()} for s in self.stages
            ]
        }

    def __repr__(self) -> str:
        return f"Cascade({[s.name for s in self.stages]}, members={len(self.members)})"

    def without(self, attack: Attack, specs: Sequence[Any]) -> Cascade:
        """This cascade less the members that would rerun ``attack`` (same settings) under one of ``specs``.

        An evaluation that already ran ``attack`` over ``specs`` on every sample (the paper suite's APGD-CE
        100 over the paper ensemble) need not run it again in the cascade: a member that is the same attack
        under the same spec only adds a random restart. A stage left with no member is dropped.
        """
        done = {member_name(s) for s in specs}
        settings = attack.describe()
        stages = []
        for stage in self.stages:
            if stage.attack.uses_gradient and stage.attack.describe() == settings:
                kept = tuple(s for s in stage.specs if member_name(s) not in done)
                if not kept:
                    continue
                stage = Stage(stage.name, stage.attack, kept)
            stages.append(stage)
        return Cascade(stages) if stages else self

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        judge: nn.Module | None = None,
        seed: int | None = None,
        alive: Tensor | None = None,
    ) -> EnsembleResult:
        """Attack ``model`` (crafting) and score on ``judge`` (default ``model``).

        Args:
            x: clean inputs ``[N, ...]`` in [0,1]; y: labels ``[N]``.
            seed: base seed; each member derives its own with :func:`cascade_member_seed`.
            alive: optional ``[N]`` bool, the samples still robust before the cascade (e.g. after other
                attacks); the others are not attacked and count as not robust (their member flags are
                :data:`~evrobust.attacks.ensemble.NOT_ATTACKED`).

        Returns:
            An :class:`EnsembleResult` over all members: ``member_correct`` is 1 (survived), 0 (broken by this
            member) or -1 (not attacked: broken by an earlier member, misclassified when clean, or not alive
            on entry). So a sample has a 0 exactly when a cascade member broke it, and only at that member.
        """
        check_batch(x, y)
        judge = model if judge is None else judge
        x = x.detach()
        y = y.detach().to(device=x.device, dtype=torch.long)
        n = x.shape[0]
        base = self.stages[0].attack.seed if seed is None else int(seed)
        clean_correct = predict(judge, x) == y
        labels = self.members
        member_correct = torch.full((len(labels), n), NOT_ATTACKED, dtype=torch.int8, device=x.device)
        state = clean_correct.clone()
        if alive is not None:
            if alive.shape != (n,):
                raise UserInputError(f"alive must be a [N] bool mask with N = {n}, got {tuple(alive.shape)}")
            state &= alive.to(device=x.device, dtype=torch.bool)
        x_adv = x.clone()
        # The point closest to the boundary so far, per sample (lowest judge margin over the members that
        # ran): where an attack takes a starting point (Square's warm start), it starts there.
        best_x = x.clone()
        best_margin = torch.full((n,), float("inf"), device=x.device)
        m = 0
        for stage in self.stages:
            specs = stage.specs if stage.attack.uses_gradient else (None,)
            for spec in specs:
                label = labels[m]
                rows = state.nonzero().squeeze(1)
                if rows.numel() == 0:
                    logger.debug("cascade member %s: nothing left to attack", label)
                    m += 1
                    continue
                started = time.perf_counter()
                member_seed = cascade_member_seed(base, label)
                warm = {}
                if m > 0 and getattr(stage.attack, "warm_start", False):
                    warm["x_init"] = best_x[rows]
                xa = stage.attack(
                    model, x[rows], y[rows], seed=member_seed, spec=spec, rows=rows, total=n, **warm
                )
                ok, margin = judge_logits(judge, xa, y[rows])
                closer = margin < best_margin[rows]
                best_x[rows[closer]] = xa[closer]
                best_margin[rows[closer]] = margin[closer]
                member_correct[m, rows] = ok.to(torch.int8)
                x_adv[rows] = xa
                state[rows[~ok]] = False
                self.stage_seconds[stage.name] += time.perf_counter() - started
                m += 1
        return EnsembleResult(
            x_adv=x_adv,
            correct=state,
            clean_correct=clean_correct,
            member_correct=member_correct,
            members=labels,
        )


def reliable_cascade(
    eps: float = 8 / 255,
    seed: int = 0,
    *,
    ensemble: str | Sequence[Any] = RELIABLE_ENSEMBLE,
    sapgd_spec: Any = RELIABLE_SAPGD_SPEC,
    targeted: str | Sequence[Any] | None = RELIABLE_TARGETED_SPECS,
    steps: int = 100,
    n_targets: int = 9,
    n_queries: int = 5000,
) -> Cascade:
    """The ``reliable`` cascade: SA-PGD, APGD-CE, APGD-T, Square, RayS.

    Stages (each on the survivors of the previous ones):

    1. ``sapgd``: SA-PGD, ``steps`` iterations, CE loss, under ``sapgd_spec`` (an adaptive surrogate);
    2. ``apgd-ce``: APGD-CE, ``steps`` iterations, over ``ensemble`` (a member-set name or specs);
    3. ``apgd-t``: APGD-T, ``n_targets`` targets x ``steps`` iterations, over ``targeted`` (a member-set
       name or specs; ``None`` = the same specs as ``apgd-ce``);
    4. ``square``: Square Attack, margin loss, ``n_queries`` queries per draw: one draw per
       :data:`RELIABLE_SQUARE_P_INITS` value and one warm-started from the cascade's best point, ties
       accepted (gradient-free, score-based);
    5. ``rays``: RayS, ``n_queries`` queries (gradient-free, label-only).

    The verdict is the same in any stage order, since a sample must survive every member of every stage
    and each member's random draws depend only on the seed, its label and the sample's row. The order only
    sets the cost: SA-PGD under ASSG comes first because it breaks most per gradient evaluation (45 of the
    49 samples the cascade broke on the digits-dvs demo runs, for 100 evaluations per sample against 2,200
    for the 22-member APGD-CE), so fewer samples reach the expensive ensemble stages.

    Raises:
        UserInputError: an unknown member-set name, an empty ensemble, ``steps``/``n_targets``/
            ``n_queries`` < 1.
    """
    specs = _specs(ensemble)
    targeted_specs = specs if targeted is None else _specs(targeted)
    return Cascade(
        [
            Stage("sapgd", SAPGD(eps, steps=steps, loss="ce", seed=seed), (sapgd_spec,)),
            Stage("apgd-ce", APGD(eps, steps=steps, loss="ce", seed=seed), specs),
            Stage("apgd-t", APGDT(eps, steps=steps, n_targets=n_targets, seed=seed), targeted_specs),
            Stage("square", Square(eps, n_queries=n_queries, p_init=RELIABLE_SQUARE_P_INITS, warm_start=True,
                                   accept_ties=True, seed=seed), (None,)),
            Stage("rays", RayS(eps, n_queries=n_queries, seed=seed), (None,)),
        ]
    )


def exhaustive_cascade(
    eps: float = 8 / 255,
    seed: int = 0,
    *,
    ensemble: str | Sequence[Any] = RELIABLE_ENSEMBLE,
    sapgd_spec: Any = RELIABLE_SAPGD_SPEC,
    steps: int = 100,
    n_targets: int = 9,
    n_queries: int = 5000,
) -> Cascade:
    """The ``exhaustive`` cascade: :func:`reliable_cascade` with APGD-T over the whole ``ensemble`` too."""
    return reliable_cascade(eps, seed, ensemble=ensemble, sapgd_spec=sapgd_spec, targeted=None, steps=steps,
                            n_targets=n_targets, n_queries=n_queries)


def _specs(members: str | Sequence[Any]) -> tuple[Any, ...]:
    if isinstance(members, str):
        specs = tuple(s for s in ensemble_specs(members) if GradSpec.parse(s).mode not in BATCH_COUPLED_MODES)
    else:
        specs = tuple(members)
    if not specs:
        raise UserInputError("a cascade stage needs at least one gradient spec")
    return specs
