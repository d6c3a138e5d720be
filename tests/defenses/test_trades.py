"""TRADES: the tau^2-scaled batch-mean KL by hand, the KL attack and the loss against a hand-written loop."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor, nn

from evrobust.defenses import trades_examples, trades_kl, trades_loss


def test_kl_by_hand_on_two_samples() -> None:
    clean = torch.tensor([[2.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    adv = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    tau = 2.0

    def softmax(row: list[float]) -> list[float]:
        e = [math.exp(v / tau) for v in row]
        return [v / sum(e) for v in e]

    total = 0.0
    for c_row, a_row in zip(clean.tolist(), adv.tolist(), strict=True):
        p, q = softmax(c_row), softmax(a_row)
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    expected = tau * tau * total / 2  # sum over classes, mean over the batch, tau^2 (reference: * 4 / N)
    assert trades_kl(clean, adv, tau).item() == pytest.approx(expected, rel=1e-6)
    assert trades_kl(clean, clean, tau).item() == pytest.approx(0.0, abs=1e-7)


def _softmax_kl(clean: Tensor, adv: Tensor, tau: float) -> Tensor:
    """tau^2 * mean_n sum_k p (log p - log q), written out (no library KL).

    log-softmax keeps the exact zeros of the input gradient (pixels that reach no logit): a plain exp/sum
    formula leaves 1e-19 rounding there, whose sign would steer the attack arbitrarily.
    """
    log_p, log_q = torch.log_softmax(clean / tau, 1), torch.log_softmax(adv / tau, 1)
    return tau * tau * (torch.exp(log_p) * (log_p - log_q)).sum(1).mean()


def _reference(model: nn.Module, x: Tensor, y: Tensor, noise: Tensor, eps: float, step: float, steps: int,
               beta: float, tau: float) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The TRADES step as plain loops: uniform start in +-eps/2, sign ascent on the KL, project, clip."""
    with torch.no_grad():
        clean = model(x)
    x_adv = torch.max(torch.min(x + (noise - 0.5) * eps, x + eps), x - eps).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_softmax_kl(clean, model(x_adv), tau), x_adv)
        x_adv = x_adv.detach() + step * g.sign()
        x_adv = torch.max(torch.min(x_adv, x + eps), x - eps).clamp(0, 1)
    logits = model(x)
    ce = -torch.log(torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)).gather(1, y[:, None]).mean()
    return ce + beta * _softmax_kl(logits, model(x_adv), tau), x_adv


def test_trades_loss_matches_a_hand_written_loop(make_model, tiny_batch) -> None:
    # float64 and eval mode (BatchNorm on running statistics): crafting and the loss see the same function.
    x, y = tiny_batch
    x = x.double()
    model = make_model(dtype=torch.float64).eval()
    twin = copy.deepcopy(model)
    eps, step, steps, beta, tau = 8 / 255, 3 / 255, 3, 5.0, 2.0
    out = trades_loss(model, x, y, beta, tau, eps, step, steps, generator=torch.Generator().manual_seed(7))
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    expected, x_ref = _reference(twin, x, y, noise, eps, step, steps, beta, tau)
    torch.testing.assert_close(out["x_adv"], x_ref, rtol=0, atol=1e-12)
    assert out["reg"].item() > 0.0
    torch.testing.assert_close(out["loss"], expected, rtol=1e-10, atol=1e-12)
    out["loss"].backward()
    expected.backward()
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_examples_stay_in_the_ball_and_restore_modes(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().train()
    stats = {k: v.clone() for k, v in model.bn.state_dict().items()}
    x_adv = trades_examples(model, x, eps=8 / 255, step=3 / 255, steps=4)
    assert ((x_adv - x).abs() <= 8 / 255 + 1e-7).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 7 / 255  # 4 steps of 3/255 from within eps/2 reach the border
    assert model.training and model.bn.training
    for key, value in model.bn.state_dict().items():
        assert torch.equal(value, stats[key]), key  # crafted with BatchNorm frozen
