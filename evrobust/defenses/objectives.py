"""Training objectives by defense name: vanilla, SR, AT, SR* and RAT, behind one configuration.

=========  ===============================================  ============================
name       loss on a batch                                   after each optimizer step
=========  ===============================================  ============================
vanilla    CE(f(x), y)                                       -
sr         CE(f(x), y) + lam * penalty(D(x))                 -
at         CE(f(x_adv), y)                                   -
sr_star    CE(f(x_adv), y) + lam * penalty(D(x_adv))         -
rat        CE(f(x_adv), y)                                   Parseval retraction (beta)
=========  ===============================================  ============================

``x_adv`` is PGD (random start) or FGSM, crafted in eval mode (:mod:`evrobust.defenses.adversarial`);
``D`` is the SR finite difference (:mod:`evrobust.defenses.sr`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.defenses.adversarial import adversarial_examples, check_attack_arguments
from evrobust.defenses.rat import DEFAULT_BETA, parseval_retraction
from evrobust.defenses.sr import check_sr_arguments, sr_loss
from evrobust.errors import UserInputError

DEFENSES: tuple[str, ...] = ("vanilla", "sr", "at", "sr_star", "rat")


@dataclass(frozen=True)
class DefenseConfig:
    """What a defense does on each training step; validated on construction.

    Attributes:
        name: one of :data:`DEFENSES`.
        lam: SR weight (used by ``sr`` and ``sr_star``; >= 0).
        h: SR finite-difference step (> 0).
        penalty: SR penalty ``l2sq`` (mean D^2, released code) or ``l1`` (mean |D|, paper Eq. 14).
        at_method: ``pgd`` (random start) or ``fgsm`` (used by ``at``, ``sr_star`` and ``rat``).
        at_eps: L-inf radius of the training attack in [0, 1] input units.
        at_step: PGD step size.
        at_steps: PGD iterations.
        rat_beta: Parseval retraction strength (``rat`` only).
    """

    name: str = "vanilla"
    lam: float = 0.0
    h: float = 0.01
    penalty: str = "l2sq"
    at_method: str = "pgd"
    at_eps: float = 2 / 255
    at_step: float = 0.01
    at_steps: int = 5
    rat_beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if self.name not in DEFENSES:
            raise UserInputError(f"unknown defense {self.name!r}; choose one of {', '.join(DEFENSES)}")
        check_sr_arguments(self.lam, self.h, self.penalty)
        check_attack_arguments(self.at_method, self.at_eps, self.at_step, self.at_steps)
        if not self.rat_beta >= 0.0:
            raise UserInputError(f"RAT beta must be >= 0 (got {self.rat_beta}); default {DEFAULT_BETA}")

    @property
    def uses_sr(self) -> bool:
        """Whether the loss has the SR term."""
        return self.name in ("sr", "sr_star")

    @property
    def uses_adversarial(self) -> bool:
        """Whether the loss is computed on adversarial examples."""
        return self.name in ("at", "sr_star", "rat")

    @property
    def uses_retraction(self) -> bool:
        """Whether a Parseval retraction follows each optimizer step."""
        return self.name == "rat"

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable view."""
        return asdict(self)


def defense_loss(
    model: nn.Module, x: Tensor, y: Tensor, config: DefenseConfig, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """The training loss of ``config.name`` on one batch.

    Args:
        model: maps ``x`` to logits ``[N, K]`` (in training mode during training).
        x: ``[N, ...]`` clean inputs in [0, 1].
        y: ``[N]`` int64 labels.
        config: the defense.
        generator: optional RNG for the PGD random start.

    Returns:
        dict with ``loss``, ``ce`` and ``reg`` (scalars; ``reg`` is 0 without SR) and ``logits`` ``[N, K]``
        of the batch the loss was computed on (adversarial for AT-type defenses).
    """
    if config.uses_adversarial:
        x = adversarial_examples(
            model, x, y, config.at_method, config.at_eps, config.at_step, config.at_steps, generator
        )
    if config.uses_sr:
        out = sr_loss(model, x, y, config.lam, config.h, config.penalty)
        return {"loss": out["loss"], "ce": out["ce"], "reg": out["reg"].detach(), "logits": out["logits"]}
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    return {"loss": ce, "ce": ce, "reg": torch.zeros((), device=ce.device), "logits": logits}


def after_optimizer_step(
    model: nn.Module, config: DefenseConfig, generator: torch.Generator | None = None
) -> None:
    """Per-step weight post-processing: the Parseval retraction for RAT, nothing otherwise."""
    if config.uses_retraction:
        parseval_retraction(model, config.rat_beta, generator=generator)


class DefenseObjective(nn.Module):
    """``model`` plus its defense as one module whose ``forward(x, y)`` returns :func:`defense_loss`.

    Wrapping the whole objective lets DistributedDataParallel see exactly one forward call per backward,
    although SR runs the network twice and AT runs it ``steps + 1`` times per training step.
    """

    def __init__(self, model: nn.Module, config: DefenseConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Loss dict for the batch ``x`` ``[N, ...]``, ``y`` ``[N]``."""
        return defense_loss(self.model, x, y, self.config)
