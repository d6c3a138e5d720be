"""Small building blocks shared by the model builders.

Everything inside a model is time-major: a tensor ``[T, N, ...]``. Stateless layers (conv, BN, pooling,
linear) see the time steps as extra batch entries, ``[T*N, ...]``; the spiking neurons see ``[T, N, ...]``
and integrate over the leading axis. :class:`TimeDistributed` is the one place that folds and unfolds.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons import GradSpec, IFNeuron

logger = logging.getLogger(__name__)

POOLS: tuple[str, ...] = ("avg", "max")
READOUTS: tuple[str, ...] = ("mean", "max", "last", "membrane", "rate")


def merge_time(x: Tensor) -> Tensor:
    """Fold time into the batch: ``[T, N, ...] -> [T*N, ...]`` (a view when ``x`` is contiguous)."""
    return x.flatten(0, 1)


def split_time(x: Tensor, T: int) -> Tensor:
    """Unfold the batch into time: ``[T*N, ...] -> [T, N, ...]`` (inverse of :func:`merge_time`)."""
    return x.unflatten(0, (T, x.shape[0] // T))


class TimeDistributed(nn.Sequential):
    """Run stateless layers on every time step at once.

    Input ``[T, N, ...]``; the layers see ``[T*N, ...]`` (so BatchNorm statistics are taken over time and
    batch together, as in the reference code); output ``[T, N, ...]``. Subclassing ``nn.Sequential`` keeps
    state-dict keys short (``features.0.0.weight`` rather than ``features.0.module.0.weight``).
    """

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[0]
        return split_time(super().forward(merge_time(x)), T)


def make_pool(kind: str, kernel: int = 2) -> nn.Module:
    """A spatial pooling layer: ``"avg"`` -> AvgPool2d, ``"max"`` -> MaxPool2d (kernel = stride)."""
    if kind == "avg":
        return nn.AvgPool2d(kernel)
    if kind == "max":
        return nn.MaxPool2d(kernel)
    raise UserInputError(f"unknown pool {kind!r}; choose one of: {', '.join(POOLS)}")


class NeuronFactory:
    """Builds identically configured IF neurons for one model (backend, gradient spec, leak, threshold)."""

    def __init__(self, backend: str, spec: GradSpec, tau: float, theta: float) -> None:
        self.backend = backend
        self.spec = spec
        self.tau = tau
        self.theta = theta

    def __call__(self) -> IFNeuron:
        return IFNeuron(backend=self.backend, spec=self.spec, tau=self.tau, theta=self.theta)


class ConvexCombination(nn.Module):
    """Learnable weighted sum of ``n`` same-shaped tensors, weights initialised to ``1/n``.

    As in the SNN-RAT / gradient-regularisation reference code the weights are free parameters (not
    projected onto the simplex during training); "convex" describes the initialisation.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.comb = nn.Parameter(torch.full((n,), 1.0 / n))

    def forward(self, *xs: Tensor) -> Tensor:
        if len(xs) != self.n:
            raise ValueError(f"ConvexCombination expects {self.n} inputs, got {len(xs)}")
        out = xs[0] * self.comb[0]
        for i in range(1, self.n):
            out = out + xs[i] * self.comb[i]
        return out


class Readout(nn.Module):
    """Turn the last Linear layer's per-step output ``y [T, N, K]`` into logits ``[N, K]``.

    Kinds:

    - ``mean`` (default, the reference): ``mean_t y[t]``.
    - ``max``: ``max_t y[t]`` (max-over-time of the output current; gradient flows through the arg-max step).
    - ``last``: ``y[T-1]`` (only the final step's current; meaningful for frame input).
    - ``membrane``: the final membrane potential of a non-spiking output neuron with the model's leak,
      ``u[T] = sum_t tau^(T-1-t) y[t]``; with ``tau = 1`` this is ``T * mean``, i.e. the mean readout at a
      softmax temperature of ``1/T``.
    - ``rate``: an IF neuron after the last Linear; logits are its firing rates in ``[0, 1]`` so the output
      gradient also passes through the surrogate (the neuron follows the model's gradient spec).
    """

    def __init__(self, kind: str, tau: float, neuron: IFNeuron | None = None) -> None:
        super().__init__()
        if kind not in READOUTS:
            raise UserInputError(f"unknown readout {kind!r}; choose one of: {', '.join(READOUTS)}")
        self.kind = kind
        self.tau = tau
        # Registered only for "rate" so that other readouts add no neuron to the module tree.
        self.neuron = neuron if kind == "rate" else None

    def forward(self, y: Tensor) -> Tensor:
        if self.kind == "mean":
            return y.mean(0)
        if self.kind == "max":
            return y.amax(0)
        if self.kind == "last":
            return y[-1]
        if self.kind == "membrane":
            T = y.shape[0]
            decay = self.tau ** torch.arange(T - 1, -1, -1, dtype=y.dtype, device=y.device)
            return torch.einsum("t,tnk->nk", decay, y)
        assert self.neuron is not None  # guaranteed by __init__
        return self.neuron(y).mean(0)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
