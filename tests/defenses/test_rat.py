"""Parseval retraction (RAT): hand-computed step, convergence to orthonormal rows, row sampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evrobust.defenses import orthogonality_error, parseval_retraction
from evrobust.defenses.rat import project_to_simplex
from evrobust.models.layers import ConvexCombination


def test_one_step_matches_the_formula_on_reshaped_conv_weights() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    w = conv.weight.detach().clone().reshape(4, 27).double()
    expected = ((1 + 0.1) * w - 0.1 * w @ w.T @ w).reshape(4, 3, 3, 3).float()
    parseval_retraction(conv, beta=0.1)
    torch.testing.assert_close(conv.weight.detach(), expected)


def test_scalar_case_by_hand() -> None:
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(2.0)
    parseval_retraction(lin, beta=0.01)
    # (1 + b) w - b w^3 = 1.01 * 2 - 0.01 * 8 = 1.94
    assert lin.weight.item() == pytest.approx(1.94)


@pytest.mark.parametrize("beta", [5e-4, 0.05])
def test_orthogonality_error_shrinks_over_steps(beta: float) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 8, 3), nn.Flatten(), nn.Linear(16, 10))
    errors = [[orthogonality_error(model[0].weight), orthogonality_error(model[2].weight)]]
    for _ in range(40):
        parseval_retraction(model, beta=beta)
        errors.append([orthogonality_error(model[0].weight), orthogonality_error(model[2].weight)])
    for layer in range(2):
        series = [e[layer] for e in errors]
        assert all(b < a for a, b in zip(series, series[1:], strict=False)), series
    if beta == 0.05:
        assert errors[-1][0] < 0.5 * errors[0][0]


def test_large_linear_layers_update_a_random_30_percent_of_rows() -> None:
    torch.manual_seed(2)
    big, small = nn.Linear(5, 300), nn.Linear(5, 199)
    before_big, before_small = big.weight.detach().clone(), small.weight.detach().clone()
    parseval_retraction(nn.ModuleList([big, small]), beta=0.1, generator=torch.Generator().manual_seed(0))
    changed_big = (big.weight.detach() != before_big).any(dim=1)
    changed_small = (small.weight.detach() != before_small).any(dim=1)
    assert int(changed_big.sum()) == 90  # int(300 * 0.3)
    assert bool(changed_small.all())  # below the 200-row threshold: every row
    rows = torch.nonzero(changed_big).squeeze(1)
    w = before_big[rows]
    torch.testing.assert_close(big.weight.detach()[rows], 1.1 * w - 0.1 * w @ w.T @ w)


def test_biases_and_batchnorm_untouched() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parseval_retraction(model, beta=0.1)
    after = model.state_dict()
    assert not torch.equal(after["0.weight"], before["0.weight"])
    for key in ("0.bias", "1.weight", "1.bias", "1.running_mean"):
        assert torch.equal(after[key], before[key]), key


def test_convex_combination_weights_projected_to_simplex() -> None:
    comb = ConvexCombination(2)
    with torch.no_grad():
        comb.comb.copy_(torch.tensor([0.9, 0.6]))
    parseval_retraction(comb)
    torch.testing.assert_close(comb.comb.detach(), torch.tensor([0.65, 0.35]))


@pytest.mark.parametrize(
    ("v", "expected"),
    [([0.5, 0.5], [0.5, 0.5]), ([2.0, -1.0, 0.3], [1.0, 0.0, 0.0]), ([0.2, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3])],
)
def test_project_to_simplex_hand_values(v: list[float], expected: list[float]) -> None:
    torch.testing.assert_close(project_to_simplex(torch.tensor(v)), torch.tensor(expected))
