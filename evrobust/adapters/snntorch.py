"""Adapter for snntorch 1.0 neurons (``snntorch._neurons``).

Neurons: instances of ``snntorch._neurons.neurons.SpikingNeuron`` (``Leaky``, ``Synaptic``, ``Alpha``,
``RLeaky``, ``RSynaptic``, ``Lapicque``, ``SLSTM``, ``SConv2dLSTM``, ``DeltaLeaky``, ...), plus snntorch's
other modules that fire through a ``spike_grad`` attribute (``LeakyParallel``). ``fire()`` computes
``spike_grad(mem - threshold)``; the detached reset signal ``mem_reset()`` calls it too, for its forward
value only.

Swap: the instance attribute ``spike_grad`` becomes a :class:`~evrobust.adapters.base.SpikeSwap` around the
original callable (a module wrapper if the user passed a module); the original object comes back on exit.

Hidden state lives in the module between calls, also with ``init_hidden=False`` when the caller does not
pass ``mem``: the non-persistent buffers (``mem``, ``syn``, ``spk``, ``syn_exc``, ``syn_inh``) and the plain
attributes ``reset`` (last reset signal) and ``mem_prev`` (``DeltaLeaky``). Reset = the instance's own
``reset_mem()`` (zeros of the old shape, or None for ``DeltaLeaky``), which the next forward re-shapes to the
input. Not ``snntorch.utils.reset`` or the ``reset_hidden`` classmethods: they walk the class-wide
``SpikingNeuron.instances`` list and would reset every neuron in the process, not only this model's.
snntorch replaces its state tensors on every step and never writes into them (only the user-called
``detach_hidden`` detaches in place), so a snapshot of the references restores the state exactly.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from evrobust.adapters.base import NeuronAdapter, spike_swap
from evrobust.neurons.spec import GradSpec

__all__ = ["SnnTorchAdapter"]

_STATE_ATTRS = ("reset", "mem_prev", "spk")
"""Plain (unregistered) instance attributes that snntorch neurons use as hidden state."""


def _neurons_module() -> ModuleType | None:
    """``snntorch._neurons.neurons``, or None when snntorch is not loaded (so no model holds its neurons)."""
    if "snntorch" not in sys.modules:
        return None
    try:
        from snntorch._neurons import neurons
    except ImportError:
        return None
    return neurons


class SnnTorchAdapter(NeuronAdapter):
    """snntorch 1.0 neurons: swaps the ``spike_grad`` instance attribute, resets with ``reset_mem()``."""

    library = "snntorch"
    attribute = "spike_grad"
    passive_modules = ("snntorch._layers", "snntorch.functional")

    def find(self, model: nn.Module) -> list[nn.Module]:
        neurons = _neurons_module()
        if neurons is None:
            return []
        return [
            m
            for m in model.modules()
            if isinstance(m, neurons.SpikingNeuron)
            or (type(m).__module__.startswith("snntorch.") and callable(getattr(m, "spike_grad", None)))
        ]

    def stateful(self, model: nn.Module) -> list[nn.Module]:
        return self.find(model)

    def _install(self, neuron: nn.Module, spec: GradSpec) -> Any:
        original = neuron.spike_grad
        neuron.spike_grad = spike_swap(original, spec)
        return original

    def reset(self, modules: list[nn.Module]) -> None:
        for m in modules:
            reset_mem = getattr(m, "reset_mem", None)
            if callable(reset_mem):
                reset_mem()

    def snapshot(self, modules: list[nn.Module]) -> list[Any]:
        snap = []
        for m in modules:
            buffers = {k: m._buffers[k] for k in m._non_persistent_buffers_set if k in m._buffers}
            attrs = {
                k: v for k, v in m.__dict__.items() if isinstance(v, Tensor) or k in _STATE_ATTRS
            }
            snap.append((buffers, attrs))
        return snap

    def restore(self, modules: list[nn.Module], snap: list[Any]) -> None:
        for m, (buffers, attrs) in zip(modules, snap, strict=True):
            for k, v in buffers.items():
                m._buffers[k] = v
            # State attributes created after the snapshot (e.g. ``reset`` by a first forward) go away.
            for k in [k for k, v in m.__dict__.items() if (isinstance(v, Tensor) or k in _STATE_ATTRS)]:
                if k not in attrs:
                    del m.__dict__[k]
            m.__dict__.update(attrs)
