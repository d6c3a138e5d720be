"""ASSG: adaptive-sharpness surrogate gradient (Wang et al., CVPR 2026), as a crafting-only gradient spec.

ASSG replaces the fixed sharpness of the atan surrogate by one per neuron, time step and sample, computed from
running statistics of the membrane potential relative to the threshold, ``v = u - theta``, on the input under
attack. Every forward pass of the model inside one attack updates, element-wise over ``[T, N, ...]``::

    M <- beta M + (1 - beta) |v|                 (first moment of |v|;   M starts at 1)
    D <- beta D + (1 - beta) | |v| - M |         (its mean deviation;    D starts at 0; uses the new M)
    alpha = a / (M + relax * D + 1e-4)          a = 2 tan(pi A) / pi
    dS/dU = (alpha/2) / (1 + (pi/2 alpha v)^2)  (the atan surrogate with sharpness alpha)

Constants (all from the authors' ``my_node.py``, ``ASSGrad``): ``beta = 0.9`` for both moments, ``relax =
1.5``, the ``1e-4`` guard, the start values ``M = 1`` and ``D = 0``, and ``a = 2 tan(pi A) / pi`` with ``A``
from a small grid (:data:`evrobust.neurons.spec.ASSG_GRID`; ``A`` must lie in (0, 0.5) so that ``a > 0``).
A wide spread of |v| (large ``M``, ``D``) gives a small ``alpha``, a wide surrogate that still reaches
neurons far from threshold; a neuron that sits near threshold gets a sharp one.

Where this differs from the reference, on purpose (documented in docs/architecture.md):

* The state lives in :class:`AssgState` objects that :func:`evrobust.neurons.gradient_spec` creates when it is
  entered and drops on exit (one per neuron), so statistics last exactly one attack call and nothing persists
  in module globals or in the model's state dict. The reference keeps them on the surrogate module and
  recreates it when an attack starts.
* The forward spikes are the model's own (``H(0) = 1``); the reference's surrogate fires on ``v > 0``. They
  differ only on exact ties.
* BPTT keeps the reset in the graph (DESIGN §3); the reference's STBP node detaches the reset.
* The reference skips the update on repeated EOT draws; evrobust's attacks draw no EOT samples, so every
  forward updates.
* If a forward sees a batch of another shape than the statistics (an attack that re-evaluates a subset), the
  statistics restart from ``M = 1, D = 0`` for that neuron.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from evrobust.neurons.functional import _if_forward, bptt_backward
from evrobust.neurons.surrogates import atan_grad

__all__ = ["ASSG_BETA", "ASSG_EPS", "ASSG_RELAX", "AssgState", "assg_a", "assg_multistep"]

logger = logging.getLogger(__name__)

ASSG_BETA = 0.9
"""EMA factor of both moments (``beta_1 = beta_2 = 0.9`` in the reference)."""

ASSG_RELAX = 1.5
"""Weight of the deviation ``D`` in the denominator (``relax``)."""

ASSG_EPS = 1e-4
"""Guard added to the denominator."""

_M_START = 1.0
_D_START = 0.0


def assg_a(A: float) -> float:
    """The numerator ``a = 2 tan(pi A) / pi`` for ``0 < A < 0.5`` (e.g. ``A = 0.425`` -> ``a ~ 2.65``)."""
    return 2.0 * math.tan(math.pi * A) / math.pi


class AssgState:
    """Running moments of ``|u - theta|`` for one neuron layer during one attack.

    Attributes:
        A: the spec's ``A``; ``a`` = :func:`assg_a` of it.
        M, D: ``[T, N, ...]`` tensors once the first forward ran (``None`` before).
        updates: number of forward passes folded in since the last (re)start.
    """

    def __init__(self, A: float) -> None:
        self.A = float(A)
        self.a = assg_a(self.A)
        self.M: Tensor | None = None
        self.D: Tensor | None = None
        self.updates = 0

    def update(self, v: Tensor) -> Tensor:
        """Fold ``|v|`` (``v = u - theta``, ``[T, N, ...]``) into the moments; return ``alpha`` like ``v``."""
        mag = v.detach().abs()
        if self.M is None or self.M.shape != mag.shape or self.M.device != mag.device:
            if self.M is not None:
                logger.debug("ASSG statistics restart: shape %s -> %s", tuple(self.M.shape), tuple(mag.shape))
            self.M = torch.full_like(mag, _M_START)
            self.D = torch.full_like(mag, _D_START)
            self.updates = 0
        assert self.D is not None
        self.M = ASSG_BETA * self.M + (1.0 - ASSG_BETA) * mag
        self.D = ASSG_BETA * self.D + (1.0 - ASSG_BETA) * (mag - self.M).abs()
        self.updates += 1
        return self.alpha()

    def alpha(self) -> Tensor:
        """Current sharpness ``a / (M + relax D + 1e-4)``, ``[T, N, ...]``; needs one :meth:`update` first."""
        if self.M is None or self.D is None:
            raise RuntimeError("ASSG state has no statistics yet")
        return self.a / (self.M + ASSG_RELAX * self.D + ASSG_EPS)

    def __repr__(self) -> str:
        shape = None if self.M is None else tuple(self.M.shape)
        return f"AssgState(A={self.A:g}, shape={shape}, updates={self.updates})"


class _AssgFunction(torch.autograd.Function):
    """IF dynamics whose forward also updates the ASSG state; BPTT with atan at sharpness alpha."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, state: AssgState, tau: float, theta: float
    ) -> Tensor:
        u, spikes = _if_forward(x, tau, theta, keep_u=True)
        assert u is not None
        alpha = state.update(u - theta)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(u, spikes, alpha)
        ctx.params = (tau, theta)
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_s: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        u, spikes, alpha = ctx.saved_tensors
        tau, theta = ctx.params
        grad = bptt_backward(grad_s, u, spikes, lambda t, v: atan_grad(v, alpha[t]), tau, theta)  # type: ignore[arg-type]
        return grad, None, None, None


def assg_multistep(x: Tensor, state: AssgState, tau: float = 1.0, theta: float = 1.0) -> Tensor:
    """IF spikes ``[T, ...]`` for input ``x [T, ...]``; updates ``state`` and backpropagates with ASSG."""
    return _AssgFunction.apply(x, state, float(tau), float(theta))
