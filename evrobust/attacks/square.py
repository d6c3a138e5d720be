"""Square Attack, L-inf (Andriushchenko et al., ECCV 2020): score-based random search, no gradients.

It only reads the model's logits, so a model whose input gradient is zero, wrong or obfuscated (gradient
masking) cannot mislead it; AutoAttack runs it last for that reason, and a Square Attack that beats the
white-box attacks is the classic masking symptom
(:func:`evrobust.analysis.masking.check_whitebox_below_square`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import Attack, RandomSource, _check_positive, project_linf
from evrobust.errors import UserInputError

__all__ = ["SQUARE_LOSSES", "Square", "square_fraction"]

SQUARE_LOSSES: tuple[str, ...] = ("margin", "ce")

# (upper bound of the rescaled iteration, divisor of p_init): the piecewise-constant schedule of the paper,
# defined on a budget of 10 000 queries and rescaled to the actual budget.
_SCHEDULE: tuple[tuple[int, int], ...] = (
    (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
)


def square_fraction(iteration: int, n_queries: int, p_init: float) -> float:
    """Fraction ``p`` of the input's elements the square covers at ``iteration`` (0-based) of ``n_queries``.

    ``p_init`` up to rescaled iteration 10, then halved at 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
    (iterations rescaled to a budget of 10 000: ``int(iteration / n_queries * 10000)``).
    """
    it = int(iteration / n_queries * 10000)
    for bound, divisor in _SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def _margin_and_loss(logits: Tensor, y: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """``(margin, loss)`` per sample, both ``[m]``: margin = ``z_y - max_{j != y} z_j`` (< 0: fooled).

    The attack *minimises* the loss: the margin itself, or ``-CE``.
    """
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    margin = z_y - others
    if loss == "margin":
        return margin, margin
    return margin, -torch.nn.functional.cross_entropy(logits, y, reduction="none")


class Square(Attack):
    """Square Attack, L-inf, untargeted: random square-shaped updates at the eps-ball's vertices.

    The input is viewed as ``[N, C, H, W]`` (event frames ``[N, T, 2, H, W]`` as ``C = 2T`` channels). Start:
    ``x + eps * s`` with one random sign per (sample, channel, column) -- vertical stripes. Each iteration
    draws one square of side ``s = max(round(sqrt(p * C*H*W / C)), 1)`` at a random position and a random
    sign per channel (shared by the batch, as in the reference), moves every still-unbroken sample's current
    best point by ``2 eps * sign`` inside the square, projects it, and keeps it if the loss drops (or the
    sample becomes misclassified). ``p`` follows :func:`square_fraction`. A sample stops once fooled; the
    attack stops when every sample is fooled or after ``n_queries`` iterations (one model query each).

    Args:
        eps: L-inf radius.
        n_queries: iterations (queries per sample after the first), >= 1; 5000 as in AutoAttack.
        p_init: initial fraction of the input covered by the square (0.8 as in AutoAttack).
        loss: ``"margin"`` (default) or ``"ce"``.
        n_restarts: restarts on the samples not fooled.
    """

    name = "square"
    uses_gradient = False

    def __init__(
        self,
        eps: float = 8 / 255,
        n_queries: int = 5000,
        p_init: float = 0.8,
        loss: str = "margin",
        n_restarts: int = 1,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.n_queries = _check_positive("Square n_queries", n_queries, integer=True)
        self.p_init = float(p_init)
        if not 0.0 < self.p_init <= 1.0:
            raise UserInputError(f"Square p_init must be in (0, 1], got {p_init!r}")
        if loss not in SQUARE_LOSSES:
            raise UserInputError(f"unknown Square loss {loss!r}; valid choices: {', '.join(SQUARE_LOSSES)}")
        self.loss = loss
        self.n_restarts = _check_positive("Square n_restarts", n_restarts, integer=True)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "n_queries": self.n_queries,
            "p_init": self.p_init,
            "loss": self.loss,
            "n_restarts": self.n_restarts,
        }

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        if x.dim() < 4:
            raise UserInputError(
                f"Square needs image-like inputs [N,C,H,W] or [N,T,2,H,W], got shape {tuple(x.shape)}"
            )
        shape = x.shape
        x4 = x.reshape(shape[0], -1, shape[-2], shape[-1])

        def scores(z4: Tensor) -> Tensor:  # any number of rows
            # Square only reads logits: inference mode skips autograd's bookkeeping entirely (about a fifth
            # of a forward pass on the SNNs here); the clone makes the logits ordinary tensors again.
            with torch.inference_mode():
                logits = model(z4.reshape(z4.shape[0], *shape[1:]))
            return logits.clone()

        with torch.no_grad():
            still_correct = scores(x4).argmax(1) == y
            out = x4.clone()
            for _ in range(self.n_restarts):
                # Drawn for every row of the call (fixed per sample), before knowing which rows remain.
                stripes = rng.uniform(x4[:, :, :1, :]).sign()
                todo = still_correct.nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                x_best, fooled = self._single_run(scores, x4[todo], y[todo], stripes[todo], rng)
                out[todo] = x_best
                still_correct[todo[fooled]] = False
        return out.reshape(shape)

    def _single_run(
        self, scores: Any, x: Tensor, y: Tensor, stripes: Tensor, rng: RandomSource
    ) -> tuple[Tensor, Tensor]:
        """One run on ``x [m,C,H,W]``: ``(x_best [m,C,H,W], fooled [m] bool)``."""
        eps = self.eps
        c, h, w = x.shape[1:]
        x_best = (x + eps * stripes).clamp(0.0, 1.0)
        margin_min, loss_min = _margin_and_loss(scores(x_best), y, self.loss)
        gen = rng.generator  # batch-shared draws: the same for every sample whichever rows are attacked
        for i in range(self.n_queries):
            todo = (margin_min > 0).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            p = square_fraction(i, self.n_queries, self.p_init)
            s = max(int(round(math.sqrt(p * h * w))), 1)
            s = min(s, h, w)
            vh = int((h - s) * torch.rand((), generator=gen))
            vw = int((w - s) * torch.rand((), generator=gen))
            signs = (2.0 * torch.rand((c, 1, 1), generator=gen) - 1.0).sign().to(x.device, x.dtype)
            x_curr, best_curr = x[todo], x_best[todo]
            candidate = best_curr.clone()
            candidate[:, :, vh : vh + s, vw : vw + s] += 2.0 * eps * signs
            candidate = project_linf(candidate, x_curr, eps)
            margin, loss = _margin_and_loss(scores(candidate), y[todo], self.loss)
            improved = (loss < loss_min[todo]) | (margin <= 0)
            loss_min[todo] = torch.minimum(loss, loss_min[todo])
            margin_min[todo] = torch.where(improved, margin, margin_min[todo])
            x_best[todo[improved]] = candidate[improved]
        return x_best, margin_min <= 0
