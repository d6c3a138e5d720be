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

__all__ = [
    "APGD", "APGDT", "APGD_LOSSES", "apgd_schedule", "check_loss", "dlr_targeted_loss", "per_sample",
    "random_start",
]

APGD_LOSSES: dict[str, LossFn] = {"ce": ce_loss, "dlr": dlr_loss}


def check_loss(attack: str, loss: str) -> str:
    """``loss`` if it names one of :data:`APGD_LOSSES`; else a one-line :class:`UserInputError` naming
    ``attack``."""
    if loss not in APGD_LOSSES:
        raise UserInputError(f"unknown {attack} loss {loss!r}; valid choices: {', '.join(APGD_LOSSES)}")
    return loss


def per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``[m]`` to ``[m, 1, 1, ...]`` so that it broadcasts against ``like`` ``[m, ...]``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def apgd_schedule(steps: int) -> tuple[int, int, int]:
    """APGD checkpoints for ``steps`` iterations: (first interval, minimum interval, decrement).

    The first checkpoint comes after ``0.22 * steps`` iterations, then every ``max(previous - 0.03 * steps,
    0.06 * steps)`` iterations (Croce & Hein 2020; SA-PGD reuses it).
    """
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


def random_start(x: Tensor, t: Tensor, eps: float) -> Tensor:
    """``clip(x + eps * t / |t|_inf, 0, 1)`` per sample: a random corner-ward start on the eps-ball's surface.

    ``t`` like ``x``, uniform in [-1,1]; the per-sample max-norm rescaling puts at least one element at ±eps.
    """
    t_max = t.flatten(1).abs().amax(1).clamp_min(1e-12)
    return (x + eps * t / per_sample(t_max, t)).clamp(0.0, 1.0)


def dlr_targeted_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR loss of Croce & Hein (2020), ``[N,K], [N], [N] -> [N]``, needs K >= 4.

    ``-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2 + 1e-12)`` with ``z_(k)`` the k-th largest logit: ascending
    it pulls the target logit ``z_t`` above the true one, scale-invariantly.
    """
    top, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


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
    of highest loss. ``steps=100`` is the default of both AutoAttack and torchattacks 3.2.7 (``APGD``), which
    the paper's authors ran; ``steps=10`` is kept as the cheaper ``apgd10``.

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
        self.loss = check_loss("APGD", loss)
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

    def _single_run(
        self, model: nn.Module, x: Tensor, y: Tensor, t: Tensor, loss_fn: LossFn
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One APGD run on ``x [m,...]`` from the random start direction ``t`` (uniform in [-1,1]).

        ``loss_fn`` is the per-sample loss ascended. Returns ``(x_best [m,...], still_correct [m] bool,
        loss_best [m], x_best_adv [m,...])``.
        """
        eps = self.eps
        interval, interval_min, interval_decr = apgd_schedule(self.steps)

        x_adv = random_start(x, t, eps)
        loss, logits, grad = input_gradient(model, x_adv, y, loss_fn)
        correct = logits.argmax(1) == y
        x_best_adv = x_adv.clone()
        x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()

        step = torch.full((x.shape[0],), 2.0 * eps, device=x.device, dtype=x.dtype)
        x_prev = x_adv.clone()
        trace = [loss]  # loss after each iteration; entry 0 is the starting point
        history = None if self.on_trace is None else [loss_best.clone()]  # best loss so far, per iteration
        since_check = 0
        loss_best_at_check = loss_best.clone()
        reduced_at_check = torch.ones_like(correct)

        for i in range(self.steps):
            with torch.no_grad():
                z = project_linf(x_adv + per_sample(step, x) * grad.sign(), x, eps)
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
            if history is not None:
                history.append(loss_best.clone())

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

        if history is not None and self.on_trace is not None:
            self.on_trace(torch.stack(history), ~correct)
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
            x_best, correct, loss_best, x_best_adv = self._single_run(
                model, x[todo], y[todo], t[todo], loss_fn
            )
            fooled = ~correct
            out[todo[fooled]] = x_best_adv[fooled]
            better = correct & (loss_best > best_loss[todo])
            out[todo[better]] = x_best[better]
            best_loss[todo[better]] = loss_best[better]
            still_correct[todo[fooled]] = False
        return out


class APGDT(APGD):
    """APGD-T, L-inf (Croce & Hein 2020): APGD on the targeted DLR loss, once per target class.

    The targets of a sample are its ``n_targets`` highest-scoring wrong classes on the clean input (the 2nd,
    3rd, ... largest clean logit). For each target in turn, an APGD run with the same step-size schedule
    ascends :func:`dlr_targeted_loss` from a fresh random start, on the samples that no earlier target has
    fooled yet. Success is untargeted: any misclassification counts, as in AutoAttack and torchattacks.
    ``n_targets=9, steps=100`` is AutoAttack's standard setting; the number of targets is capped at
    ``K - 1`` classes. Needs at least 4 classes.

    Args:
        eps: L-inf radius.
        steps: iterations per target (and restart).
        n_targets: number of target classes tried (>= 1).
        n_restarts: random restarts per target.
        rho: as in :class:`APGD`.
    """

    name = "apgd-t"

    def __init__(
        self,
        eps: float = 8 / 255,
        steps: int = 100,
        n_targets: int = 9,
        n_restarts: int = 1,
        rho: float = 0.75,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, steps=steps, loss="dlr", n_restarts=n_restarts, rho=rho, seed=seed, spec=spec)
        self.n_targets = _check_positive("APGD-T n_targets", n_targets, integer=True)

    def describe(self) -> dict[str, Any]:
        settings = {**super().describe(), "loss": "dlr-targeted", "n_targets": self.n_targets}
        return settings

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        with torch.no_grad():
            logits = model(x)
        k = logits.shape[1]
        if k < 4:
            raise UserInputError(f"APGD-T (targeted DLR loss) needs at least 4 classes, the model has {k}")
        ranked = logits.argsort(dim=1, descending=True)  # [m, K]; column 0 is the top class
        still_correct = logits.argmax(1) == y
        out = x.clone()
        for target_rank in range(1, min(self.n_targets, k - 1) + 1):
            target = ranked[:, target_rank]
            for _ in range(self.n_restarts):
                t = rng.uniform(x)  # drawn for every row and every (target, restart): fixed per sample
                todo = still_correct.nonzero().squeeze(1)
                if todo.numel() == 0:
                    return out
                target_todo = target[todo]

                def loss_fn(z: Tensor, labels: Tensor, tt: Tensor = target_todo) -> Tensor:
                    return dlr_targeted_loss(z, labels, tt)

                x_best, correct, _, x_best_adv = self._single_run(model, x[todo], y[todo], t[todo], loss_fn)
                fooled = ~correct
                # Survivors carry the latest target's highest-loss point (what a transfer would use).
                out[todo] = torch.where(per_sample(fooled, x_best), x_best_adv, x_best)
                still_correct[todo[fooled]] = False
        return out
