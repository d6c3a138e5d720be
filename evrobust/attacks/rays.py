"""RayS (Chen & Gu, KDD 2020): a hard-label attack, L-inf, that searches the ray direction to the boundary.

It reads only the predicted label, never a logit or a gradient, so neither gradient masking nor a flat or
saturated loss (the piecewise-constant spike-count readouts of SNNs) can mislead it: it needs nothing but
the decision. That makes it the second gradient-free leg of the reliable evaluation, beside the score-based
Square.

The search: an adversarial example on the ray ``x + r * d`` with ``d`` in ``{-1, +1}^D`` has L-inf distance
``r`` (before clipping to [0, 1]), so the attack looks for the sign vector ``d`` whose decision boundary is
nearest. It keeps, per sample, the best direction and its boundary radius ``r*``. Stage ``s`` cuts the
flattened input into ``2^s`` blocks and flips the sign of one block at a time; a flip is kept when the
flipped ray is already adversarial at the current ``r*`` (one query), and then a binary search on the new
ray finds its smaller boundary radius. Stages refine until every block is one element, then start over at
stage 0. A sample is broken once ``r* <= eps``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import Attack, RandomSource, _check_positive

__all__ = ["RayS"]


class RayS(Attack):
    """RayS, L-inf, untargeted, hard-label.

    Args:
        eps: L-inf radius.
        n_queries: model queries per sample (each a forward pass on one input), >= 1.
        tol: binary-search resolution of the boundary radius (in [0, 1] units); the search stops refining
            below it (the reference's default, 1e-3 of the unit range). The radius is only ever accepted when
            the point at it is adversarial, so ``tol`` trades queries for tightness, never correctness.

    Per-sample outcome is independent of the other samples of the batch: the block schedule is the same for
    all, and there is no random draw (the start direction is all ``+1``, as in the reference).
    """

    name = "rays"
    uses_gradient = False

    def __init__(
        self,
        eps: float = 8 / 255,
        n_queries: int = 5000,
        tol: float = 1e-3,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.n_queries = _check_positive("RayS n_queries", n_queries, integer=True)
        self.tol = float(_check_positive("RayS tol", tol))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_queries": self.n_queries, "tol": self.tol}

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        m = x.shape[0]
        flat = x.reshape(m, -1)
        dims = flat.shape[1]

        def fooled(points: Tensor, labels: Tensor) -> Tensor:
            with torch.inference_mode():
                pred = model(points.reshape(points.shape[0], *x.shape[1:])).argmax(1)
            return (pred != labels).clone()

        def on_ray(rows: Tensor, d: Tensor, r: Tensor) -> Tensor:
            return (flat[rows] + r[:, None] * d).clamp(0.0, 1.0)

        with torch.no_grad():
            d_best = torch.ones_like(flat)
            queries = torch.zeros(m, dtype=torch.long, device=x.device)
            # r* = 1 is the largest L-inf distance in [0, 1]; a ray not adversarial there counts as r* = inf
            r_best = torch.full((m,), math.inf, device=x.device, dtype=flat.dtype)
            every = torch.arange(m, device=x.device)
            ok = fooled(on_ray(every, d_best, torch.ones(m, device=x.device, dtype=flat.dtype)), y)
            queries += 1
            if bool(ok.any()):
                ones = torch.ones(int(ok.sum()), device=x.device, dtype=flat.dtype)
                rows = every[ok]
                r_best[ok] = self._search(fooled, on_ray, rows, d_best[ok], y[ok], 0 * ones, ones, queries)
            stage, block = 0, 0
            while True:
                todo = ((r_best > self.eps) & (queries < self.n_queries)).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                blocks = min(2**stage, dims)
                size = math.ceil(dims / blocks)
                lo, hi = block * size, min((block + 1) * size, dims)
                trial = d_best[todo].clone()
                trial[:, lo:hi] *= -1
                # a flip helps only if its ray is adversarial at the current best radius (r* = inf: at 1)
                radius = torch.where(torch.isinf(r_best[todo]), torch.ones_like(r_best[todo]), r_best[todo])
                better = fooled(on_ray(todo, trial, radius), y[todo])
                queries[todo] += 1
                if bool(better.any()):
                    rows = todo[better]
                    upper = radius[better]
                    r_new = self._search(fooled, on_ray, rows, trial[better], y[rows],
                                         torch.zeros_like(upper), upper, queries)
                    keep = r_new < r_best[rows]
                    d_best[rows[keep]] = trial[better][keep]
                    r_best[rows[keep]] = r_new[keep]
                block += 1
                if block >= blocks:
                    block = 0
                    stage = 0 if size == 1 else stage + 1
            # the best ray at min(r*, eps): adversarial where r* <= eps, the nearest try otherwise
            radius = torch.clamp(r_best, max=self.eps)
            return on_ray(every, d_best, radius).reshape(x.shape)

    def _search(self, fooled: Any, on_ray: Any, rows: Tensor, d: Tensor, y: Tensor, lo: Tensor, hi: Tensor,
                queries: Tensor) -> Tensor:
        """Binary search of the boundary radius on rays ``d`` of ``rows`` between ``lo`` (not adversarial)
        and ``hi`` (adversarial): returns ``hi``, the smallest adversarial radius found (to ``tol``, or to the
        queries left). Stops early once ``hi <= eps`` is certain (the sample is broken)."""
        lo, hi = lo.clone(), hi.clone()
        while True:
            # a radius already within eps breaks the sample: no need to tighten it further
            open_ = (hi - lo > self.tol) & (hi > self.eps) & (queries[rows] < self.n_queries)
            todo = open_.nonzero().squeeze(1)
            if todo.numel() == 0:
                return hi
            mid = (lo[todo] + hi[todo]) / 2
            adv = fooled(on_ray(rows[todo], d[todo], mid), y[todo])
            queries[rows[todo]] += 1
            hi[todo] = torch.where(adv, mid, hi[todo])
            lo[todo] = torch.where(adv, lo[todo], mid)
