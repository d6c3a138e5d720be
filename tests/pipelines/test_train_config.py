"""Paper defaults per dataset and defense (Appendix D), option validation, eps parsing, sharding."""

from __future__ import annotations

import pytest
import torch

from evrobust.errors import UserInputError
from evrobust.pipelines.common.options import parse_eps, parse_fraction
from evrobust.pipelines.train.config import TrainConfig, resolve_config
from evrobust.pipelines.train.distributed import epoch_permutation, shard


@pytest.mark.parametrize(
    ("defense", "dataset", "lam"),
    [
        ("sr", "cifar10", 0.008),
        ("sr", "cifar100", 0.002),
        ("sr", "cifar10dvs", 0.002),
        ("sr_star", "cifar10", 0.002),
        ("sr_star", "cifar10dvs", 0.002),
        ("sr_star", "cifar100", 0.001),
        ("sr", "digits", 0.002),
        ("at", "cifar10", 0.0),
        ("vanilla", "cifar10", 0.0),
    ],
)
def test_lambda_defaults_follow_appendix_d(defense: str, dataset: str, lam: float) -> None:
    kind, frames = ("frames", 10) if dataset == "cifar10dvs" else ("images", None)
    assert resolve_config(TrainConfig(data=dataset, defense=defense), dataset, kind, frames).lam == lam


def test_cifar10dvs_defaults_table5() -> None:
    c = resolve_config(TrainConfig(data="cifar10dvs", defense="at"), "cifar10dvs", "frames", 10)
    assert (c.batch_size, c.at_method, c.T, c.augment, c.weight_decay) == (24, "fgsm", 10, True, 5e-4)
    c = resolve_config(TrainConfig(data="cifar10", defense="rat"), "cifar10", "images", None)
    assert (c.batch_size, c.at_method, c.T, c.augment, c.weight_decay) == (64, "pgd", 8, True, 0.0)
    c = resolve_config(TrainConfig(data="digits", T=4, lam=0.5), "digits", "images", None)
    assert (c.T, c.augment, c.lam) == (
        4,
        False,
        0.0,
    )  # no SR term: an explicit lam is dropped (with a warning)


def test_emulated_cifar10dvs_trains_with_the_real_recipe() -> None:
    # the emulated recordings stand in for the real ones: Table 5's batch, FGSM AT, augmentation, lambdas
    c = resolve_config(TrainConfig(data="x", defense="sr_star"), "cifar10dvs-emu", "frames", 10)
    assert (c.batch_size, c.at_method, c.T, c.augment, c.lam) == (24, "fgsm", 10, True, 0.002)
    c = resolve_config(TrainConfig(data="x", defense="sr"), "cifar10dvs-emu", "frames", 10)
    assert c.lam == 0.002


def test_explicit_values_win() -> None:
    user = TrainConfig(
        data="cifar10", defense="sr", lam=0.01, batch_size=8, at_method="fgsm", weight_decay=0.0
    )
    c = resolve_config(user, "cifar10", "images", None)
    assert (c.lam, c.batch_size, c.at_method, c.weight_decay) == (0.01, 8, "fgsm", 0.0)
    assert user.lam == 0.01 and user.T is None  # the user's object is not modified


def test_frames_refuse_another_T() -> None:
    with pytest.raises(UserInputError, match="--T 8 does not match the store's 10 event frames"):
        resolve_config(TrainConfig(data="x", T=8), "cifar10dvs", "frames", 10)


def test_identity_ignores_runtime_fields() -> None:
    a = TrainConfig(data="digits", out="a", device="cpu", resume=False, workers=0, stop_after=1)
    b = TrainConfig(data="/elsewhere/digits.zarr", out="b", device="cuda", resume=True, workers=4)
    assert a.identity() == b.identity()
    assert a.identity() != TrainConfig(data="digits", seed=1).identity()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"defense": "madry"}, "vanilla, sr, at, sr_star, rat, trades, dsd, dlif, tgo"),
        ({"defense": "dsd", "dsd_base": "sr"}, "--dsd-base"),
        ({"defense": "trades", "trades_tau": 0.0}, "--trades-tau"),
        ({"defense": "trades", "at_method": "fgsm"}, "own sign-gradient attack"),
        ({"defense": "dlif", "dlif_kappa": 1.5}, "--dlif-kappa"),
        ({"defense": "tgo", "tgo_warmup": 2.0}, "--tgo-warmup"),
        ({"defense": "tgo", "tgo_delta": 0.0}, "--tgo-delta"),
        ({"input_gain": 1}, "--input-gain"),
        ({"sr_penalty": "l2"}, "l2sq, l1"),
        ({"at_method": "cw"}, "pgd, fgsm"),
        ({"device": "tpu"}, "auto, cpu, cuda"),
        ({"lam": -1.0}, "--lam"),
        ({"h": 0.0}, "--h"),
        ({"at_eps": 1.5}, "--at-eps"),
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": 0.0}, "--lr"),
        ({"momentum": 1.0}, "--momentum"),
        ({"weight_decay": -1e-4}, "--weight-decay"),
        ({"width": 0.0}, "--width"),
        ({"at_step": 0.0}, "PGD step"),
        ({"workers": -1}, "--workers"),
    ],
)
def test_validation_messages(kwargs: dict, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        TrainConfig(data="digits", **kwargs).validate()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2/255", 2 / 255),
        ("8/255", 8 / 255),
        (" 2.55 / 255 ", 2.55 / 255),
        ("0.01", 0.01),
        ("1e-3", 1e-3),
        ("0", 0.0),
        ("1", 1.0),
        (0.5, 0.5),
    ],
)
def test_parse_eps(text: str | float, value: float) -> None:
    assert parse_eps(text) == value


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("8", "8/255"),
        ("1.5", r"\[0, 1\]"),
        ("2/0", "divides by zero"),
        ("two", "number"),
        ("", "number"),
        ("nan", "number"),
        ("1/2/3", "number"),
    ],
)
def test_parse_eps_rejects(text: str, needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        parse_eps(text)


def test_parse_fraction_allows_values_above_one() -> None:
    assert parse_fraction("510/255") == 2.0


@pytest.mark.parametrize(("n", "world"), [(10, 2), (10, 3), (7, 4), (1, 3)])
def test_shards_cover_every_sample_with_equal_lengths(n: int, world: int) -> None:
    order = epoch_permutation(n, seed=3, epoch=2)
    parts = [shard(order, r, world) for r in range(world)]
    assert len({p.numel() for p in parts}) == 1 and parts[0].numel() == -(-n // world)
    assert set(torch.cat(parts).tolist()) == set(range(n))
    assert torch.equal(order, epoch_permutation(n, seed=3, epoch=2))
    assert not torch.equal(epoch_permutation(50, 3, 2), epoch_permutation(50, 3, 3))


@pytest.mark.parametrize(
    ("defense", "dataset", "expected"),
    [
        ("at", "cifar10dvs", ("fgsm", 2 / 255, 0.01, 5)),
        ("trades", "cifar10dvs", ("pgd", 8 / 255, 3 / 255, 4)),
        ("trades", "digits", ("pgd", 8 / 255, 3 / 255, 4)),
        ("dlif", "digits", ("fgsm", 4 / 255, 0.01, 5)),
        ("dsd", "digits", ("pgd", 2 / 255, 0.01, 5)),
    ],
)
def test_attack_defaults_per_defense(defense: str, dataset: str, expected: tuple) -> None:
    kind, frames = ("frames", 10) if dataset == "cifar10dvs" else ("images", None)
    c = resolve_config(TrainConfig(data=dataset, defense=defense), dataset, kind, frames)
    assert c.at_method == expected[0]
    assert (c.at_eps, c.at_step, c.at_steps) == pytest.approx(expected[1:])
    d = c.defense_config()
    assert (d.at_method, d.at_eps, d.at_steps) == (c.at_method, c.at_eps, c.at_steps)


def test_new_defense_options_resolve_and_stay_out_of_old_identities(caplog) -> None:
    old_keys = {
        "model", "width", "T", "model_options", "defense", "lam", "sr_penalty", "h", "at_method", "at_eps",
        "at_step", "at_steps", "rat_beta", "epochs", "batch_size", "lr", "momentum", "weight_decay",
        "neuron_backend", "augment", "limit_train", "limit_val", "seed", "amp",
    }  # fmt: skip
    for defense in ("vanilla", "sr", "at", "sr_star", "rat"):
        c = resolve_config(TrainConfig(data="digits", defense=defense), "digits", "images", None)
        assert set(c.identity()) == old_keys, defense  # runs from before these options still match
        assert c.at_eps == 2 / 255 and c.input_gain is False
    c = resolve_config(TrainConfig(data="digits", defense="dlif"), "digits", "images", None)
    assert (c.dlif_kappa, c.dlif_alpha, c.input_gain) == (0.5, 1.0, True)
    assert c.trades_beta is None and "trades_beta" not in c.identity()
    c = resolve_config(TrainConfig(data="digits", defense="dsd", dsd_base="trades"), "digits", "images", None)
    assert (c.dsd_base, c.trades_beta, c.trades_tau, c.at_eps) == ("trades", 5.0, 2.0, 8 / 255)
    c = resolve_config(TrainConfig(data="digits", defense="tgo", tgo_noise=0.2), "digits", "images", None)
    assert (c.tgo_noise, c.defense_config().tgo_noise) == (0.2, 0.2)
    with caplog.at_level("WARNING"):
        user = TrainConfig(data="digits", defense="at", trades_beta=3.0)
        c = resolve_config(user, "digits", "images", None)
    assert c.trades_beta is None and "--trades-beta 3.0 is ignored" in caplog.text
