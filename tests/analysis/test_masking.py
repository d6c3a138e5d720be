"""Masking checks: hand-made numbers, and synthetic masked models next to a normal trained CNN on digits."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from evrobust.analysis.masking import (
    ZeroGradientStats,
    check_adversarial_below_noise,
    check_large_eps,
    check_monotone_in_eps,
    check_whitebox_below_blackbox,
    check_zero_gradients,
    zero_gradient_stats,
)
from evrobust.attacks import PGD, UniformNoise, predict


@pytest.fixture(scope="module")
def data_and_cnn() -> tuple[Tensor, Tensor, nn.Module]:
    """A small ReLU CNN trained for a few seconds on digits; returns (x_test [200,1,8,8], y_test, model)."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        perm = torch.randperm(1500, generator=gen)
        for i in range(0, 1500, 50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[perm[i : i + 50]]), y[perm[i : i + 50]]).backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return x[1500:1700], y[1500:1700], model.eval()


class Quantized(nn.Module):
    """Gradient masking by a zero-gradient input quantiser: exact on digits (multiples of 1/16)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * 16) / 16)


class Reversed(nn.Module):
    """Same forward, gradient w.r.t. the input negated: a gradient attack descends the loss."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(2 * x.detach() - x)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def run_checks(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, bool]:
    eps = 0.3
    curve = {0.0: accuracy(model, x, y)}
    for e in (0.05, 0.1, eps):
        curve[e] = accuracy(model, PGD(e, alpha=e / 4, steps=10)(model, x, y), y)
    large = accuracy(model, PGD(1.0, alpha=0.25, steps=10)(model, x, y), y)
    noise = accuracy(model, UniformNoise(eps)(model, x, y), y)
    return {
        "monotone_eps": check_monotone_in_eps(curve).passed,
        "large_eps": check_large_eps(large, 1.0).passed,
        "adv_le_noise": check_adversarial_below_noise(curve[eps], noise, tol=0.0).passed,
        "zero_gradients": check_zero_gradients(zero_gradient_stats(model, x, y)).passed,
    }


def test_normal_model_passes_every_check(data_and_cnn: tuple[Tensor, Tensor, nn.Module]) -> None:
    x, y, model = data_and_cnn
    assert accuracy(model, x, y) > 0.9
    names = ("monotone_eps", "large_eps", "adv_le_noise", "zero_gradients")
    assert run_checks(model, x, y) == dict.fromkeys(names, True)


def test_zero_gradient_model_is_flagged(data_and_cnn: tuple[Tensor, Tensor, nn.Module]) -> None:
    x, y, model = data_and_cnn
    masked = Quantized(model)
    assert accuracy(masked, x, y) == accuracy(model, x, y)
    stats = zero_gradient_stats(masked, x, y)
    assert stats.sample_share == 1.0 and stats.element_share == 1.0
    results = run_checks(masked, x, y)
    assert not results["zero_gradients"] and not results["large_eps"]


def test_misleading_gradient_model_is_flagged(data_and_cnn: tuple[Tensor, Tensor, nn.Module]) -> None:
    x, y, model = data_and_cnn
    results = run_checks(Reversed(model), x, y)
    assert not results["adv_le_noise"] and not results["large_eps"]
    assert results["zero_gradients"]


def test_zero_gradient_stats_hand_computed() -> None:
    """A linear model that ignores its first 3 of 8 inputs: 3/8 of the gradient elements are exactly zero."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))
    with torch.no_grad():
        model[1].weight[:, :3] = 0.0
    x, y = torch.rand(5, 1, 8), torch.tensor([0, 1, 2, 3, 0])
    stats = zero_gradient_stats(model, x, y)
    assert stats == ZeroGradientStats(samples=5, sample_share=0.0, element_share=3 / 8)
    merged = stats.merge(ZeroGradientStats(samples=15, sample_share=1.0, element_share=1.0))
    assert merged.samples == 20
    assert merged.sample_share == pytest.approx(0.75)
    assert merged.element_share == pytest.approx(0.25 * 3 / 8 + 0.75)
    # A tolerance counts small gradients as zero too.
    assert zero_gradient_stats(model, x, y, atol=1e9).sample_share == 1.0


def test_check_functions_on_hand_made_numbers() -> None:
    ok = check_monotone_in_eps({0.0: 0.9, 4 / 255: 0.5, 8 / 255: 0.3}, subject="pgd10")
    assert ok.passed and ok.subject == "pgd10" and "8/255: 30.00%" in ok.detail
    bad = check_monotone_in_eps({0.0: 0.9, 4 / 255: 0.3, 8 / 255: 0.5})
    assert not bad.passed and "rises from 30.00%" in bad.detail
    assert check_monotone_in_eps({0.0: 0.9, 4 / 255: 0.3, 8 / 255: 0.305}).passed  # within tol 0.01
    # A noise curve on 100 samples that rises 2 points: 2 sqrt((0.88*0.12 + 0.90*0.10) / 100) = 8.85 points of
    # binomial spread, so it passes; on 10,000 samples the spread is 0.88 points and the 1-point tol rules.
    noisy = {0.0: 0.90, 8 / 255: 0.88, 16 / 255: 0.90}
    assert not check_monotone_in_eps(noisy).passed
    lenient = check_monotone_in_eps(noisy, samples=100)
    assert lenient.passed and "binomial" in lenient.detail
    strict = check_monotone_in_eps(noisy, samples=10_000)
    assert not strict.passed and "by more than 1.00%" in strict.detail
    assert not check_monotone_in_eps({0.0: 0.90, 8 / 255: 0.70, 16 / 255: 0.90}, samples=100).passed
    assert check_large_eps(0.04, 64 / 255).passed and not check_large_eps(0.2, 64 / 255).passed
    assert check_whitebox_below_blackbox(0.2, 0.4).passed
    assert not check_whitebox_below_blackbox(0.5, 0.4).passed
    assert check_adversarial_below_noise(0.3, 0.8).passed
    assert not check_adversarial_below_noise(0.9, 0.8).passed
    flagged = check_zero_gradients(ZeroGradientStats(100, 0.5, 0.9))
    assert not flagged.passed and "50.00% of 100 samples" in flagged.detail
    expected = {"name": "zero_gradients", "passed": False, "detail": flagged.detail, "subject": ""}
    assert flagged.to_json() == expected


def test_square_and_reliable_checks_by_hand() -> None:
    """Square below white-box by more than 0.2 points flags masking; reliable above paper by > tol fails."""
    from evrobust.analysis.masking import check_reliable_below_paper, check_whitebox_below_square

    assert check_whitebox_below_square(0.50, 0.499).passed  # 0.1 points: within AutoAttack's 0.2
    flagged = check_whitebox_below_square(0.50, 0.45, subject="reliable")
    assert not flagged.passed and flagged.name == "whitebox_le_square" and "45.00%" in flagged.detail
    assert check_reliable_below_paper(0.40, 0.40).passed
    assert check_reliable_below_paper(0.405, 0.40, tol=0.01).passed
    failed = check_reliable_below_paper(0.45, 0.40, tol=0.01)
    assert not failed.passed and failed.name == "reliable_le_paper"
