"""Spike retiming: the placement kernel by hand, a known answer, validity on a real SNN, budgets and seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks.event_base import CountModel, EventFrontEnd, retiming_stats
from evrobust.attacks.retime_kernel import place_events
from evrobust.attacks.retiming import SpikeRetiming
from evrobust.errors import UserInputError

SHIFTS_1 = np.array([-1, 0, 1])


def _line(counts: list[int], scores: list[list[float]], cap: int, budget: int = -1) -> tuple[list[int], int]:
    """Place one pixel line (one sample, one pixel) with shifts -1, 0, +1; ``scores[t]`` per shift."""
    c = np.array(counts, dtype=np.int64).reshape(1, -1, 1)
    s = np.array(scores, dtype=np.float64).reshape(1, len(counts), 1, 3)
    out, moved = place_events(c, s, np.maximum(cap, c), SHIFTS_1, np.array([budget]))
    return out[0, :, 0].tolist(), int(moved[0])


# ---------------------------------------------------------------------------------------------------------
# 1. the kernel
# ---------------------------------------------------------------------------------------------------------


def test_kernel_hand_computed_placements() -> None:
    # bin 0 holds 2 events that prefer +1 (0.7), bin 2 holds 1 that prefers -1 (0.6): both aim at bin 1
    scores = [[0.0, 0.3, 0.7], [0.0, 1.0, 0.0], [0.6, 0.4, 0.0], [0.0, 1.0, 0.0]]
    # capacity 2: bin 0's two events fill bin 1 first (0.7 > 0.6); bin 2's event then finds no room, stays
    assert _line([2, 0, 1, 0], scores, cap=2) == ([0, 2, 1, 0], 2)
    # capacity 3: all three land in bin 1
    assert _line([2, 0, 1, 0], scores, cap=3) == ([0, 3, 0, 0], 3)
    # B0 with k = 1: the best move (0.7) is made for one event only; the rest stay
    assert _line([2, 0, 1, 0], scores, cap=3, budget=1) == ([1, 1, 1, 0], 1)
    # capacity 1: bin 1 may take one event; bin 0's second event waits, then stays
    assert _line([2, 0, 1, 0], scores, cap=1) == ([1, 1, 1, 0], 1)


def test_kernel_ties_stay_and_edges_are_closed() -> None:
    # equal scores: staying wins the tie, nothing moves
    assert _line([1, 2, 0, 3], [[1 / 3] * 3] * 4, cap=5) == ([1, 2, 0, 3], 0)
    # bin 0 "prefers" -1 and bin 3 "prefers" +1: both leave the time axis, so those scores are ignored
    assert _line([1, 0, 0, 1], [[0.9, 0.1, 0.0], [0, 1, 0], [0, 1, 0], [0.0, 0.1, 0.9]], cap=1) == (
        [1, 0, 0, 1],
        0,
    )
    # a waiting event holds its bin: bin 0's event wants bin 1 most (0.9), but bin 1 is still held by its
    # own event then; that one leaves for bin 2 (0.8) afterwards, and bin 0's event, its move tried, stays
    out, _ = _line([1, 1, 0, 0], [[0.0, 0.1, 0.9], [0.0, 0.2, 0.8], [0, 1, 0], [0, 1, 0]], cap=1)
    assert out == [1, 0, 1, 0]


def test_kernel_keeps_totals_capacity_and_shift_on_random_inputs() -> None:
    rng = np.random.default_rng(0)
    shifts = np.arange(-2, 3)
    for _ in range(50):
        n, t, p = 3, 6, 5
        counts = rng.integers(0, 4, size=(n, t, p)) * (rng.random((n, t, p)) < 0.6)
        scores = rng.random((n, t, p, shifts.size))
        cap = int(rng.integers(1, 5))
        limit = np.maximum(cap, counts)
        budget = rng.integers(-1, 6, size=n)
        out, moved = place_events(counts, scores, limit, shifts, budget)
        assert out.dtype == np.int64 and (out >= 0).all()
        np.testing.assert_array_equal(out.sum(1), counts.sum(1))
        assert (out <= limit).all()
        stats = retiming_stats(torch.from_numpy(counts)[:, :, None], torch.from_numpy(out)[:, :, None])
        assert int(stats.max_shift.max()) <= 2
        # the kernel counts every event it moved, an upper bound on the minimal matching's count
        assert (stats.moved.numpy() <= moved).all()
        limited = budget >= 0
        assert (moved[limited] <= budget[limited]).all()


# ---------------------------------------------------------------------------------------------------------
# 2. a known answer
# ---------------------------------------------------------------------------------------------------------


class EarlyLate(nn.Module):
    """Class 0 iff pixel (polarity 0, y 1, x 1) has more events in bin 1 than in bin 2:
    logits ``[N, 2] = [c[1] - c[2] - 0.5, 0]`` of counts ``[N, 4, 2, 3, 3]``."""

    def forward(self, counts: Tensor) -> Tensor:
        w = counts[:, 1, 0, 1, 1] - counts[:, 2, 0, 1, 1] - 0.5
        return torch.stack([w, torch.zeros_like(w)], 1)


def early_late_sample() -> tuple[Tensor, Tensor]:
    """One sample: the pixel holds [0, 2, 1, 0]; two decoys at the edge bins, which the model ignores."""
    counts = torch.zeros(1, 4, 2, 3, 3)
    counts[0, :, 0, 1, 1] = torch.tensor([0.0, 2.0, 1.0, 0.0])
    counts[0, 0, 0, 0, 0] = 1.0  # decoys: first in the kernel's tie order (an edge bin has 2 shifts, not 3)
    counts[0, 3, 1, 2, 2] = 2.0
    return counts, torch.tensor([0])


def test_known_answer_binf_flips_by_one_bin_moves() -> None:
    counts, y = early_late_sample()
    model = EarlyLate()
    assert int(model(counts).argmax(1)) == 0
    adv = SpikeRetiming(max_shift=1)(model, counts, y)
    # the events of bin 1 move to bins 0 and 2 (bin 2 has room for one: capacity = the clean max, 2)
    assert adv[0, :, 0, 1, 1].tolist() == [1.0, 0.0, 2.0, 0.0]
    assert int(model(adv).argmax(1)) == 1
    others = torch.ones_like(counts, dtype=torch.bool)
    others[0, :, 0, 1, 1] = False
    assert torch.equal(adv[others], counts[others])  # the decoys get no gradient and stay
    assert int(retiming_stats(counts, adv).max_shift[0]) == 1


def test_known_answer_capacity_one_still_flips_within_the_cap() -> None:
    counts, y = early_late_sample()
    adv = SpikeRetiming(max_shift=1, capacity=1)(EarlyLate(), counts, y)
    # bin 2 holds 1 = the capacity, so bin 1 can only empty one event into bin 0
    assert adv[0, :, 0, 1, 1].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert int(EarlyLate()(adv).argmax(1)) == 1


def test_known_answer_b0_moves_exactly_one_event() -> None:
    counts, y = early_late_sample()
    attack = SpikeRetiming(budget="zero", max_moved=1, max_shift=1)
    adv = attack(EarlyLate(), counts, y)
    assert int(EarlyLate()(adv).argmax(1)) == 1
    stats = retiming_stats(counts, adv)
    assert int(stats.moved[0]) == 1 and int(stats.max_shift[0]) == 1
    # one event leaves bin 1, to bin 0 or to bin 2: either flips the class (sign steps raise both moves alike)
    assert adv[0, :, 0, 1, 1].tolist() in ([1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 2.0, 0.0])
    others = torch.ones_like(counts, dtype=torch.bool)
    others[0, :, 0, 1, 1] = False
    assert torch.equal(adv[others], counts[others])  # the budget is not spent on the decoys
    # k = 0 allows nothing: the clean counts come back
    assert torch.equal(SpikeRetiming(budget="zero", max_moved=0)(EarlyLate(), counts, y), counts)


# ---------------------------------------------------------------------------------------------------------
# 3. validity on a real SNN
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snn_counts() -> tuple[nn.Module, Tensor, Tensor]:
    """vgg_small (T=4, 2x16x16, fixed-seed init, threshold 0.2 so an untrained net spikes) behind the
    count front end (scale 4); Poisson counts; labels = the clean predictions."""
    from evrobust.models import create_model

    torch.manual_seed(0)
    net = create_model("vgg_small", num_classes=10, in_channels=2, T=4, input_size=16, theta=0.2).eval()
    model = CountModel(net, EventFrontEnd(scale=4.0))
    gen = torch.Generator().manual_seed(1)
    counts = torch.poisson(torch.full((5, 4, 2, 16, 16), 0.7), generator=gen)
    with torch.no_grad():
        y = model(counts).argmax(1)
    return model, counts, y


def _margin(model: nn.Module, counts: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        z = model(counts)
    return z.gather(1, y[:, None]).squeeze(1) - z.scatter(1, y[:, None], -torch.inf).amax(1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_shift": 1},
        {"max_shift": 2, "capacity": 2},
        {"budget": "zero", "max_moved": 5, "max_shift": 1},
        {"budget": "zero", "max_moved": 20, "max_shift": None},
    ],
    ids=["inf-D1", "inf-D2-cap2", "zero-k5-D1", "zero-k20-unbounded"],
)
def test_every_returned_sample_is_a_valid_retiming(
    snn_counts: tuple[nn.Module, Tensor, Tensor], kwargs: dict
) -> None:
    model, counts, y = snn_counts
    attack = SpikeRetiming(steps=8, **kwargs)
    adv = attack(model, counts, y)
    assert adv.shape == counts.shape and adv.dtype == torch.float32
    assert bool((adv >= 0).all()) and torch.equal(adv, adv.round())
    torch.testing.assert_close(adv.sum(1), counts.sum(1), rtol=0, atol=0)  # every pixel and polarity
    cap = kwargs.get("capacity")
    limit = counts.flatten(1).amax(1).view(-1, 1, 1, 1, 1) if cap is None else torch.tensor(float(cap))
    assert bool((adv <= torch.maximum(limit, counts)).all())
    stats = retiming_stats(counts, adv)
    if kwargs["max_shift"] is not None:
        assert int(stats.max_shift.max()) <= kwargs["max_shift"]
    if "max_moved" in kwargs:
        assert int(stats.moved.max()) <= kwargs["max_moved"]
    # the clean point is a candidate, so no sample ends with a larger margin; the attack does fool some
    assert bool((_margin(model, adv, y) <= _margin(model, counts, y)).all())
    assert bool((model(adv).argmax(1) != y).any())
    assert attack.budgets() == {
        "budget": kwargs.get("budget", "inf"),
        "max_shift_bins": kwargs["max_shift"],
        "max_moved": kwargs.get("max_moved"),
        "capacity": cap,
    }


def test_binary_front_end_with_capacity_one_keeps_frames_binary(
    snn_counts: tuple[nn.Module, Tensor, Tensor],
) -> None:
    model, counts, _ = snn_counts
    binary = CountModel(model.model, EventFrontEnd(scale=1.0, binary=True))
    cells = (counts > 0).float()
    with torch.no_grad():
        y = binary(cells).argmax(1)
    adv = SpikeRetiming(max_shift=1, capacity=1, steps=5)(binary, cells, y)
    assert set(adv.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(adv.sum(1), cells.sum(1))


# ---------------------------------------------------------------------------------------------------------
# 4. budgets, seeds, batch independence
# ---------------------------------------------------------------------------------------------------------


def test_zero_shift_returns_the_clean_counts(snn_counts: tuple[nn.Module, Tensor, Tensor]) -> None:
    model, counts, y = snn_counts
    assert torch.equal(SpikeRetiming(max_shift=0)(model, counts, y), counts)
    assert torch.equal(SpikeRetiming(budget="zero", max_moved=10, max_shift=0)(model, counts, y), counts)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_shift": -1},
        {"max_shift": 1.5},
        {"budget": "zero", "max_moved": -1},
        {"budget": "zero"},
        {"max_moved": 3},
        {"capacity": 0},
        {"steps": 0},
        {"restarts": 0},
        {"step_size": 0.0},
        {"cap_weight": -1.0},
        {"budget": "l1"},
    ],
)
def test_bad_settings_raise_user_input_error(kwargs: dict) -> None:
    with pytest.raises(UserInputError) as info:
        SpikeRetiming(**kwargs)
    assert "\n" not in str(info.value)


def test_authors_defaults_and_description() -> None:
    inf = SpikeRetiming()
    zero = SpikeRetiming(budget="zero", max_moved=100)
    assert (inf.steps, zero.steps, inf.step_size, inf.restarts) == (20, 40, 1.0, 1)
    assert (inf.name, inf.threat) == ("retime", "retiming")
    description = zero.describe()
    assert (
        description["max_moved"] == 100 and description["steps"] == 40 and description["threat"] == "retiming"
    )


def test_same_seed_same_output_and_rows_independent_of_neighbours(
    snn_counts: tuple[nn.Module, Tensor, Tensor],
) -> None:
    model, counts, y = snn_counts
    # a tight B0 budget leaves samples unfooled after the first run, so the seeded restart is used
    attack = SpikeRetiming(budget="zero", max_moved=2, steps=4, restarts=2, seed=3)
    full = attack(model, counts, y)
    assert torch.equal(attack(model, counts, y), full)
    for i in range(counts.shape[0]):
        rows = torch.tensor([i])
        alone = attack(model, counts[rows], y[rows], rows=rows, total=counts.shape[0])
        assert torch.equal(alone, full[rows])
