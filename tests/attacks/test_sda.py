"""SDA (Sparse Dynamic Attack) on event counts and binary frames: known answers on hand-built models, and the
contract (validity, budget, reduction, reproducibility, batch independence) on a small real SNN."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks.base import predict
from evrobust.attacks.event_base import CountModel, EventFrontEnd, events_changed
from evrobust.attacks.sda import SDA
from evrobust.errors import UserInputError

CELL = (1, 0, 2, 3)  # (t, p, y, x) of the deciding cell
SHAPE = (4, 2, 6, 6)  # [T, 2, H, W] of the hand-built cases


class OneCell(nn.Module):
    """Logits ``[v - 0.5, 0.5 - v]`` with ``v`` the input at :data:`CELL` (plus ``w * x`` at ``other``): the
    class is 0 iff ``v > 0.5``. With a front end of scale 1, one event at the cell decides between 0 and 1."""

    def __init__(self, other: tuple[int, int, int, int] | None = None, w: float = 0.0) -> None:
        super().__init__()
        self.other, self.w = other, w

    def forward(self, x: Tensor) -> Tensor:
        v = x[(slice(None), *CELL)]
        if self.other is not None:
            v = v - self.w * x[(slice(None), *self.other)]
        return torch.stack([v - 0.5, 0.5 - v], 1)


def hand_case(mode: str, model: nn.Module | None = None) -> tuple[CountModel, Tensor, Tensor]:
    """Three samples with random counts 0..2 elsewhere and, at :data:`CELL`: 1 event (class 0: one deletion
    fools), 0 events (class 1: one insertion fools), 2 events (class 0: two deletions needed in count mode,
    one toggle in binary mode)."""
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 3, (3, *SHAPE), generator=gen).float()
    counts[(slice(None), *CELL)] = torch.tensor([1.0, 0.0, 2.0])
    front = EventFrontEnd(1.0, binary=mode == "binary")
    return CountModel(model or OneCell(), front), counts, torch.tensor([0, 1, 0])


@pytest.mark.parametrize("mode", ["count", "binary"])
def test_known_answer_is_the_single_flip_at_the_deciding_cell(mode: str) -> None:
    model, counts, y = hand_case(mode)
    attack = SDA(mode=mode)
    adv = attack(model, counts, y)
    ref = attack.clean_reference(counts)
    changed = events_changed(ref, adv)
    fooled = torch.tensor([True, True, mode == "binary"])
    assert changed.tolist() == fooled.long().tolist()
    assert torch.equal(predict(model, adv) != y, fooled)
    diff = adv - ref
    for i in range(3):
        if fooled[i]:
            where = diff[i].nonzero().tolist()
            assert where == [list(CELL)]
            assert float(diff[i][CELL]) == (1.0 if i == 1 else -1.0)  # insert at 0, delete elsewhere
        else:  # count mode, two events at the cell: out of one-event reach, so the clean point comes back
            assert torch.equal(adv[i], counts[i])
    # every other cell ties, so the first round's 10 candidates were all kept, then the search stopped at the
    # first misclassification and the reduction undid the 9 useless flips
    stats = attack.last_stats
    assert stats is not None
    assert stats.iterations[fooled].tolist() == [1] * int(fooled.sum())
    assert stats.flips_found[fooled].tolist() == [10] * int(fooled.sum())
    assert stats.flips_kept.tolist() == changed.tolist()
    assert stats.fooled.tolist() == fooled.tolist()
    if mode == "binary":
        assert set(adv.unique().tolist()) <= {0.0, 1.0}


def test_a_flip_that_raises_the_loss_is_rejected() -> None:
    # A second cell, empty in the clean sample, raises class 0's margin when an event is inserted there; with
    # every cell tested in the first round, that is the only candidate rejected.
    other = (0, 1, 0, 0)
    model, counts, y = hand_case("count", OneCell(other, w=-0.2))
    counts[(slice(None), *other)] = 0.0
    cells = counts[0].numel()
    attack = SDA(k_init=cells)
    adv = attack(model, counts[:1], y[:1])
    stats = attack.last_stats
    assert stats is not None
    assert stats.flips_found.tolist() == [cells - 1]  # all but the loss-raising insertion
    assert stats.flips_kept.tolist() == [1]
    assert (adv - counts[:1]).nonzero().tolist() == [[0, *CELL]]


@pytest.fixture(scope="module")
def snn_case() -> tuple[nn.Module, Tensor]:
    """A random small SNN (vgg_small, T=4, 2x16x16, threshold 0.25 so that it spikes without training) and
    six samples of Poisson(0.5) counts."""
    from evrobust.models import create_model

    torch.manual_seed(0)
    net = create_model("vgg_small", num_classes=10, in_channels=2, T=4, input_size=16, theta=0.25).eval()
    counts = torch.poisson(torch.full((6, 4, 2, 16, 16), 0.5), generator=torch.Generator().manual_seed(1))
    return net, counts


@pytest.mark.parametrize("mode", ["count", "binary"])
@pytest.mark.parametrize("max_events", [3, None])
def test_every_returned_sample_is_valid_within_budget_and_reduced(
    snn_case: tuple[nn.Module, Tensor], mode: str, max_events: int | None
) -> None:
    net, counts = snn_case
    model = CountModel(net, EventFrontEnd(4.0, binary=mode == "binary"))
    attack = SDA(max_events, mode=mode, max_iters=8, chunk=128)
    ref = attack.clean_reference(counts)
    y = predict(model, ref)
    y[5] = (y[5] + 1) % 10  # misclassified clean: returned unchanged, counted as fooled
    adv = attack(model, counts, y)
    stats = attack.last_stats
    assert stats is not None

    assert adv.shape == counts.shape and bool((adv >= 0).all()) and torch.equal(adv, adv.round())
    if mode == "binary":
        assert set(adv.unique().tolist()) <= {0.0, 1.0}
    changed = events_changed(ref, adv)
    if max_events is not None:
        assert int(changed.max()) <= max_events
    if mode == "count":
        assert float((adv - counts).abs().max()) <= 1.0  # one event per cell at most
    wrong = predict(model, adv) != y
    assert torch.equal(stats.fooled, wrong)  # what the stats call fooled is misclassified, and only that
    assert torch.equal(stats.flips_kept, changed)
    attacked = changed > 0
    assert bool((stats.flips_found >= stats.flips_kept).all())  # the reduction only removes flips
    assert torch.equal(adv[~attacked], ref[~attacked])  # a failure is the clean point
    assert stats.fooled[5] and changed[5] == 0 and stats.iterations[5] == 0
    if max_events is None:  # this random net breaks easily: all fooled, most with reduction at work
        assert bool(stats.fooled.all())
        assert bool((stats.flips_found[:5] > stats.flips_kept[:5]).any())
    else:  # one sample needs more than 3 events in each mode
        assert not bool(stats.fooled.all())


def test_budget_zero_and_invalid_settings(snn_case: tuple[nn.Module, Tensor]) -> None:
    net, counts = snn_case
    for mode in ("count", "binary"):
        model = CountModel(net, EventFrontEnd(4.0, binary=mode == "binary"))
        attack = SDA(0, mode=mode)
        y = predict(model, counts)
        assert torch.equal(attack(model, counts, y), attack.clean_reference(counts))
        assert attack.describe()["max_events"] == 0
    with pytest.raises(UserInputError):
        SDA(-1)
    with pytest.raises(UserInputError):
        SDA(1.5)  # type: ignore[arg-type]
    with pytest.raises(UserInputError):
        SDA(mode="ternary")
    with pytest.raises(UserInputError):
        SDA(max_iters=0)
    with pytest.raises(UserInputError, match="binary=True"):  # binary mode on a count front end
        SDA(mode="binary")(CountModel(net, EventFrontEnd(4.0)), counts, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("mode", ["count", "binary"])
def test_reproducible_and_independent_of_the_batch(snn_case: tuple[nn.Module, Tensor], mode: str) -> None:
    net, counts = snn_case
    model = CountModel(net, EventFrontEnd(4.0, binary=mode == "binary"))
    attack = SDA(mode=mode, max_iters=8, chunk=7, seed=3)  # chunks that mix samples
    y = predict(model, attack.clean_reference(counts))
    full = attack(model, counts, y)
    assert torch.equal(attack(model, counts, y), full)
    for i in (0, 4):
        row = torch.tensor([i])
        alone = attack(model, counts[row], y[row], rows=row, total=counts.shape[0])
        assert torch.equal(alone[0], full[i])


class HardCell(nn.Module):
    """:class:`OneCell` through a hard threshold: the same decision with no gradient anywhere, so SDA ranks
    every cell at random and the round that finds :data:`CELL` depends on the seed only."""

    def forward(self, x: Tensor) -> Tensor:
        v = (x[(slice(None), *CELL)] > 0.5).float()
        return torch.stack([v - 0.5, 0.5 - v], 1)


def test_without_gradient_the_random_ranking_is_reproducible_and_per_sample() -> None:
    model, counts, y = hand_case("count", HardCell())
    counts, y = counts[:2], y[:2]

    def run(seed: int, rows: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        attack = SDA(seed=seed)
        index = torch.tensor(rows)
        adv = attack(model, counts[index], y[index], rows=index, total=2)
        assert attack.last_stats is not None
        return adv, attack.last_stats.iterations, attack.last_stats.flips_found

    adv, iterations, found = run(0, [0, 1])
    assert events_changed(counts, adv).tolist() == [1, 1]  # found by the random search, then reduced
    assert bool((iterations > 1).any())  # 10 random cells of 288 in the first round rarely include it
    again = run(0, [0, 1])
    assert all(torch.equal(a, b) for a, b in zip(again, (adv, iterations, found), strict=True))
    for i in (0, 1):
        alone = run(0, [i])
        assert torch.equal(alone[0][0], adv[i])
        assert alone[1].item() == iterations[i].item() and alone[2].item() == found[i].item()
    others = [run(seed, [0, 1])[1] for seed in (1, 2, 3)]
    assert any(not torch.equal(o, iterations) for o in others)  # the seed, not the index order, decides
