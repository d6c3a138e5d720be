"""SA-PGD, APGD-T and Square: hand-computed updates, and APGD-T / Square against torchattacks on one model."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import Tensor, nn

from evrobust.attacks import APGDT, PGD, SAPGD, Square, predict
from evrobust.attacks.apgd import dlr_targeted_loss, random_start
from evrobust.attacks.base import RandomSource
from evrobust.attacks.square import square_fraction
from evrobust.errors import UserInputError

from .conftest import Masked


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def linear_model(seed: int = 0, features: int = 12, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes)).eval()


def ce_and_grad(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), [x])
    return loss.detach(), grad


def test_sapgd_two_steps_by_hand() -> None:
    """Two SA-PGD steps on a linear model, recomputed here from the update rule; the step halves after one.

    steps = 2: the first checkpoint is max(int(0.22 * 2), 1) = 1 iteration, so step 1 uses eps / 2.
    """
    model = linear_model()
    x = torch.rand(3, 1, 3, 4, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    with torch.no_grad():
        y = model(x).argmax(1)  # every sample starts correctly classified
    eps = 0.05
    attack = SAPGD(eps, steps=2, seed=5)
    t = RandomSource(5, 3, None, x.device).uniform(x)

    x0 = random_start(x, t, eps)
    loss0, g0 = ce_and_grad(model, x0, y)
    m = g0 / g0.flatten(1).abs().mean(1).view(-1, 1, 1, 1)
    v = g0**2 / (g0**2).flatten(1).mean(1).view(-1, 1, 1, 1)
    x1 = torch.minimum(torch.maximum(x0 + (eps * m / (v.sqrt() + 1e-12)).clamp(-eps, eps), x - eps), x + eps)
    x1 = x1.clamp(0, 1)
    # At the first step m / sqrt(v) >= 1 element-wise (Cauchy-Schwarz), so the clip makes it eps * sign(g).
    torch.testing.assert_close(x1, (x0 + eps * g0.sign()).clamp(x - eps, x + eps).clamp(0, 1))
    loss1, g1 = ce_and_grad(model, x1, y)
    m = 0.5 * m + g1 / g1.flatten(1).abs().mean(1).view(-1, 1, 1, 1)
    v = 0.8 * v + g1**2 / (g1**2).flatten(1).mean(1).view(-1, 1, 1, 1)
    half = eps / 2
    x2 = (x1 + (half * m / (v.sqrt() + 1e-12)).clamp(-half, half)).clamp(x - eps, x + eps).clamp(0, 1)
    loss2, _ = ce_and_grad(model, x2, y)

    stacked = torch.stack([x0, x1, x2])  # [3 iterates, 3 samples, ...]
    with torch.no_grad():
        fooled = torch.stack([model(p).argmax(1) != y for p in stacked])  # [3, 3]
    # Per sample: the latest iterate that fools the model, else the highest-loss one (first of equals).
    best = torch.stack([loss0, loss1, loss2]).argmax(0)
    last_fooling = torch.where(fooled, torch.arange(3)[:, None], -1).amax(0)
    pick = torch.where(last_fooling >= 0, last_fooling, best)
    expected = stacked[pick, torch.arange(3)]
    torch.testing.assert_close(attack(model, x, y), expected, rtol=0, atol=1e-6)
    assert not torch.equal(x1, x2), "the second step moved"


def test_sapgd_leaves_a_zero_gradient_sample_at_its_start() -> None:
    """An all-zero gradient gives m = v = 0: no step, no NaN (the reference divides 0 by 0 there)."""

    class Flat(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.tensor([[2.0, 0.0, 0.0]]).repeat(x.shape[0], 1) + 0 * x.flatten(1)[:, :3]

    x = torch.full((2, 1, 2, 2), 0.5)
    out = SAPGD(0.1, steps=3, seed=0)(Flat(), x, torch.tensor([0, 0]))
    t = RandomSource(0, 2, None, x.device).uniform(x)
    torch.testing.assert_close(out, random_start(x, t, 0.1))


def test_sapgd_is_at_least_as_strong_as_pgd_on_the_snn(
    snn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x, y = digits[2][:120], digits[3][:120]
    eps = 0.1
    clean = accuracy(snn, x, y)
    pgd = accuracy(snn, PGD(eps, alpha=0.025, steps=20)(snn, x, y), y)
    sapgd = accuracy(snn, SAPGD(eps, steps=20)(snn, x, y), y)
    assert sapgd < clean - 0.2
    assert sapgd <= pgd + 0.03


def test_dlr_targeted_loss_hand_computed() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0, -2.0], [0.5, 2.0, 1.5, 0.0, 1.0]])
    y = torch.tensor([0, 0])
    target = torch.tensor([1, 2])
    # sample 0: sorted 3, 1, 0, -1: 3 - (0 + -1)/2 = 3.5; sample 1: sorted 2, 1.5, 1, 0.5: 2 - 0.75.
    expected = torch.tensor([-(3.0 - 1.0) / 3.5, -(0.5 - 1.5) / 1.25])
    torch.testing.assert_close(dlr_targeted_loss(logits, y, target), expected)
    torch.testing.assert_close(dlr_targeted_loss(3.0 * logits - 2.0, y, target), expected)


def test_apgdt_needs_four_classes() -> None:
    model = linear_model(classes=3)
    with pytest.raises(UserInputError, match="at least 4 classes"):
        APGDT(0.1, steps=2)(model, torch.rand(2, 1, 3, 4), torch.tensor([0, 1]))


def test_apgdt_matches_torchattacks(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """APGD-T, 9 targets: within 3 points of torchattacks.APGDT (same model, inputs, eps, iterations)."""
    x, y = digits[2][:150], digits[3][:150]
    eps, steps = 0.08, 25
    ours = accuracy(cnn, APGDT(eps, steps=steps, n_targets=9)(cnn, x, y), y)
    theirs_attack = torchattacks.APGDT(cnn, eps=eps, steps=steps, n_classes=10, seed=0)
    theirs = accuracy(cnn, theirs_attack(x, y), y)
    assert 0.15 < theirs < accuracy(cnn, x, y) - 0.2, "an eps where the attack is neither useless nor total"
    assert abs(ours - theirs) <= 0.03


def test_square_schedule() -> None:
    """p halves at rescaled iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (of 10 000)."""
    assert square_fraction(0, 5000, 0.8) == 0.8
    assert square_fraction(5, 5000, 0.8) == 0.8  # rescaled 10
    assert square_fraction(6, 5000, 0.8) == 0.4  # rescaled 12
    assert square_fraction(100, 5000, 0.8) == 0.2  # rescaled 200
    assert square_fraction(4999, 5000, 0.8) == 0.8 / 512
    assert square_fraction(50, 100, 0.8) == 0.8 / 128  # rescaled 5000


def test_square_matches_torchattacks(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """Square, margin loss: within 3 points of torchattacks.Square (same model, inputs, eps, queries)."""
    x, y = digits[2][:300], digits[3][:300]
    eps, queries = 0.15, 300
    ours = accuracy(cnn, Square(eps, n_queries=queries)(cnn, x, y), y)
    theirs = accuracy(cnn, torchattacks.Square(cnn, eps=eps, n_queries=queries, seed=0)(x, y), y)
    assert 0.15 < theirs < accuracy(cnn, x, y) - 0.2, "an eps where the attack is neither useless nor total"
    assert abs(ours - theirs) <= 0.03


def test_square_never_reads_the_gradient(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """The same examples with and without a zeroed gradient, while PGD is blinded by it."""
    x, y = digits[2][:60], digits[3][:60]
    masked = Masked(cnn).eval()
    square = Square(0.15, n_queries=50)
    torch.testing.assert_close(square(masked, x, y), square(cnn, x, y))
    pgd_masked = accuracy(cnn, PGD(0.15, alpha=0.04, steps=10)(masked, x, y), y)
    pgd_plain = accuracy(cnn, PGD(0.15, alpha=0.04, steps=10)(cnn, x, y), y)
    assert pgd_plain < pgd_masked - 0.3


def test_square_on_event_frames_stays_in_the_ball() -> None:
    """Frames [N,T,2,H,W] are searched as 2T channels; every sample is broken by a large eps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 6 * 6, 5)).eval()
    x = torch.rand(4, 3, 2, 6, 6)
    y = model(x).argmax(1)
    out = Square(0.5, n_queries=200)(model, x, y)
    assert out.shape == x.shape and float((out - x).abs().max()) <= 0.5 + 1e-6
    assert accuracy(model, out, y) == 0.0
