"""The cascade: exact per-sample bookkeeping against its stages run alone, and a gradient-masked SNN."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from evrobust.analysis.masking import check_whitebox_below_square, zero_gradient_stats
from evrobust.attacks import (
    APGD,
    APGDT,
    PGD,
    SAPGD,
    Cascade,
    Square,
    Stage,
    exhaustive_cascade,
    predict,
    reliable_cascade,
)
from evrobust.attacks.cascade import cascade_member_seed
from evrobust.attacks.ensemble import NOT_ATTACKED, ensemble_specs
from evrobust.errors import UserInputError

EPS = 0.06


def small_stages(eps: float = EPS) -> list[Stage]:
    return [
        Stage("apgd-ce", APGD(eps, steps=5), ("triangle:1", "sigmoid:4")),
        Stage("sapgd", SAPGD(eps, steps=5), (None,)),
        Stage("apgd-t", APGDT(eps, steps=3, n_targets=2), ("atan:2",)),
        Stage("square", Square(eps, n_queries=60), (None,)),
    ]


def test_cascade_equals_the_and_of_its_stages(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """Robust under the cascade <=> robust under every stage alone; and each member's verdict is the same."""
    x, y = digits[2][:64], digits[3][:64]
    stages = small_stages()
    result = Cascade(stages)(snn, x, y, seed=7)
    alone = [Cascade([s])(snn, x, y, seed=7) for s in stages]
    expected = torch.stack([a.correct for a in alone]).all(0)
    assert torch.equal(result.correct, expected)
    accuracy = float(result.correct.float().mean())
    for a in alone:
        assert accuracy <= float(a.correct.float().mean())
    # The test means something: at least two stages break samples the earlier ones left standing.
    broken_per_stage = []
    m = 0
    for stage in stages:
        k = len(stage.members())
        broken = (result.member_correct[m : m + k] == 0).any(0) & result.clean_correct
        broken_per_stage.append(int(broken.sum()))
        m += k
    assert sum(b > 0 for b in broken_per_stage) >= 2, broken_per_stage
    assert 0.0 < accuracy < float(result.clean_correct.float().mean())
    # Each member's verdict where it ran equals the stage alone's verdict for that member.
    alone_rows = torch.cat([a.member_correct for a in alone])
    ran = result.member_correct != NOT_ATTACKED
    assert torch.equal(result.member_correct[ran], alone_rows[ran])
    # Bookkeeping: a clean-correct sample broken by the cascade has exactly one 0 (the member that broke it),
    # all 1 before it and nothing after; a robust sample has all 1; a misclassified one is never attacked.
    for i in range(x.shape[0]):
        row = result.member_correct[:, i].tolist()
        if not bool(result.clean_correct[i]):
            assert set(row) == {NOT_ATTACKED} and not bool(result.correct[i])
        elif bool(result.correct[i]):
            assert set(row) == {1}
        else:
            first = row.index(0)
            assert row[:first] == [1] * first and set(row[first + 1 :]) <= {NOT_ATTACKED}
    # The returned examples are judged as the flags say.
    ok = predict(snn, result.x_adv) == y
    assert torch.equal(ok[result.clean_correct], result.correct[result.clean_correct])
    # The stage order sets the cost, never the verdict (reliable_cascade puts SA-PGD first on that basis).
    reordered = Cascade([stages[1], stages[3], stages[0], stages[2]])(snn, x, y, seed=7)
    assert torch.equal(reordered.correct, result.correct)


def test_alive_mask_skips_samples_and_counts_them_broken(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    x, y = digits[2][:16], digits[3][:16]
    alive = torch.arange(16) % 2 == 0
    stages = small_stages()[:2]
    full = Cascade(stages)(snn, x, y, seed=3)
    part = Cascade(stages)(snn, x, y, seed=3, alive=alive)
    assert torch.equal(part.correct, full.correct & alive)
    assert bool((part.member_correct[:, ~alive & full.clean_correct] == NOT_ATTACKED).all())
    with pytest.raises(UserInputError, match="alive"):
        Cascade(stages)(snn, x, y, alive=alive[:3])


def test_reliable_cascade_layout() -> None:
    cascade = reliable_cascade(8 / 255, seed=1, ensemble="paper", sapgd_spec="sigmoid:4")
    assert [s.name for s in cascade.stages] == ["sapgd", "apgd-ce", "apgd-t", "square", "rays"]
    members = cascade.members
    assert len(members) == 1 + 4 + 1 + 1 + 1
    assert members[:3] == ["sapgd/sigmoid:4", "apgd-ce/triangle:1", "apgd-ce/sigmoid:4"]
    assert members[-3:] == ["apgd-t/assg:0.425", "square/own", "rays/own"]
    settings = cascade.describe()["stages"]
    assert settings[1]["attack"]["steps"] == 100 and settings[2]["attack"]["n_targets"] == 9
    square = settings[3]["attack"]
    assert square["n_queries"] == 5000 and square["loss"] == "margin" and square["p_init"] == [0.8, 0.3]
    assert square["warm_start"] and square["accept_ties"] and settings[4]["attack"]["n_queries"] == 5000
    json.dumps(cascade.describe())
    # The defaults: ASSG for SA-PGD and APGD-T, the wide ensemble for APGD-CE, without the batch-coupled
    # PDSG (its width pools the attacked batch, and the cascade attacks survivor subsets): 22 members.
    default = reliable_cascade()
    assert default.stages[1].specs == ensemble_specs("wide")[:-1] and len(default.stages[1].specs) == 22
    assert str(ensemble_specs("wide")[-1]) == "pdsg"
    assert "pdsg" in [str(s) for s in reliable_cascade(ensemble=ensemble_specs("wide")).stages[1].specs]
    assert len(default.stages[1].specs) >= 19
    assg = ["assg:0.425"]
    assert [str(s) for s in default.stages[0].specs] == assg == [str(s) for s in default.stages[2].specs]
    # exhaustive: APGD-T over the whole ensemble as well; the budget reaches every stage.
    full = exhaustive_cascade(steps=7, n_queries=11)
    assert full.stages[2].specs == ensemble_specs("wide")[:-1] == full.stages[1].specs
    assert [s.attack.steps for s in full.stages[:3]] == [7, 7, 7]
    assert full.stages[3].attack.n_queries == full.stages[4].attack.n_queries == 11
    assert len(full.members) == len(default.members) + len(ensemble_specs("wide")) - 2
    for bad in ({"steps": 0}, {"n_queries": 0}, {"n_targets": 0}):
        with pytest.raises(UserInputError):
            reliable_cascade(**bad)
    # Members draw their own starts: distinct seeds, independent of the member's position.
    assert len({cascade_member_seed(1, m) for m in members}) == len(members)
    with pytest.raises(UserInputError):
        reliable_cascade(ensemble="everything")
    with pytest.raises(UserInputError):
        Cascade([])
    with pytest.raises(UserInputError, match="unique"):
        Cascade(small_stages()[:1] * 2)


def test_a_gradient_masked_snn_is_caught_by_square(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    """Surrogate triangle of width 1e-9: dS/dU is 0 almost everywhere, so the input gradient is all zero.

    White-box attacks crafted under that spec fail (they only see their random start); the gradient-free
    Square stage breaks the samples they left, and the Square-vs-white-box check flags it.
    """
    masked = "triangle:1e-9"
    x, y = digits[2][:64], digits[3][:64]
    eps = 0.1
    assert zero_gradient_stats(snn, x, y, spec=masked).sample_share == 1.0
    clean = float((predict(snn, x) == y).float().mean())
    honest = float((predict(snn, PGD(eps, alpha=0.025, steps=10)(snn, x, y)) == y).float().mean())
    blind = PGD(eps, alpha=0.025, steps=10, spec=masked)(snn, x, y)
    fooled = float((predict(snn, blind) == y).float().mean())
    assert fooled > honest + 0.2, "white-box fails under the masked spec"

    square = Stage("square", Square(eps, n_queries=300), (None,))
    cascade = Cascade([Stage("apgd-ce", APGD(eps, steps=10), (masked,)), square])
    result = cascade(snn, x, y, seed=0)
    whitebox = float(((result.member_correct[0] == 1)).float().mean())
    final = float(result.correct.float().mean())
    assert whitebox > clean - 0.2
    assert final < whitebox - 0.2, "Square breaks what the masked gradient could not"
    check = check_whitebox_below_square(whitebox, final)
    assert not check.passed and "masking" in check.detail
    # An honest white-box attack leaves Square little to add: the check passes.
    honest_cascade = Cascade([Stage("apgd-ce", APGD(eps, steps=10), ("triangle:1",)), square])
    honest_result = honest_cascade(snn, x, y, seed=0)
    wb = float((honest_result.member_correct[0] == 1).float().mean())
    assert wb < whitebox - 0.2


def test_without_drops_only_members_that_rerun_an_attack_already_run() -> None:
    """The paper suite's APGD-CE 100 over the paper ensemble already ran: the cascade's APGD-CE stage skips
    exactly those four members; another setting (steps, seed, eps) or attack drops nothing."""
    cascade = reliable_cascade(8 / 255, seed=0)
    paper = ensemble_specs("paper")
    done = cascade.without(APGD(8 / 255, steps=100, seed=0), paper)
    dropped = set(cascade.members) - set(done.members)
    assert dropped == {"apgd-ce/triangle:1", "apgd-ce/sigmoid:4", "apgd-ce/atan:2", "apgd-ce/rate"}
    assert "apgd-ce/triangle:2" in done.members and "sapgd/assg:0.425" in done.members
    for other in (APGD(8 / 255, steps=10, seed=0), APGD(8 / 255, steps=100, seed=1), APGD(4 / 255, steps=100),
                  PGD(8 / 255, steps=100)):
        assert cascade.without(other, paper).members == cascade.members
    emptied = Cascade([Stage("a", APGD(0.1, steps=5), ("triangle:1",)),
                       Stage("square", Square(0.1, n_queries=5))])
    assert [s.name for s in emptied.without(APGD(0.1, steps=5), ("triangle:1",)).stages] == ["square"]


def test_warm_started_square_breaks_at_least_what_the_stages_alone_break(
    snn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    """With Square warm-started from the cascade's best point, the cascade is at least as strong as the AND of
    its stages alone (the warm start is one more draw; the others are unchanged), and every member verdict
    before Square is identical."""
    x, y = digits[2][:64], digits[3][:64]
    stages = small_stages()[:3] + [Stage("square", Square(EPS, n_queries=60, warm_start=True), (None,))]
    result = Cascade(stages)(snn, x, y, seed=7)
    cold = Cascade(small_stages())(snn, x, y, seed=7)
    assert bool((result.correct <= cold.correct).all())
    before_square = len(result.members) - 1
    assert torch.equal(result.member_correct[:before_square], cold.member_correct[:before_square])
