"""Black-box transfer: crafted with the source model's gradients, scored on the target."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks import PGD, Ensemble, check_compatible, member_seed, predict, transfer_attack
from evrobust.errors import UserInputError
from evrobust.models import create_model


def pgd() -> PGD:
    return PGD(0.1, alpha=0.025, steps=5, seed=3)


def test_transfer_uses_the_source_gradients(
    snn: nn.Module, snn_other: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x, y = digits[2][:150], digits[3][:150]
    result = transfer_attack(Ensemble(pgd(), "single", skip_fooled=False), snn_other, snn, x, y)
    on_source = pgd()(snn_other, x, y)
    on_target = pgd()(snn, x, y)
    attacked = result.clean_correct
    # The examples are exactly those crafted on the source ...
    assert torch.equal(result.x_adv[attacked], on_source[attacked])
    assert not torch.equal(on_source, on_target)
    # ... scored by the target ...
    assert torch.equal(result.correct, (predict(snn, on_source) == y) & attacked)
    # ... and weaker than the white-box attack on the target (white-box <= black-box), yet not harmless.
    whitebox = float((predict(snn, on_target) == y).float().mean())
    blackbox = float(result.correct.float().mean())
    clean = float(attacked.float().mean())
    assert whitebox < blackbox < clean


def test_transfer_ensemble_is_applied_to_the_source(
    snn: nn.Module, snn_other: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x, y = digits[2][:60], digits[3][:60]
    result = transfer_attack(Ensemble(pgd(), "paper", skip_fooled=False), snn_other, snn, x, y)
    for k, (name, row) in enumerate(zip(result.members, result.member_correct, strict=True)):
        crafted = pgd()(snn_other, x, y, spec=name, seed=member_seed(3, k))  # member k's own random start
        assert torch.equal(row == 1, predict(snn, crafted) == y)


def test_incompatible_source_is_rejected(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    x = digits[2][:4]
    torch.manual_seed(0)
    two_channel = create_model("vgg_small", num_classes=10, in_channels=2, T=2, input_size=8)
    five_class = create_model("vgg_small", num_classes=5, in_channels=1, T=2, input_size=8)
    with pytest.raises(UserInputError, match="source model does not accept"):
        check_compatible(two_channel, snn, x)
    with pytest.raises(UserInputError, match="differ from target"):
        check_compatible(five_class, snn, x)
    check_compatible(snn, snn, x)
    with pytest.raises(UserInputError, match="different from the target"):
        transfer_attack(Ensemble(pgd()), snn, snn, x, digits[3][:4])
