"""Crafting-only gradient specs: the BPTR and ReLU-ANN forwards, ASSG, and where each may be used."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons import (
    SURROGATES,
    GradSpec,
    IFNeuron,
    get_backend,
    gradient_spec,
    if_membrane,
    if_multistep,
    list_backends,
)
from evrobust.neurons.assg import ASSG_BETA, ASSG_RELAX, AssgState, assg_a

# ---- BPTR ------------------------------------------------------------------------------------------------


def test_bptr_forward_fires_strictly_above_threshold() -> None:
    # exact binary fractions: the sums hit the threshold 1 exactly at t = 1
    x = torch.tensor([[0.5], [0.5], [0.75], [0.5]], dtype=torch.float64)
    assert if_multistep(x, "triangle:1").flatten().tolist() == [0, 1, 0, 1]  # u >= 1 fires at the tie
    # strict: 0.5, 1.0 (no spike), 1.75 (spike, reset), 0.5
    assert if_multistep(x, "bptr").flatten().tolist() == [0, 0, 1, 0]


def test_bptr_backward_is_upstream_times_fired_at_all() -> None:
    # three neurons: silent, fires once, fires twice (T = 4)
    x = torch.tensor(
        [[0.2, 1.5, 0.9], [0.1, 0.0, 0.9], [0.3, 0.1, 0.9], [0.1, 0.0, 0.9]], dtype=torch.float64
    ).requires_grad_()
    spikes = if_multistep(x, "bptr")
    assert spikes.sum(0).tolist() == [0, 1, 2]
    upstream = torch.arange(12, dtype=torch.float64).reshape(4, 3) + 1
    (g,) = torch.autograd.grad(spikes, x, upstream)
    expected = upstream * torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.equal(g, expected)


def test_bptr_with_leak_uses_the_leaky_dynamics() -> None:
    x = torch.tensor([[0.8], [0.8], [0.8]], dtype=torch.float64)
    # tau = 0.5: u = 0.8, 1.2 (spike, reset), 0.8
    assert if_multistep(x, "bptr", tau=0.5).flatten().tolist() == [0, 1, 0]


# ---- ReLU-ANN --------------------------------------------------------------------------------------------


def test_ann_forward_is_relu_over_threshold_with_relu_gradient() -> None:
    x = torch.tensor([[-1.0, 0.5, 2.0], [0.25, -0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    out = if_multistep(x, "ann", theta=2.0)
    assert out.tolist() == [[0.0, 0.25, 1.0], [0.125, 0.0, 1.5]]
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.tolist() == [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]


def test_ann_model_forward_equals_the_relu_network_over_the_same_weights() -> None:
    torch.manual_seed(0)
    lin1, lin2 = nn.Linear(5, 7), nn.Linear(7, 3)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin1, self.neuron, self.lin2 = lin1, IFNeuron(), lin2

        def forward(self, x: Tensor) -> Tensor:  # x [N, 5] repeated over T = 4 (direct encoding)
            h = self.lin1(x).unsqueeze(0).expand(4, -1, -1)
            return self.lin2(self.neuron(h)).mean(0)

    model, x = Tiny(), torch.randn(6, 5)
    ann = lin2(torch.relu(lin1(x)))
    with gradient_spec(model, "ann"):
        torch.testing.assert_close(model(x), ann)
    assert not torch.allclose(model(x), ann)  # outside the block the SNN runs again


# ---- ASSG ------------------------------------------------------------------------------------------------


def test_assg_constant_a() -> None:
    assert assg_a(0.25) == pytest.approx(2 / math.pi)  # tan(pi/4) = 1
    assert assg_a(0.425) == pytest.approx(2 * math.tan(0.425 * math.pi) / math.pi)


def test_assg_moments_by_hand() -> None:
    state = AssgState(0.25)
    a = 2 / math.pi
    v = torch.tensor([[0.0, 2.0, -3.0]], dtype=torch.float64)  # T = 1, three neurons
    alpha = state.update(v)
    m1 = 0.9 * 1.0 + 0.1 * v.abs()  # M starts at 1
    d1 = 0.1 * (v.abs() - m1).abs()  # D starts at 0 and uses the new M
    torch.testing.assert_close(state.M, m1)
    torch.testing.assert_close(state.D, d1)
    torch.testing.assert_close(alpha, a / (m1 + 1.5 * d1 + 1e-4))
    # by hand for the neuron at |v| = 2: M = 1.1, D = 0.09, alpha = a / (1.1 + 0.135 + 1e-4)
    assert alpha[0, 1].item() == pytest.approx(a / 1.2351)
    v2 = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    alpha2 = state.update(v2)
    m2 = ASSG_BETA * m1 + (1 - ASSG_BETA) * 1.0
    d2 = ASSG_BETA * d1 + (1 - ASSG_BETA) * (1.0 - m2).abs()
    torch.testing.assert_close(alpha2, a / (m2 + ASSG_RELAX * d2 + 1e-4))
    assert state.updates == 2


def _layer_model(T: int = 3) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.neuron = IFNeuron()

        def forward(self, x: Tensor) -> Tensor:  # x is already the current [T, N, F]
            return self.neuron(x)

    return Net()


def test_assg_widths_follow_the_membrane_statistics_of_a_hand_made_input() -> None:
    # Two neurons with the same input at t = 0 and a different distance from threshold at t = 1: after the
    # EMAs have settled, the neuron far from threshold gets the smaller sharpness (the wider surrogate), in
    # the ratio the formula predicts.
    model = _layer_model()
    base = torch.tensor([[[0.5, 0.5]], [[0.2, 2.0]], [[0.0, 0.0]]], dtype=torch.float64)  # [T=3, N=1, 2]
    with gradient_spec(model, "assg:0.4"):
        state = model.neuron._assg_state
        assert isinstance(state, AssgState) and state.updates == 0
        # the start values decay as 0.9^n and D's transient as n 0.1 0.9^n: both < 1e-5 after 150 forwards
        for _ in range(150):
            model(base)
        u = if_membrane(base)
        mag = (u - 1.0).abs()
        # a constant input: M -> |v|, D -> 0, alpha -> a / (|v| + 1e-4)
        torch.testing.assert_close(state.M, mag, rtol=0, atol=1e-5)
        torch.testing.assert_close(state.alpha(), assg_a(0.4) / (mag + 1e-4), rtol=1e-4, atol=0)
        # neuron 1 at t = 1 sits far from threshold (u = 2.5, |v| = 1.5): wider than neuron 0 (u = 0.7)
        alpha = state.alpha()
        assert alpha[1, 0, 1] < alpha[1, 0, 0]
        assert (alpha[1, 0, 0] / alpha[1, 0, 1]).item() == pytest.approx(1.5 / 0.3, rel=1e-2)
    assert model.neuron._assg_state is None  # statistics gone after the block


def test_assg_deviation_term_widens_a_fluctuating_neuron() -> None:
    # same mean |v| = 1 at neuron 0 and 1, but neuron 1 alternates between |v| = 0 and 2: D > 0 there
    state = AssgState(0.425)
    for k in range(200):
        state.update(torch.tensor([[1.0, 0.0 if k % 2 else 2.0]], dtype=torch.float64))
    assert state.D[0, 0] < 1e-6 < 0.5 < state.D[0, 1]
    assert state.alpha()[0, 1] < state.alpha()[0, 0]


def test_assg_gradient_is_bptt_with_atan_at_the_per_element_sharpness() -> None:
    torch.manual_seed(2)
    x = (torch.randn(5, 4, 6, dtype=torch.float64) * 0.8 + 0.5).requires_grad_()
    upstream = torch.randn_like(x)
    model = _layer_model()
    with gradient_spec(model, "assg:0.45"):
        spikes = model(x)
        alpha = model.neuron._assg_state.alpha()
        (g,) = torch.autograd.grad(spikes, x, upstream)
    # reference: per-step autograd through the reset, with the atan surrogate at alpha[t] (a tensor)

    class Atan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v: Tensor, a: Tensor) -> Tensor:  # type: ignore[override]
            ctx.save_for_backward(v, a)
            return (v >= 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
            v, a = ctx.saved_tensors
            return grad * (a / 2) / (1 + (math.pi / 2 * a * v) ** 2), None

    u = torch.zeros_like(x[0])
    ref = []
    for t in range(x.shape[0]):
        u = u + x[t]
        s = Atan.apply(u - 1.0, alpha[t])
        ref.append(s)
        u = u * (1 - s)
    ref_spikes = torch.stack(ref)
    assert torch.equal(spikes, ref_spikes)
    (g_ref,) = torch.autograd.grad(ref_spikes, x, upstream)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def test_assg_statistics_restart_per_block_and_on_a_new_shape() -> None:
    model = _layer_model()
    x = torch.rand(3, 2, 4, dtype=torch.float64)
    with gradient_spec(model, "assg"):
        model(x)
        model(x)
        first = model.neuron._assg_state
        assert first.updates == 2 and str(model.neuron.spec) == "assg:0.425"
        model(x[:, :1])  # another batch shape: restart
        assert first.updates == 1 and first.M.shape == (3, 1, 4)
    with gradient_spec(model, "assg"):
        assert model.neuron._assg_state is not first and model.neuron._assg_state.updates == 0
    assert model.neuron._assg_state is None and str(model.neuron.spec) == "triangle:1"


# ---- where crafting specs may be used --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["bptr", "ann", "assg:0.4"])
def test_crafting_specs_are_never_a_models_own(text: str) -> None:
    with pytest.raises(UserInputError, match="crafting attacks only"):
        IFNeuron(spec=text)
    neuron = IFNeuron()
    with pytest.raises(UserInputError, match="crafting attacks only"):
        neuron.spec = text
    assert str(neuron.spec) == "triangle:1"
    with gradient_spec(neuron, text):
        assert str(neuron.spec) == str(GradSpec.parse(text))
    assert str(neuron.spec) == "triangle:1"


def test_assg_outside_gradient_spec_is_refused() -> None:
    with pytest.raises(UserInputError, match="IFNeuron inside"):
        if_multistep(torch.rand(2, 3), "assg")


# Which backend runs which spec: the statement of docs/architecture.md, checked against supports().
SUPPORT = {
    "native": {"triangle", "sigmoid", "atan", "rect", "exp", "expd", "ste", "rate", "bptr", "ann", "assg"},
    "spikingjelly": {"triangle", "sigmoid", "atan", "rate"},
    "norse": {"triangle", "sigmoid", "rate"},
}


@pytest.mark.parametrize("backend", list_backends())
def test_backend_support_table(backend: str) -> None:
    kinds = [*SURROGATES, "rate", "bptr", "ann", "assg"]
    supported = {k for k in kinds if get_backend(backend).supports(GradSpec.parse(k), 1.0, 1.0) is None}
    assert supported == SUPPORT[backend]


@pytest.mark.parametrize("text", ["rect:0.5", "exp:1", "ste", "bptr", "assg"])
def test_unsupported_spec_on_another_backend_is_one_line_and_atomic(text: str) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = IFNeuron(), IFNeuron(backend="spikingjelly")

    model = Two()
    with pytest.raises(UserInputError) as err:
        with gradient_spec(model, text):
            pass
    msg = str(err.value)
    assert "\n" not in msg and "spikingjelly" in msg and "backends that can: native" in msg
    assert str(model.a.spec) == str(model.b.spec) == "triangle:1"
