"""snntorch adapter on real snntorch networks: the swapped ``spike_grad`` gives the gradient of a hand-written
reference surrogate, the forward is unchanged, the originals come back, reset and snapshot are exact and
touch only this model's neurons."""

from __future__ import annotations

import math
from typing import Any

import pytest
import snntorch as snn
import torch
from torch import Tensor, nn

from evrobust.adapters import adapt
from evrobust.adapters.base import SpikeSwap
from evrobust.neurons import gradient_spec

NUM_STEPS = 4


def _reference(backward: Any) -> Any:
    """A snntorch-style spike function: forward ``(x > 0).float()`` like snntorch's own surrogates,
    backward ``grad * backward(x)`` (the formula written out in each test)."""

    class Ref(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return (x > 0).float()

        @staticmethod
        def backward(ctx: Any, grad: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return grad * backward(x)

    return Ref.apply


REFERENCES = [
    ("rect:0.5", lambda x: (x.abs() < 0.25).float() / 0.5),
    ("triangle:1", lambda x: (1 - x.abs()).clamp(min=0)),
    ("sigmoid:4", lambda x: 4 * torch.sigmoid(4 * x) * (1 - torch.sigmoid(4 * x))),
    ("exp:2", lambda x: torch.exp(-2 * x.abs())),
    ("atan:2", lambda x: 1 / (1 + (math.pi * x) ** 2)),
]


class LeakyNet(nn.Module):
    """Linear -> Leaky (init_hidden) -> Linear -> Synaptic (explicit state) over ``NUM_STEPS``; logits = the
    output layer's spike counts plus its mean membrane (so the gradient is rarely zero)."""

    def __init__(self, spike_grad: Any = None, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(64, 16)
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True, spike_grad=spike_grad)
        self.fc2 = nn.Linear(16, 3)
        self.lif2 = snn.Synaptic(alpha=0.8, beta=0.9, spike_grad=spike_grad)

    def forward(self, x: Tensor) -> Tensor:
        current = self.fc1(x.flatten(1)) * 3
        syn, mem = self.lif2.init_synaptic()
        counts = 0
        mems = 0
        for _ in range(NUM_STEPS):
            spk1 = self.lif1(current)
            spk2, syn, mem = self.lif2(self.fc2(spk1) * 2, syn, mem)
            counts = counts + spk2
            mems = mems + mem
        return counts + mems / NUM_STEPS


@pytest.fixture
def x() -> Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def _input_grad(model: nn.Module, x: Tensor, spec: str | None = None) -> tuple[Tensor, Tensor]:
    x = x.clone().requires_grad_(True)
    if spec is None:
        logits = model(x)
    else:
        with gradient_spec(model, spec):
            logits = model(x)
    logits.square().sum().backward()
    return logits.detach(), x.grad


@pytest.mark.parametrize(("spec", "formula"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_swapped_gradient_equals_a_hand_written_reference(spec, formula, x) -> None:
    reference = adapt(LeakyNet(_reference(formula)))  # adapt only for its reset before the forward
    adapted = adapt(LeakyNet())  # snntorch's default atan(alpha=2) surrogate
    ref_logits, ref_grad = _input_grad(reference, x)
    logits, grad = _input_grad(adapted, x, spec)
    assert torch.equal(logits, ref_logits)
    assert ref_grad.abs().max() > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    _, other = _input_grad(adapted, x, "triangle:0.3")
    assert not torch.allclose(other, grad)


def test_forward_unchanged_and_originals_restored_also_on_error(x) -> None:
    adapted = adapt(LeakyNet())
    lif1, lif2 = adapted.model.lif1, adapted.model.lif2
    originals = (lif1.spike_grad, lif2.spike_grad)
    with torch.no_grad():
        before = adapted(x)
    with gradient_spec(adapted, "sigmoid:4"):
        assert isinstance(lif1.spike_grad, SpikeSwap) and lif1.spike_grad.original is originals[0]
        inside = adapted(x.clone().requires_grad_(True)).detach()
    assert torch.equal(inside, before)
    assert (lif1.spike_grad, lif2.spike_grad) == originals
    assert lif1.spike_grad is originals[0] and lif2.spike_grad is originals[1]
    with pytest.raises(RuntimeError, match="inside"), gradient_spec(adapted, "ste"):
        raise RuntimeError("inside")
    assert lif1.spike_grad is originals[0] and lif2.spike_grad is originals[1]
    with torch.no_grad():
        assert torch.equal(adapted(x), before)


def test_a_module_spike_grad_is_swapped_as_a_module() -> None:
    class ModuleSurrogate(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return (x > 0).float()

    sg = ModuleSurrogate()
    net = nn.Sequential(nn.Linear(4, 4), snn.Leaky(beta=0.5, init_hidden=True, spike_grad=sg))
    adapted = adapt(net)
    with gradient_spec(adapted, "triangle:1"):
        assert isinstance(net[1]._modules["spike_grad"], nn.Module)
    assert net[1].spike_grad is sg and net[1]._modules["spike_grad"] is sg


def test_adapted_forward_resets_init_hidden_state_but_the_raw_model_does_not(x) -> None:
    raw = LeakyNet()
    with torch.no_grad():
        first, second = raw(x), raw(x)
    assert not torch.equal(first, second), "init_hidden keeps mem between calls"
    adapted = adapt(LeakyNet())
    with torch.no_grad():
        a1, a2 = adapted(x), adapted(x)
    assert torch.equal(a1, a2)
    assert torch.equal(a1, first)


def test_reset_touches_only_this_models_neurons(x) -> None:
    outsider = snn.Leaky(beta=0.9, init_hidden=True)
    outsider(torch.ones(2, 5))
    mem = outsider.mem
    adapted = adapt(LeakyNet())
    adapted(x)
    adapted.reset_state()
    assert outsider.mem is mem and mem.abs().sum() > 0
    assert adapted.model.lif1.mem.abs().sum() == 0


def test_snapshot_restores_hidden_state_exactly(x) -> None:
    adapted = adapt(LeakyNet())
    lif1 = adapted.model.lif1
    assert "reset" not in lif1.__dict__  # created by the first forward
    with adapted.preserved():
        adapted(x)
        assert "reset" in lif1.__dict__
    assert "reset" not in lif1.__dict__ and lif1.mem.numel() == 0
    with torch.no_grad():
        adapted(x)
    mem, reset, syn = lif1.mem, lif1.reset, adapted.model.lif2.syn
    with adapted.preserved():
        with torch.no_grad():
            adapted(x * 0.5)
        adapted.reset_state()
        assert lif1.mem is not mem
    assert lif1.mem is mem and lif1.reset is reset and adapted.model.lif2.syn is syn
