"""Square Attack, L-inf (Andriushchenko et al., ECCV 2020): score-based random search, no gradients.

It only reads the model's logits, so a model whose input gradient is zero, wrong or obfuscated (gradient
masking) cannot mislead it; AutoAttack runs it last for that reason, and a Square Attack that beats the
white-box attacks is the classic masking symptom
(:func:`evrobust.analysis.masking.check_whitebox_below_square`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def _draw_seed(seed: int, draw: int, restart: int) -> int:
    """Seed of draw ``draw`` in restart ``restart``: a stable function of the call's seed (draw 0 of restart 0
    uses the call's own stream, so a one-draw Square is unchanged)."""
    return (int(seed) * 1_000_003 + 7_919 * (draw + 1) + 104_729 * restart) % (2**62)


class Square(Attack):
    """Square Attack, L-inf, untargeted: random square-shaped updates at the eps-ball's vertices.

    The input is viewed as ``[N, C, H, W]`` (event frames ``[N, T, 2, H, W]`` as ``C = 2T`` channels). Start:
    ``x + eps * s`` with one random sign per (sample, channel, column) -- vertical stripes. Each iteration
    draws one square of side ``s = max(round(sqrt(p * C*H*W / C)), 1)`` at a random position and a random
    sign per channel (shared by the batch, as in the reference), moves every still-unbroken sample's current
    best point by ``2 eps * sign`` inside the square, projects it, and keeps it if the loss drops (or the
    sample becomes misclassified). ``p`` follows :func:`square_fraction`, whose schedule is rescaled to
    ``n_queries`` (AutoAttack's own schedule stops shrinking after 8,000 iterations unless rescaled). A sample
    stops once fooled; the attack stops when every sample is fooled or after ``n_queries`` iterations.

    Beyond the reference (all off by default, so that the default is AutoAttack's Square):

    - ``p_init`` may be a sequence: one independent *draw* per value (its own stripes, square positions and
      signs), all draws advanced together, one batched forward pass per iteration. A sample is broken when
      any draw breaks it (its other draws stop then). Small ``p_init`` (0.3, as the Square authors used on
      masked models) searches locally, large (0.8) globally.
    - ``warm_start``: the caller may pass ``x_init`` (e.g. the cascade's best point so far per sample); one
      more draw starts there, with the smallest ``p_init``. Without ``x_init`` nothing changes.
    - ``accept_ties``: keep a candidate whose loss *equals* the best so far. The spike-count readouts of
      SNNs make the margin piecewise constant, so most candidates tie; accepting them lets the search walk
      across a plateau instead of standing still on it.

    Queries per sample: ``n_queries`` per draw and restart (plus one per draw for the start).

    Args:
        eps: L-inf radius.
        n_queries: iterations per draw (queries per sample and draw after the first), >= 1; 5000 as in
            AutoAttack.
        p_init: initial fraction of the input covered by the square (0.8 as in AutoAttack), or a sequence of
            them (one draw each).
        loss: ``"margin"`` (default) or ``"ce"``.
        n_restarts: restarts on the samples not fooled (each restart draws anew).
        warm_start: run one more draw from ``x_init`` when the caller gives one.
        accept_ties: accept candidates whose loss ties the best.
    """

    name = "square"
    uses_gradient = False
    supports_warm_start = True

    def __init__(
        self,
        eps: float = 8 / 255,
        n_queries: int = 5000,
        p_init: float | Sequence[float] = 0.8,
        loss: str = "margin",
        n_restarts: int = 1,
        *,
        warm_start: bool = False,
        accept_ties: bool = False,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.n_queries = _check_positive("Square n_queries", n_queries, integer=True)
        values = (p_init,) if isinstance(p_init, int | float) else tuple(p_init)
        if not values:
            raise UserInputError("Square p_init needs at least one value")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < float(value) <= 1.0:
                raise UserInputError(f"Square p_init must be in (0, 1], got {value!r}")
        self.p_inits = tuple(float(v) for v in values)
        self.p_init = self.p_inits[0]
        if loss not in SQUARE_LOSSES:
            raise UserInputError(f"unknown Square loss {loss!r}; valid choices: {', '.join(SQUARE_LOSSES)}")
        self.loss = loss
        self.n_restarts = _check_positive("Square n_restarts", n_restarts, integer=True)
        self.warm_start = bool(warm_start)
        self.accept_ties = bool(accept_ties)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "n_queries": self.n_queries,
            "p_init": self.p_init if len(self.p_inits) == 1 else list(self.p_inits),
            "loss": self.loss,
            "n_restarts": self.n_restarts,
            "warm_start": self.warm_start,
            "accept_ties": self.accept_ties,
        }

    def perturb(
        self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource, x_init: Tensor | None = None
    ) -> Tensor:
        if x.dim() < 4:
            raise UserInputError(
                f"Square needs image-like inputs [N,C,H,W] or [N,T,2,H,W], got shape {tuple(x.shape)}"
            )
        shape = x.shape
        x4 = x.reshape(shape[0], -1, shape[-2], shape[-1])
        init4 = None if x_init is None or not self.warm_start else x_init.reshape(x4.shape)

        def scores(z4: Tensor) -> Tensor:  # any number of rows
            # Square only reads logits: inference mode skips autograd's bookkeeping entirely (about a fifth
            # of a forward pass on the SNNs here); the clone makes the logits ordinary tensors again.
            with torch.inference_mode():
                logits = model(z4.reshape(z4.shape[0], *shape[1:]))
            return logits.clone()

        with torch.no_grad():
            still_correct = scores(x4).argmax(1) == y
            out = x4.clone()
            for restart in range(self.n_restarts):
                # One stream per draw; draw 0 of restart 0 is the call's own stream (the reference Square).
                # Every stream draws for every row of the call (fixed per sample), before knowing which rows
                # remain, so a sample's outcome does not depend on the others.
                streams = [rng if d == 0 and restart == 0 else
                           RandomSource(_draw_seed(rng.seed, d, restart), rng.total, rng.rows, rng.device)
                           for d in range(len(self.p_inits) + (init4 is not None))]
                starts = [(x4 + self.eps * streams[d].uniform(x4[:, :, :1, :]).sign()).clamp(0.0, 1.0)
                          for d in range(len(self.p_inits))]
                p_inits = list(self.p_inits)
                if init4 is not None:
                    starts.append(project_linf(init4.clone(), x4, self.eps))
                    p_inits.append(min(self.p_inits))
                todo = still_correct.nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                generators = [s.generator for s in streams]
                x_best, fooled = self._run_draws(
                    scores, x4[todo], y[todo], [s[todo] for s in starts], generators, p_inits
                )
                out[todo] = x_best
                still_correct[todo[fooled]] = False
        return out.reshape(shape)

    def _run_draws(
        self,
        scores: Any,
        x: Tensor,
        y: Tensor,
        starts: list[Tensor],
        generators: list[torch.Generator],
        p_inits: list[float],
    ) -> tuple[Tensor, Tensor]:
        """All draws on ``x [m,C,H,W]`` together: ``(x_best [m,C,H,W], fooled [m] bool)``.

        Draw ``d`` starts at ``starts[d]`` and takes its square positions and signs from ``generators[d]``
        (one draw per iteration whether or not it still has rows, so the stream never depends on the batch).
        """
        eps = self.eps
        n_draws, m = len(starts), x.shape[0]
        c, h, w = x.shape[1:]
        x_best = torch.stack(starts)  # [D, m, C, H, W]
        flat = x_best.reshape(n_draws * m, c, h, w)
        margin, loss = _margin_and_loss(scores(flat), y.repeat(n_draws), self.loss)
        margin_min, loss_min = margin.reshape(n_draws, m), loss.reshape(n_draws, m)
        for i in range(self.n_queries):
            active = (margin_min > 0) & ~(margin_min <= 0).any(0, keepdim=True)  # a fooled sample stops
            if not bool(active.any()):
                break
            candidates, where = [], []
            for d in range(n_draws):
                gen = generators[d]
                p = square_fraction(i, self.n_queries, p_inits[d])
                s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
                vh = int((h - s) * torch.rand((), generator=gen))
                vw = int((w - s) * torch.rand((), generator=gen))
                signs = (2.0 * torch.rand((c, 1, 1), generator=gen) - 1.0).sign().to(x.device, x.dtype)
                rows = active[d].nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                candidate = x_best[d, rows].clone()
                candidate[:, :, vh : vh + s, vw : vw + s] += 2.0 * eps * signs
                candidates.append(project_linf(candidate, x[rows], eps))
                where.append((d, rows))
            batch = torch.cat(candidates)
            labels = torch.cat([y[rows] for _, rows in where])
            margin_all, loss_all = _margin_and_loss(scores(batch), labels, self.loss)
            start = 0
            for (d, rows), candidate in zip(where, candidates, strict=True):
                stop = start + rows.numel()
                margin, loss = margin_all[start:stop], loss_all[start:stop]
                start = stop
                better = loss <= loss_min[d, rows] if self.accept_ties else loss < loss_min[d, rows]
                improved = better | (margin <= 0)
                loss_min[d, rows] = torch.minimum(loss, loss_min[d, rows])
                margin_min[d, rows] = torch.where(improved, margin, margin_min[d, rows])
                x_best[d, rows[improved]] = candidate[improved]
        fooled_draws = margin_min <= 0  # [D, m]
        fooled = fooled_draws.any(0)
        # The fooling draw where there is one (the first), else the draw with the lowest loss.
        pick = torch.where(fooled, fooled_draws.to(torch.int8).argmax(0), loss_min.argmin(0))
        return x_best[pick, torch.arange(m, device=x.device)], fooled
