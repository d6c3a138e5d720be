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
        ({"defense": "trades"}, "vanilla, sr, at, sr_star, rat"),
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
