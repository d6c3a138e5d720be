"""``norse`` backend: norse 1.1.0 feed-forward IAF (tau = 1) or LIFBox (tau < 1), imported lazily.

norse fires on ``v - theta > 0`` strictly, where we fire on ``>=``: the two differ only on exact
threshold ties.

Surrogates. norse's threshold methods and their backward ``dS/dv``:
``triangle``: ``alpha * relu(1 - |v|)`` (fixed half-width 1); ``tanh``: ``1 - tanh(k v)^2`` (not scaled by k);
``super``: ``1 / (|v| + 1)^2``; ``circ``: ``alpha^3 / (alpha^2 + v^2)^1.5``; ``heavi_erfc``: a Gaussian.
None has a free width matching ours directly, but the dynamics are homogeneous: feeding ``c * I`` with
threshold ``c * theta`` gives the same spikes, and the chain rule multiplies dS/dI by ``c``. So, with
``v = u - theta``:

* our triangle(gamma) = norse ``triangle`` (alpha = 1) on the input scaled by ``c = 1/gamma``:
  ``c * relu(1 - |c v|) = max(0, gamma - |v|) / gamma^2``;
* our sigmoid(gamma) = norse ``tanh`` (k = 2) with ``c = gamma/4``:
  ``c * (1 - tanh(2 c v)^2) = (gamma/4)(1 - tanh(gamma v / 2)^2) = gamma sig(gamma v)(1 - sig(gamma v))``;
* atan has no norse counterpart (not supported here); rate uses the generic RGA wrapper around norse's
  forward.

For the paper's defaults (triangle 1, sigmoid 4) ``c = 1``, so no scaling happens. With ``c != 1`` the scaled
sums round differently, which can flip a spike only within rounding distance of the threshold.

Leak: LIFBox integrates ``v += a (i - v)`` (v_leak = 0); with ``a = 1 - tau`` and the input divided by
``a`` it is ``v = tau v + I``. tau = 0 works too (a = 1).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from evrobust.neurons.rate import rate_multistep
from evrobust.neurons.spec import GradSpec

__all__ = ["NorseBackend", "norse_method"]


def norse_method(spec: GradSpec) -> tuple[str, float, float]:
    """(norse threshold method, its alpha, input scale c) reproducing ``spec``'s surrogate (not rate)."""
    if spec.surrogate == "triangle":
        return "triangle", 1.0, 1.0 / spec.width
    if spec.surrogate == "sigmoid":
        return "tanh", 2.0, spec.width / 4.0
    raise AssertionError(f"unmapped surrogate {spec.surrogate}")  # guarded by supports()


class NorseBackend:
    """Runs the dynamics with norse's feed-forward IAF / LIFBox step functions over time."""

    name = "norse"
    _SURROGATES = ("triangle", "sigmoid")

    def available(self) -> bool:
        return True

    def supports(self, spec: GradSpec, tau: float, theta: float) -> str | None:
        if spec.mode not in ("surrogate", "rate"):
            return f"the {spec.mode!r} crafting spec runs on the native backend only"
        if not spec.is_rate and spec.surrogate not in self._SURROGATES:
            return f"norse has no surrogate equivalent to {spec.surrogate!r}"
        return None

    def _forward(
        self, x: Tensor, method: str, alpha: float, scale: float, tau: float, theta: float
    ) -> Tensor:
        with warnings.catch_warnings():
            # norse's import scripts functions with torch.jit, which torch 2.13 deprecates (noise for users)
            warnings.simplefilter("ignore", DeprecationWarning)
            from norse.torch.functional.iaf import IAFFeedForwardState, IAFParameters, iaf_feed_forward_step
            from norse.torch.functional.lif_box import (
                LIFBoxFeedForwardState,
                LIFBoxParameters,
                lif_box_feed_forward_step,
            )

        v_th = torch.as_tensor(theta * scale, dtype=x.dtype, device=x.device)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        state: Any
        if tau == 1.0:
            step: Any = iaf_feed_forward_step
            p: Any = IAFParameters(v_th=v_th, v_reset=zero, method=method, alpha=alpha)
            state = IAFFeedForwardState(v=zero)
        else:
            # LIFBox adds a*(i - v): divide the input by a = 1 - tau so that it adds I after the leak.
            a = 1.0 - tau
            scale = scale / a
            step = lif_box_feed_forward_step
            p = LIFBoxParameters(
                tau_mem_inv=torch.as_tensor(a, dtype=x.dtype, device=x.device),
                v_leak=zero,
                v_th=v_th,
                v_reset=zero,
                method=method,
                alpha=alpha,
            )
            state = LIFBoxFeedForwardState(v=zero)
        inp = x * scale if scale != 1.0 else x
        spikes = []
        for t in range(inp.shape[0]):
            z, state = step(inp[t], state, p, dt=1.0)
            spikes.append(z)
        return torch.stack(spikes)

    def run(self, x: Tensor, spec: GradSpec, tau: float, theta: float) -> Tensor:
        if spec.is_rate:
            # Any surrogate will do for the forward: the RGA wrapper discards its backward.
            fwd = lambda inp: self._forward(inp, "triangle", 1.0, 1.0, tau, theta)  # noqa: E731
            return rate_multistep(x, fwd, tau, theta)
        method, alpha, scale = norse_method(spec)
        return self._forward(x, method, alpha, scale, tau, theta)
