"""Projected gradient descent on the CE loss, L-inf (Madry et al. 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from evrobust.attacks.base import Attack, RandomSource, _check_positive, input_gradient, project_linf

__all__ = ["PGD"]


class PGD(Attack):
    """L-inf PGD: optional uniform random start in the eps ball, then ``steps`` sign-gradient steps.

    ``x_{k+1} = P(x_k + alpha * sign(grad_x CE(f(x_k), y)))`` with ``P`` the projection onto the eps ball
    ∩ [0,1]. Returns the last iterate (as Madry et al. and torchattacks.PGD do), so results are comparable to
    published PGD numbers; the per-sample worst case over attacks is taken by the evaluation.

    Args:
        eps: L-inf radius (8/255 in the paper).
        alpha: step size (2.55/255 in the paper's evaluation).
        steps: number of steps (PGD10/30/50).
        random_start: start from ``x + U(-eps, eps)`` (clipped to [0,1]) instead of ``x``.
        seed: seed of the random start.
    """

    name = "pgd"

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float = 2.55 / 255,
        steps: int = 10,
        random_start: bool = True,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.alpha = _check_positive("PGD alpha", alpha)
        self.steps = _check_positive("PGD steps", steps, integer=True)
        self.random_start = bool(random_start)

    def describe(self) -> dict[str, Any]:
        extra = {"alpha": self.alpha, "steps": self.steps, "random_start": self.random_start}
        return {**super().describe(), **extra}

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        x_adv = x
        if self.random_start:
            x_adv = (x + self.eps * rng.uniform(x)).clamp(0.0, 1.0)
        for _ in range(self.steps):
            _, _, grad = input_gradient(model, x_adv, y)
            x_adv = project_linf(x_adv + self.alpha * grad.sign(), x, self.eps)
        return x_adv
