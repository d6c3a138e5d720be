"""Auto-PGD, L-inf (Croce & Hein, ICML 2020): PGD with momentum and an automatic step-size schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import (
    Attack,
    LossFn,
    RandomSource,
    _check_positive,
    ce_loss,
    dlr_loss,
    input_gradient,
    project_linf,
)
from evrobust.errors import UserInputError

__all__ = ["APGD", "APGD_LOSSES"]

APGD_LOSSES: dict[str, LossFn] = {"ce": ce_loss, "dlr": dlr_loss}


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``[m]`` to ``[m, 1, 1, ...]`` so that it broadcasts against ``like`` ``[m, ...]``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class APGD(Attack):
    """APGD-CE / APGD-DLR, L-inf, following Croce & Hein (2020), Algorithm 1.

    Per sample: the step size starts at ``2 * eps``; each step is a sign-gradient step followed by a
    momentum combination with weight 0.75 on the new point,
    ``x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}))``.
    At checkpoints (the first after ``0.22 * steps`` iterations, then every ``max(previous - 0.03, 0.06) *
    steps`` iterations) the step size is halved for the samples whose loss increased in fewer than
    ``rho = 0.75`` of the steps since the previous checkpoint, or whose step size was kept at the previous
    checkpoint while their best loss did not improve; those samples restart from their best point (highest
    loss) and its gradient. The starting point is ``x + eps * t / |t|_inf`` with ``t`` uniform in [-1,1].

    ``n_restarts`` repeats the run from new random starts on the samples that are still classified
    correctly. The output holds, per sample, a point that fools the model when one was found, else the point
    of highest loss. ``steps=10`` is the APGD10 of the paper's Table 1 (torchattacks' default); AutoAttack
    uses 100.

    Args:
        eps: L-inf radius.
        steps: iterations per restart.
        loss: ``"ce"`` or ``"dlr"`` (the DLR loss needs at least 3 classes).
        n_restarts: number of random restarts (>= 1).
        rho: fraction of loss-increasing steps below which the step size is halved.
    """

    name = "apgd"

    def __init__(
        self,
        eps: float = 8 / 255,
        steps: int = 100,
        loss: str = "ce",
        n_restarts: int = 1,
        rho: float = 0.75,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.steps = _check_positive("APGD steps", steps, integer=True)
        if loss not in APGD_LOSSES:
            raise UserInputError(f"unknown APGD loss {loss!r}; valid choices: {', '.join(APGD_LOSSES)}")
        self.loss = loss
        self.n_restarts = _check_positive("APGD n_restarts", n_restarts, integer=True)
        self.rho = float(rho)
        if not 0.0 < self.rho <= 1.0:
            raise UserInputError(f"APGD rho must be in (0, 1], got {rho!r}")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "steps": self.steps,
            "loss": self.loss,
            "n_restarts": self.n_restarts,
            "rho": self.rho,
        }

    def _schedule(self) -> tuple[int, int, int]:
        """(first checkpoint interval, minimum interval, interval decrement), in iterations."""
        n = self.steps
        return max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)

    def _single_run(
        self, model: nn.Module, x: Tensor, y: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One APGD run on ``x [m,...]`` from the random start direction ``t`` (uniform in [-1,1]).

        Returns ``(x_best [m,...], still_correct [m] bool, loss_best [m], x_best_adv [m,...])``.
        """
        loss_fn = APGD_LOSSES[self.loss]
        eps = self.eps
        interval, interval_min, interval_decr = self._schedule()

        t_max = t.flatten(1).abs().amax(1).clamp_min(1e-12)
        x_adv = (x + eps * t / _per_sample(t_max, t)).clamp(0.0, 1.0)
        loss, logits, grad = input_gradient(model, x_adv, y, loss_fn)
        correct = logits.argmax(1) == y
        x_best_adv = x_adv.clone()
        x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()

        step = torch.full((x.shape[0],), 2.0 * eps, device=x.device, dtype=x.dtype)
        x_prev = x_adv.clone()
        trace = [loss]  # loss after each iteration; entry 0 is the starting point
        since_check = 0
        loss_best_at_check = loss_best.clone()
        reduced_at_check = torch.ones_like(correct)

        for i in range(self.steps):
            with torch.no_grad():
                z = project_linf(x_adv + _per_sample(step, x) * grad.sign(), x, eps)
                momentum = 0.75 if i > 0 else 1.0
                x_next = x_adv + momentum * (z - x_adv) + (1.0 - momentum) * (x_adv - x_prev)
                x_next = project_linf(x_next, x, eps)
                x_prev, x_adv = x_adv, x_next

            loss, logits, grad = input_gradient(model, x_adv, y, loss_fn)
            pred_ok = logits.argmax(1) == y
            x_best_adv[~pred_ok] = x_adv[~pred_ok]
            correct &= pred_ok
            improved = loss > loss_best
            x_best[improved] = x_adv[improved]
            grad_best[improved] = grad[improved]
            loss_best = torch.where(improved, loss, loss_best)
            trace.append(loss)

            since_check += 1
            if since_check == interval:
                recent = torch.stack(trace[-(interval + 1) :])  # [interval+1, m]
                n_increase = (recent[1:] > recent[:-1]).sum(0)
                oscillating = n_increase <= interval * self.rho
                stalled = ~reduced_at_check & (loss_best_at_check >= loss_best)
                reduce = oscillating | stalled
                reduced_at_check = reduce
                loss_best_at_check = loss_best.clone()
                if bool(reduce.any()):
                    step = torch.where(reduce, step / 2.0, step)
                    x_adv = x_adv.clone()
                    x_adv[reduce] = x_best[reduce]
                    grad[reduce] = grad_best[reduce]
                since_check = 0
                interval = max(interval - interval_decr, interval_min)

        return x_best, correct, loss_best, x_best_adv

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        loss_fn = APGD_LOSSES[self.loss]
        with torch.no_grad():
            logits = model(x)
        still_correct = logits.argmax(1) == y
        best_loss = loss_fn(logits, y)
        out = x.clone()
        for _ in range(self.n_restarts):
            # Drawn for every row of the call, whatever is left to attack, so each sample's start is fixed.
            t = rng.uniform(x)
            todo = still_correct.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_best, correct, loss_best, x_best_adv = self._single_run(model, x[todo], y[todo], t[todo])
            fooled = ~correct
            out[todo[fooled]] = x_best_adv[fooled]
            better = correct & (loss_best > best_loss[todo])
            out[todo[better]] = x_best[better]
            best_loss[todo[better]] = loss_best[better]
            still_correct[todo[fooled]] = False
        return out
