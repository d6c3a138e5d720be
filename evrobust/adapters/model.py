"""``AdaptedModel``: spikingjelly, snntorch, norse or evrobust models under evrobust's gradient specs.

:func:`adapt` wraps a user's ``nn.Module`` (inputs in [0, 1] -> logits ``[N, K]``). The wrapper finds the
model's neurons with each library's adapter, resets their hidden state before every forward, applies a
gradient spec to all of them inside :func:`evrobust.neurons.gradient_spec` (through the duck-typed hook
``_evrobust_spec_context``), says which specs it cannot apply (:meth:`AdaptedModel.unsupported`) and gives
the model back exactly as it came (:meth:`AdaptedModel.preserved`).

Unknown neurons: a module is taken for a spiking neuron that no adapter knows when its class is not from
``torch`` or ``evrobust``, no adapter found it or knows it for a non-neuron (``passive``: non-spiking
readouts, the libraries' layers, encoders, losses), it is not inside a found neuron, no module below it is a
neuron or looks like one (that makes it a network, not a neuron), and its class name matches
:data:`NEURON_NAME` (contains neuron, node, lif, iaf or spik, any case; or starts with ``IF`` followed by an
upper-case letter, digit, underscore or nothing). Library modules that spike where no adapter can reach
(a spikingjelly surrogate used on its own as an activation) are unknown whatever their name. Every spec is
then refused for that model, with the note ``surrogate ensemble not applied: unknown neuron type X``: a spec
applied to only some of its neurons would be neither the spec's gradient nor the model's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from torch import Tensor, nn

from evrobust.adapters.base import NeuronAdapter
from evrobust.adapters.norse import NorseAdapter
from evrobust.adapters.snntorch import SnnTorchAdapter
from evrobust.adapters.spikingjelly import SpikingJellyAdapter
from evrobust.errors import UserInputError
from evrobust.neurons.backends import get_backend
from evrobust.neurons.module import IFNeuron
from evrobust.neurons.spec import GradSpec

__all__ = ["ADAPTERS", "AdaptedModel", "NEURON_NAME", "adapt", "get_adapter"]

ADAPTERS: tuple[NeuronAdapter, ...] = (SpikingJellyAdapter(), SnnTorchAdapter(), NorseAdapter())
"""One adapter per supported library, in the order models are searched."""

NEURON_NAME = re.compile(r"(?i:neuron|node|lif|iaf|spik)|^IF(?=[A-Z0-9_]|$)")
"""Class names that look like spiking neurons (for the unknown-neuron check)."""

NO_NEURON = "surrogate ensemble not applied: no spiking neuron found"
UNKNOWN_NEURON = "surrogate ensemble not applied: unknown neuron type {}"


def get_adapter(library: str) -> NeuronAdapter:
    """The adapter for ``library`` (``spikingjelly`` | ``snntorch`` | ``norse``)."""
    for adapter in ADAPTERS:
        if adapter.library == library:
            return adapter
    raise UserInputError(
        f"no surrogate adapter for {library!r}; valid choices: {', '.join(a.library for a in ADAPTERS)}"
    )


def _own_class(module: nn.Module) -> bool:
    """Classes of torch itself and of evrobust are never unknown neurons."""
    return type(module).__module__.split(".")[0] in ("torch", "evrobust")


def _looks_like_neuron(module: nn.Module) -> bool:
    return not _own_class(module) and NEURON_NAME.search(type(module).__name__) is not None


def unknown_neuron_types(model: nn.Module, known: list[nn.Module]) -> list[str]:
    """Class names (each once, ``modules()`` order) of the modules in ``model`` that look like spiking neurons
    but are not in ``known`` (see the module docstring for the rule)."""
    known_ids = {id(m) for m in known}
    inside_known = {id(d) for m in known for d in m.modules()}
    names: list[str] = []
    for m in model.modules():
        if id(m) in inside_known or not _looks_like_neuron(m):
            continue
        below = [d for d in m.modules() if d is not m]
        if any(id(d) in known_ids or _looks_like_neuron(d) for d in below):
            continue  # a network (or block) of neurons, not a neuron
        name = type(m).__name__
        if name not in names:
            names.append(name)
    return names


class AdaptedModel(nn.Module):
    """A user's model with its spiking neurons found and adapted to evrobust's gradient specs.

    ``forward(x)`` resets every adapted neuron's hidden state, then returns ``model(x)`` (logits ``[N, K]``
    for inputs in [0, 1], in whatever layout the model takes, batch first).

    Attributes:
        model: the user's module (a registered child).
        found: library name -> that library's spiking neurons in the model (only libraries with some).
        unknown: class names of modules that look like spiking neurons but no adapter knows (each once).
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise UserInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        super().__init__()
        self.model = model
        self.found: dict[str, list[nn.Module]] = {}
        self._stateful: dict[str, list[nn.Module]] = {}
        passive: list[nn.Module] = []
        unadaptable: list[nn.Module] = []
        for adapter in ADAPTERS:
            neurons = adapter.find(model)
            if neurons:
                self.found[adapter.library] = neurons
            stateful = adapter.stateful(model)
            if stateful:
                self._stateful[adapter.library] = stateful
            passive += adapter.passive(model)
            unadaptable += adapter.unadaptable(model)
        self._if_neurons = [m for m in model.modules() if isinstance(m, IFNeuron)]
        found = [n for ns in self.found.values() for n in ns]
        found_ids = {id(n) for n in found}
        passive = [m for m in passive if id(m) not in found_ids]  # a found neuron is never passive
        unknown = unknown_neuron_types(model, [*found, *self._if_neurons, *passive, *unadaptable])
        self.unknown: list[str] = list(dict.fromkeys([*(type(m).__name__ for m in unadaptable), *unknown]))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``model(x)`` with every neuron starting at rest (each library needs a reset per sample)."""
        self.reset_state()
        return self.model(x)

    def reset_state(self) -> None:
        """Put the hidden state of every adapted library module at rest."""
        for library, modules in self._stateful.items():
            get_adapter(library).reset(modules)

    # --- which specs apply ----------------------------------------------------------------------------------

    def _foreign_reason(self, spec: GradSpec) -> str | None:
        """Why ``spec`` cannot be applied to the non-evrobust neurons (or to a model without neurons)."""
        if self.unknown:
            return UNKNOWN_NEURON.format(", ".join(self.unknown))
        if not self.found and not self._if_neurons:
            return NO_NEURON
        for library, neurons in self.found.items():
            reason = get_adapter(library).check(neurons, spec)
            if reason is not None:
                return reason
        return None

    def unsupported(self, spec: GradSpec | str | None) -> str | None:
        """None when ``spec`` can be applied to every neuron of the model (``None``, the model's own gradient,
        always can), else a one-line reason."""
        if spec is None:
            return None
        spec = GradSpec.parse(spec)
        reason = self._foreign_reason(spec)
        if reason is not None:
            return reason
        for n in self._if_neurons:
            reason = get_backend(n.backend).supports(spec, n.tau, n.theta)
            if reason is not None:
                return f"evrobust IF neuron on backend {n.backend!r}: {reason}"
        return None

    def notes(self) -> list[str]:
        """Human lines about what cannot be adapted (one per unknown neuron type; or no neuron at all)."""
        lines = [UNKNOWN_NEURON.format(name) for name in self.unknown]
        if not lines and not self.found and not self._if_neurons:
            lines.append(NO_NEURON)
        return lines

    # --- applying a spec ------------------------------------------------------------------------------------

    @contextmanager
    def _evrobust_spec_context(self, spec: GradSpec) -> Iterator[None]:
        """Apply ``spec`` to every adapted (non-evrobust) neuron for the block; restored on exit.

        :func:`evrobust.neurons.gradient_spec` enters this for every ``AdaptedModel`` in a model, after
        switching the evrobust IF neurons (which it validates itself). Raises :class:`UserInputError` before
        changing anything when the spec cannot be applied.
        """
        reason = self._foreign_reason(spec)
        if reason is not None:
            raise UserInputError(
                f"gradient spec {str(spec)!r} cannot be applied to {type(self.model).__name__}: {reason}"
            )
        with ExitStack() as stack:
            for library, neurons in self.found.items():
                stack.enter_context(get_adapter(library).swap(neurons, spec))
            yield

    @contextmanager
    def preserved(self) -> Iterator[AdaptedModel]:
        """Within the block anything may change; on exit (also on errors) the model is given back exactly.

        Restored: each submodule's ``training`` flag, each parameter's ``requires_grad``, every adapted
        module's hidden state, every neuron's spike function (the swaps restore these themselves; this is
        the safety net) and every evrobust IF neuron's spec. Yields the adapted model.
        """
        flags = [(m, m.training) for m in self.modules()]
        grads = [(p, p.requires_grad) for p in self.parameters()]
        states = {lib: get_adapter(lib).snapshot(mods) for lib, mods in self._stateful.items()}
        spike_fns = {lib: get_adapter(lib).save_spike_functions(ns) for lib, ns in self.found.items()}
        specs: list[tuple[IFNeuron, Any, Any]] = [(n, n.spec, n._assg_state) for n in self._if_neurons]
        try:
            yield self
        finally:
            for lib, saved in spike_fns.items():
                get_adapter(lib).restore_spike_functions(self.found[lib], saved)
            for n, spec, assg in specs:
                n._use_spec(spec, assg)
            for lib, snap in states.items():
                get_adapter(lib).restore(self._stateful[lib], snap)
            for p, flag in grads:
                p.requires_grad_(flag)
            for m, flag in flags:
                m.training = flag

    def extra_repr(self) -> str:
        found = ", ".join(f"{lib}: {len(ns)}" for lib, ns in self.found.items()) or "none"
        unknown = f", unknown={self.unknown}" if self.unknown else ""
        return f"neurons={{{found}}}{unknown}"


def adapt(model: nn.Module) -> AdaptedModel:
    """``model`` wrapped as an :class:`AdaptedModel` (an ``AdaptedModel`` is returned as it is)."""
    if isinstance(model, AdaptedModel):
        return model
    return AdaptedModel(model)
