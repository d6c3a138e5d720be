"""The robustness metadata an export carries: the training attack's radius for every defense that crafts."""

from __future__ import annotations

from pathlib import Path

import pytest

from evrobust.pipelines.export import robustness_metadata


@pytest.mark.parametrize(
    ("defense", "train_eps", "attack"),
    [
        ({"name": "vanilla", "at_eps": 2 / 255, "at_method": "pgd"}, 0.0, "none"),
        ({"name": "sr", "lam": 0.008, "at_eps": 2 / 255, "at_method": "pgd"}, 0.0, "none"),
        ({"name": "at", "at_eps": 2 / 255, "at_method": "pgd"}, 2 / 255, "pgd"),
        ({"name": "trades", "at_eps": 8 / 255, "at_method": "pgd"}, 8 / 255, "pgd"),
        ({"name": "dlif", "at_eps": 4 / 255, "at_method": "fgsm"}, 4 / 255, "fgsm"),
        ({"name": "dsd", "dsd_base": "at", "at_eps": 2 / 255, "at_method": "pgd"}, 2 / 255, "pgd"),
        ({"name": "dsd", "dsd_base": "vanilla", "at_eps": 2 / 255, "at_method": "pgd"}, 0.0, "none"),
        ({"name": "tgo", "at_eps": 2 / 255, "at_method": "pgd"}, 0.0, "none"),
    ],
)
def test_train_eps_is_recorded_for_every_defense_that_crafts(
    tmp_path: Path, defense: dict, train_eps: float, attack: str
) -> None:
    meta = robustness_metadata(tmp_path, {"defense": defense, "data": {"dataset": "digits"}}, "best")
    assert meta["train_eps"] == pytest.approx(train_eps)
    assert meta["train_attack"] == attack
