"""``gradient_spec``: set the gradient spec of every IF neuron in a model for the duration of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

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
    """
    new = GradSpec.parse(spec)
    neurons = if_neurons(model)
    saved = [n.spec for n in neurons]
    # Validate first (the setter raises), rolling back any neuron already switched, so a failure is atomic.
    try:
        for n in neurons:
            n.spec = new
    except BaseException:
        for n, old in zip(neurons, saved, strict=True):
            n.spec = old
        raise
    try:
        yield model
    finally:
        for n, old in zip(neurons, saved, strict=True):
            n.spec = old
