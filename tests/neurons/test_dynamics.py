"""Native multi-step IF/LIF: hand-computed spike trains and gradients; BPTT against a per-step reference."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from evrobust.errors import UserInputError
from evrobust.neurons import GradSpec, if_membrane, if_multistep

# Surrogate formulas written out again here (DESIGN §3), so that the reference does not share code with the
# library under test.
FORMULAS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "triangle": lambda v, g: torch.clamp(g - v.abs(), min=0) / g**2,
    "sigmoid": lambda v, g: g * torch.sigmoid(g * v) * (1 - torch.sigmoid(g * v)),
    "atan": lambda v, g: (g / 2) / (1 + (math.pi / 2 * g * v) ** 2),
    "rect": lambda v, g: (v.abs() < g / 2).to(v.dtype) / g,
    "exp": lambda v, g: torch.exp(-g * v.abs()),
    "expd": lambda v, g: 0.3 * torch.exp(-g * v.abs()),
    "ste": lambda v, g: torch.ones_like(v),
}


class _RefSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor, name: str, width: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.name, ctx.width = name, width
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * FORMULAS[ctx.name](v, ctx.width), None, None


def reference_if(x: Tensor, name: str, width: float, tau: float, theta: float) -> Tensor:
    """Plain per-time-step loop; autograd does BPTT through ``u * (1 - s)`` (reset not detached)."""
    u = torch.zeros_like(x[0])
    spikes = []
    for t in range(x.shape[0]):
        u = tau * u + x[t]
        s = _RefSpike.apply(u - theta, name, width)
        spikes.append(s)
        u = u * (1 - s)
    return torch.stack(spikes)


# ---- forward: hand-computed spike trains -------------------------------------------------------------------
# Inputs are exact binary fractions, so every sum below is exact in floating point.


def _train(values: list[float], **kw: float) -> list[float]:
    x = torch.tensor(values, dtype=torch.float32).reshape(-1, 1)
    return if_multistep(x, **kw).flatten().tolist()


def test_threshold_tie_fires_and_resets_to_zero() -> None:
    # u: 0.25, 1.0 (= theta: fires, H(0) = 1), reset -> 0 + 0.75, 0.75 + 0.25 = 1.0 fires again, 0.5
    assert _train([0.25, 0.75, 0.75, 0.25, 0.5]) == [0, 1, 0, 1, 0]


def test_hard_reset_discards_the_overshoot() -> None:
    # 1.75 fires; with hard reset the 0.75 overshoot is lost (a soft reset would keep it and fire again)
    assert _train([1.75, 0.5, 0.5]) == [1, 0, 1]
    u = if_membrane(torch.tensor([[1.75], [0.5], [0.5]]))
    assert u.flatten().tolist() == [1.75, 0.5, 1.0]


def test_negative_potential_is_kept() -> None:
    # no floor at zero: -1 + 1.5 = 0.5, + 0.25 = 0.75
    assert _train([-1.0, 1.5, 0.25]) == [0, 0, 0]
    assert if_membrane(torch.tensor([[-1.0], [1.5], [0.25]])).flatten().tolist() == [-1.0, 0.5, 0.75]


def test_leak_tau_half() -> None:
    # tau = 0.5: u = 0.5, 0.75, 0.875, 0.9375 never reaches 1; IF (tau = 1) fires every second step
    assert _train([0.5] * 4, tau=0.5) == [0, 0, 0, 0]
    assert _train([0.5] * 4) == [0, 1, 0, 1]
    assert if_membrane(torch.full((4, 1), 0.5), tau=0.5).flatten().tolist() == [0.5, 0.75, 0.875, 0.9375]


def test_leak_tau_zero_is_memoryless() -> None:
    assert _train([0.75, 0.75, 1.0, 0.5], tau=0.0) == [0, 0, 1, 0]


def test_threshold_parameter() -> None:
    assert _train([0.5] * 3, theta=0.5) == [1, 1, 1]
    assert _train([1.0, 1.0, 1.0], theta=2.0) == [0, 1, 0]


def test_multidimensional_input_is_elementwise_over_time() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 2, 3, 4, 5)
    s = if_multistep(x)
    assert s.shape == x.shape and s.dtype == x.dtype
    flat = if_multistep(x.reshape(6, -1)).reshape(x.shape)
    assert torch.equal(s, flat)
    assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_forward_does_not_mutate_input_and_accepts_views() -> None:
    x = torch.rand(5, 4, 3)
    before = x.clone()
    view = x.transpose(1, 2)  # non-contiguous
    s = if_multistep(view)
    assert torch.equal(x, before)
    assert torch.equal(s, if_multistep(view.contiguous()))


def test_single_time_step() -> None:
    assert _train([1.0]) == [1]
    assert _train([0.5]) == [0]


# ---- backward ---------------------------------------------------------------------------------------------


def test_hand_computed_gradient_through_the_reset_factor() -> None:
    # T = 2, triangle gamma = 1, x = [0.75, 0.5]: u0 = 0.75 (no spike), u1 = 1.25 (spike)
    # dL/ds1 = dL/ds0 = 1:
    #   dL/dx1 = sg(0.25) = 0.75
    #   dL/dx0 = sg(-0.25) + dL/du1 * d[u0 (1 - s0)]/du0 = 0.75 + 0.75 * (1 - 0.75 * sg(-0.25)) = 1.078125
    x = torch.tensor([0.75, 0.5], dtype=torch.float64, requires_grad=True)
    s = if_multistep(x, "triangle:1")
    assert s.tolist() == [0.0, 1.0]
    (g,) = torch.autograd.grad(s.sum(), x)
    assert g.tolist() == [1.078125, 0.75]
    # a detached reset would give 0.75 + 0.75 * 1 = 1.5 for x0: the reset factor's derivative matters
    assert g[0].item() != 1.5


def test_hand_computed_gradient_after_a_spike() -> None:
    # x = [1.25, 0.5]: s0 = 1, u1 = 0.5; dL/ds1 = 1 only.
    # dL/du1 = sg(-0.5) = 0.5;  dh0/du0 = (1 - s0) - u0 * sg(0.25) = 0 - 1.25 * 0.75 = -0.9375
    x = torch.tensor([1.25, 0.5], dtype=torch.float64, requires_grad=True)
    s = if_multistep(x)
    (g,) = torch.autograd.grad(s[1], x)
    assert g.tolist() == [0.5 * -0.9375, 0.5]


@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize(("tau", "theta"), [(1.0, 1.0), (0.7, 1.0), (1.0, 0.6), (0.5, 1.5)])
def test_bptt_matches_per_step_reference(name: str, tau: float, theta: float) -> None:
    torch.manual_seed(3)
    widths = {"triangle": 1.0, "sigmoid": 4.0, "atan": 2.0, "rect": 0.5, "exp": 2.0, "expd": 1.0, "ste": 1.0}
    width = widths[name]
    x = (torch.randn(8, 4, 33, dtype=torch.float64) * 0.7 + 0.4 * theta).requires_grad_()
    upstream = torch.randn_like(x)
    spikes = if_multistep(x, GradSpec("surrogate", name, width), tau, theta)
    ref = reference_if(x, name, width, tau, theta)
    assert torch.equal(spikes, ref)
    assert 0.05 < spikes.mean().item() < 0.95  # a non-trivial spike pattern
    (g,) = torch.autograd.grad(spikes, x, upstream)
    (g_ref,) = torch.autograd.grad(ref, x, upstream)
    assert g.abs().max() > 0
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("width", [0.1, 0.5, 3.0])
def test_bptt_matches_reference_for_other_widths(width: float) -> None:
    torch.manual_seed(4)
    x = (torch.randn(10, 50, dtype=torch.float64) * 0.6 + 0.4).requires_grad_()
    upstream = torch.randn_like(x)
    (g,) = torch.autograd.grad(if_multistep(x, GradSpec("surrogate", "triangle", width)), x, upstream)
    (g_ref,) = torch.autograd.grad(reference_if(x, "triangle", width, 1.0, 1.0), x, upstream)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def test_float32_gradient_matches_float64_reference() -> None:
    torch.manual_seed(5)
    x64 = torch.randn(8, 200, dtype=torch.float64) * 0.7 + 0.4
    upstream = torch.randn_like(x64)
    x32 = x64.float().requires_grad_()
    (g32,) = torch.autograd.grad(if_multistep(x32, "sigmoid:4"), x32, upstream.float())
    x64.requires_grad_()
    (g64,) = torch.autograd.grad(reference_if(x64, "sigmoid", 4.0, 1.0, 1.0), x64, upstream)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-5, atol=1e-5)


def test_backward_twice_with_retained_graph() -> None:
    x = (torch.rand(6, 10, dtype=torch.float64) * 1.2).requires_grad_()
    s = if_multistep(x)
    (g1,) = torch.autograd.grad(s.sum(), x, retain_graph=True)
    (g2,) = torch.autograd.grad(s.sum(), x)
    assert torch.equal(g1, g2)


def test_input_without_grad_runs_without_graph() -> None:
    s = if_multistep(torch.rand(4, 3))
    assert not s.requires_grad


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.tensor(1.0), "[T, ...]"),
        (torch.zeros(0, 3), "T >= 1"),
        (torch.ones(3, 2, dtype=torch.int64), "floating"),
    ],
)
def test_bad_input_tensor(x: Tensor, fragment: str) -> None:
    with pytest.raises(UserInputError) as err:
        if_multistep(x)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("tau", "theta", "fragment"), [(1.5, 1.0, "tau"), (-0.1, 1.0, "tau"), (1.0, 0.0, "theta")]
)
def test_bad_neuron_parameters(tau: float, theta: float, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        if_multistep(torch.rand(3, 2), tau=tau, theta=theta)


def test_spec_text_is_accepted_and_checked() -> None:
    x = torch.rand(3, 2)
    assert torch.equal(if_multistep(x, "atan:2"), if_multistep(x))
    with pytest.raises(UserInputError, match="triangle, sigmoid, atan"):
        if_multistep(x, "gauss:1")
