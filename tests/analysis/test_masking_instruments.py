"""The masking-study instruments against answers worked out by hand.

Two models with known landscapes (float64, so the references hold to rounding):

- a linear classifier on the flattened 4-pixel input, ``z0 = w . x + b``, ``z1 = 0``: the cross-entropy of a
  sample of class 0 is ``softplus(-m)`` with the margin ``m = z0``; along a direction ``u`` the margin moves
  by ``r (w . u)``, so every value along the way, the rise radius and every finite difference follow in
  closed form; the loss rises smoothly (no flat region) and the surrogate (here the true gradient) is
  exact: fidelity 1;
- the same classifier behind a hard quantiser ``round(4 x) / 4`` with a straight-through backward: at
  ``x = 0.1`` every pixel stays at level 0 until ``x + r`` passes 0.125, so the loss is exactly flat for
  ``r < 0.025``, jumps there, and the surrogate derivative (non-zero) has nothing to do with the finite
  differences at steps 1e-3 and 1e-2 (zero): fidelity 0, and the loss changes at eps = 8/255.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from evrobust.analysis import (
    adversarial_direction,
    check_radii,
    check_steps,
    default_radii,
    fidelity_check,
    loss_along,
    median_rise,
    rise_radius,
    sign_directions,
    summarize_fidelity,
)
from evrobust.analysis.fidelity import (
    ce_and_gradient,
    central_difference,
    directional,
    disagreement,
    interior,
)
from evrobust.analysis.indicators import fd_disagreement
from evrobust.errors import UserInputError

EPS = 8 / 255


def _linear(w: list[float], b: float, dtype: torch.dtype = torch.float64) -> nn.Module:
    layer = nn.Linear(4, 2).to(dtype)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0] = torch.tensor(w, dtype=dtype)
        layer.bias.zero_()
        layer.bias[0] = b
    return nn.Sequential(nn.Flatten(), layer)


class _Quantise(nn.Module):
    """``round(4 x) / 4`` forward, identity backward (straight-through)."""

    def forward(self, x: Tensor) -> Tensor:
        return x + (torch.round(4 * x) / 4 - x).detach()


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def _sample(value: float, n: int = 1) -> tuple[Tensor, Tensor]:
    return torch.full((n, 1, 2, 2), value, dtype=torch.float64), torch.zeros(n, dtype=torch.long)


# ----------------------------------------------------------------------------------------- landscape


def test_linear_model_rises_smoothly_and_its_rise_radius_is_the_hand_computed_one() -> None:
    # z0 = 5 (x1 + x2) - 4: m0 = 1 at x = 0.5. Gradient direction sign(dCE/dx) = (-1, -1, 0, 0), along which
    # m(r) = 1 - 10 r and CE(r) = softplus(10 r - 1). A rise of 0.1 nats needs
    # 10 r - 1 >= log(exp(softplus(-1) + 0.1) - 1) = -0.669937, i.e. r >= 0.0330063.
    model = _linear([5.0, 5.0, 0.0, 0.0], -4.0)
    x, y = _sample(0.5)
    _, grad = ce_and_gradient(model, x, y)
    u = grad.sign()
    assert u.flatten().tolist() == [-1.0, -1.0, 0.0, 0.0]
    radii = [0.01, 0.02, 0.03, 0.04, 0.05, 0.1]
    out = loss_along(model, x, y, u, radii)
    assert out["ce"][0].tolist() == pytest.approx([_softplus(10 * r - 1) for r in radii], rel=1e-12)
    assert out["margin"][0].tolist() == pytest.approx([1 - 10 * r for r in radii], rel=1e-12)
    assert out["clipped"][0].tolist() == [0.0] * 6  # 0.5 - 0.1 stays inside [0, 1]
    assert bool((out["ce"][0].diff() > 0).all())  # no flat stretch anywhere
    ce0 = torch.tensor([_softplus(-1.0)], dtype=torch.float64)
    assert (math.log(math.exp(_softplus(-1) + 0.1) - 1) + 1) / 10 == pytest.approx(0.0330063, abs=1e-7)
    assert rise_radius(ce0, out["ce"], radii, 0.1).tolist() == [0.04]
    assert rise_radius(ce0, out["ce"], radii, 0.35).tolist() == [0.1]  # softplus(0) - softplus(-1) = 0.380
    assert math.isnan(rise_radius(ce0, out["ce"], radii, 5.0).item())  # never within the grid


def test_clipping_is_recorded_and_the_adversarial_direction_reaches_its_example() -> None:
    model = _linear([1.0, -1.0, 2.0, 0.5], 0.0)
    x = torch.tensor([[[[0.99, 0.5], [0.02, 0.5]]]], dtype=torch.float64)
    y = torch.zeros(1, dtype=torch.long)
    u = torch.tensor([[[[1.0, 1.0], [-1.0, 0.0]]]], dtype=torch.float64)
    out = loss_along(model, x, y, u, [0.005, 0.015, 0.03])
    # moving components: 3; clipped at 0.015: the 0.99 pixel (1.005 > 1); at 0.03 also the 0.02 one (-0.01).
    assert out["clipped"][0].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])
    # clipped point at 0.03: (1.0, 0.53, 0.0, 0.5) -> z0 = 1 - 0.53 + 0 + 0.25 = 0.72
    assert out["margin"][0, 2].item() == pytest.approx(0.72, rel=1e-12)
    x_adv = x + torch.tensor([[[[0.0, -0.02], [0.01, 0.0]]]], dtype=torch.float64)
    direction, r = adversarial_direction(x, x_adv)
    assert r.tolist() == pytest.approx([0.02])
    torch.testing.assert_close(x + r.item() * direction, x_adv)
    assert direction.abs().max().item() == 1.0
    zero, r0 = adversarial_direction(x, x.clone())
    assert r0.tolist() == [0.0] and not bool(zero.any())


def test_quantiser_is_exactly_flat_below_its_step_and_jumps_at_the_hand_computed_radius() -> None:
    # round(4 x)/4 at x = 0.1 is 0 until x + r > 0.125. z0 = -3 * sum(q) + 2: sign(dCE/dx) (straight-through)
    # is +1 on every pixel; CE = softplus(-2) = 0.126928 until r = 0.025, then softplus(1) = 1.313262.
    model = nn.Sequential(_Quantise(), _linear([-3.0] * 4, 2.0))
    x, y = _sample(0.1)
    _, grad = ce_and_gradient(model, x, y)
    u = grad.sign()
    assert u.flatten().tolist() == [1.0] * 4
    radii = [0.001, 0.01, 0.02, 0.03, 0.05, 0.1]
    ce = loss_along(model, x, y, u, radii)["ce"]
    flat, high = _softplus(-2.0), _softplus(1.0)
    assert ce[0].tolist() == pytest.approx([flat, flat, flat, high, high, high], rel=1e-12)
    assert len(set(ce[0, :3].tolist())) == 1 and len(set(ce[0, 3:].tolist())) == 1  # exactly flat, one jump
    assert rise_radius(torch.tensor([flat], dtype=torch.float64), ce, radii, 0.1).tolist() == [0.03]


def test_median_rise_counts_never_as_infinite() -> None:
    nan = float("nan")
    assert median_rise(torch.tensor([0.1, 0.3, 0.2], dtype=torch.float64)) == 0.2
    assert median_rise(torch.tensor([0.1, nan, 0.2, 0.4], dtype=torch.float64)) == 0.2  # lower median
    assert median_rise(torch.tensor([0.1, nan, nan], dtype=torch.float64)) is None
    assert median_rise(torch.tensor([], dtype=torch.float64)) is None


def test_grids_are_checked() -> None:
    radii = default_radii(EPS, 16)
    assert len(radii) == 16 and radii[0] == 1e-3 and radii[-1] == 4 * EPS
    assert all(a < b for a, b in zip(radii, radii[1:], strict=False))
    assert radii[0] < 0.01 < radii[-1]  # SR's step h lies inside the grid
    ratios = [b / a for a, b in zip(radii, radii[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)  # log-spaced
    for bad, words in (([0.02, 0.01], "strictly increasing"), ([0.0, 0.1], "(0, 1]"), ([], "at least one")):
        with pytest.raises(UserInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            check_radii(bad)
    for bad, words in (([0.0], "in \\(0, 0.5\\]"), ([0.01, 0.01], "strictly increasing")):
        with pytest.raises(UserInputError, match=words):
            check_steps(bad)
    with pytest.raises(UserInputError, match="> 0"):
        rise_radius(torch.zeros(1), torch.zeros(1, 1), [0.1], 0.0)


# ----------------------------------------------------------------------------------------- fidelity


def test_linear_model_has_fidelity_one_and_the_hand_computed_differences() -> None:
    # z0 = 0.5 x1 - 0.3 x2 + 0.9 x3 + 0.2 x4 - 0.3; class 0. Along u the margin moves by s = w . u, and
    # fd_h = (softplus(-(m0 + s h)) - softplus(-(m0 - s h))) / (2h) exactly (a linear logit). No sign
    # pattern cancels w (no subset of {0.5, 0.3, 0.9, 0.2} sums to 0.95), so no difference is zero.
    w = [0.5, -0.3, 0.9, 0.2]
    model = _linear(w, -0.3)
    x = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]]], [[[0.5, 0.5], [0.3, 0.7]]]], dtype=torch.float64)
    y = torch.zeros(2, dtype=torch.long)
    steps = [1e-3, 1e-2, 3e-2]
    out = fidelity_check(model, x, y, steps, random=3, seed=5)
    assert out["directions"] == ["gradient", "random-0", "random-1", "random-2"]
    randoms = sign_directions(x, 3, 5)
    _, grad = ce_and_gradient(model, x, y)
    for s, h in enumerate(steps):
        for d, base in enumerate([grad.sign(), *randoms]):
            for i in range(2):
                u = interior(base, x, h)[i].flatten().tolist()
                m0 = sum(wj * xj for wj, xj in zip(w, x[i].flatten().tolist(), strict=True)) - 0.3
                slope = sum(wj * uj for wj, uj in zip(w, u, strict=True))
                fd = (_softplus(-(m0 + slope * h)) - _softplus(-(m0 - slope * h))) / (2 * h)
                derivative = -slope / (1 + math.exp(m0))  # d softplus(-m) / dr = -s sigmoid(-m)
                assert out["fd"][s][i, d].item() == pytest.approx(fd, rel=1e-9, abs=1e-12)
                assert out["surrogate"][s][i, d].item() == pytest.approx(derivative, rel=1e-12, abs=1e-15)
        summary = summarize_fidelity(out["surrogate"][s], out["fd"][s], out["delta_eps"][s])
        assert summary["cosine"] == pytest.approx(1.0, abs=1e-6)
        assert summary["ratio"] == pytest.approx(1.0, abs=1e-3)
        assert summary["zero_fd_share"] == 0.0 and summary["flat_changes_share"] == 0.0
        assert summary["median_disagreement"] < 1e-3


def test_quantiser_has_fidelity_zero_and_is_flat_where_the_loss_changes_at_eps() -> None:
    model = nn.Sequential(_Quantise(), _linear([-3.0, 1.0, -2.0, 0.5], 2.0))
    gen = torch.Generator().manual_seed(0)
    # pixels in [0.10, 0.11]: +-1e-2 keeps every level at 0, + 8/255 = 0.0314 passes 0.125 (level 0.25)
    x = (0.10 + 0.01 * torch.rand(3, 1, 2, 2, generator=gen)).double()
    y = torch.zeros(3, dtype=torch.long)
    out = fidelity_check(model, x, y, [1e-3, 1e-2, 3e-2], random=2, seed=1, eps=EPS)
    for s in (0, 1):
        assert bool((out["fd"][s] == 0).all()) and bool((out["surrogate"][s] != 0).all())
        summary = summarize_fidelity(out["surrogate"][s], out["fd"][s], out["delta_eps"][s])
        assert summary == {"cosine": 0.0, "ratio": None, "median_disagreement": 1.0, "zero_fd_share": 1.0,
                           "flat_changes_share": 1.0}
    # at 3e-2 some pixels pass the level boundary: the finite difference is no longer all zero
    assert bool((out["fd"][2] != 0).any())
    wide = summarize_fidelity(out["surrogate"][2], out["fd"][2], out["delta_eps"][2])
    assert wide["flat_changes_share"] < 1


def test_the_pieces_are_those_of_fd_disagreement() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3))
    x = torch.rand(5, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1])
    for h, seed in ((1e-3, 0), (1e-2, 7)):
        zero_share, expected = fd_disagreement(model, x, y, h=h, seed=seed)
        _, grad = ce_and_gradient(model, x, y)
        u = interior(sign_directions(x, 1, seed)[0], x, h)
        got = disagreement(directional(grad, u), central_difference(model, x, y, u, h))
        torch.testing.assert_close(got, expected)
        assert zero_share.tolist() == (grad.reshape(5, -1) == 0).float().mean(1).tolist()
