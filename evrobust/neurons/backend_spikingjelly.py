"""``spikingjelly`` backend: spikingjelly 2.0.0 multi-step nodes (``step_mode="m"``), imported lazily.

Mapping to our dynamics (DESIGN §3), all with ``v_reset=0`` (hard reset) and ``detach_reset=False``:

* tau = 1: ``IFNode(v_threshold=theta)``: ``H = V + X``, ``S = H >= theta`` (``H(0) = 1`` like ours).
* 0 < tau < 1: ``LIFNode(tau=1/(1-tau), decay_input=False)``: ``H = V - V/tau_sj + X = tau V + X``.
  (spikingjelly needs ``tau_sj > 1``, so tau = 0 is not supported here.)

Surrogates: ``PiecewiseQuadratic(alpha=1/gamma)`` is our triangle(gamma), ``Sigmoid(alpha=gamma)`` and
``ATan(alpha=gamma)`` are ours exactly. The rate spec runs spikingjelly's forward inside the generic RGA
wrapper.

Device kernels: spikingjelly picks the implementation from the input's device. On CPU its registered op runs a
Python time loop with a hand-written backward; on NVIDIA CUDA it tries its compiled CUDA kernel, then Triton,
then plain torch (override with the environment variable ``SJ_IF_CUDA_IMPLEMENTATION`` /
``SJ_LIF_CUDA_IMPLEMENTATION`` = auto|cuda|triton|torch). float64 inputs use its autograd reference path.
``spikingjelly.datasets`` is never imported (it needs torchvision).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from evrobust.neurons.rate import rate_multistep
from evrobust.neurons.spec import GradSpec

__all__ = ["SpikingJellyBackend", "make_node", "quiet_triton_probe"]


@contextmanager
def quiet_triton_probe() -> Iterator[None]:
    """Silence torch's "Triton not available" warning, logged once per op spikingjelly registers on a
    machine without Triton (CPU-only builds); it is expected there and says nothing about correctness."""
    probe = logging.getLogger("torch._library.triton")
    level = probe.level
    probe.setLevel(logging.ERROR)
    try:
        yield
    finally:
        probe.setLevel(level)


def _surrogate(spec: GradSpec) -> Any:
    with quiet_triton_probe():
        from spikingjelly.activation_based import surrogate

    if spec.surrogate == "triangle":
        return surrogate.PiecewiseQuadratic(alpha=1.0 / spec.width)
    if spec.surrogate == "sigmoid":
        return surrogate.Sigmoid(alpha=spec.width)
    if spec.surrogate == "atan":
        return surrogate.ATan(alpha=spec.width)
    raise AssertionError(f"unmapped surrogate {spec.surrogate}")  # guarded by supports()


def make_node(spec: GradSpec, tau: float, theta: float) -> nn.Module:
    """A fresh spikingjelly multi-step node for (spec, tau, theta); rate specs get the triangle (unused)."""
    with quiet_triton_probe():
        from spikingjelly.activation_based import neuron

    sg = _surrogate(spec if not spec.is_rate else GradSpec())
    common = dict(v_threshold=theta, v_reset=0.0, surrogate_function=sg, detach_reset=False, step_mode="m")
    if tau == 1.0:
        return neuron.IFNode(**common)
    return neuron.LIFNode(tau=1.0 / (1.0 - tau), decay_input=False, **common)


class SpikingJellyBackend:
    """Runs the dynamics with spikingjelly nodes; one cached node per (spec, tau, theta)."""

    name = "spikingjelly"
    _SURROGATES = ("triangle", "sigmoid", "atan")

    def __init__(self) -> None:
        self._nodes: dict[tuple[GradSpec, float, float], nn.Module] = {}

    def available(self) -> bool:
        return True

    def supports(self, spec: GradSpec, tau: float, theta: float) -> str | None:
        if spec.mode not in ("surrogate", "rate"):
            return f"the {spec.mode!r} crafting spec runs on the native backend only"
        if not spec.is_rate and spec.surrogate not in self._SURROGATES:
            return f"no spikingjelly surrogate for {spec.surrogate!r}"
        if not 0.0 < tau <= 1.0:
            return "spikingjelly's LIFNode needs 0 < tau <= 1 (its time constant 1/(1-tau) must exceed 1)"
        return None

    def _node(self, spec: GradSpec, tau: float, theta: float) -> nn.Module:
        key = (spec, tau, theta)
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = make_node(spec, tau, theta)
        return node

    def _forward(self, node: nn.Module, x: Tensor) -> Tensor:
        # Every call starts from rest; reset afterwards too so the node does not pin the last potential.
        node.reset()
        try:
            with quiet_triton_probe():
                return node(x)
        finally:
            node.reset()

    def run(self, x: Tensor, spec: GradSpec, tau: float, theta: float) -> Tensor:
        node = self._node(spec, tau, theta)
        if spec.is_rate:
            return rate_multistep(x, lambda inp: self._forward(node, inp), tau, theta)
        return self._forward(node, x)
