"""Per-sample flag bookkeeping: text round trip, appending batches, member accuracies, worst case."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.analysis.evaluate import AttackFlags, evaluate_batch, flags_from_text, flags_to_text, worst_case
from evrobust.attacks import PGD
from evrobust.errors import UserInputError


def test_flag_text_round_trip() -> None:
    flags = torch.tensor([1, 0, -1, 1], dtype=torch.int8)
    assert flags_to_text(flags) == "10-1"
    assert torch.equal(flags_from_text("10-1"), flags)
    assert flags_to_text(torch.tensor([True, False])) == "10"
    with pytest.raises(UserInputError, match="corrupt"):
        flags_from_text("1x")


def test_attack_flags_append_and_accuracies() -> None:
    rec = AttackFlags("pgd10")
    rec.append(torch.tensor([True, False]), {"a": torch.tensor([1, 0]), "b": torch.tensor([1, -1])})
    rec.append(torch.tensor([True, True]), {"a": torch.tensor([1, 1]), "b": torch.tensor([1, 1])})
    assert rec.count == 4 and rec.accuracy() == 0.75
    assert rec.member_accuracy() == {"a": 0.75, "b": None}
    again = AttackFlags.from_json(rec.to_json())
    expected = {"name": "pgd10", "correct": "1011", "members": {"a": "1011", "b": "1-11"}}
    assert again.to_json() == rec.to_json() == expected


def test_worst_case_is_the_per_sample_and() -> None:
    a = torch.tensor([1, 1, 0, 1], dtype=torch.int8)
    b = torch.tensor([True, False, True, True])
    assert worst_case([a, b]).tolist() == [True, False, False, True]
    with pytest.raises(UserInputError):
        worst_case([])
    with pytest.raises(UserInputError):
        worst_case([a, b[:2]])


def test_evaluate_batch_clean_and_attack(cnn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    x, y = digits[2][:40], digits[3][:40]
    clean = evaluate_batch(cnn, None, x, y)
    assert clean.members == [] and torch.equal(clean.correct, cnn(x).argmax(1) == y)
    attacked = evaluate_batch(cnn, PGD(0.1, alpha=0.025, steps=5), x, y, seed=5)
    alone = cnn(PGD(0.1, alpha=0.025, steps=5)(cnn, x, y, seed=5)).argmax(1) == y
    assert torch.equal(attacked.correct, alone & clean.correct)
