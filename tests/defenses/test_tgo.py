"""TGO: the threshold-margin hinge by hand, its gradient, the lambda warm-up, noise and recording scopes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from evrobust.defenses import margin_penalty, tgo_lambda, tgo_loss
from evrobust.neurons import IFNeuron, if_membrane, membrane_noise, record_neurons


def test_margin_penalty_and_gradient_by_hand() -> None:
    neuron = IFNeuron()
    x = torch.tensor([[0.95], [0.5], [0.6]], requires_grad=True)
    with record_neurons(neuron) as record:
        neuron(x)
    # u = [0.95, 1.45 (fires), 0 + 0.6]; |u - 1| = [0.05, 0.45, 0.4]; hinge at delta 0.1: [0.05, 0, 0]
    penalty = margin_penalty(record, delta=0.1)
    assert penalty.item() == pytest.approx(0.05 / 3)
    (g,) = torch.autograd.grad(penalty, x)
    # Only step 0 lies inside the margin, below threshold: d(0.1 - (1 - u0))/du0 = 1, over 3 elements. The
    # later steps' hinges are 0 (flat), so nothing flows back through u1, u2 or the reset.
    torch.testing.assert_close(g, torch.tensor([[1 / 3], [0.0], [0.0]]))


def test_membrane_matches_the_neuron_forward() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 4, 5) * 1.5
    neuron = IFNeuron(tau=0.5, theta=0.8)
    with record_neurons(neuron) as record:
        neuron(x)
    assert torch.equal(record.traces[0].membrane(), if_membrane(x, 0.5, 0.8))


def test_lambda_warmup() -> None:
    assert [tgo_lambda(2.0, 0.5, e / 4) for e in range(1, 5)] == [1.0, 2.0, 2.0, 2.0]
    assert tgo_lambda(2.0, 0.0, 0.25) == 2.0 and tgo_lambda(2.0, 0.5, None) == 2.0


def test_tgo_loss_matches_hand_computation(make_model, tiny_batch) -> None:
    x, y = tiny_batch
    x = x.double()
    model = make_model(dtype=torch.float64).eval()
    twin = copy.deepcopy(model)
    out = tgo_loss(model, x, y, lam=3.0, delta=0.2)
    current = twin.bn(twin.conv(x))  # TinySNN's one IF layer sees this at each of T = 3 steps
    u, hinges = torch.zeros_like(current), []
    for _ in range(3):
        u = u + current
        hinges.append((0.2 - (u - 1.0).abs()).clamp_min(0))
        u = u * (u < 1.0).double()  # hard reset where the neuron fired (u >= 1); value only, not gradient
    penalty = torch.stack(hinges).mean()
    logits = twin(x)
    ce = -torch.log_softmax(logits, 1).gather(1, y[:, None]).mean()
    assert out["reg"].item() > 0
    torch.testing.assert_close(out["reg"], penalty)
    torch.testing.assert_close(out["loss"], ce + 3.0 * penalty)


def test_noise_only_inside_its_block_and_from_the_global_rng() -> None:
    neuron = IFNeuron()
    x = torch.full((5, 100), 0.5)
    quiet = neuron(x)
    torch.manual_seed(4)
    with membrane_noise(neuron, 0.3):
        a = neuron(x)
    torch.manual_seed(4)
    with membrane_noise(neuron, 0.3):
        b = neuron(x)
    assert torch.equal(a, b) and not torch.equal(a, quiet)
    assert torch.equal(neuron(x), quiet) and neuron._noise_std == 0.0


def test_recording_restores_on_exit_and_picks_the_last_layer() -> None:
    first, last = IFNeuron(), IFNeuron()
    model = torch.nn.Sequential(first, last)
    with pytest.raises(RuntimeError, match="boom"), record_neurons(model, "all"):
        raise RuntimeError("boom")
    assert first._recorder is None and last._recorder is None
    x = torch.full((2, 3), 1.0)
    with record_neurons(model, "last") as record:
        model(x)
    assert [t.neuron for t in record.traces] == [last]
    assert isinstance(record.traces[0].current, Tensor)
    model(x)
    assert len(record.traces) == 1  # nothing recorded after the block
