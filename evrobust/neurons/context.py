"""``gradient_spec``: set the gradient spec of every IF neuron in a model for the duration of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from torch import nn

from evrobust.neurons.assg import AssgState
from evrobust.neurons.module import IFNeuron
from evrobust.neurons.spec import GradSpec

__all__ = ["gradient_spec", "if_neurons"]


def if_neurons(model: nn.Module) -> list[IFNeuron]:
    """All :class:`IFNeuron` modules in ``model`` (including ``model`` itself), in ``modules()`` order."""
    return [m for m in model.modules() if isinstance(m, IFNeuron)]


@contextmanager
def gradient_spec(model: nn.Module, spec: GradSpec | str) -> Iterator[nn.Module]:
    """Temporarily set ``.spec`` on every IFNeuron of ``model``; yields ``model``.

    Each neuron's previous spec is restored on exit, also when the block raises, so nested uses unwind
    correctly. The new spec is validated against every neuron's backend before any neuron is changed: an
    unsupported combination raises :class:`evrobust.errors.UserInputError` and leaves the model untouched.

    Modules with an ``_evrobust_spec_context(spec)`` method (:class:`evrobust.adapters.AdaptedModel`) apply
    the spec to their foreign neurons too, entered after the IF neurons are switched and exited before they
    are restored.

    This is the only place where crafting-only specs (``bptr``, ``ann``, ``assg``, ``pdsg``) apply. For
    ``assg`` every neuron gets a fresh :class:`~evrobust.neurons.assg.AssgState` on entry, which every forward
    inside the block updates; on exit the statistics are dropped (the previous state, if any, comes back).
    ``pdsg`` keeps no state: each backward takes its statistics from its own forward pass.
    """
    new = GradSpec.parse(spec)
    neurons = if_neurons(model)
    saved = [(n.spec, n._assg_state) for n in neurons]
    # Validate first (switching raises), rolling back any neuron already switched, so a failure is atomic.
    try:
        for n in neurons:
            n._use_spec(new, AssgState(new.width) if new.stateful else None)
    except BaseException:
        _restore(neurons, saved)
        raise
    try:
        # Foreign neurons (evrobust.adapters.AdaptedModel) apply the spec through a duck-typed hook, so this
        # package never imports the adapters. A hook that refuses the spec raises on entry; the ExitStack
        # unwinds the hooks already entered and the finally restores the IF neurons: still atomic.
        with ExitStack() as hooks:
            for m in model.modules():
                if callable(getattr(type(m), "_evrobust_spec_context", None)):
                    hooks.enter_context(m._evrobust_spec_context(new))
            yield model
    finally:
        _restore(neurons, saved)


def _restore(neurons: list[IFNeuron], saved: list[tuple[GradSpec, AssgState | None]]) -> None:
    for n, (old, state) in zip(neurons, saved, strict=True):
        n._use_spec(old, state)
