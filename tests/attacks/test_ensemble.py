"""Surrogate-gradient ensembles on a trained SNN: per-sample worst case, members, spec handling."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks import FGSM, PGD, Ensemble, UniformNoise, ensemble_specs, predict
from evrobust.attacks.ensemble import NOT_ATTACKED
from evrobust.errors import UserInputError
from evrobust.neurons import PAPER_ENSEMBLE, WIDTH_ENSEMBLE, if_neurons


def pgd() -> PGD:
    return PGD(0.08, alpha=0.02, steps=5, seed=7)


@pytest.fixture(scope="module")
def batch(digits: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    return digits[2][:120], digits[3][:120]


@pytest.fixture(scope="module")
def alone(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """Each paper member run on its own over the whole batch: correct flags [N] bool."""
    x, y = batch
    return {str(s): predict(snn, pgd()(snn, x, y, spec=s)) == y for s in PAPER_ENSEMBLE}


def test_member_sets() -> None:
    assert ensemble_specs("paper") == PAPER_ENSEMBLE
    assert [str(s) for s in ensemble_specs("paper")] == ["triangle:1", "sigmoid:4", "atan:2", "rate"]
    widths = ensemble_specs("widths")
    assert widths == WIDTH_ENSEMBLE and len(widths) == 30
    assert ensemble_specs("single") == (None,)
    with pytest.raises(UserInputError, match="paper, widths, single"):
        ensemble_specs("all")
    with pytest.raises(UserInputError):
        Ensemble(pgd(), [])


def test_ensemble_is_the_per_sample_worst_case(
    snn: nn.Module, batch: tuple[Tensor, Tensor], alone: dict[str, Tensor]
) -> None:
    x, y = batch
    result = Ensemble(pgd(), "paper")(snn, x, y)
    accs = {k: float(v.float().mean()) for k, v in alone.items()}
    # The members really differ on this model, else the test proves little.
    assert len({round(a, 4) for a in accs.values()}) > 1
    ens_acc = float(result.correct.float().mean())
    assert ens_acc <= min(accs.values())
    # Per sample: robust under the ensemble => robust under each member run alone (same seed, same start).
    for flags in alone.values():
        assert bool((~result.correct | flags).all())
    # ... and fooled by the ensemble => fooled by some member or wrong when clean.
    some_member_fooled = torch.stack([~f for f in alone.values()]).any(0) | ~result.clean_correct
    assert torch.equal(~result.correct, some_member_fooled)
    # The kept example of a fooled sample does fool the model; all examples stay in the ball.
    fooled = ~result.correct & result.clean_correct
    assert bool((predict(snn, result.x_adv[fooled]) != y[fooled]).all())
    assert float((result.x_adv - x).abs().max()) <= 0.08 + 1e-6
    # Cumulative accuracy is exact, non-increasing, and ends at the ensemble accuracy.
    cumulative = list(result.cumulative_accuracy().values())
    assert cumulative == sorted(cumulative, reverse=True) and cumulative[-1] == pytest.approx(ens_acc)
    assert cumulative[0] == pytest.approx(accs["triangle:1"])
    # Later members skip samples already fooled, so their own accuracy is unknown.
    assert bool((result.member_correct[1:] == NOT_ATTACKED).any())
    # The first member skipped only misclassified clean inputs, so its own accuracy is known and exact.
    own = result.member_accuracy()
    assert own["triangle:1"] == pytest.approx(cumulative[0])
    assert [own[k] for k in ("sigmoid:4", "atan:2", "rate")] == [None, None, None]


def test_full_members_equal_the_attack_alone(
    snn: nn.Module, batch: tuple[Tensor, Tensor], alone: dict[str, Tensor]
) -> None:
    x, y = batch
    result = Ensemble(pgd(), "paper", skip_fooled=False)(snn, x, y)
    for name, row in zip(result.members, result.member_correct, strict=True):
        assert torch.equal(row == 1, alone[name])
    assert result.member_accuracy() == {k: pytest.approx(float(v.float().mean())) for k, v in alone.items()}
    assert torch.equal(result.correct, torch.stack(list(alone.values())).all(0) & result.clean_correct)


def test_model_is_judged_with_its_own_spec(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    """Crafting switches the backward spec per member; every judging forward runs under the training spec."""
    x, y = batch[0][:16], batch[1][:16]
    log: list[tuple[bool, frozenset[str]]] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        log.append((torch.is_grad_enabled(), frozenset(str(n.spec) for n in if_neurons(snn))))

    handle = snn.register_forward_pre_hook(record)
    try:
        Ensemble(pgd(), "paper")(snn, x, y)
    finally:
        handle.remove()
    judged = {specs for grad, specs in log if not grad}
    crafted = {specs for grad, specs in log if grad}
    assert judged == {frozenset({"triangle:1"})}
    assert crafted == {frozenset({s}) for s in ("triangle:1", "sigmoid:4", "atan:2", "rate")}
    assert {str(n.spec) for n in if_neurons(snn)} == {"triangle:1"} and not snn.training


def test_gradient_free_attack_runs_once(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    ens = Ensemble(UniformNoise(0.1), "paper")
    assert ens.members == ["own"]
    x, y = batch
    result = ens(snn, x, y)
    assert torch.equal(result.x_adv[result.clean_correct], UniformNoise(0.1)(snn, x, y)[result.clean_correct])


def test_width_ensemble_runs_thirty_triangles(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch[0][:24], batch[1][:24]
    result = Ensemble(FGSM(0.08), "widths")(snn, x, y)
    assert result.members == [f"triangle:{w / 10:g}" for w in range(1, 31)]
    cumulative = list(result.cumulative_accuracy().values())
    assert cumulative == sorted(cumulative, reverse=True)
    single = predict(snn, FGSM(0.08)(snn, x, y, spec="triangle:1")) == y
    assert float(result.correct.float().mean()) <= float(single.float().mean())
