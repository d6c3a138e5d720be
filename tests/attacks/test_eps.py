"""Robust accuracy as a function of eps on trained models: non-increasing, and ~0 at eps = 1."""

from __future__ import annotations

import pytest
from torch import Tensor, nn

from evrobust.attacks import APGD, FGSM, PGD, predict


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


@pytest.mark.parametrize("fixture", ["cnn", "snn"])
def test_pgd_accuracy_non_increasing_in_eps(
    fixture: str, request: pytest.FixtureRequest, digits: tuple[Tensor, ...]
) -> None:
    model = request.getfixturevalue(fixture)
    x, y = digits[2][:100], digits[3][:100]
    curve = [accuracy(model, x, y)]
    for eps in (0.03, 0.06, 0.1, 0.15, 0.25):
        curve.append(accuracy(model, PGD(eps, alpha=eps / 4, steps=10)(model, x, y), y))
    assert all(b <= a + 1e-9 for a, b in zip(curve, curve[1:], strict=False)), curve
    assert curve[0] > 0.9 and curve[-1] < 0.1


@pytest.mark.parametrize("fixture", ["cnn", "snn"])
def test_eps_one_drives_accuracy_to_zero(
    fixture: str, request: pytest.FixtureRequest, digits: tuple[Tensor, ...]
) -> None:
    model = request.getfixturevalue(fixture)
    x, y = digits[2][:150], digits[3][:150]
    assert accuracy(model, PGD(1.0, alpha=0.25, steps=10)(model, x, y), y) <= 0.02
    assert accuracy(model, APGD(1.0, steps=10)(model, x, y), y) <= 0.02
    assert accuracy(model, FGSM(1.0)(model, x, y), y) <= 0.3
