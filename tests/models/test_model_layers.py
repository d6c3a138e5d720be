"""Time folding: TimeDistributed against per-step application and spikingjelly's SeqToANNContainer."""

from __future__ import annotations

import torch
from spikingjelly.activation_based.layer import SeqToANNContainer
from torch import nn

from evrobust.models import TimeDistributed
from evrobust.models.layers import merge_time, split_time


def test_fold_order_is_time_major() -> None:
    x = torch.arange(3 * 2).view(3, 2, 1).float()  # x[t, n] = 2t + n
    folded = merge_time(x)
    assert folded.flatten().tolist() == [0, 1, 2, 3, 4, 5]  # row t*N + n
    torch.testing.assert_close(split_time(folded, 3), x)


def test_time_distributed_equals_applying_each_step_in_eval() -> None:
    layers = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2)).eval()
    with torch.no_grad():
        layers[1].running_mean.uniform_(-1, 1)
    x = torch.rand(5, 3, 2, 8, 8)
    out = layers(x)
    assert out.shape == (5, 3, 4, 4, 4)
    for t in range(5):
        torch.testing.assert_close(out[t], nn.Sequential(*layers)(x[t]))


def test_time_distributed_matches_spikingjelly_in_train_mode() -> None:
    # In train mode BN statistics run over T*N together; spikingjelly's container folds the same way.
    ours = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    theirs = SeqToANNContainer(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    theirs.load_state_dict(ours.state_dict())  # both are nn.Sequential subclasses: identical keys
    x = torch.rand(4, 3, 2, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours[1].running_var, theirs[1].running_var)
    # ... and differs from per-step statistics, which would be a different model.
    per_step = torch.stack([ours(x[t : t + 1])[0] for t in range(4)])
    assert not torch.allclose(per_step, ours(x))


def test_state_dict_keys_are_short() -> None:
    layers = TimeDistributed(nn.Linear(3, 2))
    assert sorted(layers.state_dict()) == ["0.bias", "0.weight"]
