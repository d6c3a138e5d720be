"""Adapter for spikingjelly 2.0 activation-based neurons (``spikingjelly.activation_based.neuron``).

Neurons: every module that holds a ``surrogate_function`` and is a spikingjelly ``MemoryModule`` or a
spikingjelly class (``BaseNode`` and ``SimpleBaseNode`` subclasses: ``IFNode``, ``LIFNode``,
``ParametricLIFNode``, ... and ``ActivationAwareIFNode``). They fire with
``surrogate_function(h - v_threshold)``.

Swap: ``neuron.surrogate_function`` becomes a :class:`~evrobust.adapters.base.SpikeSwapModule` around the
original module; the original object comes back on exit. Why this reaches the backward on every path:
``functional.if_multi_step`` / ``lif_multi_step`` (which the single-step ``if_step`` / ``lif_step`` call
too) ask ``_ops.surrogate._surrogate_spec`` whether the surrogate is one of spikingjelly's own classes; for
any other object it returns None and the node runs the torch reference loop, which calls
``surrogate_function(h - v_threshold)`` once per step. On CPU that is the path anyway for spikingjelly's
own surrogates (registered op, same forward formulas), so spikes stay bit-identical; on CUDA the reference
loop replaces the fused kernel and needs ``SJ_IF_CUDA_IMPLEMENTATION`` / ``SJ_LIF_CUDA_IMPLEMENTATION``
unset or ``auto`` (any other value makes spikingjelly raise ``RuntimeError`` for a non-builtin surrogate).

Hidden state: every ``MemoryModule`` of the model (neurons, but also e.g. dropout masks and recurrent
containers) keeps tensors in ``_memories`` between calls. Reset = each one's ``reset()``, what
``functional.reset_net`` does, on this model's modules only. ``reset()`` *mutates* a state tensor in
place (``detach_()`` + ``copy_``) when its reset value is a tensor of the same shape, so a snapshot keeps a
copy of every state tensor's values besides the reference, and restoring writes them back if they changed.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.adapters.base import NeuronAdapter, spike_swap
from evrobust.neurons.backend_spikingjelly import quiet_triton_probe
from evrobust.neurons.spec import GradSpec

__all__ = ["SpikingJellyAdapter"]


def _modules() -> tuple[ModuleType, ModuleType] | None:
    """``(activation_based.base, activation_based.neuron)``, or None when spikingjelly is not loaded.

    A model cannot hold spikingjelly modules unless spikingjelly was imported, so an unloaded library means
    no neurons, and a plain evrobust model never pays for importing it.
    """
    if "spikingjelly" not in sys.modules:
        return None
    try:
        with quiet_triton_probe():
            from spikingjelly.activation_based import base, neuron
    except ImportError:
        return None
    return base, neuron


def _from_spikingjelly(module: nn.Module) -> bool:
    return type(module).__module__.startswith("spikingjelly.")


class _Snap:
    """One state value: the reference, plus a copy of a tensor's values (``reset()`` may write in place)."""

    __slots__ = ("ref", "values")

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.values = ref.detach().clone() if isinstance(ref, Tensor) else None

    def get(self) -> Any:
        ref, values = self.ref, self.values
        if isinstance(ref, Tensor) and values is not None:
            if ref.shape != values.shape:
                return values  # resized in place: the copy is the exact old state
            if not torch.equal(ref, values):
                with torch.no_grad():
                    ref.copy_(values)
        return ref


class SpikingJellyAdapter(NeuronAdapter):
    """spikingjelly 2.0 activation-based neurons: swaps ``surrogate_function``, resets ``MemoryModule``s."""

    library = "spikingjelly"
    attribute = "surrogate_function"
    passive_modules = ("spikingjelly.activation_based.layer", "spikingjelly.activation_based.encoding")

    def find(self, model: nn.Module) -> list[nn.Module]:
        mods = _modules()
        if mods is None:
            return []
        base, _ = mods
        return [
            m
            for m in model.modules()
            if (isinstance(m, base.MemoryModule) or _from_spikingjelly(m))
            and getattr(m, "surrogate_function", None) is not None
        ]

    def stateful(self, model: nn.Module) -> list[nn.Module]:
        mods = _modules()
        if mods is None:
            return []
        base, _ = mods
        return [m for m in model.modules() if isinstance(m, base.MemoryModule)]

    def passive(self, model: nn.Module) -> list[nn.Module]:
        # Non-spiking readout nodes integrate without firing: no spike function, nothing to swap.
        mods = _modules()
        if mods is None:
            return []
        _, neuron = mods
        kinds = tuple(
            k for k in (getattr(neuron, n, None) for n in ("NonSpikingBaseNode", "NoisyNonSpikingBaseNode"))
            if isinstance(k, type)
        )
        readouts = [m for m in model.modules() if kinds and isinstance(m, kinds)]
        return readouts + super().passive(model)

    def unadaptable(self, model: nn.Module) -> list[nn.Module]:
        # A surrogate module used on its own as a spiking activation (nn.Sequential(..., surrogate.ATan()))
        # is a stateless neuron whose spike function no neuron attribute holds.
        mods = _modules()
        if mods is None:
            return []
        from spikingjelly.activation_based import surrogate

        held = {id(d) for n in self.find(model) for d in n.modules()}
        return [
            m for m in model.modules() if isinstance(m, surrogate.SurrogateFunctionBase) and id(m) not in held
        ]

    def neuron_reason(self, neuron: nn.Module) -> str | None:
        fn = neuron.surrogate_function
        name = type(neuron).__name__
        if type(fn).__name__ == "MultiLevelSpikeCount":
            return f"spikingjelly {name} emits multi-level spike counts, not binary spikes"
        if not getattr(fn, "spiking", True):
            return (
                f"spikingjelly {name} runs its surrogate in non-spiking mode (spiking=False): its forward is "
                "the smooth primitive, not spikes"
            )
        if not callable(fn):
            return f"spikingjelly {name}'s surrogate_function is not callable"
        return None

    def _install(self, neuron: nn.Module, spec: GradSpec) -> Any:
        original = neuron.surrogate_function
        neuron.surrogate_function = spike_swap(original, spec)
        return original

    def reset(self, modules: list[nn.Module]) -> None:
        for m in modules:
            m.reset()

    def snapshot(self, modules: list[nn.Module]) -> list[Any]:
        snap = []
        for m in modules:
            memories = {k: _Snap(v) for k, v in m._memories.items()}
            extra = {k: _Snap(m.__dict__[k]) for k in ("v_seq",) if k in m.__dict__}
            snap.append((memories, extra))
        return snap

    def restore(self, modules: list[nn.Module], snap: list[Any]) -> None:
        for m, (memories, extra) in zip(modules, snap, strict=True):
            # Same dict object, same key order: spikingjelly iterates _memories in order (state tuples).
            m._memories.clear()
            m._memories.update({k: s.get() for k, s in memories.items()})
            for k, s in extra.items():
                m.__dict__[k] = s.get()
