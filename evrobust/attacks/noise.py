"""Random perturbation baseline: uniform noise in the eps-cube (paper Fig. 1, §5.6)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from evrobust.attacks.base import Attack, RandomSource

__all__ = ["UniformNoise"]


class UniformNoise(Attack):
    """``x_adv = clip(x + U(-eps, eps), 0, 1)``, element-wise i.i.d.; uses no gradient.

    An attack that does worse than this noise is not finding the gradient direction (a masking symptom).
    """

    name = "noise"
    uses_gradient = False

    def __init__(self, eps: float = 8 / 255, *, seed: int = 0, spec: Any = None) -> None:
        super().__init__(eps, seed=seed, spec=spec)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        return x + self.eps * rng.uniform(x)
