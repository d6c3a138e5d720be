"""Rate gradient approximation (RGA, Bu et al. CVPR 2023), as the paper's reference code runs it.

Forward: the ordinary IF/LIF spikes. Backward: every time step gets the same local derivative, a function of
the neuron's mean input over time, ``dL/dI[t] = dL/ds[t] * g(mean_t I)``.

The authors' code (putshua/gradient_reg_defense, ``RateBp``) hard-codes threshold 1 and uses, with
``m = mean_t I``, ``c = 0.2`` (slope below the leak knee), ``e = 1`` (extra range above threshold)::

    g(m) = (1 - c + c*tau) / (tau + e)   for 1 - tau <= m <= 1 + e
         = c                             for 0 <= m <= 1 - tau
         = 0                             otherwise

For IF (tau = 1) that is ``g = 0.5 * 1[0 <= m <= 2]`` (DESIGN §3). Two choices of ours, documented in
docs/architecture.md:

* The reference's two intervals share the point ``m = 1 - tau`` and add up there (0.7 at ``m = 0`` for IF).
  We make them disjoint (the lower one is half-open, ``0 <= m < 1 - tau``), which is exactly DESIGN's formula
  for IF and differs from the reference only on that single point.
* The reference's ``RateBp`` forward fires on ``u > 1`` strictly, its BPTT forward on ``u >= theta``. We keep
  one forward (``H(0) = 1``) for every spec, so all ensemble members attack exactly the same model.
* Other thresholds: scaling the input and the threshold by the same factor leaves every spike unchanged, so
  the rate obeys ``r(I; theta) = r(I / theta; 1)`` and its derivative is
  ``g(m / theta) / theta``. We use that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["RATE_EXTRA_RANGE", "RATE_LOW_SLOPE", "rate_grad", "rate_multistep"]

RATE_LOW_SLOPE = 0.2
"""Slope ``c`` of the reference code below the leak knee ``m < 1 - tau`` (unused for IF)."""

RATE_EXTRA_RANGE = 1.0
"""Range ``e`` above threshold over which the reference code keeps a non-zero rate derivative."""


def rate_grad(mean_input: Tensor, tau: float = 1.0, theta: float = 1.0) -> Tensor:
    """RGA local derivative ``g(m)`` for a mean input ``m`` (any shape; same shape and dtype out).

    Args:
        mean_input: mean over time of the neuron's input current, in the same units as ``theta``.
        tau: leak factor in [0, 1] (1 = IF).
        theta: firing threshold (> 0).
    """
    m = mean_input / theta
    knee = 1.0 - tau
    high = (1.0 - RATE_LOW_SLOPE + RATE_LOW_SLOPE * tau) / (tau + RATE_EXTRA_RANGE)
    main = ((m >= knee) & (m <= 1.0 + RATE_EXTRA_RANGE)).to(m.dtype) * high
    if knee > 0:
        main = main + ((m >= 0) & (m < knee)).to(m.dtype) * RATE_LOW_SLOPE
    return main / theta


class _RateFunction(torch.autograd.Function):
    """Spikes from any forward callable; backward ``grad * rate_grad(mean_t x)`` broadcast over time."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, forward_fn: Callable[[Tensor], Tensor], tau: float, theta: float
    ) -> Tensor:
        if ctx.needs_input_grad[0]:
            # Only the local derivative is kept (1/T of the input's memory), not the input itself.
            ctx.save_for_backward(rate_grad(x.mean(0, keepdim=True), tau, theta))
        with torch.no_grad():
            return forward_fn(x)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (g,) = ctx.saved_tensors
        return grad_out * g, None, None, None


def rate_multistep(
    x: Tensor, forward_fn: Callable[[Tensor], Tensor], tau: float = 1.0, theta: float = 1.0
) -> Tensor:
    """Spikes ``forward_fn(x)`` (``x`` is ``[T, ...]``) with the RGA backward; works around any backend."""
    return _RateFunction.apply(x, forward_fn, tau, theta)
