"""Defense registry: each name computes the loss it documents; validation of the configuration."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from evrobust.defenses import (
    DEFENSES,
    DefenseConfig,
    DefenseObjective,
    after_optimizer_step,
    before_optimizer_step,
    defense_loss,
    pgd_examples,
    sr_loss,
)
from evrobust.errors import UserInputError


@pytest.mark.parametrize("name", DEFENSES)
def test_every_defense_gives_a_finite_differentiable_loss(make_model, tiny_batch, name: str) -> None:
    x, y = tiny_batch
    model = make_model().train()
    out = DefenseObjective(model, DefenseConfig(name=name, lam=0.01, at_steps=2))(x, y)
    assert set(out) >= {"loss", "ce", "reg", "logits"} and out["logits"].shape == (8, 5)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.fc.weight.grad is not None
    assert (out["reg"] > 0) == (name in ("sr", "sr_star", "trades", "dlif", "tgo")), name


def test_sr_star_is_sr_on_the_pgd_batch(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().train()
    twin = copy.deepcopy(model)
    config = DefenseConfig(name="sr_star", lam=0.3, at_steps=2)
    torch.manual_seed(5)
    out = defense_loss(model, x, y, config)
    torch.manual_seed(5)
    x_adv = pgd_examples(twin, x, y, config.at_eps, config.at_step, 2)
    expected = sr_loss(twin, x_adv, y, lam=0.3)
    torch.testing.assert_close(out["loss"], expected["loss"])
    assert not torch.allclose(out["loss"], sr_loss(copy.deepcopy(model), x, y, lam=0.3)["loss"])


def test_vanilla_is_cross_entropy(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().eval()
    out = defense_loss(model, x, y, DefenseConfig())
    torch.testing.assert_close(out["loss"], F.cross_entropy(model(x), y))


def test_only_rat_post_processes_weights(make_model) -> None:
    for name in DEFENSES:
        model = make_model()
        before = model.conv.weight.detach().clone()
        after_optimizer_step(model, DefenseConfig(name=name))
        assert torch.equal(model.conv.weight.detach(), before) == (name != "rat"), name


def test_only_dsd_changes_gradients_before_the_step(make_model) -> None:
    for name in DEFENSES:
        model = make_model()
        model.conv.weight.grad = torch.randn_like(model.conv.weight)
        before = model.conv.weight.grad.clone()
        before_optimizer_step(model, DefenseConfig(name=name))
        assert torch.equal(model.conv.weight.grad, before) == (name != "dsd"), name


@pytest.mark.parametrize(
    ("name", "base", "expected"),
    [
        ("at", "at", ("pgd", 2 / 255, 0.01, 5)),
        ("trades", "at", ("pgd", 8 / 255, 3 / 255, 4)),
        ("dsd", "at", ("pgd", 2 / 255, 0.01, 5)),
        ("dsd", "trades", ("pgd", 8 / 255, 3 / 255, 4)),
        ("dlif", "at", ("fgsm", 4 / 255, 0.01, 5)),
    ],
)
def test_attack_defaults_per_defense(name: str, base: str, expected: tuple) -> None:
    c = DefenseConfig(name=name, dsd_base=base)
    assert c.at_method == expected[0]
    assert (c.at_eps, c.at_step, c.at_steps) == pytest.approx(expected[1:])


def test_dsd_computes_its_base_loss(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().eval()
    for base in ("vanilla", "at", "trades"):
        torch.manual_seed(3)
        ours = defense_loss(model, x, y, DefenseConfig(name="dsd", dsd_base=base, at_steps=1))
        torch.manual_seed(3)
        theirs = defense_loss(model, x, y, DefenseConfig(name=base, at_steps=1))
        torch.testing.assert_close(ours["loss"], theirs["loss"], msg=base)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "madry"}, "vanilla, sr, at, sr_star, rat, trades, dsd, dlif, tgo"),
        ({"name": "dsd", "dsd_base": "sr"}, "vanilla, at, trades"),
        ({"name": "trades", "at_method": "fgsm"}, "own sign-gradient attack"),
        ({"name": "trades", "trades_tau": 0.0}, "temperature"),
        ({"name": "trades", "trades_beta": -1.0}, "beta"),
        ({"name": "dlif", "dlif_kappa": 1.5}, "kappa"),
        ({"name": "dlif", "dlif_alpha": float("nan")}, "alpha"),
        ({"name": "tgo", "tgo_delta": 0.0}, "delta"),
        ({"name": "tgo", "tgo_warmup": 2.0}, "warm-up"),
        ({"name": "tgo", "tgo_noise": -0.1}, "noise"),
        ({"name": "sr", "lam": -1.0}, "lambda"),
        ({"name": "sr", "h": 0.0}, "step h"),
        ({"name": "at", "at_eps": 2.0}, r"\[0, 1\]"),
        ({"name": "at", "at_method": "apgd"}, "pgd, fgsm"),
        ({"name": "rat", "rat_beta": -1e-3}, "beta"),
    ],
)
def test_config_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        DefenseConfig(**kwargs)
