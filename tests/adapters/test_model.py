"""``AdaptedModel`` across libraries: unknown neurons, which specs apply, the atomic ``gradient_spec`` hook,
``preserved()``, and the shared pieces of ``evrobust.adapters.base``."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from torch import Tensor, nn

from evrobust.adapters import AdaptedModel, ForeignSpike, adapt, unsupported_reason
from evrobust.adapters.base import NeuronAdapter, SpikeSwap
from evrobust.adapters.snntorch import SnnTorchAdapter
from evrobust.errors import UserInputError
from evrobust.neurons import GradSpec, IFNeuron, gradient_spec
from evrobust.neurons.surrogates import triangle_grad

T = 4
CRAFTING = ["rate", "bptr", "ann", "assg:0.425"]


class MyLIFNeuron(nn.Module):
    """A user's own spiking neuron that no adapter knows."""

    def forward(self, x: Tensor) -> Tensor:
        return (x > 1).float()


class SpikingNet(nn.Module):
    """A network whose class name looks like a neuron's; it holds neurons, so it is not one."""

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)
        self.neuron = neuron

    def forward(self, x: Tensor) -> Tensor:
        return self.neuron(self.fc(x.flatten(1)) * 3)


class LeakyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 3)
        self.drop = nn.Dropout(0.5)
        self.lif = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: Tensor) -> Tensor:
        current = self.drop(self.fc(x.flatten(1))) * 3
        return sum(self.lif(current) for _ in range(T)) / T


class MixedNet(nn.Module):
    """evrobust IF neurons and snntorch neurons in one model."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 8)
        self.if_neuron = IFNeuron()
        self.lif = snn.Leaky(beta=0.9, init_hidden=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        current = self.fc(x.flatten(1)) * 3
        spikes = self.if_neuron(current.unsqueeze(0).repeat(T, 1, 1))
        return sum(self.out(self.lif(s)) for s in spikes) / T


@pytest.fixture
def x() -> Tensor:
    return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))


def test_unknown_neuron_is_named_and_refuses_every_spec() -> None:
    adapted = adapt(SpikingNet(MyLIFNeuron()))
    assert adapted.unknown == ["MyLIFNeuron"]
    assert adapted.found == {}
    assert "surrogate ensemble not applied: unknown neuron type MyLIFNeuron" in adapted.notes()
    assert adapted.unsupported(None) is None
    for spec in ("triangle:1", "sigmoid:4", *CRAFTING):
        assert adapted.unsupported(spec) == "surrogate ensemble not applied: unknown neuron type MyLIFNeuron"
    with pytest.raises(UserInputError, match="unknown neuron type MyLIFNeuron"):
        with gradient_spec(adapted, "ste"):
            pass


def test_unknown_neuron_next_to_known_ones_still_refuses_and_is_listed_once() -> None:
    net = nn.Sequential(nn.Linear(4, 4), snn.Leaky(beta=0.5), MyLIFNeuron(), MyLIFNeuron())
    adapted = adapt(net)
    assert adapted.unknown == ["MyLIFNeuron"]
    assert list(adapted.found) == ["snntorch"]
    assert adapted.unsupported("triangle:1") is not None


def test_model_without_spiking_neurons() -> None:
    adapted = adapt(nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.ReLU()))
    assert adapted.unknown == [] and adapted.found == {}
    assert adapted.notes() == ["surrogate ensemble not applied: no spiking neuron found"]
    assert adapted.unsupported("triangle:1") == "surrogate ensemble not applied: no spiking neuron found"
    assert adapted.unsupported(None) is None


def test_neuron_name_pattern() -> None:
    from evrobust.adapters import NEURON_NAME

    for name in ("MyLIFNeuron", "IFNode", "IFCell", "IF", "SpikeLayer", "ParametricIAF", "node2"):
        assert NEURON_NAME.search(name), name
    for name in ("Conv2d", "IFrame", "Linear", "Readout", "Sigmoid"):
        assert not NEURON_NAME.search(name), name


@pytest.mark.parametrize("spec", CRAFTING)
def test_crafting_and_rate_specs_are_refused_for_foreign_neurons_atomically(spec, x) -> None:
    assert unsupported_reason(GradSpec.parse(spec)) is not None
    adapted = adapt(MixedNet())
    reason = adapted.unsupported(spec)
    assert reason is not None and "snntorch Leaky" in reason and "surrogate specs only" in reason
    if_neuron, lif = adapted.model.if_neuron, adapted.model.lif
    spec_before, grad_before = if_neuron.spec, lif.spike_grad
    with pytest.raises(UserInputError, match="cannot be applied"), gradient_spec(adapted, spec):
        pass
    assert if_neuron.spec is spec_before and if_neuron._assg_state is None
    assert lif.spike_grad is grad_before


def test_surrogate_specs_apply_to_mixed_models(x) -> None:
    adapted = adapt(MixedNet())
    assert adapted.unsupported("expd:2") is None
    grad_before = adapted.model.lif.spike_grad
    with gradient_spec(adapted, "expd:2"):
        assert str(adapted.model.if_neuron.spec) == "expd:2"
        assert isinstance(adapted.model.lif.spike_grad, SpikeSwap)
        adapted(x.clone().requires_grad_(True)).sum().backward()
    assert adapted.model.lif.spike_grad is grad_before and str(adapted.model.if_neuron.spec) == "triangle:1"


def test_evrobust_only_model_defers_to_its_backends() -> None:
    adapted = adapt(nn.Sequential(nn.Linear(4, 4), IFNeuron(backend="native")))
    assert adapted.found == {} and adapted.unknown == [] and adapted.notes() == []
    for spec in ("rect:0.5", *CRAFTING):
        assert adapted.unsupported(spec) is None
    with gradient_spec(adapted, "rate"):
        pass
    jelly = adapt(nn.Sequential(nn.Linear(4, 4), IFNeuron(backend="spikingjelly")))
    assert "rect" in jelly.unsupported("rect:0.5")


def test_preserved_restores_flags_requires_grad_state_and_surrogates(x) -> None:
    adapted = adapt(LeakyNet())
    net = adapted.model
    net.train()
    net.fc.eval()
    net.fc.bias.requires_grad_(False)
    with torch.no_grad():
        adapted(x)
    mem, spike_grad = net.lif.mem, net.lif.spike_grad
    flags = [m.training for m in adapted.modules()]
    with pytest.raises(RuntimeError, match="mid-attack"), adapted.preserved():
        adapted.eval()
        for p in adapted.parameters():
            p.requires_grad_(True)
        net.lif.spike_grad = SpikeSwap(spike_grad, GradSpec.parse("ste"))  # a swap that escaped its block
        adapted(x)
        raise RuntimeError("mid-attack")
    assert [m.training for m in adapted.modules()] == flags
    assert net.fc.weight.requires_grad and not net.fc.bias.requires_grad
    assert net.lif.mem is mem and net.lif.spike_grad is spike_grad


def test_adapt_is_idempotent_and_checks_its_argument() -> None:
    adapted = adapt(nn.Linear(2, 2))
    assert adapt(adapted) is adapted
    assert isinstance(adapted, AdaptedModel) and adapted.model is not None
    with pytest.raises(UserInputError, match="torch.nn.Module"):
        adapt("not a model")  # type: ignore[arg-type]


def test_foreign_spike_keeps_the_library_forward_and_uses_our_backward() -> None:
    v = torch.tensor([-2.0, -0.5, 0.0, 0.25, 3.0], dtype=torch.float64, requires_grad=True)
    spikes = (v.detach() > 0).float()  # snntorch-style: float32 for any input
    out = ForeignSpike.apply(v, spikes, triangle_grad, 1.0)
    assert out.dtype == torch.float32 and torch.equal(out, spikes)
    out.backward(torch.ones(5))
    assert v.grad.dtype == torch.float64
    torch.testing.assert_close(v.grad, triangle_grad(v.detach(), 1.0))
    with pytest.raises(RuntimeError, match="shape"):
        ForeignSpike.apply(v, spikes[:2], triangle_grad, 1.0)


def test_swap_rolls_back_when_installing_fails_half_way() -> None:
    class Flaky(SnnTorchAdapter):
        calls = 0

        def _install(self, neuron, spec):  # type: ignore[no-untyped-def]
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("second neuron")
            return super()._install(neuron, spec)

    neurons = [snn.Leaky(beta=0.5), snn.Leaky(beta=0.5)]
    originals = [n.spike_grad for n in neurons]
    with pytest.raises(RuntimeError, match="second neuron"), Flaky().swap(neurons, GradSpec.parse("ste")):
        pass
    assert [n.spike_grad for n in neurons] == originals
    assert all(n.spike_grad is o for n, o in zip(neurons, originals, strict=True))
    assert isinstance(Flaky(), NeuronAdapter)


def test_library_layers_with_neuron_like_names_are_not_unknown() -> None:
    net = nn.Sequential(nn.Linear(4, 4), snn.Leaky(beta=0.5, init_hidden=True), snn.GradedSpikes(4, 1.0))
    adapted = adapt(net)
    assert adapted.unknown == [] and adapted.unsupported("triangle:1") is None
