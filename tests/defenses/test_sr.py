"""SR loss: equals a per-sample reference loop, gradients through both passes, stability, validation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.defenses import sr_loss, strongest_other_class, two_class_probability
from evrobust.errors import UserInputError


def reference_sr(model: nn.Module, x: Tensor, y: Tensor, lam: float, h: float, penalty: str) -> Tensor:
    """Algorithm 1 written one sample at a time, with Python loops and the plain softmax formula."""
    fds, ces = [], []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        z = model(xi)[0]
        label = int(y[i])
        others = [j for j in range(z.shape[0]) if j != label]
        k = max(others, key=lambda j: float(z[j].detach()))  # first maximum on ties, like argmax
        p = torch.exp(z[label]) / (torch.exp(z[label]) + torch.exp(z[k]))
        (g,) = torch.autograd.grad(p, xi, retain_graph=True)
        x2 = x[i : i + 1] + h * torch.sign(g)
        z2 = model(x2)[0]
        p2 = torch.exp(z2[label]) / (torch.exp(z2[label]) + torch.exp(z2[k]))
        fds.append((p2 - p) / h)
        ces.append(-torch.log_softmax(z, dim=0)[label])
    fd = torch.stack(fds)
    reg = (fd**2).mean() if penalty == "l2sq" else fd.abs().mean()
    return torch.stack(ces).mean() + lam * reg


@pytest.mark.parametrize("penalty", ["l2sq", "l1"])
def test_sr_loss_matches_per_sample_reference(make_model, tiny_batch, penalty: str) -> None:
    # float64 and eval mode (BatchNorm on running statistics) make the batched and per-sample paths
    # compute the same function, so the loss and every weight gradient must agree.
    x, y = tiny_batch
    x = x.double()
    model = make_model(dtype=torch.float64).eval()
    reference = copy.deepcopy(model)
    out = sr_loss(model, x, y, lam=0.5, h=0.01, penalty=penalty)
    out["loss"].backward()
    ref_loss = reference_sr(reference, x, y, lam=0.5, h=0.01, penalty=penalty)
    ref_loss.backward()
    assert out["reg"].item() > 0.0  # the penalty is active on this batch
    torch.testing.assert_close(out["loss"], ref_loss, rtol=1e-10, atol=1e-12)
    for (name, p), p_ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_penalties_are_mean_square_and_mean_abs_of_the_same_differences(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    model = make_model().eval()
    sq = sr_loss(model, x, y, lam=1.0, penalty="l2sq")
    ab = sr_loss(model, x, y, lam=1.0, penalty="l1")
    torch.testing.assert_close(sq["fd"], ab["fd"])
    torch.testing.assert_close(sq["reg"], sq["fd"].square().mean())
    torch.testing.assert_close(ab["reg"], ab["fd"].abs().mean())
    torch.testing.assert_close(sq["ce"], F.cross_entropy(sq["logits"], y))


def test_lambda_zero_equals_plain_cross_entropy(make_model, tiny_batch) -> None:
    # Training mode: the second (x + h d) pass also runs BatchNorm on batch statistics, which must not leak
    # into the loss or the gradients when lam = 0.
    x, y = tiny_batch
    model = make_model().train()
    plain = copy.deepcopy(model)
    out = sr_loss(model, x, y, lam=0.0)
    out["loss"].backward()
    ce = F.cross_entropy(plain(x), y)
    ce.backward()
    assert out["loss"].item() == pytest.approx(ce.item(), abs=1e-7)
    for p, q in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def _weight_grads(model: nn.Module, loss: Tensor) -> list[Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters()), retain_graph=True))


def test_weight_gradient_flows_through_both_forward_passes(make_model, tiny_batch) -> None:
    """grad(full) = grad(with f(x2) detached) + grad(with f(x) detached inside the penalty) - grad(CE)."""
    x, y = tiny_batch
    model = make_model().eval()
    lam, h = 2.0, 0.01
    out = sr_loss(model, x, y, lam=lam, h=h)
    full = _weight_grads(model, out["loss"])

    # Rebuild the same two passes by hand to detach one side of the difference at a time.
    x_in = x.clone().requires_grad_(True)
    z = model(x_in)
    k = strongest_other_class(z, y)
    p = two_class_probability(z, y, k)
    (g,) = torch.autograd.grad(p.sum(), x_in, retain_graph=True)
    p2 = two_class_probability(model(x + h * g.sign()), y, k)
    ce = F.cross_entropy(z, y)
    only_x = _weight_grads(model, ce + lam * ((p2.detach() - p) / h).square().mean())
    only_x2 = _weight_grads(model, ce + lam * ((p2 - p.detach()) / h).square().mean())
    ce_only = _weight_grads(model, ce)
    fc_full, fc_x, fc_x2 = full[-2], only_x[-2], only_x2[-2]  # the last Linear layer's weight
    assert not torch.allclose(fc_full, fc_x)  # the x2 pass contributes ...
    assert not torch.allclose(fc_full, fc_x2)  # ... and so does the clean pass
    for a, b, c, d in zip(full, only_x, only_x2, ce_only, strict=True):
        torch.testing.assert_close(a, b + c - d, rtol=1e-4, atol=1e-6)


def test_direction_is_not_clamped_to_unit_interval(make_model, tiny_batch) -> None:
    # Pixels at exactly 0 and 1 (rows 0 and -1 of the batch) step outside [0, 1]; the quotient must use
    # the full step h, as the released code does.
    x, y = tiny_batch
    model = make_model().eval()
    out = sr_loss(model, x, y, lam=1.0, h=0.01)
    x_in = x.clone().requires_grad_(True)
    z = model(x_in)
    k = strongest_other_class(z, y)
    p = two_class_probability(z, y, k)
    (g,) = torch.autograd.grad(p.sum(), x_in)
    x2 = x + 0.01 * g.sign()
    assert (x2 < 0).any() or (x2 > 1).any()
    fd = (two_class_probability(model(x2), y, k) - p) / 0.01
    torch.testing.assert_close(out["fd"], fd.detach())


def test_stable_for_huge_logits(make_model, tiny_batch) -> None:
    class Scaled(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Tensor) -> Tensor:
            return self.inner(x) * 1e6

    x, y = tiny_batch
    model = Scaled(make_model())
    out = sr_loss(model, x, y, lam=1.0)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["reg"])
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_two_class_probability_hand_values() -> None:
    logits = torch.tensor([[1000.0, 999.0, -5.0], [0.0, math.log(3.0), 0.0], [-1e30, 1e30, 0.0]])
    y = torch.tensor([0, 0, 0])
    k = strongest_other_class(logits, y)
    assert k.tolist() == [1, 1, 1]
    p = two_class_probability(logits, y, k)
    # e^1000 / (e^1000 + e^999) = 1 / (1 + e^-1); 1 / (1 + 3) = 0.25; total saturation gives exactly 0.
    torch.testing.assert_close(p, torch.tensor([1.0 / (1.0 + math.exp(-1.0)), 0.25, 0.0]))


def test_strongest_other_class_skips_true_class_and_breaks_ties_low() -> None:
    logits = torch.tensor([[5.0, 1.0, 1.0, 0.0], [2.0, 2.0, 9.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2, 0])
    assert strongest_other_class(logits, y).tolist() == [1, 0, 1]


def test_inputs_and_parameter_grads_untouched(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    x_before = x.clone()
    model = make_model()
    sr_loss(model, x, y, lam=0.1)
    assert torch.equal(x, x_before) and x.grad is None
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lam": -0.1}, "lambda"),
        ({"lam": float("nan")}, "lambda"),
        ({"lam": 0.1, "h": 0.0}, "step h"),
        ({"lam": 0.1, "h": -1e-3}, "step h"),
        ({"lam": 0.1, "penalty": "l2"}, "l2sq, l1"),
    ],
)
def test_bad_arguments_raise_user_input_error(make_model, tiny_batch, kwargs: dict, needle: str) -> None:
    x, y = tiny_batch
    with pytest.raises(UserInputError, match=needle):
        sr_loss(make_model(), x, y, **kwargs)
