"""IFNeuron module: parity with the pure function, settable spec, and the gradient_spec context manager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evrobust.errors import UserInputError
from evrobust.neurons import (
    DEFAULT_SPEC,
    PAPER_ENSEMBLE,
    GradSpec,
    IFNeuron,
    gradient_spec,
    if_multistep,
    if_neurons,
)


def _model() -> nn.Sequential:
    """Two neurons at different depths, one with a non-default spec, wrapped around linear layers."""
    return nn.Sequential(
        nn.Linear(5, 7),
        IFNeuron(),
        nn.Sequential(nn.Linear(7, 3), IFNeuron(spec="sigmoid:4", tau=0.9)),
    )


@pytest.mark.parametrize("spec", PAPER_ENSEMBLE, ids=str)
@pytest.mark.parametrize(("tau", "theta"), [(1.0, 1.0), (0.6, 0.8)])
def test_module_matches_function(spec: GradSpec, tau: float, theta: float) -> None:
    torch.manual_seed(2)
    x = (torch.randn(6, 3, 20, dtype=torch.float64) + 0.5).requires_grad_()
    up = torch.randn_like(x)
    s_mod = IFNeuron(spec=spec, tau=tau, theta=theta)(x)
    s_fun = if_multistep(x, spec, tau, theta)
    assert torch.equal(s_mod, s_fun)
    (g_mod,) = torch.autograd.grad(s_mod, x, up)
    (g_fun,) = torch.autograd.grad(s_fun, x, up)
    assert torch.equal(g_mod, g_fun)


def test_defaults_and_attributes() -> None:
    n = IFNeuron()
    assert n.backend == "native" and n.spec == DEFAULT_SPEC and n.tau == 1.0 and n.theta == 1.0
    assert repr(n) == "IFNeuron(backend=native, spec=triangle:1, tau=1, theta=1)"


def test_no_parameters_or_state_so_checkpoints_are_backend_independent() -> None:
    n = IFNeuron()
    assert list(n.parameters()) == [] and list(n.buffers()) == [] and n.state_dict() == {}
    assert list(_model().state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]


def test_stateless_between_calls() -> None:
    n = IFNeuron()
    x = torch.full((3, 2), 0.75)
    assert torch.equal(n(x), n(x))


def test_spec_setter_accepts_text_and_changes_the_gradient() -> None:
    n = IFNeuron()
    x = torch.tensor([[0.75]], dtype=torch.float64, requires_grad=True)
    (g_tri,) = torch.autograd.grad(n(x).sum(), x)
    n.spec = "sigmoid:4"
    assert n.spec == GradSpec("surrogate", "sigmoid", 4.0)
    (g_sig,) = torch.autograd.grad(n(x).sum(), x)
    assert g_tri.item() == 0.75  # triangle(1) at v = -0.25
    s = torch.sigmoid(torch.tensor(-1.0, dtype=torch.float64))
    assert g_sig.item() == pytest.approx((4 * s * (1 - s)).item())
    with pytest.raises(UserInputError):
        n.spec = "bogus"
    assert n.spec == GradSpec("surrogate", "sigmoid", 4.0)


@pytest.mark.parametrize("x", [torch.tensor(0.5), torch.zeros(0, 4)])
def test_module_rejects_bad_shapes(x: torch.Tensor) -> None:
    with pytest.raises(UserInputError, match=r"\[T, \.\.\.\]"):
        IFNeuron()(x)


@pytest.mark.parametrize(("kw", "fragment"), [({"tau": 2.0}, "tau"), ({"theta": -1.0}, "theta")])
def test_module_rejects_bad_parameters(kw: dict[str, float], fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        IFNeuron(**kw)


def test_if_neurons_finds_nested_neurons() -> None:
    model = _model()
    assert [type(m).__name__ for m in if_neurons(model)] == ["IFNeuron", "IFNeuron"]


def test_gradient_spec_sets_and_restores() -> None:
    model = _model()
    a, b = if_neurons(model)
    with gradient_spec(model, "rate") as yielded:
        assert yielded is model
        assert a.spec == b.spec == GradSpec("rate")
    assert str(a.spec) == "triangle:1" and str(b.spec) == "sigmoid:4"


def test_gradient_spec_restores_after_an_exception() -> None:
    model = _model()
    a, b = if_neurons(model)
    with pytest.raises(RuntimeError, match="boom"), gradient_spec(model, "atan:2"):
        assert a.spec == b.spec == GradSpec.parse("atan:2")
        raise RuntimeError("boom")
    assert str(a.spec) == "triangle:1" and str(b.spec) == "sigmoid:4"


def test_gradient_spec_nests() -> None:
    model = _model()
    a, b = if_neurons(model)
    with gradient_spec(model, "atan:2"):
        with gradient_spec(model, PAPER_ENSEMBLE[3]):
            assert a.spec.is_rate and b.spec.is_rate
        assert str(a.spec) == str(b.spec) == "atan:2"
        with gradient_spec(b, "triangle:0.5"):  # a sub-module only
            assert str(a.spec) == "atan:2" and str(b.spec) == "triangle:0.5"
        assert str(b.spec) == "atan:2"
    assert str(a.spec) == "triangle:1" and str(b.spec) == "sigmoid:4"


def test_gradient_spec_changes_the_model_gradient_only_inside() -> None:
    torch.manual_seed(0)
    model = _model().double()
    x = (torch.rand(4, 2, 5, dtype=torch.float64) * 2).requires_grad_()

    def grad() -> torch.Tensor:
        (g,) = torch.autograd.grad(model(x).sum(), x)
        return g

    before = grad()
    with gradient_spec(model, "rate"):
        inside = grad()
    after = grad()
    assert torch.equal(before, after)
    assert not torch.equal(before, inside)


def test_gradient_spec_failure_leaves_the_model_untouched() -> None:
    # the second neuron runs on norse, which has no atan: nothing may be switched, the error names who can
    model = nn.Sequential(IFNeuron(), IFNeuron(backend="norse", spec="sigmoid:4"))
    with pytest.raises(UserInputError, match="native, spikingjelly"), gradient_spec(model, "atan:2"):
        pytest.fail("the body must not run")
    assert [str(n.spec) for n in if_neurons(model)] == ["triangle:1", "sigmoid:4"]


def test_gradient_spec_rejects_bad_text() -> None:
    model = _model()
    with pytest.raises(UserInputError), gradient_spec(model, "triangle:-1"):
        pass
    assert str(if_neurons(model)[0].spec) == "triangle:1"


def test_gradient_spec_on_a_model_without_neurons_is_a_no_op() -> None:
    with gradient_spec(nn.Linear(2, 2), "rate"):
        pass


def test_deepcopy_and_pickle_keep_backend_and_spec() -> None:
    import copy
    import pickle

    n = IFNeuron(backend="spikingjelly", spec="atan:2", tau=0.5, theta=0.75)
    x = torch.rand(4, 9) * 1.5
    for clone in (copy.deepcopy(n), pickle.loads(pickle.dumps(n))):
        assert clone.backend == "spikingjelly" and str(clone.spec) == "atan:2"
        assert clone.tau == 0.5 and clone.theta == 0.75
        assert torch.equal(clone(x), n(x))


def test_double_backward_is_refused_loudly() -> None:
    # the hand-written backward is once_differentiable: differentiating it again must raise, never silently
    # return zeros (the input gradient carries no graph)
    x = (torch.rand(3, 4, dtype=torch.float64) + 0.5).requires_grad_()
    (g,) = torch.autograd.grad(IFNeuron()(x).sum(), x, create_graph=True)
    assert not g.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.autograd.grad(g.sum(), x)
