"""PDSG (Lun et al., CVPR 2025): the potential-dependent Gaussian surrogate, checked against formulas written
here (numpy statistics, ``math`` densities, a per-step autograd BPTT), and where the spec may be used."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from evrobust.attacks.ensemble import ensemble_specs
from evrobust.errors import UserInputError
from evrobust.models import create_model
from evrobust.neurons import (
    CRAFTING_MODES,
    WIDE_ENSEMBLE,
    GradSpec,
    IFNeuron,
    get_backend,
    gradient_spec,
    if_membrane,
    if_multistep,
    list_backends,
)
from evrobust.neurons.pdsg import pdsg_grad, pdsg_sigma


def _gauss(v: float, sigma: float) -> float:
    """Normal density with mean sigma/2 and standard deviation sigma at v, written out with math."""
    return math.exp(-((v - sigma / 2) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)


def _sigma_np(u: np.ndarray) -> np.ndarray:
    """Time-accumulated per-channel std (ddof 1) of ``u [T, N, C, ...]`` as ``[T, C]``; 1 where 0 or NaN."""
    T, C = u.shape[0], u.shape[2]
    out = np.empty((T, C))
    for t in range(T):
        for c in range(C):
            values = u[: t + 1, :, c].ravel()
            s = float(np.std(values, ddof=1)) if values.size > 1 else math.nan
            out[t, c] = s if math.isfinite(s) and s > 0 else 1.0
    return out


# ---- fidelity ------------------------------------------------------------------------------------------


def test_fidelity_pdsg_backward_equals_a_hand_computed_gaussian() -> None:
    # One time step, four samples of one feature: no reset path, so dL/dI = dL/ds * gauss(u - 1; sigma).
    x = torch.tensor([[[0.5], [1.0], [1.5], [2.0]]], dtype=torch.float64, requires_grad=True)  # [1, 4, 1]
    upstream = torch.tensor([[[1.0], [2.0], [-1.0], [0.5]]], dtype=torch.float64)
    spikes = if_multistep(x, "pdsg")
    assert spikes.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]  # the model's own forward: u >= 1 fires
    (g,) = torch.autograd.grad(spikes, x, upstream)
    # by hand: mean 1.25, squared deviations 0.5625 + 0.0625 + 0.0625 + 0.5625 = 1.25, / (4 - 1)
    sigma = math.sqrt(1.25 / 3)
    potentials, weights = [0.5, 1.0, 1.5, 2.0], [1.0, 2.0, -1.0, 0.5]
    expected = [w * _gauss(u - 1.0, sigma) for u, w in zip(potentials, weights, strict=True)]
    assert g.flatten().tolist() == pytest.approx(expected, rel=1e-12)
    # the peak sits half a width above threshold: u = 1 + sigma/2 gets 1 / (sqrt(2 pi) sigma)
    peak = pdsg_grad(torch.tensor(sigma / 2, dtype=torch.float64), sigma)
    assert peak.item() == pytest.approx(1 / (math.sqrt(2 * math.pi) * sigma), rel=1e-14)


def test_sigma_is_time_accumulated_per_channel_std_with_bessel_correction() -> None:
    torch.manual_seed(0)
    # non-square maps (2 x 3): the channel is still axis 2
    x = torch.randn(4, 3, 5, 2, 3, dtype=torch.float64) * 0.7 + 0.6
    u = if_membrane(x)
    sigma = pdsg_sigma(u)
    assert sigma.shape == (4, 1, 5, 1, 1) and sigma.dtype == u.dtype
    np.testing.assert_allclose(sigma[:, 0, :, 0, 0].numpy(), _sigma_np(u.numpy()), rtol=1e-12, atol=0)
    # float32 potentials give float32 widths, the same to float32 rounding
    s32 = pdsg_sigma(u.float())
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), sigma, rtol=1e-5, atol=0)


def test_sigma_shapes_and_the_guards_for_zero_and_single_values() -> None:
    # [T, N, F]: every feature is a channel. Feature 0 is constant (std 0 -> 1); with N = 1 the first step
    # holds one value per feature, whose unbiased std is undefined (the reference's NaN) -> 1.
    u = torch.tensor([[[0.3, 0.1]], [[0.3, 0.9]], [[0.3, 0.5]]], dtype=torch.float64)  # [T=3, N=1, F=2]
    sigma = pdsg_sigma(u)
    assert sigma.shape == (3, 1, 2)
    assert sigma[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert sigma[0, 0, 1].item() == 1.0
    assert sigma[1, 0, 1].item() == pytest.approx(float(np.std([0.1, 0.9], ddof=1)), rel=1e-14)
    assert sigma[2, 0, 1].item() == pytest.approx(float(np.std([0.1, 0.9, 0.5], ddof=1)), rel=1e-14)
    # [T, N] and [T]: the whole layer is one channel
    u2 = torch.tensor([[1.0, 3.0], [2.0, 6.0]], dtype=torch.float64)
    assert pdsg_sigma(u2).shape == (2, 1)
    assert pdsg_sigma(u2)[:, 0].tolist() == pytest.approx(
        [float(np.std([1.0, 3.0], ddof=1)), float(np.std([1.0, 3.0, 2.0, 6.0], ddof=1))], rel=1e-14
    )
    assert pdsg_sigma(torch.tensor([2.0, 4.0], dtype=torch.float64)).tolist() == pytest.approx(
        [1.0, math.sqrt(2.0)], rel=1e-14
    )
    # a large offset does not cost precision (the moments are combined around running means)
    big = torch.tensor([[[1e6 + 0.1, 1e6 - 0.1]], [[1e6 + 0.2, 1e6 - 0.2]]], dtype=torch.float64)
    assert pdsg_sigma(big.transpose(1, 2))[1].item() == pytest.approx(
        float(np.std([0.1, -0.1, 0.2, -0.2], ddof=1)), rel=1e-9
    )


class _Gauss(torch.autograd.Function):
    """Test reference spike: forward H(v), backward the Gaussian at a given (broadcast) width."""

    @staticmethod
    def forward(ctx, v: Tensor, sigma: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v, sigma)
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        v, sigma = ctx.saved_tensors
        density = torch.exp(-((v - sigma / 2) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
        return grad * density, None


@pytest.mark.parametrize(("tau", "theta"), [(1.0, 1.0), (0.75, 0.8)])
@pytest.mark.parametrize("shape", [(5, 3, 4, 2, 2), (5, 4, 6)], ids=["conv", "linear"])
def test_fidelity_layer_gradient_is_bptt_with_the_gaussian_at_numpy_widths(
    shape: tuple[int, ...], tau: float, theta: float
) -> None:
    # An independent BPTT: autograd through the reset u (1 - s) one step at a time, with the widths taken
    # from numpy on the membrane trace of a plain Python loop.
    torch.manual_seed(3)
    x = (torch.randn(*shape, dtype=torch.float64) * 0.8 + 0.5).requires_grad_()
    upstream = torch.randn_like(x)
    spikes = if_multistep(x, "pdsg", tau, theta)
    (g,) = torch.autograd.grad(spikes, x, upstream)

    trace = []
    u = torch.zeros_like(x[0])
    s = torch.zeros_like(x[0])
    with torch.no_grad():
        for t in range(x.shape[0]):
            u = tau * u * (1 - s) + x[t]
            s = (u >= theta).to(u.dtype)
            trace.append(u.clone())
    sig = torch.from_numpy(_sigma_np(torch.stack(trace).numpy()))  # [T, C]

    ref = []
    u = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        u = tau * u + x[t] if t else x[0]
        width = sig[t].view(1, -1, *([1] * (x.dim() - 3)))
        s = _Gauss.apply(u - theta, width)
        ref.append(s)
        u = u * (1 - s)
    ref_spikes = torch.stack(ref)
    assert torch.equal(spikes, ref_spikes)
    (g_ref,) = torch.autograd.grad(ref_spikes, x, upstream)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    assert g.abs().sum() > 0


def test_gradcheck_the_surrogate_is_the_derivative_of_the_shifted_normal_cdf() -> None:
    # pdsg_grad must be exactly d/dv Phi((v - sigma/2) / sigma): gradcheck a Function whose forward is that
    # CDF (written here with erf) and whose backward is pdsg_grad, per channel width.
    sigma = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64).view(1, 3, 1)

    class SmoothPdsg(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v: Tensor) -> Tensor:  # type: ignore[override]
            ctx.save_for_backward(v)
            return 0.5 * (1 + torch.erf((v - sigma / 2) / (sigma * math.sqrt(2))))

        @staticmethod
        def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
            (v,) = ctx.saved_tensors
            return grad * pdsg_grad(v, sigma)

    torch.manual_seed(1)
    v = (torch.randn(4, 3, 5, dtype=torch.float64) * 1.5).requires_grad_()
    assert torch.autograd.gradcheck(SmoothPdsg.apply, (v,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_widths_pool_the_batch() -> None:
    # The width is a batch statistic: moving sample 1 changes the gradient of sample 0 (as in the reference).
    x = torch.tensor([[[0.9], [0.2]], [[0.3], [0.4]]], dtype=torch.float64, requires_grad=True)  # [2, 2, 1]
    (g1,) = torch.autograd.grad(if_multistep(x, "pdsg").sum(), x)
    x2 = x.detach().clone()
    x2[:, 1] *= 3
    x2.requires_grad_()
    (g2,) = torch.autograd.grad(if_multistep(x2, "pdsg").sum(), x2)
    assert not torch.allclose(g1[:, 0], g2[:, 0])


def test_no_grad_forward_keeps_nothing_and_matches_the_model_forward() -> None:
    x = torch.rand(4, 3, 5)
    assert torch.equal(if_multistep(x, "pdsg"), if_multistep(x, "triangle:1"))


# ---- the spec ------------------------------------------------------------------------------------------


def test_parse_and_str_round_trip() -> None:
    spec = GradSpec.parse("pdsg")
    assert spec == GradSpec("pdsg") == GradSpec.parse(" PDSG ") == GradSpec.parse(str(spec))
    assert str(spec) == "pdsg" and spec.mode == "pdsg"
    assert spec.crafting_only and "pdsg" in CRAFTING_MODES
    assert not spec.stateful and not spec.changes_forward
    assert GradSpec("pdsg", "sigmoid", 7.0) == spec  # no free parameter: normalised
    with pytest.raises(UserInputError, match="takes no width"):
        GradSpec.parse("pdsg:1")
    with pytest.raises(UserInputError) as err:
        GradSpec.parse("gaussian")
    assert "pdsg" in str(err.value)


def test_pdsg_is_never_a_models_own_spec_but_applies_inside_gradient_spec() -> None:
    with pytest.raises(UserInputError, match="crafting attacks only"):
        IFNeuron(spec="pdsg")
    neuron = IFNeuron()
    with pytest.raises(UserInputError, match="crafting attacks only"):
        neuron.spec = "pdsg"
    with gradient_spec(neuron, "pdsg"):
        assert str(neuron.spec) == "pdsg" and neuron._assg_state is None
    assert str(neuron.spec) == "triangle:1"


@pytest.mark.parametrize("backend", list_backends())
def test_only_the_native_backend_runs_pdsg(backend: str) -> None:
    reason = get_backend(backend).supports(GradSpec.parse("pdsg"), 1.0, 1.0)
    assert (reason is None) == (backend == "native")


def test_pdsg_is_the_last_member_of_the_wide_ensemble() -> None:
    assert WIDE_ENSEMBLE[-1] == GradSpec("pdsg")
    assert ensemble_specs("wide") == WIDE_ENSEMBLE
    assert [str(s) for s in WIDE_ENSEMBLE].count("pdsg") == 1


def test_through_gradient_spec_on_a_registry_model() -> None:
    torch.manual_seed(0)
    model: nn.Module = create_model("vgg_small", num_classes=4, in_channels=2, T=3, input_size=8, width=0.25)
    model.eval()
    x = torch.rand(3, 3, 2, 8, 8)  # frames [N, T, C, H, W]
    y = torch.tensor([0, 1, 2])

    def logits_and_grad(spec: str | None) -> tuple[Tensor, Tensor]:
        xi = x.clone().requires_grad_()
        if spec is None:
            out = model(xi)
        else:
            with gradient_spec(model, spec):
                out = model(xi)
        (g,) = torch.autograd.grad(nn.functional.cross_entropy(out, y), xi)
        return out.detach(), g

    own_logits, own_grad = logits_and_grad(None)
    logits, grad = logits_and_grad("pdsg")
    assert torch.equal(logits, own_logits)  # the spec changes the backward only
    assert bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0
    assert not torch.allclose(grad, own_grad)
    assert all(str(m.spec) == "triangle:1" for m in model.modules() if isinstance(m, IFNeuron))
