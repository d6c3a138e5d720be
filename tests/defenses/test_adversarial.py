"""Training-time PGD / FGSM: eps ball, [0, 1], frozen BatchNorm, restored modes, torchattacks parity."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

from evrobust.defenses import adversarial_loss, fgsm_examples, frozen_eval, pgd_examples
from evrobust.errors import UserInputError

EPS = 8 / 255  # larger than the training eps so that the projection and the clipping both bind


def test_pgd_examples_stay_in_eps_ball_and_unit_interval(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model()
    x_adv = pgd_examples(model, x, y, eps=EPS, step=0.01, steps=5)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= EPS + 1e-7
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > 0.9 * EPS  # the attack really moved to the border of the ball
    with torch.no_grad():
        model.eval()
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_crafting_freezes_batchnorm_restores_modes_and_leaves_grads(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().train()
    model.fc.eval()  # a deliberately frozen submodule must stay frozen
    model.conv.weight.grad = torch.full_like(model.conv.weight, 7.0)
    stats = {k: v.clone() for k, v in model.bn.state_dict().items()}
    for craft in (lambda: pgd_examples(model, x, y, steps=3), lambda: fgsm_examples(model, x, y)):
        craft()
        for key, value in model.bn.state_dict().items():
            assert torch.equal(value, stats[key]), key  # running mean/var and num_batches_tracked
        assert model.training and model.bn.training and not model.fc.training
        assert torch.equal(model.conv.weight.grad, torch.full_like(model.conv.weight, 7.0))
        assert model.fc.weight.grad is None


def test_frozen_eval_restores_modes_on_exception(make_model) -> None:
    model = make_model().train()
    with pytest.raises(RuntimeError, match="boom"), frozen_eval(model):
        assert not model.training and not model.bn.training
        raise RuntimeError("boom")
    assert model.training and model.bn.training


def _reference_pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float, step: float, steps: int) -> Tensor:
    """PGD without random start as textbook loops: ascend, project onto the ball, clip to [0, 1]."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + step * g.sign()
        x_adv = torch.max(torch.min(x_adv, x + eps), x - eps).clamp(0, 1)
    return x_adv


def test_pgd_without_random_start_matches_reference_and_torchattacks(make_model, tiny_batch) -> None:
    x, y = tiny_batch  # batch of 8: the 1/N of a mean loss is a power of two, so signs agree bit for bit
    model = make_model()
    ours = pgd_examples(model, x, y, eps=EPS, step=0.01, steps=4, random_start=False)
    model.eval()
    reference = _reference_pgd(model, x, y, EPS, 0.01, 4)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=0.01, steps=4, random_start=False)(x, y)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-7)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


def test_fgsm_matches_torchattacks(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model()
    ours = fgsm_examples(model, x, y, eps=EPS)
    theirs = torchattacks.FGSM(model.eval(), eps=EPS)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    assert ((ours - x).abs() <= EPS + 1e-7).all() and ours.min() >= 0 and ours.max() <= 1


def test_random_start_uses_the_generator(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model()
    a = pgd_examples(model, x, y, steps=1, generator=torch.Generator().manual_seed(1))
    b = pgd_examples(model, x, y, steps=1, generator=torch.Generator().manual_seed(1))
    c = pgd_examples(model, x, y, steps=1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_adversarial_loss_is_cross_entropy_on_the_crafted_batch(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().train()
    twin = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    out = adversarial_loss(model, x, y, "pgd", eps=2 / 255, step=0.01, steps=2, generator=gen)
    assert model.training
    expected = F.cross_entropy(twin(out["x_adv"]), y)  # twin in training mode: batch statistics
    torch.testing.assert_close(out["loss"], expected)
    assert ((out["x_adv"] - x).abs() <= 2 / 255 + 1e-7).all()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"eps": 1.5}, r"\[0, 1\]"),
        ({"eps": -0.1}, r"\[0, 1\]"),
        ({"step": 0.0}, "step"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_pgd_arguments(make_model, tiny_batch, kwargs: dict, needle: str) -> None:
    x, y = tiny_batch
    with pytest.raises(UserInputError, match=needle):
        pgd_examples(make_model(), x, y, **kwargs)


def test_unknown_method(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    with pytest.raises(UserInputError, match="pgd, fgsm"):
        adversarial_loss(make_model(), x, y, method="cw")
