"""Tiny spiking networks built from ``IFNeuron`` for the defense tests (fast on CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.neurons import IFNeuron


class TinySNN(nn.Module):
    """conv3x3(C->4) - BN - IF - avgpool2 - linear(->K), direct encoding over T steps; logits = mean_t.

    Input ``[N, C, H, W]`` in [0, 1]; output ``[N, K]``.
    """

    def __init__(self, in_channels: int = 2, size: int = 6, num_classes: int = 5, T: int = 3) -> None:
        super().__init__()
        self.T = T
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.neuron = IFNeuron()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * (size // 2) ** 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        current = self.bn(self.conv(x))  # the same input current at every step (direct encoding)
        spikes = self.neuron(current.unsqueeze(0).expand(self.T, *current.shape).contiguous())
        pooled = self.pool(spikes.flatten(0, 1)).flatten(1)
        return self.fc(pooled).view(self.T, n, -1).mean(0)


def make_tiny(seed: int = 0, dtype: torch.dtype = torch.float32, **kwargs: int) -> TinySNN:
    """A TinySNN with weights drawn from ``seed`` and input currents large enough to fire."""
    torch.manual_seed(seed)
    model = TinySNN(**kwargs).to(dtype)
    with torch.no_grad():
        model.conv.weight.mul_(3.0)  # make a good share of neurons spike on inputs in [0, 1]
    return model


@pytest.fixture
def tiny_batch() -> tuple[Tensor, Tensor]:
    """8 inputs ``[8, 2, 6, 6]`` in [0, 1] with exact 0s and 1s (to exercise clipping), labels ``[8]``."""
    g = torch.Generator().manual_seed(123)
    x = torch.rand(8, 2, 6, 6, generator=g)
    x[:, :, 0, :] = 0.0
    x[:, :, -1, :] = 1.0
    y = torch.randint(0, 5, (8,), generator=g)
    return x, y


@pytest.fixture
def make_model():
    """Factory fixture: ``make_model(seed=0, dtype=torch.float32, **TinySNN kwargs) -> TinySNN``."""
    return make_tiny
