"""What every surrogate-gradient adapter shares: the spike Function, the swap wrappers, the adapter base.

A foreign neuron (spikingjelly, snntorch, norse) computes its spikes with its library's own spike function,
whose backward is the library's surrogate. An adapter swaps that function, for the duration of a ``with``
block, for a wrapper whose *forward* is still the library's own function (called on ``v.detach()`` under
``no_grad``, so the spikes are bit-identical to the library's: the libraries differ on threshold ties,
snntorch and norse fire at ``v > 0``, spikingjelly at ``v >= 0``) and whose *backward* is an evrobust
surrogate from :data:`evrobust.neurons.surrogates.SURROGATES` (:class:`ForeignSpike`).

Only the ``surrogate`` gradient mode applies to foreign neurons: ``rate`` (RGA), ``bptr`` and ``ann`` change
what the neuron computes over time and ``assg`` keeps per-neuron statistics, which needs evrobust's own
:class:`~evrobust.neurons.IFNeuron` (:func:`unsupported_reason`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons.spec import GradSpec
from evrobust.neurons.surrogates import get_surrogate

__all__ = [
    "ForeignSpike",
    "NeuronAdapter",
    "SpikeSwap",
    "SpikeSwapModule",
    "class_names",
    "spike_swap",
    "surrogate_backward",
    "unsupported_reason",
]

logger = logging.getLogger(__name__)

SurrogateGrad = Callable[[Tensor, float], Tensor]
"""A pure backward ``grad(v, width) -> dS/dU`` at ``v = u - theta`` (same shape as ``v``)."""

_NEEDS_IF_NEURON = {
    "rate": "the rate gradient (RGA) replaces the whole time loop's backward",
    "bptr": "the BPTR crafting forward replaces the neuron's forward",
    "ann": "the ReLU-ANN crafting forward replaces the neuron's forward",
    "assg": "ASSG keeps per-neuron sharpness statistics",
}


def unsupported_reason(spec: GradSpec) -> str | None:
    """None when ``spec`` can be applied to a foreign neuron (mode ``surrogate``, any registered surrogate),
    else a one-line reason."""
    if spec.mode == "surrogate":
        return None
    why = _NEEDS_IF_NEURON.get(spec.mode, f"mode {spec.mode!r} is not a surrogate")
    return f"{why}, which needs evrobust's IF neurons; foreign neurons take surrogate specs only"


def surrogate_backward(spec: GradSpec) -> tuple[SurrogateGrad, float]:
    """``(grad_fn, width)`` of a surrogate-mode spec: the registry's pure backward and the spec's gamma."""
    return get_surrogate(spec.surrogate).grad, spec.width


class ForeignSpike(torch.autograd.Function):
    """Forward: the library's own spikes, unchanged; backward: ``grad_out * grad_fn(v, width)`` for ``v``.

    Call as ``ForeignSpike.apply(v, spikes, grad_fn, width)`` where ``v`` is the neuron's ``u - theta``
    (any shape, floating point) and ``spikes`` the library's spike function on ``v.detach()`` (same shape;
    its dtype is kept, e.g. snntorch returns float32 for any input). The gradient for ``v`` has ``v``'s
    dtype; ``spikes``, ``grad_fn`` and ``width`` get none.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, v: Tensor, spikes: Tensor, grad_fn: SurrogateGrad, width: float
    ) -> Tensor:
        if spikes.shape != v.shape:
            raise RuntimeError(
                f"foreign spike function returned shape {tuple(spikes.shape)} for input {tuple(v.shape)}"
            )
        ctx.save_for_backward(v)
        ctx.grad_fn = grad_fn
        ctx.width = width
        return spikes

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        return (grad_out * ctx.grad_fn(v, ctx.width)).to(v.dtype), None, None, None


class SpikeSwap:
    """Stands in for a library's spike function: the library's forward, an evrobust surrogate's backward.

    ``original`` is the library's callable ``f(v) -> spikes`` (``v = u - theta``, spikes of ``v``'s shape).
    """

    def __init__(self, original: Callable[[Tensor], Tensor], spec: GradSpec) -> None:
        self.original = original
        self.spec = spec
        self.grad_fn, self.width = surrogate_backward(spec)

    def __call__(self, v: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and v.requires_grad):
            # No gradient can flow: the library's own call is exactly right (and cheapest).
            return self.original(v)
        with torch.no_grad():
            spikes = self.original(v.detach())
        return ForeignSpike.apply(v, spikes, self.grad_fn, self.width)

    def __repr__(self) -> str:
        return f"SpikeSwap({self.spec}, forward={self.original!r})"


class SpikeSwapModule(nn.Module):
    """:class:`SpikeSwap` as an ``nn.Module``, for libraries whose spike function is a child module
    (spikingjelly's ``surrogate_function``). The original stays registered as the child ``original``, so the
    model's ``parameters()`` and ``.to()`` still reach it during the swap."""

    def __init__(self, original: nn.Module, spec: GradSpec) -> None:
        super().__init__()
        self.original = original
        self._swap = SpikeSwap(original, spec)

    @property
    def spiking(self) -> bool:
        """The original's spiking mode (spikingjelly nodes read ``surrogate_function.spiking``)."""
        return bool(getattr(self.original, "spiking", True))

    def forward(self, v: Tensor) -> Tensor:
        """Spikes of ``v = u - theta`` (any shape): the original's forward, the swapped backward."""
        return self._swap(v)

    def extra_repr(self) -> str:
        return f"spec={self._swap.spec}"


def spike_swap(original: Callable[[Tensor], Tensor], spec: GradSpec) -> Callable[[Tensor], Tensor]:
    """The swap wrapper for ``original``: a module if ``original`` is one (so that assigning it keeps the
    attribute in ``_modules``, where restoring the original must find it), else a plain callable."""
    if isinstance(original, nn.Module):
        return SpikeSwapModule(original, spec)
    return SpikeSwap(original, spec)


def class_names(modules: list[nn.Module]) -> str:
    """``"Leaky, Synaptic"``: each class name once, in first-seen order."""
    return ", ".join(dict.fromkeys(type(m).__name__ for m in modules))


class NeuronAdapter:
    """Finds one library's spiking neurons in a model and swaps their surrogate gradient.

    Subclasses set :attr:`library` and :attr:`attribute` (the per-neuron attribute that holds the spike
    function or what selects it) and implement :meth:`find`, :meth:`_install`; they override
    :meth:`stateful`, :meth:`reset`, :meth:`snapshot`, :meth:`restore` when the library keeps hidden state in
    its modules, :meth:`neuron_reason` for neurons the swap cannot serve, :attr:`passive_modules` /
    :meth:`passive` for the library's neuron-like modules with nothing to swap, and :meth:`unadaptable` for
    modules that do spike but that the swap cannot reach.
    """

    library: str = ""
    attribute: str = ""
    passive_modules: tuple[str, ...] = ()
    """Python modules of the library whose classes are never neurons (layers, encoders, losses), even when
    their names look like one (``SpikeTraceOp``, ``SpikeLatencyEncoder``)."""

    # --- discovery -----------------------------------------------------------------------------------------

    def find(self, model: nn.Module) -> list[nn.Module]:
        """The library's spiking neurons in ``model.modules()`` order; [] when the library is not loaded."""
        raise NotImplementedError

    def stateful(self, model: nn.Module) -> list[nn.Module]:
        """The modules whose hidden state :meth:`reset` and :meth:`snapshot` handle (default: none)."""
        return []

    def passive(self, model: nn.Module) -> list[nn.Module]:
        """Library modules that may look like neurons by name but hold no spike function to swap (default:
        the modules whose class comes from :attr:`passive_modules`)."""
        if not self.passive_modules:
            return []
        return [m for m in model.modules() if type(m).__module__.startswith(self.passive_modules)]

    def unadaptable(self, model: nn.Module) -> list[nn.Module]:
        """Library modules that spike but whose spike function the swap cannot reach (default: none)."""
        return []

    # --- support -------------------------------------------------------------------------------------------

    def neuron_reason(self, neuron: nn.Module) -> str | None:
        """Why the swap cannot serve this particular neuron, or None (default: it can)."""
        return None

    def check(self, neurons: list[nn.Module], spec: GradSpec) -> str | None:
        """None when ``spec`` can be applied to every neuron of ``neurons``, else a one-line reason."""
        reason = unsupported_reason(spec)
        if reason is not None:
            return f"{reason} (this model has {self.library} {class_names(neurons)})"
        for neuron in neurons:
            reason = self.neuron_reason(neuron)
            if reason is not None:
                return reason
        return None

    # --- the swap ------------------------------------------------------------------------------------------

    def _install(self, neuron: nn.Module, spec: GradSpec) -> Any:
        """Swap ``neuron``'s backward for ``spec``'s surrogate; return what :meth:`_uninstall` needs."""
        raise NotImplementedError

    def _uninstall(self, neuron: nn.Module, saved: Any) -> None:
        """Undo :meth:`_install` (default: put the saved attribute value back)."""
        setattr(neuron, self.attribute, saved)

    @contextmanager
    def swap(self, neurons: list[nn.Module], spec: GradSpec) -> Iterator[None]:
        """Within the block, every neuron's backward is ``spec``'s surrogate; the forward is unchanged.

        Validated first (:class:`UserInputError` naming the reason, nothing changed). The originals come back
        on exit, also when the block raises; if installing fails half way, the neurons already swapped are
        rolled back before the error propagates.
        """
        reason = self.check(neurons, spec)
        if reason is not None:
            raise UserInputError(f"gradient spec {str(spec)!r} cannot be applied: {reason}")
        done: list[tuple[nn.Module, Any]] = []
        try:
            for neuron in neurons:
                done.append((neuron, self._install(neuron, spec)))
            yield
        finally:
            self._uninstall_all(done)

    def _uninstall_all(self, done: list[tuple[nn.Module, Any]]) -> None:
        # Restore every neuron even if one restore fails, newest first (so nested swaps of one neuron
        # unwind correctly), then report the first failure.
        first: BaseException | None = None
        for neuron, saved in reversed(done):
            try:
                self._uninstall(neuron, saved)
            except BaseException as err:  # re-raised below, after the others are restored
                logger.error("restoring %s's surrogate failed: %s", type(neuron).__name__, err)
                first = first or err
        if first is not None:
            raise first

    def save_spike_functions(self, neurons: list[nn.Module]) -> list[Any]:
        """Each neuron's current :attr:`attribute` value (the spike function or what selects it)."""
        return [getattr(n, self.attribute) for n in neurons]

    def restore_spike_functions(self, neurons: list[nn.Module], saved: list[Any]) -> None:
        """Put back values from :meth:`save_spike_functions` (only where they differ, by identity)."""
        for neuron, value in zip(neurons, saved, strict=True):
            if getattr(neuron, self.attribute) is not value:
                setattr(neuron, self.attribute, value)

    # --- hidden state --------------------------------------------------------------------------------------

    def reset(self, modules: list[nn.Module]) -> None:
        """Put the hidden state of ``modules`` (from :meth:`stateful`) at rest (default: nothing to do)."""

    def snapshot(self, modules: list[nn.Module]) -> list[Any]:
        """The hidden state of ``modules``, for :meth:`restore` (default: none)."""
        return [None for _ in modules]

    def restore(self, modules: list[nn.Module], snap: list[Any]) -> None:
        """Give ``modules`` back the hidden state of :meth:`snapshot`, exactly (default: nothing to do)."""
