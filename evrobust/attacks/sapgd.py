"""SA-PGD, L-inf (Wang et al., "Towards Reliable Evaluation of Adversarial Robustness for SNNs", CVPR 2026).

An Adam-like PGD for SNNs, whose input gradients are sparse and of wildly varying scale across samples and
iterations: each gradient is normalised per sample by its mean absolute value before it enters a first moment
(momentum) and a second moment, and the step moves each element by ``step * m / sqrt(v)``, clipped to
``[-step, step]``. The step size starts at ``eps`` and is halved for every sample at the checkpoints of the
APGD schedule (Croce & Hein 2020), unconditionally -- unlike APGD, SA-PGD does not test for progress.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.apgd import APGD_LOSSES, apgd_schedule, check_loss, per_sample, random_start
from evrobust.attacks.base import Attack, RandomSource, _check_positive, input_gradient, project_linf
from evrobust.errors import UserInputError

__all__ = ["SAPGD"]

_TINY = 1e-12
"""Guards the divisions by the gradient's mean magnitude (0 for a sample whose input gradient vanishes)."""


def _l1_normalised(values: Tensor) -> Tensor:
    """``values / mean(|values|)`` per sample (mean over every non-batch element), ``[m,...] -> [m,...]``."""
    scale = values.flatten(1).abs().mean(1).clamp_min(_TINY)
    return values / per_sample(scale, values)


class SAPGD(Attack):
    """SA-PGD: moment-normalised PGD with the APGD step-halving schedule.

    Per sample and iteration ``i`` with input gradient ``g`` of the loss::

        m_i = beta1 * m_{i-1} + g / mean|g|          (m_0 = g / mean|g|; beta1 = 0.5)
        v_i = beta2 * v_{i-1} + g^2 / mean(g^2)      (v_0 = g^2 / mean(g^2); beta2 = 0.8)
        x_{i+1} = P(x_i + clip(step * m_i / (sqrt(v_i) + 1e-12), -step, step))

    ``P`` projects onto the eps ball ∩ [0,1]. The step starts at ``eps`` and is halved at iterations
    ``0.22 N``, then every ``max(previous - 0.03 N, 0.06 N)`` iterations (the APGD checkpoints). The start is
    ``x + eps * t / |t|_inf`` with ``t`` uniform in [-1,1]. Per sample the result is the first point that
    fools the model (the latest one found, as the reference keeps it), else the point of highest loss.
    A sample with an all-zero gradient gets ``m = v = 0`` and does not move (the 1e-12 guards only avoid 0/0).

    Args:
        eps: L-inf radius.
        steps: iterations per restart (the reference's default is 10; the paper reports 100 for its strongest
            setting).
        loss: ``"ce"`` or ``"dlr"``.
        n_restarts: random restarts on the samples not yet fooled.
        beta1, beta2: decay of the first and second moment (0.5 and 0.8 in the reference code).
    """

    name = "sapgd"

    def __init__(
        self,
        eps: float = 8 / 255,
        steps: int = 100,
        loss: str = "ce",
        n_restarts: int = 1,
        beta1: float = 0.5,
        beta2: float = 0.8,
        *,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(eps, seed=seed, spec=spec)
        self.steps = _check_positive("SA-PGD steps", steps, integer=True)
        self.loss = check_loss("SA-PGD", loss)
        self.n_restarts = _check_positive("SA-PGD n_restarts", n_restarts, integer=True)
        self.beta1, self.beta2 = float(beta1), float(beta2)
        for label, beta in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0.0 <= beta < 1.0:
                raise UserInputError(f"SA-PGD {label} must be in [0, 1), got {beta!r}")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "steps": self.steps,
            "loss": self.loss,
            "n_restarts": self.n_restarts,
            "beta1": self.beta1,
            "beta2": self.beta2,
        }

    def _single_run(self, model: nn.Module, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One run on ``x [m,...]`` from start direction ``t``: ``(x_best, fooled [m] bool, x_fooling)``."""
        loss_fn = APGD_LOSSES[self.loss]
        interval, interval_min, interval_decr = apgd_schedule(self.steps)
        x_adv = random_start(x, t, self.eps)
        loss, logits, grad = input_gradient(model, x_adv, y, loss_fn)
        fooled = logits.argmax(1) != y
        x_fooling = x_adv.clone()
        x_best, loss_best = x_adv.clone(), loss.clone()
        history = None if self.on_trace is None else [loss_best.clone()]  # best loss so far, per iteration
        step = self.eps
        m = torch.zeros_like(x)
        v = torch.zeros_like(x)
        since_check = 0
        for i in range(self.steps):
            with torch.no_grad():
                g1 = _l1_normalised(grad)
                g2 = _l1_normalised(grad * grad)
                m = g1 if i == 0 else self.beta1 * m + g1
                v = g2 if i == 0 else self.beta2 * v + g2
                delta = (step * m / (v.sqrt() + _TINY)).clamp(-step, step)
                x_adv = project_linf(x_adv + delta, x, self.eps)
            loss, logits, grad = input_gradient(model, x_adv, y, loss_fn)
            now_fooled = logits.argmax(1) != y
            x_fooling[now_fooled] = x_adv[now_fooled]
            fooled |= now_fooled
            improved = loss > loss_best
            x_best[improved] = x_adv[improved]
            loss_best = torch.where(improved, loss, loss_best)
            if history is not None:
                history.append(loss_best.clone())
            since_check += 1
            if since_check == interval:
                step /= 2.0
                since_check = 0
                interval = max(interval - interval_decr, interval_min)
        if history is not None and self.on_trace is not None:
            self.on_trace(torch.stack(history), fooled)
        return x_best, fooled, x_fooling

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        with torch.no_grad():
            still_correct = model(x).argmax(1) == y
        out = x.clone()
        for _ in range(self.n_restarts):
            t = rng.uniform(x)  # drawn for every row of the call, so each sample's start is fixed
            todo = still_correct.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_best, fooled, x_fooling = self._single_run(model, x[todo], y[todo], t[todo])
            out[todo] = torch.where(per_sample(fooled, x_best), x_fooling, x_best)
            still_correct[todo[fooled]] = False
        return out
