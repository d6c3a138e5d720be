"""The event-domain threat model: the front end, the event budgets and the EventAttack contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks.base import RandomSource
from evrobust.attacks.event_base import (
    CountModel,
    EventAttack,
    EventFrontEnd,
    check_budget_int,
    check_counts,
    events_changed,
    retiming_stats,
)
from evrobust.errors import UserInputError
from evrobust.preprocess.resize import area_weights, resize_frames


def _pixel(values: list[int]) -> Tensor:
    """One pixel's counts over T bins as a ``[1, T, 2, 1, 1]`` batch (polarity 0; polarity 1 empty)."""
    c = torch.zeros(1, len(values), 2, 1, 1)
    c[0, :, 0, 0, 0] = torch.tensor(values, dtype=torch.float32)
    return c


def test_front_end_matches_the_dataset_rule_by_hand() -> None:
    """input = clip(count * unit / scale, 0, 1): counts 0, 3, 13 and 20 at scale 13 give 0, 3/13, 1, 1."""
    front = EventFrontEnd(13.0)
    counts = torch.tensor([0.0, 3.0, 13.0, 20.0]).reshape(1, 1, 2, 2, 1)
    out = front(counts).flatten().tolist()
    assert out == pytest.approx([0.0, 3 / 13, 1.0, 1.0])


def test_front_end_resize_equals_the_store_builder() -> None:
    """With area weights the front end equals preprocess's resize then rint(x * unit) / scale, clipped."""
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(2, 3, 2, 12, 12)).astype(np.float32)
    unit, scale = 4, 40.0  # 12 -> 8 spreads an event in shares of 1/2 per axis: 4 stored units per event
    resized = resize_frames(counts, 8)
    expected = np.clip(np.rint(resized * unit) / scale, 0, 1)
    front = EventFrontEnd(scale, unit, (area_weights(12, 8), area_weights(12, 8)))
    got = front(torch.from_numpy(counts)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert front.sensor_shape((8, 8)) == (12, 12)


def test_front_end_passes_the_gradient_straight_through_the_rounding() -> None:
    """d input / d count = unit / scale below the clip, 0 above it (the clip's true gradient)."""
    front = EventFrontEnd(4.0, 1)
    c = torch.tensor([1.0, 9.0]).reshape(1, 1, 2, 1, 1).requires_grad_(True)
    front(c).sum().backward()
    assert c.grad.flatten().tolist() == pytest.approx([0.25, 0.0])


def test_binary_front_end() -> None:
    front = EventFrontEnd(13.0, binary=True)
    c = torch.tensor([0.0, 1.0, 5.0, 0.0]).reshape(1, 1, 2, 2, 1)
    assert front(c).flatten().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_events_changed_counts_insertions_plus_deletions() -> None:
    clean = _pixel([2, 0, 1])
    adv = _pixel([0, 1, 4])  # 2 deleted, 1 + 3 inserted
    assert events_changed(clean, adv).tolist() == [6]


@pytest.mark.parametrize(
    ("clean", "adv", "moved", "shift"),
    [
        ([2, 0, 1, 0], [0, 1, 0, 2], 3, 3),  # events at bins 0,0,2 -> 1,3,3: shifts 1, 3, 1
        ([1, 1, 0], [1, 1, 0], 0, 0),
        ([0, 3, 0], [1, 1, 1], 2, 1),  # one event earlier, one later, by one bin each
        ([3, 0, 0, 0], [0, 0, 0, 3], 3, 3),
    ],
)
def test_retiming_stats_by_hand(clean: list[int], adv: list[int], moved: int, shift: int) -> None:
    stats = retiming_stats(_pixel(clean), _pixel(adv))
    assert stats.moved.tolist() == [moved] and stats.max_shift.tolist() == [shift]


def test_retiming_stats_refuses_a_changed_total() -> None:
    with pytest.raises(ValueError, match="total"):
        retiming_stats(_pixel([1, 0]), _pixel([1, 1]))


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        (torch.full((1, 2, 2, 3, 3), 0.5), "whole numbers"),
        (torch.full((1, 2, 2, 3, 3), -1.0), ">= 0"),
        (torch.zeros(1, 2, 3, 3, 3), "2 polarities"),
        (torch.zeros(2, 3, 3), r"\[N, T, 2, H, W\]"),
    ],
)
def test_check_counts_refuses_what_no_sensor_emits(counts: Tensor, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        check_counts(counts, torch.zeros(counts.shape[0], dtype=torch.long))


@pytest.mark.parametrize("value", [-1, 1.5, "3", True, None])
def test_check_budget_int_refuses(value: object) -> None:
    with pytest.raises(UserInputError, match="--max-events must be an integer >= 0"):
        check_budget_int("--max-events", value)


class _OnePixel(nn.Module):
    """Logits ``[c - 0.5, 0.5 - c]`` of the count ``c`` at bin 0, polarity 0, pixel (0, 0): class 0 if c>0."""

    def forward(self, x: Tensor) -> Tensor:
        c = x[:, 0, 0, 0, 0]
        return torch.stack([c - 0.5, 0.5 - c], 1)


class _DeleteFirst(EventAttack):
    """Deletes the event at the decisive cell: the smallest valid attack on :class:`_OnePixel`."""

    name = "delete-first"

    def perturb(self, model: nn.Module, counts: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        assert not model.training  # the base class put the model in eval mode
        out = counts.clone()
        out[:, 0, 0, 0, 0] = (out[:, 0, 0, 0, 0] - 1).clamp(min=0)
        return out


class _Broken(EventAttack):
    name = "broken"

    def perturb(self, model: nn.Module, counts: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        return counts - 0.5


def test_event_attack_contract_restores_the_mode_and_checks_the_output() -> None:
    model = CountModel(_OnePixel(), EventFrontEnd(1.0))
    model.train()
    clean = _pixel([1, 0])
    y = torch.tensor([0])
    adv = _DeleteFirst()(model, clean, y)
    assert model.training  # restored
    assert events_changed(clean, adv).tolist() == [1]
    assert model(adv).argmax(1).tolist() == [1]
    with pytest.raises(AssertionError, match="whole numbers"):
        _Broken()(model, clean, y)
    with pytest.raises(UserInputError, match="whole numbers"):
        _DeleteFirst()(model, clean + 0.25, y)


def test_retiming_shift_in_microseconds_by_hand() -> None:
    """Clean events at bins 0, 0, 2 go to bins 1, 3, 3 (the monotone matching): the pairs (0 -> 1), (0 -> 3)
    and (2 -> 3) carry events; with bin centres 0, 100, 300, 600 us the largest shift is 600 - 0 = 600 us."""
    centres = torch.tensor([[0.0, 100.0, 300.0, 600.0]])
    stats = retiming_stats(_pixel([2, 0, 1, 0]), _pixel([0, 1, 0, 2]), centres)
    assert stats.max_shift.tolist() == [3] and stats.max_shift_us.tolist() == [600]
    same = retiming_stats(_pixel([1, 1, 0, 0]), _pixel([1, 1, 0, 0]), centres)
    assert same.max_shift_us.tolist() == [0]
    early = retiming_stats(_pixel([0, 0, 1, 0]), _pixel([0, 1, 0, 0]), centres)  # one event 300 -> 100 us
    assert early.max_shift_us.tolist() == [200]
    with pytest.raises(ValueError, match="bin_centres_us"):
        retiming_stats(_pixel([1, 0]), _pixel([0, 1]), centres)
