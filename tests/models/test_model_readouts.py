"""Readouts computed from the last Linear layer's per-step output, and gradient specs across a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evrobust.errors import UserInputError
from evrobust.models import READOUTS, Readout, list_models
from evrobust.neurons import PAPER_ENSEMBLE, GradSpec, gradient_spec

from .conftest import if_neurons, make_active, small_model


def _last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def _capture_last_linear(model: nn.Module) -> list[torch.Tensor]:
    """Forward hook storing the last Linear's output [T*N, K] on every call."""
    seen: list[torch.Tensor] = []
    _last_linear(model).register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    return seen


@pytest.mark.parametrize("name", ["vgg_small", "wrn_small"])
@pytest.mark.parametrize("readout", READOUTS)
def test_readout_from_the_last_linear_output(name: str, readout: str) -> None:
    T, N = 5, 4
    x = torch.rand(N, 2, 8, 8)
    model = make_active(small_model(name, in_channels=2, input_size=8, T=T, tau=0.8, readout=readout), x)
    seen = _capture_last_linear(model)
    with torch.no_grad():
        logits = model(x)
    y = seen[-1].view(T, N, -1)  # time-major fold: row t*N + n is step t of sample n
    if readout == "mean":
        want = y.mean(0)
    elif readout == "max":
        want = y.max(0).values
    elif readout == "last":
        want = y[T - 1]
    elif readout == "membrane":
        # Non-spiking output neuron with the model's leak 0.8: u[t] = 0.8 u[t-1] + y[t], logits = u[T-1].
        u = torch.zeros_like(y[0])
        for t in range(T):
            u = 0.8 * u + y[t]
        want = u
    else:  # rate: IF neuron (theta 1, leak 0.8) on the Linear output, logits = spike count / T
        u = torch.zeros_like(y[0])
        s = torch.zeros_like(y[0])
        count = torch.zeros_like(y[0])
        for t in range(T):
            u = 0.8 * u * (1 - s) + y[t]
            s = (u >= 1.0).float()
            count += s
        want = count / T
    assert (y != 0).any()
    torch.testing.assert_close(logits, want, rtol=1e-5, atol=1e-5)


def test_rate_readout_adds_one_neuron_others_add_none() -> None:
    base = len(if_neurons(small_model("vgg_small", in_channels=1, input_size=8)))
    for readout in READOUTS:
        model = small_model("vgg_small", in_channels=1, input_size=8, readout=readout)
        assert len(if_neurons(model)) == base + (readout == "rate")


def test_readout_module_rejects_unknown_kind() -> None:
    with pytest.raises(UserInputError, match="mean, max, last, membrane, rate"):
        Readout("median", 1.0)


@pytest.mark.parametrize("name", list_models())
def test_gradient_spec_context_reaches_every_neuron_and_changes_the_gradient(name: str) -> None:
    x = torch.rand(4, 2, 8, 8)
    model = make_active(small_model(name, in_channels=2, input_size=8, T=4, readout="rate"), x)
    y = torch.arange(4)

    def input_grad() -> torch.Tensor:
        xi = x.clone().requires_grad_(True)
        nn.functional.cross_entropy(model(xi), y).backward()
        assert xi.grad is not None
        return xi.grad

    g_train = input_grad()
    grads = {}
    for spec in PAPER_ENSEMBLE:
        with gradient_spec(model, spec):
            assert all(n.spec == spec for n in if_neurons(model))
            grads[str(spec)] = input_grad()
        assert all(n.spec == GradSpec() for n in if_neurons(model)), "spec restored on exit"
    torch.testing.assert_close(grads["triangle:1"], g_train, rtol=0, atol=0)  # the training default
    assert not torch.equal(grads["sigmoid:4"], grads["triangle:1"])
    assert not torch.equal(grads["rate"], grads["triangle:1"])
