"""DLIF: the filtered current difference by hand, the loss on the tiny model, the opt-in input gain."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from evrobust.defenses import dlif_loss, perturbation_energy
from evrobust.neurons import IFNeuron, enable_input_gains, leaky_integrate


def test_leaky_integration_and_energy_by_hand() -> None:
    d = torch.tensor([[1.0], [2.0], [-1.0]])
    # Y = [1, 0.5*1 + 2, 0.5*2.5 - 1] = [1, 2.5, 0.25]; IF (tau = 1): running sum [1, 3, 2]
    torch.testing.assert_close(leaky_integrate(d, 0.5), torch.tensor([[1.0], [2.5], [0.25]]))
    torch.testing.assert_close(leaky_integrate(d, 1.0), torch.tensor([[1.0], [3.0], [2.0]]))
    zero = torch.zeros(3, 1)
    assert perturbation_energy(d, zero, 1.0).item() == pytest.approx((1 + 9 + 4) / 3)


def _ce(logits: Tensor, y: Tensor) -> Tensor:
    return -torch.log(torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)).gather(1, y[:, None]).mean()


def test_dlif_loss_matches_hand_computation(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    x = x.double()
    model = make_model(dtype=torch.float64).eval()
    twin = copy.deepcopy(model)
    kappa, alpha, eps = 0.3, 2.0, 4 / 255
    out = dlif_loss(model, x, y, kappa, alpha, "fgsm", eps)
    # FGSM by hand (eval mode); TinySNN's last (only) IF layer sees bn(conv(x)) at each of its T = 3 steps.
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_ce(twin(xg), y), xg)
    x_adv = (x + eps * g.sign()).clamp(0, 1)
    torch.testing.assert_close(out["x_adv"], x_adv)
    d = twin.bn(twin.conv(x)).detach() - twin.bn(twin.conv(x_adv))
    energy = (d.square() * (1 + 4 + 9)).mean() / 3  # Y[t] = (t + 1) d for a constant difference, tau = 1
    expected = kappa * _ce(twin(x), y) + (1 - kappa) * _ce(twin(x_adv), y) + alpha * energy
    assert out["reg"].item() > 0
    torch.testing.assert_close(out["reg"], energy)
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    expected.backward()
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_input_gain_is_opt_in_and_scales_each_step() -> None:
    plain = IFNeuron()
    assert plain.state_dict() == {} and list(plain.parameters()) == []
    gained = IFNeuron()
    gained.enable_input_gain(3)
    assert list(gained.state_dict()) == ["input_gain"]
    torch.testing.assert_close(gained.input_gain.detach(), torch.ones(3))
    with torch.no_grad():
        gained.input_gain.copy_(torch.tensor([2.0, 0.5, 1.0]))
    x = torch.tensor([[0.6], [0.6], [0.3]])
    # gain * x = [1.2, 0.3, 0.3]: fires at t0 (1.2 >= 1), resets, then 0.3, 0.6: no more spikes
    assert gained(x).flatten().tolist() == [1.0, 0.0, 0.0]
    assert plain(x).flatten().tolist() == [0.0, 1.0, 0.0]  # 0.6, 1.2 -> fire, reset, 0.3
    with pytest.raises(Exception, match="3 time steps"):
        gained(torch.zeros(4, 1))


def test_enable_input_gains_adds_keys_only_to_if_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 2), IFNeuron(), nn.Linear(2, 2), IFNeuron())
    keys = list(model.state_dict())
    assert len(enable_input_gains(model, 4)) == 2
    assert list(model.state_dict()) == [*keys[:2], "1.input_gain", *keys[2:], "3.input_gain"]
