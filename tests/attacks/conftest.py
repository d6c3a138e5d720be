"""Shared fixtures for the attack tests: small models trained here on scikit-learn's digits (seconds on CPU).

The digits (8x8 grey levels 0..16) are scaled to [0,1] and split 1400 train / 397 test with a fixed seed.
"""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn


def load_digit_tensors() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train [1400,1,8,8], y_train, x_test [397,1,8,8], y_test)``, x in [0,1], y int64."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


class TinyCNN(nn.Module):
    """Plain ReLU CNN for 8x8 single-channel inputs: [N,1,8,8] -> logits [N,10]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.head = nn.Linear(32 * 16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def train(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float, seed: int = 0) -> nn.Module:
    """Adam on cross-entropy, batches of 64, fixed shuffling; returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return load_digit_tensors()


@pytest.fixture(scope="session")
def cnn(digits: tuple[Tensor, Tensor, Tensor, Tensor]) -> nn.Module:
    """A plain CNN with ~97% test accuracy on digits."""
    torch.manual_seed(0)
    x_train, y_train, _, _ = digits
    return train(TinyCNN(), x_train, y_train, epochs=5, lr=3e-3)


def make_snn(seed: int = 0, T: int = 2) -> nn.Module:
    """An untrained small SNN (vgg_small, IF neurons, triangle:1) for 8x8 digits."""
    from evrobust.models import create_model

    torch.manual_seed(seed)
    return create_model("vgg_small", num_classes=10, in_channels=1, T=T, input_size=8)


@pytest.fixture(scope="session")
def snn(digits: tuple[Tensor, Tensor, Tensor, Tensor]) -> nn.Module:
    """A small trained SNN (vgg_small, T=2, ~95% test accuracy) on digits."""
    x_train, y_train, _, _ = digits
    return train(make_snn(0), x_train, y_train, epochs=3, lr=2e-3)


@pytest.fixture(scope="session")
def snn_other(digits: tuple[Tensor, Tensor, Tensor, Tensor]) -> nn.Module:
    """A second, independently initialised and trained SNN (black-box source)."""
    x_train, y_train, _, _ = digits
    return train(make_snn(1), x_train, y_train, epochs=3, lr=2e-3, seed=1)


class ZeroGradient(torch.autograd.Function):
    """Identity forward, zero backward: the simplest gradient masking."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        return torch.zeros_like(grad)


class Masked(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(ZeroGradient.apply(x))
