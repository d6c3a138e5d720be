"""TRADES for spiking networks (Zhang et al. 2019; SNN setting of Wang et al. 2025, arXiv 2512.22522).

``loss = CE(f(x), y) + beta * tau^2 * KL(softmax(f(x) / tau) || softmax(f(x') / tau))`` with the KL averaged
over the batch (summed over classes, divided by N), where ``x'`` maximises the same KL in the eps-ball:
``x'_0 = clip(x + U(-eps/2, eps/2), 0, 1)``, then ``steps`` times
``x'_{i+1} = clip(proj_eps(x'_i + step * sign(grad_x' KL)), 0, 1)``.

Defaults follow the authors' TRADES command (README of craree/Towards-Reliable-Evaluation-...: ``--eps 8
--alpha 3 --pgd_iters 4 --beta 5``; temperature 2 and the factor 4 = tau^2 in ``train.py`` line 188 and
``utils.py`` line 193). Crafting runs in eval mode (BatchNorm frozen, as evrobust's AT does); the loss's two
passes run in the model's own mode. See docs/architecture.md for every difference from the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.defenses.adversarial import check_attack_arguments, frozen_eval
from evrobust.errors import UserInputError

DEFAULT_BETA = 5.0
DEFAULT_TAU = 2.0
DEFAULT_EPS = 8 / 255
DEFAULT_STEP = 3 / 255
DEFAULT_STEPS = 4


def check_trades_arguments(beta: float, tau: float) -> None:
    """Raise :class:`UserInputError` unless ``beta >= 0`` and ``tau > 0`` (finite)."""
    if not (beta >= 0.0 and beta < float("inf")):  # also rejects NaN
        raise UserInputError(f"TRADES beta must be a finite number >= 0 (got {beta}); the reference uses 5")
    if not (tau > 0.0 and tau < float("inf")):
        raise UserInputError(
            f"TRADES temperature must be a finite number > 0 (got {tau}); the reference uses 2"
        )


def trades_kl(clean_logits: Tensor, adv_logits: Tensor, tau: float = DEFAULT_TAU) -> Tensor:
    """``tau^2 * (1/N) * sum_n KL(softmax(clean_n / tau) || softmax(adv_n / tau))`` (nats; scalar).

    Args:
        clean_logits: ``[N, K]`` logits on the clean batch (the target distribution; not detached here).
        adv_logits: ``[N, K]`` logits on the perturbed batch.
        tau: softmax temperature.
    """
    log_p_clean = F.log_softmax(clean_logits / tau, dim=1)
    log_p_adv = F.log_softmax(adv_logits / tau, dim=1)
    kl = F.kl_div(log_p_adv, log_p_clean, reduction="sum", log_target=True)
    return kl * (tau * tau) / clean_logits.shape[0]


def trades_examples(
    model: nn.Module,
    x: Tensor,
    eps: float = DEFAULT_EPS,
    step: float = DEFAULT_STEP,
    steps: int = DEFAULT_STEPS,
    tau: float = DEFAULT_TAU,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The TRADES inner maximisation: sign-gradient ascent on the KL to the clean prediction.

    Args:
        model: maps ``x`` to logits ``[N, K]``; temporarily put in eval mode.
        x: ``[N, ...]`` clean inputs in [0, 1].
        eps: L-inf radius in input units (8/255 in the reference).
        step: step size per iteration (3/255).
        steps: iterations (4).
        tau: temperature of the KL (2).
        generator: RNG of the uniform start (default: the global torch RNG).

    Returns:
        ``[N, ...]`` detached inputs with ``|x' - x| <= eps`` and values in [0, 1].
    """
    check_attack_arguments("pgd", eps, step, steps)
    x = x.detach()
    lower = (x - eps).clamp_(0.0, 1.0)
    upper = (x + eps).clamp_(0.0, 1.0)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_adv = torch.minimum(torch.maximum(x + (noise - 0.5) * eps, lower), upper)  # U(-eps/2, eps/2)
    with frozen_eval(model), torch.no_grad():
        clean = model(x)
    with frozen_eval(model):
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            kl = trades_kl(clean, model(x_adv), tau)
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = torch.minimum(torch.maximum(x_adv.detach() + step * grad.sign(), lower), upper)
    return x_adv.detach()


def trades_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    beta: float = DEFAULT_BETA,
    tau: float = DEFAULT_TAU,
    eps: float = DEFAULT_EPS,
    step: float = DEFAULT_STEP,
    steps: int = DEFAULT_STEPS,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The TRADES objective on one batch (see the module docstring).

    The weight gradient flows through both passes (the clean distribution is not detached, as in the
    reference's training loss). Parameter ``.grad`` fields are not touched.

    Returns:
        dict with ``loss``, ``ce`` (clean cross-entropy), ``reg`` (the tau^2-scaled KL, before ``beta``),
        ``logits`` ``[N, K]`` on the clean batch and ``x_adv``.
    """
    check_trades_arguments(beta, tau)
    x_adv = trades_examples(model, x, eps, step, steps, tau, generator)
    logits = model(x)
    adv_logits = model(x_adv)
    ce = F.cross_entropy(logits, y)
    kl = trades_kl(logits, adv_logits, tau)
    return {"loss": ce + beta * kl, "ce": ce, "reg": kl, "logits": logits, "x_adv": x_adv}
