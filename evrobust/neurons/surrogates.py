"""Surrogate derivatives dS/dU for the Heaviside spike function.

Each surrogate has three parts (house style):

* a pure backward function ``<name>_grad(v, width) -> Tensor`` giving dS/dU at ``v = u - theta``
  (same shape as ``v``; ``width`` is the gamma of DESIGN §3, dimensionless, in units of the threshold gap);
* a ``torch.autograd.Function`` whose forward is ``H(v)`` with ``H(0) = 1`` and whose backward multiplies the
  incoming gradient by that function (used for single-step spikes and as the per-step reference);
* an entry in :data:`SURROGATES`, the registry looked up by name.

Registered shapes (``v = u - theta``, ``gamma`` = the spec's width):

* ``triangle``: ``max(0, gamma - |v|) / gamma^2``; gamma = half-width of the support (area 1);
* ``sigmoid``: ``gamma sig(gamma v) (1 - sig(gamma v))``; gamma = sharpness (area 1);
* ``atan``: ``(gamma/2) / (1 + (pi/2 gamma v)^2)``; gamma = sharpness (area 1);
* ``rect``: ``1[|v| < gamma/2] / gamma``; gamma = full width of the boxcar (area 1);
* ``exp``: ``exp(-gamma |v|)``; gamma = decay rate (peak 1, area ``2/gamma``);
* ``expd``: ``0.3 exp(-gamma |v|)``; gamma = decay rate, 0.3 = dampening factor;
* ``ste``: ``1`` everywhere; no width (straight-through estimator).

``rect``, ``exp``, ``expd`` and ``ste`` are the shapes of the IGITUGraz/RobustSNNConversion attack ensemble
(their ``RECT``, ``EXP``, ``EXP-D``, ``STE``; ``PCW`` is our triangle), with their scaling: ``exp`` and
``expd`` are not normalised to area 1 (the scale matters in BPTT because the reset path adds
``-u * surrogate`` to the carried gradient, so it is kept as published).

The fused multi-step kernel in :mod:`evrobust.neurons.functional` calls the pure functions directly,
vectorised over all time steps, so the registry is the single source of the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from evrobust.errors import UserInputError

__all__ = [
    "SURROGATES",
    "Surrogate",
    "EXPD_SCALE",
    "atan_grad",
    "AtanSpike",
    "exp_grad",
    "expd_grad",
    "ExpSpike",
    "ExpdSpike",
    "get_surrogate",
    "heaviside",
    "list_surrogates",
    "rect_grad",
    "RectSpike",
    "sigmoid_grad",
    "SigmoidSpike",
    "ste_grad",
    "SteSpike",
    "triangle_grad",
    "TriangleSpike",
]


def heaviside(v: Tensor) -> Tensor:
    """Spike function ``H(v)`` with ``H(0) = 1`` (DESIGN §3), returned in ``v``'s dtype, same shape."""
    return (v >= 0).to(v.dtype)


def triangle_grad(v: Tensor, width: float) -> Tensor:
    """Triangle surrogate ``max(0, gamma - |v|) / gamma^2``: peak ``1/gamma`` at ``v = 0``, area 1."""
    return (width - v.abs()).clamp_(min=0) / (width * width)


def sigmoid_grad(v: Tensor, width: float) -> Tensor:
    """Sigmoid surrogate ``gamma * sig(gamma v) * (1 - sig(gamma v))`` (derivative of ``sig(gamma v)``)."""
    sg = torch.sigmoid(v * width)
    return sg * (1 - sg) * width


def atan_grad(v: Tensor, width: float) -> Tensor:
    """Arctangent surrogate ``(gamma/2) / (1 + (pi/2 gamma v)^2)``, the slope of ``atan(pi/2 gamma v)/pi``."""
    return (width / 2) / (1 + (v * (math.pi / 2 * width)).square())


EXPD_SCALE = 0.3
"""Peak of the ``expd`` shape: the dampening factor 0.3 of the reference ensemble's ``EXP-D`` member."""


def rect_grad(v: Tensor, width: float) -> Tensor:
    """Rectangle (boxcar) ``1[|v| < gamma/2] / gamma``: height ``1/gamma`` on an open interval of width
    gamma (area 1)."""
    return (v.abs() < width / 2).to(v.dtype) / width


def exp_grad(v: Tensor, width: float) -> Tensor:
    """Exponential ``exp(-gamma |v|)``: peak 1 at ``v = 0``, area ``2/gamma``."""
    return torch.exp(-width * v.abs())


def expd_grad(v: Tensor, width: float) -> Tensor:
    """Exponential-derivative shape ``0.3 exp(-gamma |v|)`` (``EXP-D`` of the reference ensemble)."""
    return torch.exp(-width * v.abs()) * EXPD_SCALE


def ste_grad(v: Tensor, width: float) -> Tensor:
    """Straight-through estimator: ``dS/dU = 1`` everywhere (``width`` is ignored)."""
    return torch.ones_like(v)


class _SpikeFunction(torch.autograd.Function):
    """Base: forward ``H(v)``; backward ``grad * surrogate(v, width)``. Subclasses set ``surrogate_grad``."""

    surrogate_grad: Callable[[Tensor, float], Tensor]

    @staticmethod
    def forward(ctx: Any, v: Tensor, width: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.width = width
        return heaviside(v)

    @classmethod
    def backward(cls, ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad_out * cls.surrogate_grad(v, ctx.width), None


class TriangleSpike(_SpikeFunction):
    """``H(v)`` forward, triangle surrogate backward. Call as ``TriangleSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(triangle_grad)


class SigmoidSpike(_SpikeFunction):
    """``H(v)`` forward, sigmoid surrogate backward. Call as ``SigmoidSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(sigmoid_grad)


class AtanSpike(_SpikeFunction):
    """``H(v)`` forward, arctangent surrogate backward. Call as ``AtanSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(atan_grad)


class RectSpike(_SpikeFunction):
    """``H(v)`` forward, rectangle surrogate backward. Call as ``RectSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(rect_grad)


class ExpSpike(_SpikeFunction):
    """``H(v)`` forward, exponential surrogate backward. Call as ``ExpSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(exp_grad)


class ExpdSpike(_SpikeFunction):
    """``H(v)`` forward, exponential-derivative (0.3 exp) backward. Call as ``ExpdSpike.apply(v, gamma)``."""

    surrogate_grad = staticmethod(expd_grad)


class SteSpike(_SpikeFunction):
    """``H(v)`` forward, straight-through backward (``dS/dU = 1``). Call as ``SteSpike.apply(v, 1.0)``."""

    surrogate_grad = staticmethod(ste_grad)


@dataclass(frozen=True)
class Surrogate:
    """A registered surrogate: its name, pure backward, autograd Function and default width.

    ``has_width`` is False for shapes without a free parameter (``ste``): their specs print without a width
    and refuse one.
    """

    name: str
    grad: Callable[[Tensor, float], Tensor]
    function: type[torch.autograd.Function]
    default_width: float
    has_width: bool = True

    def spike(self, v: Tensor, width: float | None = None) -> Tensor:
        """Single-step spikes ``H(v)`` whose backward uses this surrogate (``v = u - theta``, any shape)."""
        return self.function.apply(v, self.default_width if width is None else width)


# Default widths are the paper's ensemble members (Appendix E): triangle 1, sigmoid 4, atan 2; the shapes of
# the wide ensemble default to gamma = 1 (a member of each of their width sets).
SURROGATES: dict[str, Surrogate] = {
    "triangle": Surrogate("triangle", triangle_grad, TriangleSpike, 1.0),
    "sigmoid": Surrogate("sigmoid", sigmoid_grad, SigmoidSpike, 4.0),
    "atan": Surrogate("atan", atan_grad, AtanSpike, 2.0),
    "rect": Surrogate("rect", rect_grad, RectSpike, 1.0),
    "exp": Surrogate("exp", exp_grad, ExpSpike, 1.0),
    "expd": Surrogate("expd", expd_grad, ExpdSpike, 1.0),
    "ste": Surrogate("ste", ste_grad, SteSpike, 1.0, has_width=False),
}


def list_surrogates() -> list[str]:
    """Names of the registered surrogates, in registry order."""
    return list(SURROGATES)


def get_surrogate(name: str) -> Surrogate:
    """Look a surrogate up by name; raise :class:`UserInputError` naming the valid choices if unknown."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise UserInputError(
            f"unknown surrogate {name!r}; valid choices: {', '.join(SURROGATES)}"
        ) from None
