"""Theorem 1 check: exact values for linear and quadratic f_y, Monte Carlo against closed forms, summaries,
and a smoke run on a tiny SNN."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from evrobust.analysis import summarize_theorem, theorem_check
from evrobust.errors import UserInputError
from evrobust.models import create_model


class Linear(nn.Module):
    """logits = W x.flatten(), float64."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.double())

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self.weight.T


def logit_of_label(z: Tensor, y: Tensor) -> Tensor:
    """f_y = z_y: linear in x for a linear model, so the first-order analysis is exact."""
    return z.gather(1, y[:, None]).squeeze(1)


def test_linear_target_gives_exact_adversarial_and_closed_form_random_vulnerability() -> None:
    w = torch.tensor([[0.5, -2.0, 0.0, 1.0], [1.0, 0.5, 0.2, 3.0]], dtype=torch.float64)
    model = Linear(w)
    x = torch.full((2, 4), 0.5, dtype=torch.float64)
    y = torch.tensor([0, 1])
    eps = 0.05
    m = 3000
    out = theorem_check(model, x, y, eps, target=logit_of_label, mc_samples=m, pgd_steps=3, seed=7)
    l1 = w.abs().sum(1)
    l2sq = w.square().sum(1)
    # sup over the cube of (w.delta)^2 is (eps ||w||_1)^2, reached at delta = eps sign(w): exact.
    torch.testing.assert_close(out["rho_adv"], (eps * l1).square(), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(out["rho_adv_linear"], (eps * l1).square(), rtol=1e-12, atol=0.0)
    assert out["l0"].tolist() == [3.0, 4.0]
    assert out["upper"].tolist() == [9.0, 12.0]
    assert out["lower"].tolist() == [3.0, 3.0]
    torch.testing.assert_close(out["estimate"], 3 * l1.square() / l2sq)
    # E (w.delta)^2 = eps^2 ||w||_2^2 / 3 exactly; the Monte Carlo mean must lie within 5 standard errors.
    exact = eps**2 * l2sq / 3
    torch.testing.assert_close(out["rho_rand_linear"], exact)
    assert ((out["rho_rand"] - exact).abs() < 5 * out["rho_rand_se"]).all()
    assert (out["rho_rand_se"] < 0.05 * exact).all()
    # Hence the measured ratio is the estimate up to Monte Carlo error, inside [3, 3 l0].
    torch.testing.assert_close(out["ratio"], out["estimate"], rtol=0.08, atol=0.0)
    summary = summarize_theorem(out)
    assert summary["defined"] == 2 and summary["in_bounds"] == 1.0


def _expected_abs_2d(w1: float, w2: float, eps: float, n: int = 2000) -> float:
    """E |w1 d1 + w2 d2| for d ~ U([-eps, eps]^2), midpoint rule on an n x n grid (error ~ 1e-7 relative)."""
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * eps - eps
    d1, d2 = torch.meshgrid(centres, centres, indexing="ij")
    return float((w1 * d1 + w2 * d2).abs().mean())


@pytest.mark.parametrize("weights", [(1.5,), (1.0, -3.0)])
def test_mean_absolute_change_matches_exact_integral(weights: tuple[float, ...]) -> None:
    eps = 0.1
    model = Linear(torch.tensor([weights], dtype=torch.float64))
    x = torch.full((1, len(weights)), 0.5, dtype=torch.float64)
    out = theorem_check(model, x, torch.tensor([0]), eps, target=logit_of_label, mc_samples=4000, pgd_steps=0)
    if len(weights) == 1:
        exact = eps * abs(weights[0]) / 2  # E|w d| = |w| eps / 2
    else:
        exact = _expected_abs_2d(*weights, eps)
    # |w.delta| <= eps ||w||_1, so its standard deviation is below eps ||w||_1; 5 sigma of the mean of 4000.
    bound = 5 * eps * sum(abs(v) for v in weights) / math.sqrt(4000)
    assert abs(float(out["rand_abs"][0]) - exact) < bound


class Quadratic(nn.Module):
    """logit 0 = -(x1 - 0.5)^2 + x2, logit 1 = 0: at x = (0.5, 0.5) the x1-gradient is exactly zero."""

    def forward(self, x: Tensor) -> Tensor:
        z0 = -(x[:, 0] - 0.5).square() + x[:, 1]
        return torch.stack([z0, torch.zeros_like(z0)], 1)


def test_zero_gradient_elements_start_at_a_vertex_and_both_directions_are_tried() -> None:
    """sup (f - f0)^2 = (eps + eps^2)^2, reached descending with |delta_1| = eps although df/dx1 = 0."""
    eps = 0.2
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([0])
    out = theorem_check(Quadratic(), x, y, eps, target=logit_of_label, mc_samples=2, pgd_steps=4)
    assert float(out["rho_adv"][0]) == pytest.approx((eps + eps**2) ** 2, rel=1e-12)
    assert out["l0"].tolist() == [1.0]  # the gradient (0, 1) has one non-zero element


def test_clip_keeps_draws_inside_the_unit_cube() -> None:
    model = Linear(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    x = torch.zeros(1, 2, dtype=torch.float64)  # at the corner: clipping halves the reachable cube
    eps = 0.1
    clipped = theorem_check(model, x, torch.tensor([0]), eps, target=logit_of_label, mc_samples=8, clip=True)
    free = theorem_check(model, x, torch.tensor([0]), eps, target=logit_of_label, mc_samples=8)
    assert float(clipped["rho_adv"][0]) == pytest.approx((2 * eps) ** 2)  # only +eps per element is allowed
    assert float(free["rho_adv"][0]) == pytest.approx((2 * eps) ** 2)
    assert float(clipped["rho_rand"][0]) != pytest.approx(float(free["rho_rand"][0]))


def test_summary_counts_undefined_ratios_and_bounds() -> None:
    per_sample = {
        "rho_rand": torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64),
        "rho_adv": torch.tensor([0.0, 3.0, 10.0, 4.0], dtype=torch.float64),
        "ratio": torch.tensor([math.nan, 3.0, 10.0, 2.0], dtype=torch.float64),
        "estimate": torch.tensor([5.0, 4.0, 9.0, 6.0], dtype=torch.float64),
        "upper": torch.tensor([9.0, 9.0, 9.0, 9.0], dtype=torch.float64),
        "lower": torch.full((4,), 3.0, dtype=torch.float64),
    }
    for key in ("rho_rand_linear", "rho_adv_linear", "rand_abs"):
        per_sample[key] = torch.ones(4, dtype=torch.float64)
    summary = summarize_theorem(per_sample)
    assert summary["defined"] == 3
    assert summary["in_bounds"] == pytest.approx(1 / 3)  # 3 is in [3, 9]; 10 above; 2 below
    assert summary["below_estimate"] == pytest.approx(2 / 3)  # 3 <= 4, 2 <= 6, 10 > 9
    assert summary["mean"]["ratio"] == pytest.approx(5.0)
    assert summary["median"]["ratio"] == pytest.approx(3.0)
    assert summary["per_sample"]["ratio"][0] is None


def test_bad_arguments_are_user_errors() -> None:
    model = Linear(torch.ones(1, 2, dtype=torch.float64))
    x = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([0])
    for kwargs in ({"eps": 0.0}, {"eps": 2.0}, {"eps": 0.1, "mc_samples": 1}, {"eps": 0.1, "pgd_steps": -1}):
        with pytest.raises(UserInputError):
            theorem_check(model, x, y, target=logit_of_label, **kwargs)


def test_tiny_snn_smoke() -> None:
    torch.manual_seed(0)
    # T 4, theta 0.5: with fewer steps or theta 1 the untrained net's output spikes do not change at all
    # within the cube (the SNN is piecewise constant in x), so every ratio would be undefined.
    snn = create_model("vgg_small", num_classes=10, in_channels=1, T=4, width=0.5, input_size=8, theta=0.5)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 2, 3])
    out = theorem_check(snn, x, y, 0.1, mc_samples=6, pgd_steps=2, spec="triangle:1")
    assert all(t.shape == (3,) for t in out.values())
    # The maximiser also sees every Monte Carlo draw, so rho_adv >= the largest draw >= their mean.
    assert (out["rho_adv"] >= out["rho_rand"]).all()
    defined = torch.isfinite(out["ratio"])
    assert defined.any()  # theta 0.5 makes the untrained net spike, so f_y moves under noise
    assert (out["ratio"][defined] >= 1.0).all()
    torch.testing.assert_close(out["upper"], 3 * out["l0"])
    assert ((out["l0"] > 0) & (out["l0"] <= 64)).all()
