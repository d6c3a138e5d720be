"""Surrogate-gradient ensembles on a trained SNN: per-sample worst case, members, spec handling."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks import FGSM, PGD, Ensemble, UniformNoise, ensemble_specs, predict
from evrobust.attacks.ensemble import ENSEMBLES, NOT_ATTACKED, member_seed, parse_members
from evrobust.errors import UserInputError
from evrobust.neurons import PAPER_ENSEMBLE, WIDE_ENSEMBLE, WIDTH_ENSEMBLE, GradSpec, if_neurons


def pgd() -> PGD:
    return PGD(0.08, alpha=0.02, steps=5, seed=7)


@pytest.fixture(scope="module")
def batch(digits: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    return digits[2][:120], digits[3][:120]


@pytest.fixture(scope="module")
def alone(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """Each paper member run on its own over the whole batch, with member k's seed: correct flags [N] bool."""
    x, y = batch
    return {
        str(s): predict(snn, pgd()(snn, x, y, spec=s, seed=member_seed(7, k))) == y
        for k, s in enumerate(PAPER_ENSEMBLE)
    }


def test_member_sets() -> None:
    assert ensemble_specs("paper") == PAPER_ENSEMBLE
    assert [str(s) for s in ensemble_specs("paper")] == ["triangle:1", "sigmoid:4", "atan:2", "rate"]
    widths = ensemble_specs("widths")
    assert widths == WIDTH_ENSEMBLE and len(widths) == 30
    assert ensemble_specs("single") == (None,)
    assert ensemble_specs("wide") == WIDE_ENSEMBLE and len(WIDE_ENSEMBLE) >= 19
    assert ENSEMBLES == ("paper", "widths", "single", "wide", "assg")
    assert [str(s) for s in ensemble_specs("assg")] == ["assg:0.4", "assg:0.425", "assg:0.45"]
    with pytest.raises(UserInputError, match="paper, widths, single, wide"):
        ensemble_specs("all")
    with pytest.raises(UserInputError):
        Ensemble(pgd(), [])


def test_member_seed_formula() -> None:
    assert member_seed(7, 0) == 7
    assert member_seed(7, 1) == (7 + 0x9E3779B97F4A7C15) % 2**63
    assert member_seed(7, 3) == (7 + 3 * 0x9E3779B97F4A7C15) % 2**63
    seeds = [member_seed(123, k) for k in range(64)]
    assert len(set(seeds)) == 64 and all(0 <= s < 2**63 for s in seeds)


def test_parse_members() -> None:
    assert parse_members("Wide") == WIDE_ENSEMBLE
    assert parse_members("rect:0.5, ste ,bptr") == (
        GradSpec("surrogate", "rect", 0.5), GradSpec("surrogate", "ste"), GradSpec("bptr")
    )
    assert parse_members("ann") == (GradSpec("ann"),)


@pytest.mark.parametrize(("text", "needle"), [("wider", "'wider'"), ("triangle:1,gauss:2", "'gauss:2'"),
                                              ("ste:3", "takes no width"), (",", "no ensemble member")])
def test_bad_ensemble_or_member_names_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(UserInputError) as err:
        Ensemble(pgd(), text)
    msg = str(err.value)
    assert "\n" not in msg and needle in msg
    if text != ",":
        assert "paper, widths, single, wide" in msg


def test_every_member_draws_its_own_random_start(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    seen: list[int | None] = []

    class Recorder(PGD):
        def __call__(self, model: nn.Module, x: Tensor, y: Tensor, **kw: object) -> Tensor:  # type: ignore[override]
            seen.append(kw.get("seed"))  # type: ignore[arg-type]
            return super().__call__(model, x, y, **kw)  # type: ignore[arg-type]

    x, y = batch[0][:8], batch[1][:8]
    attack = Recorder(0.08, alpha=0.02, steps=1, seed=5)
    Ensemble(attack, ["triangle:1", "triangle:1", "triangle:1"], skip_fooled=False)(snn, x, y)
    assert seen == [5, member_seed(5, 1), member_seed(5, 2)]
    seen.clear()
    Ensemble(attack, "paper", skip_fooled=False)(snn, x, y, seed=11)
    assert seen == [member_seed(11, k) for k in range(4)]
    # the same spec twice with different starts gives different examples
    a = attack(snn, x, y, spec="triangle:1", seed=member_seed(5, 0))
    b = attack(snn, x, y, spec="triangle:1", seed=member_seed(5, 1))
    assert not torch.equal(a, b)


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


def test_noise_keeps_the_worst_of_the_ensembles_draws(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    # as the paper authors' val_ensemble: one noise draw per member (4 under the paper ensemble), and a
    # sample is robust only if it survives all of them
    noise = UniformNoise(0.3, seed=3)
    ens = Ensemble(noise, "paper", skip_fooled=False)
    assert ens.members == ["draw0", "draw1", "draw2", "draw3"]
    x, y = batch
    result = ens(snn, x, y)
    draws = [predict(snn, noise(snn, x, y, seed=member_seed(3, k))) == y for k in range(4)]
    assert torch.equal(result.correct, torch.stack(draws).all(0) & result.clean_correct)
    # the draws really differ, and the worst case is below a single draw on this model
    assert len({tuple(d.tolist()) for d in draws}) > 1
    assert float(result.correct.float().mean()) < float(draws[0].float().mean())
    assert Ensemble(noise, "single").members == ["draw0"]
    # with skipping, the verdict is the same
    assert torch.equal(Ensemble(noise, "paper")(snn, x, y).correct, result.correct)


def test_width_ensemble_runs_thirty_triangles(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch[0][:24], batch[1][:24]
    result = Ensemble(FGSM(0.08), "widths")(snn, x, y)
    assert result.members == [f"triangle:{w / 10:g}" for w in range(1, 31)]
    cumulative = list(result.cumulative_accuracy().values())
    assert cumulative == sorted(cumulative, reverse=True)
    single = predict(snn, FGSM(0.08)(snn, x, y, spec="triangle:1")) == y
    assert float(result.correct.float().mean()) <= float(single.float().mean())


def test_wide_ensemble_contains_the_paper_ensemble(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    """The wide ensemble's first four members are the paper's, with the same seeds: per sample, robust under
    wide implies robust under paper. Crafting-only members are judged on the true SNN."""
    x, y = batch[0][:16], batch[1][:16]
    attack = PGD(0.08, alpha=0.02, steps=1, seed=9)
    log: list[tuple[bool, frozenset[str]]] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        log.append((torch.is_grad_enabled(), frozenset(str(n.spec) for n in if_neurons(snn))))

    handle = snn.register_forward_pre_hook(record)
    try:
        wide = Ensemble(attack, "wide", skip_fooled=False)(snn, x, y)
    finally:
        handle.remove()
    paper = Ensemble(attack, "paper", skip_fooled=False)(snn, x, y)
    assert wide.members == [str(s) for s in WIDE_ENSEMBLE]
    assert torch.equal(wide.member_correct[:4], paper.member_correct)
    assert bool((~wide.correct | paper.correct).all())
    assert {specs for grad, specs in log if not grad} == {frozenset({"triangle:1"})}
    assert {specs for grad, specs in log if grad} == {frozenset({str(s)}) for s in WIDE_ENSEMBLE}
    assert all(n._assg_state is None for n in if_neurons(snn))
    assert float((wide.x_adv - x).abs().max()) <= 0.08 + 1e-6


def test_crafting_members_craft_different_examples(snn: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch[0][:16], batch[1][:16]
    fgsm = FGSM(0.08)
    out = {s: fgsm(snn, x, y, spec=s) for s in ("triangle:1", "bptr", "ann", "assg", "ste", "rect:0.5")}
    keys = list(out)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not torch.equal(out[a], out[b]), (a, b)
    # the crafting forward is gone after the call: the model's logits are the SNN's again
    assert all(str(n.spec) == "triangle:1" for n in if_neurons(snn))

