"""Shared helpers for the model tests: small, fast instances of every registered model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from evrobust.models import create_model
from evrobust.neurons import IFNeuron

# Width multipliers that keep every registered model at a few thousand to ~100k parameters, so that the
# shape/gradient grid runs in milliseconds per case. A model added later falls back to 0.25.
SMALL_WIDTH: dict[str, float] = {"vgg11": 0.125, "vgg_small": 0.5, "wrn16": 0.125, "wrn_small": 0.5}


def small_model(name: str, **kwargs: Any) -> nn.Module:
    """``create_model(name, ...)`` with a small width and T=2 unless the caller says otherwise."""
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("width", SMALL_WIDTH.get(name, 0.25))
    kwargs.setdefault("T", 2)
    return create_model(name, **kwargs)


def n_params(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def if_neurons(model: nn.Module) -> list[IFNeuron]:
    """All IF neurons of ``model`` in module order."""
    return [m for m in model.modules() if isinstance(m, IFNeuron)]


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Every test starts from the same RNG state (failures reproduce) and runs on one intra-op thread.

    These models are tiny: with two threads on a busy 2-core machine the OpenMP hand-offs cost more than
    they save (this directory took ~4x longer). The previous thread count is restored afterwards.
    """
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_active(model: nn.Module, x: torch.Tensor, gain: float = 4.0) -> nn.Module:
    """Make spikes reach the output, then return ``model`` in eval mode.

    At initialisation the reference layout (Linear layers with PyTorch's default init, no BN in the
    classifier) sends almost no spikes to the last layer, so logits are exactly 0 and a comparison of two
    outputs would pass vacuously. Scaling every Linear weight by ``gain`` and calibrating BN running
    statistics on ``x`` (cumulative average of one train-mode pass) gives a model whose eval-mode logits
    are non-zero, like a trained one.
    """
    with torch.no_grad():
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(gain)
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: after one pass, running stats = the batch's stats
        model.train()
        model(x)
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


def assert_active(logits: torch.Tensor) -> None:
    """Guard against vacuous comparisons: most logits must be non-zero."""
    assert (logits != 0).float().mean() > 0.5, "no spikes reach the output; the comparison would be vacuous"
