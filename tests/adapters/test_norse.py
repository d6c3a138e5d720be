"""norse adapter on real norse networks: the sentinel method and the ``threshold`` dispatcher give the
requested surrogate's gradient, leave other norse models alone, nest, and put norse's globals back."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # norse scripts two helpers with torch.jit
    import norse.torch as norse
    from norse.torch.functional import iaf, lif, lif_box
    from norse.torch.functional import threshold as norse_threshold

from evrobust.adapters import adapt  # noqa: E402
from evrobust.adapters.norse import SENTINEL_PREFIX  # noqa: E402
from evrobust.neurons import gradient_spec  # noqa: E402

T = 4
ORIGINAL_THRESHOLD = norse_threshold.threshold


class NorseNet(nn.Module):
    """Linear -> norse cell (IAF or LIFBox) stepped over T with explicit state -> Linear; logits = mean over
    T. Inputs ``[N, 1, 8, 8]`` in [0, 1]."""

    def __init__(self, kind: str = "iaf", method: str = "super", alpha: float = 100.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(64, 16)
        if kind == "iaf":
            p = iaf.IAFParameters(v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0), method=method,
                                  alpha=alpha)
            self.cell: nn.Module = norse.IAFCell(p)
        else:
            p = lif_box.LIFBoxParameters(tau_mem_inv=torch.as_tensor(500.0), v_th=torch.as_tensor(0.5),
                                         method=method, alpha=alpha)
            self.cell = norse.LIFBoxCell(p, dt=0.001)
        self.out = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        current = self.fc(x.flatten(1)) * 2
        state = None
        total = 0
        for _ in range(T):
            z, state = self.cell(current, state)
            total = total + self.out(z)
        return total / T


def _reference_spike(backward: Any) -> Any:
    """norse's forward (``x > 0``) with a hand-written backward ``grad * backward(x)``."""

    class Ref(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return (x > 0).to(x.dtype)

        @staticmethod
        def backward(ctx: Any, grad: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return grad * backward(x)

    return Ref.apply


def _iaf_by_hand(net: NorseNet, x: Tensor, spike: Any) -> Tensor:
    """norse's ``iaf_feed_forward_step`` written out (v += I; z = H(v - 1); v = (1 - z) v + z * 0)."""
    current = net.fc(x.flatten(1)) * 2
    v = torch.as_tensor(0.0)
    total = 0
    for _ in range(T):
        v = v + current
        z = spike(v - torch.as_tensor(1.0))
        v = (1 - z) * v + z * torch.as_tensor(0.0)
        total = total + net.out(z)
    return total / T


def _grad(fn: Any, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.clone().requires_grad_(True)
    logits = fn(x)
    logits.square().sum().backward()
    return logits.detach(), x.grad


@pytest.fixture
def x() -> Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(
    ("spec", "formula"),
    [
        ("rect:0.5", lambda v: (v.abs() < 0.25).to(v.dtype) / 0.5),
        ("exp:1", lambda v: torch.exp(-v.abs())),
        ("expd:2", lambda v: 0.3 * torch.exp(-2 * v.abs())),
    ],
    ids=["rect:0.5", "exp:1", "expd:2"],
)
def test_swapped_gradient_equals_a_hand_written_iaf(spec, formula, x) -> None:
    adapted = adapt(NorseNet("iaf"))
    ref_logits, ref_grad = _grad(lambda inp: _iaf_by_hand(adapted.model, inp, _reference_spike(formula)), x)

    def run(inp: Tensor) -> Tensor:
        with gradient_spec(adapted, spec):
            return adapted(inp)

    logits, grad = _grad(run, x)
    assert torch.equal(logits, ref_logits)
    assert ref_grad.abs().max() > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["iaf", "lifbox"])
@pytest.mark.parametrize(
    ("spec", "method", "alpha"),
    # norse's own: triangle(alpha=1) is our triangle:1; 1 - tanh(2v)^2 = 4 sig(4v)(1 - sig(4v)) is sigmoid:4
    [("triangle:1", "triangle", 1.0), ("sigmoid:4", "tanh", 2.0)],
    ids=["triangle:1", "sigmoid:4"],
)
def test_swapped_gradient_equals_norse_own_method(kind, spec, method, alpha, x) -> None:
    reference = NorseNet(kind, method, alpha)
    adapted = adapt(NorseNet(kind))  # default "super" surrogate

    def run(inp: Tensor) -> Tensor:
        with gradient_spec(adapted, spec):
            return adapted(inp)

    ref_logits, ref_grad = _grad(reference, x)
    logits, grad = _grad(run, x)
    assert torch.equal(logits, ref_logits)
    assert ref_grad.abs().max() > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    _, own = _grad(adapted, x)
    assert not torch.allclose(own, grad)


def _threshold_holders() -> list[tuple[str, str]]:
    return [
        (name, attr)
        for name, module in sys.modules.items()
        if module is not None and name.startswith("norse")
        for attr, value in vars(module).items()
        if value is ORIGINAL_THRESHOLD
    ]


def test_other_norse_models_are_unaffected_and_globals_come_back(x) -> None:
    holders = _threshold_holders()
    assert ("norse.torch.functional.lif", "threshold") in holders
    other = norse.SequentialState(nn.Flatten(), nn.Linear(64, 8), norse.LIFBoxCell())
    adapted = adapt(NorseNet("lifbox"))
    cell_p = adapted.model.cell.p
    _, other_grad = _grad(lambda inp: other(inp * 50)[0], x)
    with gradient_spec(adapted, "atan:2"):
        assert adapted.model.cell.p.method == f"{SENTINEL_PREFIX}atan:2"
        assert lif_box.threshold is not ORIGINAL_THRESHOLD and lif.threshold is not ORIGINAL_THRESHOLD
        _, inside = _grad(lambda inp: other(inp * 50)[0], x)
        adapted(x.requires_grad_(True)).sum().backward()
    assert other_grad.abs().max() > 0
    assert torch.equal(inside, other_grad)
    assert adapted.model.cell.p is cell_p
    assert _threshold_holders() == holders
    assert norse_threshold.threshold is ORIGINAL_THRESHOLD


def test_nested_and_failing_swaps_restore_everything(x) -> None:
    a, b = adapt(NorseNet("iaf")), adapt(NorseNet("lifbox", seed=1))
    pa, pb = a.model.cell.p, b.model.cell.p
    before = a(x), b(x)
    with gradient_spec(a, "triangle:1"):
        with gradient_spec(b, "ste"):
            assert iaf.threshold is not ORIGINAL_THRESHOLD
        # b's swap is over but a's is not: the dispatcher must still serve a's sentinel
        assert iaf.threshold is not ORIGINAL_THRESHOLD and b.model.cell.p is pb
        a(x)
        with pytest.raises(ValueError, match="boom"), gradient_spec(b, "exp:1"):
            raise ValueError("boom")
        a(x)
    assert a.model.cell.p is pa and iaf.threshold is ORIGINAL_THRESHOLD
    assert torch.equal(a(x), before[0]) and torch.equal(b(x), before[1])
    assert _threshold_holders() and norse_threshold.threshold is ORIGINAL_THRESHOLD


def test_nested_parameter_tuples_are_swapped_and_adjoint_is_refused(x) -> None:
    refrac = norse.LIFRefracCell()
    adapted = adapt(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), refrac))
    assert adapted.found == {"norse": [refrac]}
    p = refrac.p
    with gradient_spec(adapted, "rect:1"):
        assert refrac.p.lif.method == f"{SENTINEL_PREFIX}rect:1"
        refrac(torch.rand(2, 8) * 100)
    assert refrac.p is p
    adjoint = adapt(nn.Sequential(norse.LIFCell(lif.LIFParameters(method="adjoint"))))
    assert "adjoint" in adjoint.unsupported("triangle:1")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_no_torchscript_in_the_paths_and_a_scripted_step_is_refused() -> None:
    for fn in (lif.lif_feed_forward_step, lif.lif_step, iaf.iaf_feed_forward_step,
               lif_box.lif_box_feed_forward_step, ORIGINAL_THRESHOLD):
        assert not isinstance(fn, torch.jit.ScriptFunction), fn

    @torch.jit.script
    def scripted(x: Tensor) -> Tensor:
        return x

    cell = norse.IAFCell()
    cell.activation = scripted
    assert "TorchScript" in adapt(nn.Sequential(cell)).unsupported("triangle:1")


def test_norse_cells_keep_no_state_between_calls(x) -> None:
    adapted = adapt(NorseNet("lifbox"))
    assert adapted._stateful == {}
    with torch.no_grad():
        assert torch.equal(adapted.model(x), adapted.model(x))
