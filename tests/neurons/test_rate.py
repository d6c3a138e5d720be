"""Rate gradient approximation (RGA): the local derivative formula and the full backward, by hand."""

from __future__ import annotations

import pytest
import torch

from evrobust.neurons import GradSpec, if_multistep, rate_grad

RATE = GradSpec("rate")


def _g(m: float, tau: float = 1.0, theta: float = 1.0) -> float:
    return rate_grad(torch.tensor([m], dtype=torch.float64), tau, theta).item()


@pytest.mark.parametrize(
    ("m", "expected"),
    # IF: g = 0.5 on [0, 2] (DESIGN §3), both ends included, 0 outside
    [(-0.01, 0.0), (0.0, 0.5), (0.3, 0.5), (1.0, 0.5), (2.0, 0.5), (2.01, 0.0), (-5.0, 0.0), (9.0, 0.0)],
)
def test_if_rate_gradient(m: float, expected: float) -> None:
    assert _g(m) == expected


def test_zero_mean_input_is_not_double_counted() -> None:
    # The reference code adds its two intervals at m = 1 - tau (0.7 for IF at m = 0); ours are disjoint.
    assert _g(0.0) == 0.5


@pytest.mark.parametrize(
    ("m", "expected"),
    # tau = 0.5: knee at 1 - tau = 0.5; below it slope 0.2; from it to 2: (1 - 0.2 + 0.1) / (0.5 + 1) = 0.6
    [(-0.1, 0.0), (0.0, 0.2), (0.25, 0.2), (0.5, 0.6), (1.0, 0.6), (2.0, 0.6), (2.1, 0.0)],
)
def test_leaky_rate_gradient(m: float, expected: float) -> None:
    assert _g(m, tau=0.5) == pytest.approx(expected, abs=1e-15)


def test_threshold_scaling() -> None:
    # theta = 2: g(m) = g_1(m / 2) / 2, so the support doubles to [0, 4] and the value halves
    assert _g(3.0, theta=2.0) == 0.25
    assert _g(4.0, theta=2.0) == 0.25
    assert _g(4.5, theta=2.0) == 0.0


def test_forward_is_unchanged() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 300) * 0.8 + 0.4
    assert torch.equal(if_multistep(x, RATE), if_multistep(x, "triangle:1"))
    leaky = {"tau": 0.8, "theta": 0.6}
    assert torch.equal(if_multistep(x, RATE, **leaky), if_multistep(x, "atan:2", **leaky))


def test_full_backward_by_hand() -> None:
    # T = 2, three neurons with mean inputs 1.0, 1.75, -0.25 -> g = 0.5, 0.5, 0
    x = torch.tensor([[0.5, 3.0, -0.5], [1.5, 0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    upstream = torch.tensor([[1.0, 2.0, 3.0], [-4.0, 5.0, 6.0]], dtype=torch.float64)
    (g,) = torch.autograd.grad(if_multistep(x, RATE), x, upstream)
    assert g.tolist() == [[0.5, 1.0, 0.0], [-2.0, 2.5, 0.0]]


def test_backward_ignores_the_spike_history() -> None:
    # Unlike BPTT, the RGA gradient at step t depends only on dL/ds[t] and the mean input, not on later steps.
    x = torch.tensor([[0.25], [1.5], [0.25]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(if_multistep(x, RATE)[2].sum(), x)
    assert g.flatten().tolist() == [0.0, 0.0, 0.5]


def test_leaky_backward_by_hand() -> None:
    x = torch.tensor([[0.0, 1.0], [0.5, 2.0]], dtype=torch.float64, requires_grad=True)  # means 0.25, 1.5
    (g,) = torch.autograd.grad(if_multistep(x, RATE, tau=0.5).sum(), x)
    assert g[:, 0].tolist() == [0.2, 0.2]
    assert g[:, 1].tolist() == pytest.approx([0.6, 0.6], abs=1e-15)
