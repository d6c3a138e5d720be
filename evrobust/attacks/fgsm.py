"""Single-step sign-gradient attacks: FGSM (Goodfellow et al. 2015) and R+FGSM (Tramèr et al. 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from evrobust.attacks.base import Attack, RandomSource, _check_positive, input_gradient, project_linf
from evrobust.errors import UserInputError

__all__ = ["FGSM", "RFGSM"]


class FGSM(Attack):
    """``x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)``. Deterministic (no random draw)."""

    name = "fgsm"

    def __init__(self, eps: float = 8 / 255, *, seed: int = 0, spec: Any = None) -> None:
        super().__init__(eps, seed=seed, spec=spec)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        _, _, grad = input_gradient(model, x, y)
        return x + self.eps * grad.sign()


class RFGSM(Attack):
    """R+FGSM: a random sign step of size ``alpha`` first, then sign-gradient steps (Tramèr et al. 2018).

    With the defaults (``alpha = eps/2``, one step of ``eps - alpha``) this is the attack of the paper that
    defines it: ``x' = x + alpha * sign(N(0, I))``, ``x_adv = x' + (eps - alpha) * sign(grad_x' CE)``, which
    starts off the data point where the loss surface of a single-step adversarially trained model is locally
    flattened. ``steps > 1`` takes ``steps`` steps of ``step_size`` (default ``(eps - alpha) / steps``),
    each projected onto the eps ball. torchattacks 3.2.7's ``RFGSM(eps, alpha=8/255, steps=1)``, which the
    paper's authors ran with ``eps = 8/255``, is ``alpha = eps, steps = 1, step_size = eps``: a random sign
    step of eps, then a full sign-gradient step of eps projected back to the ball (registry name ``rfgsm``;
    Tramèr's form is ``rfgsm-tramer``).

    Args:
        eps: L-inf radius.
        alpha: size of the random sign step, ``0 <= alpha < eps`` for the single-step form; default ``eps/2``.
        steps: number of gradient steps (>= 1).
        step_size: size of each gradient step; default ``(eps - alpha) / steps``.
    """

    name = "rfgsm"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 1,
        step_size: float | None = None,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.alpha = self.eps / 2 if alpha is None else float(alpha)
        if not 0.0 <= self.alpha <= self.eps:
            raise UserInputError(f"RFGSM alpha must be in [0, eps] = [0, {self.eps:.4g}], got {alpha!r}")
        self.steps = _check_positive("RFGSM steps", steps, integer=True)
        if step_size is None:
            self.step_size = (self.eps - self.alpha) / self.steps
        else:
            self.step_size = _check_positive("RFGSM step_size", step_size)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "alpha": self.alpha, "steps": self.steps, "step_size": self.step_size}

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        x_adv = (x + self.alpha * rng.normal(x).sign()).clamp(0.0, 1.0)
        for _ in range(self.steps):
            _, _, grad = input_gradient(model, x_adv, y)
            x_adv = project_linf(x_adv + self.step_size * grad.sign(), x, self.eps)
        return x_adv
