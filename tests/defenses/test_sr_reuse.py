"""Reusing the surrogate terms between two backward passes changes no bit of any gradient."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

import evrobust.defenses.sr as sr_module
from evrobust.defenses import sr_loss
from evrobust.neurons.functional import if_multistep, reuse_backward_terms
from evrobust.neurons.surrogates import SURROGATES


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_second_backward_is_bitwise_the_plain_one(surrogate: str, tau: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3, 40, dtype=torch.float64) * 1.5
    g1, g2 = torch.randn_like(x), torch.randn_like(x)

    def two_passes(reuse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xi = x.clone().requires_grad_(True)
        with reuse_backward_terms() if reuse else contextlib.nullcontext():
            spikes = if_multistep(xi, surrogate, tau=tau)  # the registry default width
        (a,) = torch.autograd.grad(spikes, xi, g1, retain_graph=True)
        (b,) = torch.autograd.grad(spikes, xi, g2, retain_graph=True)
        (c,) = torch.autograd.grad(spikes, xi, g1)  # a third pass recomputes (the terms were dropped)
        return a, b, c

    plain, reused = two_passes(False), two_passes(True)
    assert plain[0].abs().sum() > 0
    for p, r in zip(plain, reused, strict=True):
        assert torch.equal(p, r)
    assert torch.equal(reused[0], reused[2])


def test_terms_are_kept_only_inside_the_block_and_dropped_after_use() -> None:
    x = torch.randn(3, 8).requires_grad_(True)
    outside = if_multistep(x, "triangle:1")
    with reuse_backward_terms():
        inside = if_multistep(x, "triangle:1")
    torch.autograd.grad(outside.sum(), x, retain_graph=True)
    assert outside.grad_fn.terms is None
    torch.autograd.grad(inside.sum(), x, retain_graph=True)
    assert len(inside.grad_fn.terms) == 3  # one (sg, 1 - s) pair per time step
    torch.autograd.grad(inside.sum(), x, retain_graph=True)
    assert inside.grad_fn.terms is None


def test_sr_loss_and_weight_gradients_are_bitwise_unchanged(make_model, tiny_batch, monkeypatch) -> None:  # noqa: ANN001
    x, y = tiny_batch
    model = make_model().train()
    plain_model = copy.deepcopy(model)
    out = sr_loss(model, x, y, lam=0.5)
    out["loss"].backward()
    monkeypatch.setattr(sr_module, "reuse_backward_terms", contextlib.nullcontext)
    ref = sr_loss(plain_model, x, y, lam=0.5)
    ref["loss"].backward()
    assert torch.equal(out["loss"], ref["loss"]) and ref["reg"].item() > 0
    for p, q in zip(model.parameters(), plain_model.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
