"""Sparsity norms of grad_x f_y: hand-computed vectors, analytic gradients of linear models, the sr_loss
cross-check, gradient specs on a real SNN."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from evrobust.analysis import gradient_norms, input_gradient, model_spec, norms_of, target_values
from evrobust.defenses.sr import sr_loss
from evrobust.errors import UserInputError
from evrobust.models import create_model
from evrobust.neurons import GradSpec, gradient_spec


class Linear(nn.Module):
    """logits = W x.flatten() + b, float64."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.double())
        self.bias = nn.Parameter(bias.double())

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self.weight.T + self.bias


def _linear(d: int = 12, k: int = 4, zero_cols: tuple[int, ...] = (1, 5, 6)) -> Linear:
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(k, d, generator=gen, dtype=torch.float64)
    weight[:, list(zero_cols)] = 0.0  # these input elements influence no logit: exact zeros in every gradient
    return Linear(weight, torch.randn(k, generator=gen, dtype=torch.float64))


def test_norms_of_hand_computed() -> None:
    g = torch.tensor([[3.0, -4.0, 0.0, 1e-13], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    n = norms_of(g, tol=1e-12, rel_tol=0.7)
    assert n["l0"].tolist() == [2.0, 0.0]
    assert n["l1"][0] == pytest.approx(7.0 + 1e-13, rel=1e-15)
    assert n["l2"][0] == pytest.approx(5.0)
    assert n["l0_rel"].tolist() == [2.0, 0.0]  # |g| > 0.7 * 4 = 2.8: 3 and -4; an all-zero sample counts 0
    assert n["density"].tolist() == [0.5, 0.0]
    assert norms_of(g, tol=0.0)["l0"].tolist() == [3.0, 0.0]  # the 1e-13 element counts with tol 0
    assert norms_of(g, rel_tol=0.8)["l0_rel"].tolist() == [1.0, 0.0]  # > 3.2: only -4
    with pytest.raises(UserInputError):
        norms_of(g, tol=-1.0)


def test_softmax_and_two_class_gradients_match_the_analytic_form() -> None:
    model = _linear()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 2, 2, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    w = model.weight.detach()
    z = model(x).detach()
    p = torch.softmax(z, 1)
    # d p_y / dx = p_y (w_y - sum_j p_j w_j)
    expected_soft = p.gather(1, y[:, None]) * (w[y] - p @ w)
    grad_soft = input_gradient(model, x, y, target="softmax").reshape(5, -1)
    torch.testing.assert_close(grad_soft, expected_soft, rtol=1e-10, atol=1e-14)
    # two-class: s = sigmoid(z_y - z_k), k = strongest other class; d s / dx = s (1 - s) (w_y - w_k)
    masked = z.clone()
    masked[torch.arange(5), y] = -torch.inf
    k = masked.argmax(1)
    s = torch.sigmoid(z[torch.arange(5), y] - z[torch.arange(5), k])
    expected_two = (s * (1 - s))[:, None] * (w[y] - w[k])
    grad_two = input_gradient(model, x, y, target="two_class").reshape(5, -1)
    torch.testing.assert_close(grad_two, expected_two, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(target_values(z, y, "two_class"), s)
    norms = gradient_norms(model, x, y, target="two_class")
    assert norms["l0"].tolist() == [9.0] * 5  # 12 elements, 3 with all-zero weight columns
    torch.testing.assert_close(norms["l1"], expected_two.abs().sum(1))
    torch.testing.assert_close(norms["l2"], expected_two.norm(dim=1))
    torch.testing.assert_close(norms["density"], torch.full((5,), 9 / 12, dtype=torch.float64))


def test_callable_target_gives_the_weight_row() -> None:
    model = _linear()
    x = torch.rand(3, 12, dtype=torch.float64)
    y = torch.tensor([2, 0, 1])
    grad = input_gradient(model, x, y, target=lambda z, labels: z.gather(1, labels[:, None]).squeeze(1))
    torch.testing.assert_close(grad, model.weight.detach()[y])


def test_two_class_l1_matches_sr_finite_difference() -> None:
    """Proposition 4.4: SR's difference quotient along sign(grad) approximates ||grad f_y||_1 (same k)."""
    model = _linear()
    x = torch.rand(6, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    fd = sr_loss(model, x, y, lam=0.0, h=1e-6)["fd"].detach()
    l1 = gradient_norms(model, x, y, target="two_class")["l1"]
    torch.testing.assert_close(fd, l1, rtol=1e-4, atol=1e-9)


def test_unknown_target_and_bad_shapes_are_user_errors() -> None:
    model = _linear()
    x = torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(UserInputError, match="two_class, softmax"):
        input_gradient(model, x, torch.tensor([0, 1]), target="logit")
    with pytest.raises(UserInputError):
        input_gradient(model, x, torch.tensor([0, 1, 2]))


@pytest.fixture(scope="module")
def snn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("vgg_small", num_classes=10, in_channels=1, T=2, width=0.5, input_size=8, theta=0.5)


def test_snn_gradient_follows_the_spec_and_restores_state(snn: nn.Module) -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    snn.train()
    before = model_spec(snn)
    grad = input_gradient(snn, x, y, spec="sigmoid:4")
    assert model_spec(snn) == before == "triangle:1"
    assert all(m.training for m in snn.modules())  # each module's flag restored
    assert all(p.grad is None for p in snn.parameters())
    # The same gradient by hand: eval mode, the spec set with the neurons' context manager.
    snn.eval()
    with gradient_spec(snn, GradSpec.parse("sigmoid:4")):
        xi = x.clone().requires_grad_(True)
        target_values(snn(xi), y, "two_class").sum().backward()
    torch.testing.assert_close(grad, xi.grad)
    triangle = input_gradient(snn, x, y)
    assert not torch.equal(triangle, grad)  # the spec changes the backward pass
    # A sample's gradient does not depend on the other samples of the batch (eval-mode BN).
    torch.testing.assert_close(input_gradient(snn, x[1:2], y[1:2]), triangle[1:2], rtol=1e-5, atol=1e-7)
