"""Our attacks against hand computation and against torchattacks on the same trained models and inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torchattacks
from torch import Tensor, nn

from evrobust.attacks import APGD, FGSM, PGD, RFGSM, predict
from evrobust.attacks.apgd import APGD_LOSSES, apgd_schedule
from evrobust.attacks.base import dlr_loss


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def test_fgsm_on_a_linear_model_matches_hand_computation() -> None:
    """logits = W x + b: grad_x CE = W^T (softmax(z) - onehot(y)); x_adv = clip(x + eps sign(grad))."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    x = torch.tensor([[0.0, 0.2, 0.5, 0.97, 1.0, 0.03]])
    y = torch.tensor([2])
    w, b = model[1].weight.detach(), model[1].bias.detach()
    p = torch.softmax(x @ w.T + b, 1)
    grad = (p - nn.functional.one_hot(y, 3).float()) @ w
    expected = (x + 0.05 * grad.sign()).clamp(0, 1)
    torch.testing.assert_close(FGSM(0.05)(model, x, y), expected, rtol=0, atol=1e-7)


def test_fgsm_equals_torchattacks(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """FGSM is deterministic, so the examples must be the same element by element."""
    x, y = digits[2][:100], digits[3][:100]
    ours = FGSM(0.1)(cnn, x, y)
    theirs = torchattacks.FGSM(cnn, eps=0.1)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_dlr_loss_hand_computed() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.5, 2.0, 1.5, 0.0]])
    y = torch.tensor([0, 0])
    # sample 0: y on top, runner-up 1.0; z1 - z3 = 3 - 0.  sample 1: top 2.0 (class 1), z1 - z3 = 2 - 0.5.
    expected = torch.tensor([-(3.0 - 1.0) / 3.0, -(0.5 - 2.0) / 1.5])
    torch.testing.assert_close(dlr_loss(logits, y), expected)
    # Invariant to a positive rescaling and a shift of the logits.
    torch.testing.assert_close(dlr_loss(4.0 * logits + 7.0, y), expected)
    assert set(APGD_LOSSES) == {"ce", "dlr"}


def test_apgd_checkpoint_schedule() -> None:
    """Checkpoints at p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (of 100 steps)."""
    first, minimum, decrement = apgd_schedule(100)
    assert (first, minimum, decrement) == (22, 6, 3)
    intervals, interval = [], first
    while sum(intervals) + interval <= 100:
        intervals.append(interval)
        interval = max(interval - decrement, minimum)
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0 + 1e-9:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    assert [round(100 * (b - a)) for a, b in zip(p, p[1:], strict=False)] == intervals
    assert apgd_schedule(10) == (2, 1, 1)


@pytest.mark.parametrize("fixture", ["cnn", "snn"])
def test_pgd_matches_torchattacks(
    fixture: str, request: pytest.FixtureRequest, digits: tuple[Tensor, ...]
) -> None:
    """Same eps, step and steps: robust accuracy within 2 points (random starts differ)."""
    model = request.getfixturevalue(fixture)
    x, y = digits[2][:250], digits[3][:250]
    eps, alpha, steps = 0.1, 0.025, 10
    ours = accuracy(model, PGD(eps, alpha=alpha, steps=steps)(model, x, y), y)
    # torchattacks draws its random start from the global generator: seed it, so the outcome does not depend
    # on which tests ran before this one.
    torch.manual_seed(1)
    theirs = accuracy(model, torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)(x, y), y)
    clean = accuracy(model, x, y)
    assert 0.2 < theirs < clean - 0.2, "pick an eps where the attack is neither useless nor total"
    assert abs(ours - theirs) <= 0.02 + 1e-6  # 5 of 250 samples; the slack absorbs float32 rounding


def test_apgd_ce_matches_torchattacks(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """APGD-CE, 100 iterations: within 3 points of torchattacks.APGD on the same model and inputs."""
    x, y = digits[2][:150], digits[3][:150]
    eps = 0.1
    ours_x = APGD(eps, steps=100, loss="ce")(cnn, x, y)
    theirs_x = torchattacks.APGD(cnn, eps=eps, steps=100, loss="ce", seed=0)(x, y)
    ours, theirs = accuracy(cnn, ours_x, y), accuracy(cnn, theirs_x, y)
    assert 0.2 < theirs < accuracy(cnn, x, y) - 0.2
    assert abs(ours - theirs) <= 0.03
    # APGD is at least as strong as PGD-10 with a random start here.
    assert ours <= accuracy(cnn, PGD(eps, alpha=0.025, steps=10)(cnn, x, y), y) + 0.01


def test_apgd_unfooled_samples_keep_their_highest_loss_point(
    cnn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    """For samples it cannot fool, APGD returns its best point: the CE loss is above the clean loss."""
    x, y = digits[2][:120], digits[3][:120]
    x_adv = APGD(0.03, steps=20)(cnn, x, y)
    with torch.no_grad():
        clean_loss = nn.functional.cross_entropy(cnn(x), y, reduction="none")
        adv_loss = nn.functional.cross_entropy(cnn(x_adv), y, reduction="none")
        survived = cnn(x_adv).argmax(1) == y
    assert survived.sum() > 50
    assert bool((adv_loss[survived] > clean_loss[survived]).all())


def test_rfgsm_single_step_is_tramer_and_iterated_variant_matches_torchattacks(
    cnn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x, y = digits[2][:250], digits[3][:250]
    eps = 0.1
    single = RFGSM(eps)
    assert math.isclose(single.alpha, eps / 2) and single.steps == 1
    assert math.isclose(single.step_size, eps / 2)
    # Single step: exactly alpha * sign(noise) + (eps - alpha) * sign(grad at the noisy point), clipped.
    x_adv = single(cnn, x, y)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy = (x + single.alpha * noise.sign()).clamp(0, 1)
    expected = FGSM(eps / 2)(cnn, noisy, y)
    torch.testing.assert_close(x_adv, torch.minimum(torch.maximum(expected, x - eps), x + eps).clamp(0, 1))
    # The iterated form of torchattacks >= 3.4 (alpha 2/255, 10 steps, eps-ball projection).
    ours = accuracy(cnn, RFGSM(eps, alpha=2 / 255, steps=10, step_size=2 / 255)(cnn, x, y), y)
    theirs = accuracy(cnn, torchattacks.RFGSM(cnn, eps=eps, alpha=2 / 255, steps=10)(x, y), y)
    assert abs(ours - theirs) <= 0.02
