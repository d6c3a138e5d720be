"""Adversarial training examples: PGD with random start and FGSM, crafted with frozen BatchNorm.

Training-time attacks (paper Appendix D, Table 5): CIFAR uses PGD-5 with eps 2/255 and step 0.01 from a
uniform random start; CIFAR10-DVS uses FGSM with eps 2/255. Examples are crafted with the model in eval
mode (BatchNorm uses its running statistics and does not update them), as torchattacks does in the
authors' code, and the previous train/eval mode of every submodule is restored afterwards. Gradients are
taken with :func:`torch.autograd.grad` with respect to the input only, so parameter ``.grad`` fields are
never touched and no weight gradients are computed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.errors import UserInputError

AT_METHODS: tuple[str, ...] = ("pgd", "fgsm")


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each submodule's own ``training`` flag on exit.

    Restoring per submodule (not ``model.train(previous)``) keeps deliberately frozen parts frozen.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_attack_arguments(method: str, eps: float, step: float, steps: int) -> None:
    """Raise :class:`UserInputError` for an unknown method, eps outside [0, 1], step <= 0 or steps < 1."""
    if method not in AT_METHODS:
        choices = ", ".join(AT_METHODS)
        raise UserInputError(f"unknown adversarial-training attack {method!r}; choose one of {choices}")
    if not 0.0 <= eps <= 1.0:
        raise UserInputError(f"eps must lie in [0, 1] (pixel units; e.g. 2/255), got {eps}")
    if method == "pgd":
        if not step > 0.0:
            raise UserInputError(f"PGD step must be > 0 (got {step}); the paper uses 0.01")
        if steps < 1:
            raise UserInputError(f"PGD steps must be >= 1 (got {steps}); the paper uses 5")


def _input_gradient(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    """``d CE(f(x_adv), y) / d x_adv`` (summed CE: its sign is that of the mean, without the 1/N scale)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


def pgd_examples(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float = 2 / 255,
    step: float = 0.01,
    steps: int = 5,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L-inf PGD (Madry et al.) examples for training.

    ``x_0 = clip(x + U(-eps, eps), 0, 1)`` (or ``x`` without random start); then ``steps`` times
    ``x_{i+1} = clip(proj_eps(x_i + step * sign(grad CE)), 0, 1)``.

    Args:
        model: maps ``x`` to logits ``[N, K]``; temporarily put in eval mode.
        x: ``[N, ...]`` clean inputs in [0, 1].
        y: ``[N]`` int64 labels.
        eps: L-inf radius in input units (2/255 for training in the paper).
        step: step size per iteration (0.01 in the paper).
        steps: number of iterations (5 in the paper).
        random_start: start from a uniform point in the eps-ball.
        generator: optional RNG for the random start (default: the global torch RNG).

    Returns:
        ``[N, ...]`` detached adversarial inputs with ``|x_adv - x| <= eps`` and values in [0, 1].
    """
    check_attack_arguments("pgd", eps, step, steps)
    x = x.detach()
    lower = (x - eps).clamp_(0.0, 1.0)
    upper = (x + eps).clamp_(0.0, 1.0)
    with frozen_eval(model):
        if random_start:
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x_adv = torch.minimum(torch.maximum(x + (2.0 * noise - 1.0) * eps, lower), upper)
        else:
            x_adv = x.clone()
        for _ in range(steps):
            grad = _input_gradient(model, x_adv, y)
            x_adv = torch.minimum(torch.maximum(x_adv + step * grad.sign(), lower), upper)
    return x_adv.detach()


def fgsm_examples(model: nn.Module, x: Tensor, y: Tensor, eps: float = 2 / 255) -> Tensor:
    """FGSM (Goodfellow et al.) examples: ``clip(x + eps * sign(grad CE), 0, 1)``, crafted in eval mode.

    Args:
        model: maps ``x`` to logits ``[N, K]``.
        x: ``[N, ...]`` clean inputs in [0, 1].
        y: ``[N]`` int64 labels.
        eps: L-inf step (2/255 for CIFAR10-DVS training in the paper).

    Returns:
        ``[N, ...]`` detached adversarial inputs.
    """
    check_attack_arguments("fgsm", eps, 1.0, 1)
    x = x.detach()
    with frozen_eval(model):
        grad = _input_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp_(0.0, 1.0).detach()


def adversarial_examples(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    method: str = "pgd",
    eps: float = 2 / 255,
    step: float = 0.01,
    steps: int = 5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dispatch to :func:`pgd_examples` (random start) or :func:`fgsm_examples` by ``method``."""
    check_attack_arguments(method, eps, step, steps)
    if method == "fgsm":
        return fgsm_examples(model, x, y, eps)
    return pgd_examples(model, x, y, eps, step, steps, random_start=True, generator=generator)


def adversarial_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    method: str = "pgd",
    eps: float = 2 / 255,
    step: float = 0.01,
    steps: int = 5,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Adversarial training objective: cross-entropy on examples crafted against the current model.

    Returns:
        dict with ``loss`` = ``ce`` (scalar), ``logits`` ``[N, K]`` on the adversarial batch (model in its
        own mode, i.e. training mode during training) and ``x_adv``.
    """
    x_adv = adversarial_examples(model, x, y, method, eps, step, steps, generator)
    logits = model(x_adv)
    ce = F.cross_entropy(logits, y)
    return {"loss": ce, "ce": ce, "logits": logits, "x_adv": x_adv}
