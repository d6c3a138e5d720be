"""Surrogate derivatives: each registered backward against the slope of a smooth primitive written here."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from evrobust.errors import UserInputError
from evrobust.neurons import SURROGATES, get_surrogate, list_surrogates

# Smooth primitives P(v; gamma) whose derivative is the surrogate (DESIGN §3). Each is a CDF: P(-inf) = 0,
# P(+inf) = 1, so the surrogate integrates to 1.


def _triangle_primitive(v: Tensor, g: float) -> Tensor:
    # piecewise quadratic: 0 below -g, 1 above g, (g + v)^2 / (2 g^2) then 1 - (g - v)^2 / (2 g^2) inside
    left = (g + v) ** 2 / (2 * g * g)
    right = 1 - (g - v) ** 2 / (2 * g * g)
    inside = torch.where(v < 0, left, right)
    return torch.where(v <= -g, torch.zeros_like(v), torch.where(v >= g, torch.ones_like(v), inside))


def _sigmoid_primitive(v: Tensor, g: float) -> Tensor:
    return torch.sigmoid(g * v)


def _atan_primitive(v: Tensor, g: float) -> Tensor:
    return torch.atan(math.pi / 2 * g * v) / math.pi + 0.5


def _rect_primitive(v: Tensor, g: float) -> Tensor:
    # ramp from 0 at -g/2 to 1 at g/2
    return ((v + g / 2) / g).clamp(0.0, 1.0)


def _exp_primitive(v: Tensor, g: float) -> Tensor:
    # antiderivative of exp(-g|v|) through 0: sign(v) (1 - exp(-g|v|)) / g  (range -1/g .. 1/g, area 2/g)
    return torch.sign(v) * (1 - torch.exp(-g * v.abs())) / g


def _expd_primitive(v: Tensor, g: float) -> Tensor:
    return 0.3 * _exp_primitive(v, g)


def _ste_primitive(v: Tensor, g: float) -> Tensor:
    return v.clone()  # identity: slope 1 everywhere


PRIMITIVES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "triangle": _triangle_primitive,
    "sigmoid": _sigmoid_primitive,
    "atan": _atan_primitive,
    "rect": _rect_primitive,
    "exp": _exp_primitive,
    "expd": _expd_primitive,
    "ste": _ste_primitive,
}
# Kinks of each shape (where the primitive's slope jumps): finite differences straddling them are skipped.
KINKS: dict[str, Callable[[float], list[float]]] = {
    "triangle": lambda g: [0.0, g, -g],
    "rect": lambda g: [g / 2, -g / 2],
    "exp": lambda g: [0.0],
    "expd": lambda g: [0.0],
}
# Area under dS/dU (1 for the normalised shapes); ste is unbounded and skipped.
AREAS: dict[str, Callable[[float], float]] = {
    "triangle": lambda g: 1.0,
    "sigmoid": lambda g: 1.0,
    "atan": lambda g: 1.0,
    "rect": lambda g: 1.0,
    "exp": lambda g: 2.0 / g,
    "expd": lambda g: 0.6 / g,
}

WIDTHS = [0.3, 1.0, 2.0, 4.0]


def test_registry_holds_the_paper_and_wide_ensemble_surrogates() -> None:
    assert list_surrogates() == ["triangle", "sigmoid", "atan", "rect", "exp", "expd", "ste"]
    widths = {n: s.default_width for n, s in SURROGATES.items()}
    assert widths == {
        "triangle": 1.0, "sigmoid": 4.0, "atan": 2.0, "rect": 1.0, "exp": 1.0, "expd": 1.0, "ste": 1.0
    }
    assert [n for n, s in SURROGATES.items() if not s.has_width] == ["ste"]
    assert set(PRIMITIVES) == set(SURROGATES)  # a new surrogate needs a primitive here


@pytest.mark.parametrize("name", list(SURROGATES))
@pytest.mark.parametrize("width", WIDTHS)
def test_backward_is_the_slope_of_the_primitive(name: str, width: float) -> None:
    v = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)[1::2]
    # a kink's one-sided slopes differ: keep points away from them (0, +-gamma, +-gamma/2)
    for kink in KINKS.get(name, lambda g: [])(width):
        v = v[(v - kink).abs() > 1e-3]
    v = v.requires_grad_()
    (auto,) = torch.autograd.grad(PRIMITIVES[name](v, width).sum(), v)
    torch.testing.assert_close(get_surrogate(name).grad(v.detach(), width), auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SURROGATES))
@pytest.mark.parametrize("width", WIDTHS)
def test_backward_matches_finite_differences(name: str, width: float) -> None:
    v = torch.linspace(-2.5, 2.5, 77, dtype=torch.float64)
    # central differences straddling a kink are off by O(h / gamma^2): skip points near one
    for kink in KINKS.get(name, lambda g: [])(width):
        v = v[(v - kink).abs() > 1e-3]
    h = 1e-6
    prim = PRIMITIVES[name]
    fd = (prim(v + h, width) - prim(v - h, width)) / (2 * h)
    torch.testing.assert_close(get_surrogate(name).grad(v, width), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(AREAS))
@pytest.mark.parametrize("width", WIDTHS)
def test_surrogate_area(name: str, width: float) -> None:
    # atan has heavy tails (~1/v^2): integrate far out and allow for the tail mass 4/(pi^2 gamma L) beyond +-L
    L = 2000.0
    v = torch.linspace(-L, L, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(get_surrogate(name).grad(v, width), v).item()
    tail = 4 / (math.pi**2 * width * L) if name == "atan" else 0.0
    # the boxcar's two jumps cost the trapezoid rule up to one grid step of height 1/gamma
    # and the exponentials' cusp at 0 an O(h^2 gamma^2) error
    tol = {"rect": 2e-3 / width, "exp": 1e-5 * width**2, "expd": 1e-5 * width**2}.get(name, 1e-6)
    assert area == pytest.approx(AREAS[name](width) - tail, abs=tol)


@pytest.mark.parametrize(
    ("name", "width", "v", "expected"),
    [
        # hand values from the DESIGN §3 formulas
        ("triangle", 1.0, 0.0, 1.0),
        ("triangle", 1.0, 0.25, 0.75),
        ("triangle", 0.5, 0.25, 1.0),  # (0.5 - 0.25) / 0.25
        ("triangle", 1.0, -1.0, 0.0),
        ("triangle", 2.0, 1.0, 0.25),
        ("sigmoid", 4.0, 0.0, 1.0),  # 4 * 0.5 * 0.5
        ("atan", 2.0, 0.0, 1.0),  # (2/2) / 1
        ("atan", 2.0, 1.0 / math.pi, 0.5),  # 1 / (1 + (pi/2 * 2 / pi)^2)
        ("rect", 1.0, 0.0, 1.0),
        ("rect", 1.0, 0.49, 1.0),
        ("rect", 1.0, 0.5, 0.0),  # open interval: |v| < gamma/2
        ("rect", 0.25, -0.1, 4.0),  # 1 / 0.25
        ("rect", 4.0, 1.9, 0.25),
        ("exp", 1.0, 0.0, 1.0),
        ("exp", 2.0, -0.5, math.exp(-1.0)),
        ("expd", 1.0, 0.0, 0.3),
        ("expd", 0.5, 2.0, 0.3 * math.exp(-1.0)),
        ("ste", 1.0, 123.0, 1.0),
    ],
)
def test_hand_values(name: str, width: float, v: float, expected: float) -> None:
    got = get_surrogate(name).grad(torch.tensor([v], dtype=torch.float64), width).item()
    assert got == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("name", list(SURROGATES))
def test_spike_function_forward_is_heaviside_with_h0_equal_1(name: str) -> None:
    v = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    spikes = get_surrogate(name).spike(v, 1.0)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert spikes.dtype == v.dtype


@pytest.mark.parametrize("name", list(SURROGATES))
@pytest.mark.parametrize("width", [0.5, 3.0])
def test_spike_function_backward_multiplies_by_the_surrogate(name: str, width: float) -> None:
    torch.manual_seed(1)
    v = torch.randn(40, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(40, dtype=torch.float64)
    (got,) = torch.autograd.grad(get_surrogate(name).spike(v, width), v, upstream)
    (slope,) = torch.autograd.grad(PRIMITIVES[name](v, width), v, upstream)
    torch.testing.assert_close(got, slope, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(SURROGATES))
def test_gradcheck_of_a_smooth_stand_in(name: str) -> None:
    # torch.autograd.gradcheck on a Function whose forward is the primitive and whose backward is the
    # registered surrogate: the numerical Jacobian of the forward must equal the registered backward.
    surrogate = get_surrogate(name)

    class Smooth(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v: Tensor) -> Tensor:  # type: ignore[override]
            ctx.save_for_backward(v)
            return PRIMITIVES[name](v, 1.3)

        @staticmethod
        def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
            (v,) = ctx.saved_tensors
            return grad * surrogate.grad(v, 1.3)

    # no point within gradcheck's step of a kink (0, +-1.3, +-0.65)
    v = torch.tensor([-2.0, -0.9, -0.35, 0.2, 0.61, 1.1, 2.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Smooth.apply, (v,), eps=1e-6, atol=1e-5)


def test_default_width_is_used_when_none_given() -> None:
    v = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(SURROGATES["sigmoid"].spike(v).sum(), v)
    s = torch.sigmoid(torch.tensor(0.4, dtype=torch.float64))
    assert g.item() == pytest.approx((4 * s * (1 - s)).item(), rel=1e-14)


def test_unknown_surrogate_error_names_choices() -> None:
    with pytest.raises(UserInputError, match="triangle, sigmoid, atan, rect, exp, expd, ste"):
        get_surrogate("superspike")


@pytest.mark.parametrize("width", [0.25, 1.0, 4.0])
def test_new_shapes_against_spikingjelly(width: float) -> None:
    # Independent implementations: spikingjelly's PiecewiseLeakyReLU(w, c=0) is a boxcar of height 1/(2w)
    # on |x| <= w (closed; ours and the reference's are open, so the edges are skipped), and its
    # PiecewiseExp(alpha) is (alpha/2) exp(-alpha |x|), i.e. our exp(gamma) times gamma/2.
    from spikingjelly.activation_based import surrogate as sj

    v = torch.linspace(-3.0, 3.0, 241, dtype=torch.float64)
    v = v[((v.abs() - width / 2).abs() > 1e-6)]

    def sj_slope(fn: torch.nn.Module) -> Tensor:
        x = v.clone().requires_grad_()
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        return g

    boxcar = sj_slope(sj.PiecewiseLeakyReLU(w=width / 2, c=0.0))
    assert boxcar.abs().max() > 0
    torch.testing.assert_close(get_surrogate("rect").grad(v, width), boxcar, rtol=1e-12, atol=0)
    pexp = sj_slope(sj.PiecewiseExp(alpha=width))
    ours = {"exp": get_surrogate("exp").grad(v, width), "expd": get_surrogate("expd").grad(v, width)}
    torch.testing.assert_close(ours["exp"], pexp * (2 / width), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ours["expd"], pexp * (0.6 / width), rtol=1e-12, atol=1e-15)
