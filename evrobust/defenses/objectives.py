"""Training objectives by defense name, behind one configuration.

=========  =================================================================  ============================
name       loss on a batch                                                    around each optimizer step
=========  =================================================================  ============================
vanilla    CE(f(x), y)                                                        -
sr         CE(f(x), y) + lam * penalty(D(x))                                  -
at         CE(f(x_adv), y)                                                    -
sr_star    CE(f(x_adv), y) + lam * penalty(D(x_adv))                          -
rat        CE(f(x_adv), y)                                                    after: Parseval retraction
trades     CE(f(x), y) + beta tau^2 KL(p_tau(x) || p_tau(x'))                 -
dsd        the loss of its base (vanilla | at | trades; default at)           before: dominant deflation
dlif       kappa CE(f(x), y) + (1 - kappa) CE(f(x_adv), y) + alpha mean(Y^2)  -
tgo        CE(f(x), y) + lam_e mean max(0, delta - |V - theta|)               -
=========  =================================================================  ============================

``x_adv`` is PGD (random start) or FGSM, crafted in eval mode (:mod:`evrobust.defenses.adversarial`);
``D`` is the SR finite difference (:mod:`evrobust.defenses.sr`); ``x'`` the TRADES KL attack
(:mod:`evrobust.defenses.trades`); ``Y`` the DLIF perturbation dynamics (:mod:`evrobust.defenses.dlif`);
``V`` the membrane potentials of TGO (:mod:`evrobust.defenses.tgo`); deflation:
:mod:`evrobust.defenses.dsd`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.defenses import dlif, tgo, trades
from evrobust.defenses.adversarial import adversarial_examples, check_attack_arguments
from evrobust.defenses.dsd import dominant_singular_deflation
from evrobust.defenses.rat import DEFAULT_BETA, parseval_retraction
from evrobust.defenses.sr import check_sr_arguments, sr_loss
from evrobust.errors import UserInputError

DEFENSES: tuple[str, ...] = ("vanilla", "sr", "at", "sr_star", "rat", "trades", "dsd", "dlif", "tgo")
DSD_BASES: tuple[str, ...] = ("vanilla", "at", "trades")
ATTACK_DEFENSES: frozenset[str] = frozenset({"at", "sr_star", "rat", "dlif"})
"""Loss kinds that train on ``x_adv`` from ``--at-method`` (TRADES has its own KL attack)."""


def loss_kind(name: str, dsd_base: str = "at") -> str:
    """The loss a defense computes: its own name, or for ``dsd`` its base."""
    return dsd_base if name == "dsd" else name


def attack_defaults(name: str, dsd_base: str = "at") -> tuple[str, float, float, int]:
    """``(method, eps, step, steps)`` of the training attack by default for a defense.

    TRADES (also as DSD's base): the KL attack, eps 8/255, step 3/255, 4 steps (the reference's command).
    DLIF: FGSM at eps 4/255 (the reference's ``--eps 4``). Every other defense: PGD, eps 2/255, step 0.01,
    5 steps (paper Appendix D; CIFAR10-DVS switches to FGSM in the training configuration).
    """
    kind = loss_kind(name, dsd_base)
    if kind == "trades":
        return "pgd", trades.DEFAULT_EPS, trades.DEFAULT_STEP, trades.DEFAULT_STEPS
    if kind == "dlif":
        return "fgsm", dlif.DEFAULT_EPS, 0.01, 5
    return "pgd", 2 / 255, 0.01, 5


@dataclass(frozen=True)
class DefenseConfig:
    """What a defense does on each training step; validated, ``None`` attack fields filled, on construction.

    Attributes:
        name: one of :data:`DEFENSES`.
        lam: SR weight (used by ``sr`` and ``sr_star``; >= 0).
        h: SR finite-difference step (> 0).
        penalty: SR penalty ``l2sq`` (mean D^2, released code) or ``l1`` (mean |D|, paper Eq. 14).
        at_method: ``pgd`` (random start) or ``fgsm`` (``at``, ``sr_star``, ``rat``, ``dlif``, ``dsd`` on AT);
            None: :func:`attack_defaults`. TRADES always uses its KL attack (``pgd`` only).
        at_eps: L-inf radius of the training attack in [0, 1] input units (None: per defense).
        at_step: PGD / TRADES step size (None: per defense).
        at_steps: PGD / TRADES iterations (None: per defense).
        rat_beta: Parseval retraction strength (``rat`` only).
        trades_beta, trades_tau: TRADES weight of the KL term and softmax temperature.
        dsd_base: the loss DSD deflates the gradients of: ``vanilla``, ``at`` or ``trades``.
        dlif_kappa, dlif_alpha: DLIF share of the clean CE and weight of the perturbation energy.
        tgo_delta, tgo_lam, tgo_warmup: TGO margin (threshold units), final weight, warm-up share of the
            epochs.
        tgo_noise: TGO training membrane-noise standard deviation (0 = off).
    """

    name: str = "vanilla"
    lam: float = 0.0
    h: float = 0.01
    penalty: str = "l2sq"
    at_method: str | None = None
    at_eps: float | None = None
    at_step: float | None = None
    at_steps: int | None = None
    rat_beta: float = DEFAULT_BETA
    trades_beta: float = trades.DEFAULT_BETA
    trades_tau: float = trades.DEFAULT_TAU
    dsd_base: str = "at"
    dlif_kappa: float = dlif.DEFAULT_KAPPA
    dlif_alpha: float = dlif.DEFAULT_ALPHA
    tgo_delta: float = tgo.DEFAULT_DELTA
    tgo_lam: float = tgo.DEFAULT_LAM
    tgo_warmup: float = tgo.DEFAULT_WARMUP
    tgo_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in DEFENSES:
            raise UserInputError(f"unknown defense {self.name!r}; choose one of {', '.join(DEFENSES)}")
        if self.dsd_base not in DSD_BASES:
            raise UserInputError(f"unknown DSD base {self.dsd_base!r}; choose one of {', '.join(DSD_BASES)}")
        method, eps, step, steps = attack_defaults(self.name, self.dsd_base)
        for key, default in (("at_method", method), ("at_eps", eps), ("at_step", step), ("at_steps", steps)):
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)
        check_sr_arguments(self.lam, self.h, self.penalty)
        check_attack_arguments(self.at_method, self.at_eps, self.at_step, self.at_steps)
        if self.kind == "trades" and self.at_method != "pgd":
            raise UserInputError(
                "TRADES crafts with its own sign-gradient attack on the KL term; --at-method "
                f"{self.at_method} does not apply (its eps, step and steps: --at-eps, --at-step, --at-steps)"
            )
        if not self.rat_beta >= 0.0:
            raise UserInputError(f"RAT beta must be >= 0 (got {self.rat_beta}); default {DEFAULT_BETA}")
        trades.check_trades_arguments(self.trades_beta, self.trades_tau)
        dlif.check_dlif_arguments(self.dlif_kappa, self.dlif_alpha)
        tgo.check_tgo_arguments(self.tgo_delta, self.tgo_lam, self.tgo_warmup, self.tgo_noise)

    @property
    def kind(self) -> str:
        """The loss computed on each batch: the defense's name, or DSD's base."""
        return loss_kind(self.name, self.dsd_base)

    @property
    def uses_sr(self) -> bool:
        """Whether the loss has the SR term."""
        return self.name in ("sr", "sr_star")

    @property
    def uses_adversarial(self) -> bool:
        """Whether the loss is computed on ``--at-method`` examples only (AT-type defenses)."""
        return self.kind in ("at", "sr_star", "rat")

    @property
    def uses_attack(self) -> bool:
        """Whether the defense crafts perturbed inputs at all (AT-type, DLIF, TRADES)."""
        return self.kind in ATTACK_DEFENSES or self.kind == "trades"

    @property
    def uses_retraction(self) -> bool:
        """Whether a Parseval retraction follows each optimizer step."""
        return self.name == "rat"

    @property
    def uses_deflation(self) -> bool:
        """Whether the dominant singular component of each weight gradient is removed before the step."""
        return self.name == "dsd"

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable view."""
        return asdict(self)


def defense_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: DefenseConfig,
    generator: torch.Generator | None = None,
    progress: float | None = None,
) -> dict[str, Tensor]:
    """The training loss of ``config.name`` on one batch.

    Args:
        model: maps ``x`` to logits ``[N, K]`` (in training mode during training).
        x: ``[N, ...]`` clean inputs in [0, 1].
        y: ``[N]`` int64 labels.
        config: the defense.
        generator: optional RNG for the PGD / TRADES random start.
        progress: ``e / E`` in epoch ``e`` of ``E``, for TGO's lambda warm-up (None: the full lambda).

    Returns:
        dict with ``loss``, ``ce`` and ``reg`` (scalars; ``reg``, detached, is the defense's extra term before
        its weight, 0 without one) and ``logits`` ``[N, K]`` of the batch the loss was computed on
        (adversarial for AT-type defenses, clean for TRADES, DLIF and TGO).
    """
    kind = config.kind
    if kind == "trades":
        out = trades.trades_loss(
            model, x, y, config.trades_beta, config.trades_tau, config.at_eps, config.at_step,
            config.at_steps, generator,
        )  # fmt: skip
        return _summary(out)
    if kind == "dlif":
        out = dlif.dlif_loss(
            model, x, y, config.dlif_kappa, config.dlif_alpha, config.at_method, config.at_eps,
            config.at_step, config.at_steps, generator,
        )  # fmt: skip
        return _summary(out)
    if kind == "tgo":
        lam = tgo.tgo_lambda(config.tgo_lam, config.tgo_warmup, progress)
        return _summary(tgo.tgo_loss(model, x, y, lam, config.tgo_delta, config.tgo_noise))
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


def _summary(out: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"loss": out["loss"], "ce": out["ce"], "reg": out["reg"].detach(), "logits": out["logits"]}


def before_optimizer_step(model: nn.Module, config: DefenseConfig) -> None:
    """Gradient post-processing between backward and step: DSD's deflation, nothing otherwise."""
    if config.uses_deflation:
        dominant_singular_deflation(model)


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
        self.progress: float | None = None  # epoch / epochs, set by the training loop (TGO's warm-up)

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Loss dict for the batch ``x`` ``[N, ...]``, ``y`` ``[N]``."""
        return defense_loss(self.model, x, y, self.config, progress=self.progress)
