"""spikingjelly adapter on real spikingjelly networks: the swapped surrogate is what the backward uses in both
step modes, the forward stays bit-identical, everything comes back on exit, and reset works."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn

logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # spikingjelly's CPU-only probe

from spikingjelly._ops.surrogate import _surrogate_spec  # noqa: E402
from spikingjelly.activation_based import functional, neuron, surrogate  # noqa: E402

from evrobust.adapters import adapt  # noqa: E402
from evrobust.adapters.base import SpikeSwapModule  # noqa: E402
from evrobust.neurons import gradient_spec  # noqa: E402

T = 4


class JellyNet(nn.Module):
    """Conv -> spikingjelly node over T steps (multi-step ``m`` or a single-step loop ``s``) -> Linear;
    logits = mean over T. Inputs ``[N, 1, 8, 8]`` in [0, 1], repeated over T inside."""

    def __init__(self, node: str, mode: str, sg: nn.Module, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        if node == "if":
            self.node = neuron.IFNode(surrogate_function=sg, step_mode=mode)
        else:
            self.node = neuron.LIFNode(tau=2.0, surrogate_function=sg, step_mode=mode)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        current = self.conv(x) * 1.5
        if self.mode == "m":
            spikes = self.node(current.unsqueeze(0).repeat(T, 1, 1, 1, 1))
            return self.fc(spikes.flatten(2)).mean(0)
        out = sum(self.fc(self.node(current).flatten(1)) for _ in range(T))
        return out / T


def _input_grad(model: nn.Module, x: Tensor, spec: str | None = None) -> tuple[Tensor, Tensor]:
    x = x.clone().requires_grad_(True)
    if spec is None:
        functional.reset_net(model)
        logits = model(x)
    else:
        with gradient_spec(model, spec):
            logits = model(x)
    logits.square().sum().backward()
    return logits.detach(), x.grad


@pytest.fixture
def x() -> Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))


# spikingjelly's own surrogates with the same derivative as ours
REFERENCES = [
    ("triangle:0.7", lambda: surrogate.PiecewiseQuadratic(alpha=1 / 0.7)),
    ("sigmoid:4", lambda: surrogate.Sigmoid(alpha=4.0)),
    ("atan:2", lambda: surrogate.ATan(alpha=2.0)),
]


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("node", ["if", "lif"])
@pytest.mark.parametrize(("spec", "make_ref"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_swapped_gradient_equals_spikingjelly_own_surrogate(mode, node, spec, make_ref, x) -> None:
    reference = JellyNet(node, mode, make_ref())
    adapted = adapt(JellyNet(node, mode, surrogate.Rect(alpha=1.0)))  # its own surrogate differs from all
    ref_logits, ref_grad = _input_grad(reference, x)
    logits, grad = _input_grad(adapted, x, spec)
    assert torch.equal(logits, ref_logits)
    assert ref_grad.abs().max() > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    _, other = _input_grad(adapted, x, "rect:0.5")
    assert not torch.allclose(other, grad), "another spec must give another gradient"


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("node", ["if", "lif"])
def test_forward_is_bit_identical_inside_the_swap(mode, node, x) -> None:
    adapted = adapt(JellyNet(node, mode, surrogate.Sigmoid()))
    with torch.no_grad():
        own = adapted(x)
    with gradient_spec(adapted, "exp:1"):
        swapped_nograd = adapted(x).detach()
        swapped = adapted(x.clone().requires_grad_(True)).detach()
    assert torch.equal(own, swapped_nograd)
    assert torch.equal(own, swapped)


def test_swap_installs_wrapper_and_restores_the_same_object_also_on_error(x) -> None:
    original = surrogate.Sigmoid()
    adapted = adapt(JellyNet("if", "m", original))
    node = adapted.model.node
    before = adapted(x)
    params_before = {id(p) for p in adapted.parameters()}
    with gradient_spec(adapted, "triangle:1"):
        # not one of spikingjelly's own surrogates: its multi-step ops take the torch reference loop
        assert _surrogate_spec(node.surrogate_function) is None and _surrogate_spec(original) is not None
        assert isinstance(node.surrogate_function, SpikeSwapModule)
        assert node.surrogate_function.original is original
        assert node.surrogate_function.spiking is True
        assert {id(p) for p in adapted.parameters()} == params_before
    assert node.surrogate_function is original
    assert node._modules["surrogate_function"] is original
    with pytest.raises(KeyError), gradient_spec(adapted, "triangle:1"):
        raise KeyError("inside")
    assert node.surrogate_function is original
    assert torch.equal(adapted(x), before)


def test_shared_default_surrogate_is_swapped_per_neuron_only(x) -> None:
    # spikingjelly's default surrogate object is shared by every node built without one
    a = adapt(nn.Sequential(nn.Flatten(), nn.Linear(64, 5), neuron.IFNode()))
    b = neuron.IFNode()
    shared = a.model[2].surrogate_function
    with gradient_spec(a, "ste"):
        assert b.surrogate_function is shared
        assert a.model[2].surrogate_function is not shared
    assert a.model[2].surrogate_function is shared


def test_adapted_forward_resets_but_the_raw_model_does_not(x) -> None:
    raw = JellyNet("lif", "m", surrogate.Sigmoid())
    functional.reset_net(raw)
    with torch.no_grad():
        first, second = raw(x), raw(x)
    assert not torch.equal(first, second), "spikingjelly keeps v between calls (reset_net forgotten)"
    adapted = adapt(JellyNet("lif", "m", surrogate.Sigmoid()))
    with torch.no_grad():
        a1, a2 = adapted(x), adapted(x)
    assert torch.equal(a1, a2)
    assert torch.equal(a1, first)


def test_snapshot_restores_state_that_reset_mutated_in_place(x) -> None:
    adapted = adapt(JellyNet("if", "s", surrogate.Sigmoid()))
    node = adapted.model.node
    with torch.no_grad():
        adapted(x)
    v = node.v
    # a tensor reset value of the same shape makes reset() write into v in place (detach_ + copy_)
    node.set_reset_value("v", torch.zeros_like(v))
    values = v.clone()
    with adapted.preserved():
        adapted.reset_state()
        assert node.v is v and torch.equal(v, torch.zeros_like(v))
    assert node.v is v
    assert torch.equal(node.v, values)


def test_non_spiking_readout_is_not_unknown_and_special_surrogates_are_refused() -> None:
    net = nn.Sequential(nn.Linear(4, 4), neuron.IFNode(), nn.Linear(4, 2), neuron.NonSpikingIFNode())
    adapted = adapt(net)
    assert adapted.unknown == []
    assert adapted.found == {"spikingjelly": [net[1]]}
    assert adapted.unsupported("sigmoid:4") is None
    net[1].surrogate_function = surrogate.Sigmoid(spiking=False)
    assert "non-spiking mode" in adapted.unsupported("sigmoid:4")
    dsr = adapt(nn.Sequential(nn.Linear(4, 4), neuron.DSRIFNode()))
    assert dsr.unknown == ["DSRIFNode"]  # it has no surrogate_function: its gradient is its own


def test_standalone_surrogate_activation_is_unknown_and_layers_are_not() -> None:
    # a surrogate used on its own as a spiking activation: no neuron attribute holds it, so no swap reaches it
    net = nn.Sequential(nn.Linear(4, 4), neuron.IFNode(), nn.Linear(4, 4), surrogate.ATan())
    adapted = adapt(net)
    assert adapted.unknown == ["ATan"]
    assert adapted.unsupported("atan:2") == "surrogate ensemble not applied: unknown neuron type ATan"
    # spikingjelly's own layers are not neurons, even with a name that looks like one
    from spikingjelly.activation_based import layer

    assert adapt(nn.Sequential(neuron.IFNode(), layer.SpikeCountToBinary(num_slots=2))).unknown == []
