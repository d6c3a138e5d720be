"""Fixtures of the reliable-suite tests: a small trained run; the ``reliable`` cascade at small budgets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from evrobust.attacks import APGD, APGDT, SAPGD, Cascade, Square, Stage
from evrobust.attacks.registry import ATTACKS
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

OPTIONS: dict[str, Any] = {
    "suite": "reliable", "ensemble": "single", "limit": 40, "batch_size": 20, "device": "cpu",
    "eps": "24/255",
}


def small_cascade(eps: float, seed: int) -> Cascade:
    return Cascade(
        [
            Stage("apgd-ce", APGD(eps, steps=5, seed=seed), ("triangle:1", "sigmoid:4")),
            Stage("sapgd", SAPGD(eps, steps=5, seed=seed), (None,)),
            Stage("apgd-t", APGDT(eps, steps=3, n_targets=2, seed=seed), ("triangle:1",)),
            Stage("square", Square(eps, n_queries=40, seed=seed), (None,)),
        ]
    )


@pytest.fixture
def small_reliable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ATTACKS, "reliable", dataclasses.replace(ATTACKS["reliable"], factory=small_cascade))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reliable-run")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=2, batch_size=32,
        lr=0.1, limit_train=640, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def strip_seconds(result: dict[str, Any]) -> dict[str, Any]:
    """The result without wall-clock timings (the only fields allowed to differ between reruns)."""
    copy = json.loads(json.dumps(result))
    for a in copy["attacks"]:
        a.pop("seconds")
    if isinstance(copy.get("reliable"), dict):
        copy["reliable"].pop("seconds", None)
    return copy


