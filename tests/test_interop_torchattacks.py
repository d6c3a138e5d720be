"""Interop: a third-party attack library (torchattacks 3.5.1) drives an evrobust model unchanged.

The model is trained here for a few seconds on scikit-learn's 8x8 digits (pixels / 16, in [0, 1]).
Normalisation lives inside the model, so torchattacks works directly in [0, 1] pixel space.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torchattacks
from sklearn.datasets import load_digits
from torch import nn

from evrobust.models import create_model

EPS = 0.1  # L-inf budget in [0, 1] pixel units; digits have 17 grey levels, so 0.1 is ~1.6 levels


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """A small model on a shared 2-core machine runs faster on one intra-op thread; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)  # [1797, 1, 8, 8] in [0, 1]
    y = torch.tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return x[:1500], y[:1500], x[1500:], y[1500:]


@pytest.fixture(scope="module")
def trained(digits: tuple[torch.Tensor, ...]) -> nn.Module:
    x_train, y_train, _, _ = digits
    torch.manual_seed(0)
    mean, std = [float(x_train.mean())], [float(x_train.std())]
    model = create_model("vgg_small", 10, in_channels=1, input_size=8, T=4, width=0.5, mean=mean, std=std)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(3):
        for i in range(0, len(x_train), 50):
            loss = nn.functional.cross_entropy(model(x_train[i : i + 50]), y_train[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_torchattacks_pgd_lowers_accuracy_more_than_random_noise(
    trained: nn.Module, digits: tuple[torch.Tensor, ...]
) -> None:
    _, _, x_test, y_test = digits
    x, y = x_test[:200], y_test[:200]
    clean = _accuracy(trained, x, y)
    assert clean >= 0.8, f"the quick training did not learn digits (clean accuracy {clean:.2f})"

    attack = torchattacks.PGD(trained, eps=EPS, alpha=EPS / 4, steps=10, random_start=True)
    adv = attack(x, y)
    assert adv.shape == x.shape
    assert float((adv - x).abs().max()) <= EPS + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert not trained.training, "torchattacks must hand the model back in eval mode"
    robust = _accuracy(trained, adv, y)

    delta = torch.empty_like(x).uniform_(-EPS, EPS, generator=torch.Generator().manual_seed(1))
    noise = (x + delta).clamp(0, 1)
    noisy = _accuracy(trained, noise, y)

    assert robust <= clean - 0.2, f"PGD barely hurt: clean {clean:.2f} -> adversarial {robust:.2f}"
    assert noisy >= clean - 0.1, f"same-size random noise should hurt little: {clean:.2f} -> {noisy:.2f}"
    assert robust < noisy


def test_torchattacks_fgsm_with_zero_budget_changes_nothing(
    trained: nn.Module, digits: tuple[torch.Tensor, ...]
) -> None:
    _, _, x_test, y_test = digits
    x, y = x_test[:64], y_test[:64]
    adv = torchattacks.FGSM(trained, eps=0.0)(x, y)
    torch.testing.assert_close(adv, x, rtol=0, atol=0)
