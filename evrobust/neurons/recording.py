"""Per-forward records of IF layers (``record_neurons``); training-time membrane noise (``membrane_noise``).

Defenses that look inside the network (DLIF's perturbation dynamics, TGO's threshold margin; SR could use
it too) read what the IF layers of *one* forward pass saw, without a second pass and without a persistent
global switch: inside ``with record_neurons(model) as record:`` every forward of a chosen
:class:`~evrobust.neurons.IFNeuron` appends a :class:`NeuronTrace` to ``record.traces``; on exit each
neuron's previous recorder is restored (also when the block raises, so nested blocks unwind correctly).
The traces hold the autograd graph of the block's forward passes, so a loss built from them back-propagates
into the weights; they are dropped with the record.

``membrane_noise(model, sigma)`` is the same pattern for TGO's noisy neurons: inside the block each IF layer
adds ``sigma * N(0, 1)`` to its input current at every step (the noise then integrates like any current).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons.module import IFNeuron

__all__ = [
    "NeuronRecord",
    "NeuronTrace",
    "enable_input_gains",
    "leaky_integrate",
    "membrane_noise",
    "record_neurons",
]

LAYER_CHOICES: tuple[str, ...] = ("all", "last")


@dataclass(frozen=True)
class NeuronTrace:
    """What one IF layer saw in one forward call (all tensors ``[T, ...]``, time-major, model units).

    Attributes:
        neuron: the layer.
        current: the input current as the layer received it (before the input gain and the noise).
        integrated: what the dynamics integrate: ``gain[t] * current[t]`` (+ noise inside
            :func:`membrane_noise`); the same tensor as ``current`` when neither is on.
        spikes: the layer's output spikes in {0, 1} (differentiable under the layer's gradient spec).
    """

    neuron: IFNeuron
    current: Tensor
    integrated: Tensor
    spikes: Tensor

    def membrane(self) -> Tensor:
        """Membrane potentials ``u[t]`` before firing, ``[T, ...]``, differentiable.

        ``u[0] = I[0]``, ``u[t] = tau * u[t-1] * (1 - s[t-1]) + I[t]`` with ``I`` = :attr:`integrated` and
        ``s`` = :attr:`spikes`: the values the layer's forward computed (bit for bit: a hard reset
        multiplies by 0 or 1), rebuilt with autograd. The reset factor is *not* detached, as everywhere in
        evrobust: a loss on ``u`` reaches the earlier steps' currents through the spikes' surrogate
        derivative too.
        """
        tau = self.neuron.tau
        steps: list[Tensor] = []
        u = self.integrated[0]
        steps.append(u)
        for t in range(1, self.integrated.shape[0]):
            kept = u * (1.0 - self.spikes[t - 1])
            u = (kept if tau == 1.0 else tau * kept) + self.integrated[t]
            steps.append(u)
        return torch.stack(steps)


@dataclass
class NeuronRecord:
    """The traces of one :func:`record_neurons` block, in call order."""

    traces: list[NeuronTrace] = field(default_factory=list)

    def of(self, neuron: IFNeuron) -> list[NeuronTrace]:
        """The traces of one layer (one per forward call of the model inside the block)."""
        return [t for t in self.traces if t.neuron is neuron]


def _chosen(model: nn.Module, layers: str) -> list[IFNeuron]:
    neurons = [m for m in model.modules() if isinstance(m, IFNeuron)]
    if layers not in LAYER_CHOICES:
        raise UserInputError(f"unknown layer choice {layers!r}; choose one of {', '.join(LAYER_CHOICES)}")
    if not neurons:
        raise UserInputError("the model has no IFNeuron layers to record")
    return neurons if layers == "all" else neurons[-1:]


@contextmanager
def record_neurons(model: nn.Module, layers: str = "all") -> Iterator[NeuronRecord]:
    """Record every forward of the IF layers of ``model`` inside the block.

    Args:
        model: any module holding :class:`IFNeuron` layers (a DDP wrapper works: its submodules are visited).
        layers: ``all`` IF layers, or the ``last`` one in ``model.modules()`` order (the last spiking layer
            before the classifier in evrobust's models, as DLIF's reference code picks it).

    Yields:
        a :class:`NeuronRecord` whose ``traces`` fill as forwards run.
    """
    neurons = _chosen(model, layers)
    record = NeuronRecord()
    saved = [getattr(n, "_recorder", None) for n in neurons]
    for n in neurons:
        n._recorder = record
    try:
        yield record
    finally:
        for n, previous in zip(neurons, saved, strict=True):
            n._recorder = previous


@contextmanager
def membrane_noise(model: nn.Module, sigma: float) -> Iterator[nn.Module]:
    """Inside the block every IF layer adds ``sigma * N(0, 1)`` to its input current, per neuron and step.

    The noise comes from the global torch RNG (saved in training checkpoints, so a resumed run repeats it).
    ``sigma = 0`` is a no-op. The previous setting of each layer is restored on exit.
    """
    if not (isinstance(sigma, int | float) and sigma >= 0.0 and sigma < float("inf")):
        raise UserInputError(f"membrane noise sigma must be a finite number >= 0 (got {sigma!r})")
    neurons = [m for m in model.modules() if isinstance(m, IFNeuron)]
    saved = [getattr(n, "_noise_std", 0.0) for n in neurons]
    for n in neurons:
        n._noise_std = float(sigma)
    try:
        yield model
    finally:
        for n, previous in zip(neurons, saved, strict=True):
            n._noise_std = previous


def enable_input_gains(model: nn.Module, T: int) -> list[IFNeuron]:
    """Give every IF layer of ``model`` a learnable per-step input gain ``[T]`` initialised to 1 (DLIF).

    Returns the layers changed. Call before the optimizer is built and before loading a state dict that
    holds ``*.input_gain`` keys.
    """
    neurons = [m for m in model.modules() if isinstance(m, IFNeuron)]
    for n in neurons:
        n.enable_input_gain(T)
    return neurons


def leaky_integrate(d: Tensor, tau: float = 1.0) -> Tensor:
    """``Y[t] = tau * Y[t-1] + d[t]``, ``Y[-1] = 0``: the neuron's integration without threshold or reset.

    Args:
        d: ``[T, ...]`` time-major input.
        tau: leak factor in [0, 1] (1 = IF: a running sum over time).

    Returns:
        ``[T, ...]``, differentiable.
    """
    if tau == 1.0:
        return torch.cumsum(d, dim=0)
    steps = [d[0]]
    for t in range(1, d.shape[0]):
        steps.append(tau * steps[-1] + d[t])
    return torch.stack(steps)
