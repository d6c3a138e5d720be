"""Surrogate derivatives dS/dU for the Heaviside spike function.

Each surrogate has three parts (house style):

* a pure backward function ``<name>_grad(v, width) -> Tensor`` giving dS/dU at ``v = u - theta``
  (same shape as ``v``; ``width`` is the gamma of DESIGN §3, dimensionless, in units of the threshold gap);
* a ``torch.autograd.Function`` whose forward is ``H(v)`` with ``H(0) = 1`` and whose backward multiplies the
  incoming gradient by that function (used for single-step spikes and as the per-step reference);
* an entry in :data:`SURROGATES`, the registry looked up by name.

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
    "atan_grad",
    "AtanSpike",
    "get_surrogate",
    "heaviside",
    "list_surrogates",
    "sigmoid_grad",
    "SigmoidSpike",
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


@dataclass(frozen=True)
class Surrogate:
    """A registered surrogate: its name, pure backward, autograd Function and the paper's default width."""

    name: str
    grad: Callable[[Tensor, float], Tensor]
    function: type[torch.autograd.Function]
    default_width: float

    def spike(self, v: Tensor, width: float | None = None) -> Tensor:
        """Single-step spikes ``H(v)`` whose backward uses this surrogate (``v = u - theta``, any shape)."""
        return self.function.apply(v, self.default_width if width is None else width)


# Default widths are the paper's ensemble members (Appendix E): triangle 1, sigmoid 4, atan 2.
SURROGATES: dict[str, Surrogate] = {
    "triangle": Surrogate("triangle", triangle_grad, TriangleSpike, 1.0),
    "sigmoid": Surrogate("sigmoid", sigmoid_grad, SigmoidSpike, 4.0),
    "atan": Surrogate("atan", atan_grad, AtanSpike, 2.0),
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
