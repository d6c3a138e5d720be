"""Backend parity: native vs spikingjelly vs norse give the same spikes and input gradients under every spec
that both sides support (DESIGN §3), and unsupported combinations fail with a helpful one-line error."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import Tensor

from evrobust.errors import UserInputError
from evrobust.neurons import (
    PAPER_ENSEMBLE,
    SURROGATES,
    GradSpec,
    IFNeuron,
    get_backend,
    list_backends,
)

OTHER_BACKENDS = [b for b in list_backends() if b != "native"]

# Every registered surrogate at its paper width and at an off-default width, plus rate.
SPECS = [GradSpec("surrogate", n, s.default_width) for n, s in SURROGATES.items()]
SPECS += [GradSpec("surrogate", n, 0.6 * s.default_width + 0.1) for n, s in SURROGATES.items()]
SPECS += [GradSpec("rate")]

NEURON_PARAMS = [(1.0, 1.0), (0.75, 0.8)]


def _run(backend: str, spec: GradSpec, tau: float, theta: float, x: Tensor, upstream: Tensor):
    neuron = IFNeuron(backend=backend, spec=spec, tau=tau, theta=theta)
    xi = x.clone().requires_grad_()
    spikes = neuron(xi)
    (g,) = torch.autograd.grad(spikes, xi, upstream)
    return spikes, g


def test_native_is_always_listed_and_libraries_are_installed_here() -> None:
    assert list_backends()[0] == "native"
    # the dev environment installs both (Makefile); parity below must not silently skip them
    assert set(list_backends()) == {"native", "spikingjelly", "norse"}


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize(("tau", "theta"), NEURON_PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parity_with_native(
    backend: str, spec: GradSpec, tau: float, theta: float, dtype: torch.dtype
) -> None:
    if get_backend(backend).supports(spec, tau, theta) is not None:
        with pytest.raises(UserInputError):
            IFNeuron(backend=backend, spec=spec, tau=tau, theta=theta)
        return
    gen = torch.Generator().manual_seed(7)
    # continuous random inputs: an exact threshold tie (where norse's strict '>' differs) has probability 0
    x = (torch.randn(8, 4, 6, 5, generator=gen, dtype=torch.float64) * 0.7 + 0.4 * theta).to(dtype)
    upstream = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
    s_ref, g_ref = _run("native", spec, tau, theta, x, upstream)
    s, g = _run(backend, spec, tau, theta, x, upstream)
    assert s.dtype == dtype and s.shape == x.shape
    assert torch.equal(s, s_ref)
    assert 0.05 < s_ref.mean().item() < 0.95
    assert g_ref.abs().max() > 0.1
    if dtype == torch.float64:
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)
    else:
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5 * g_ref.abs().max().item())


def test_spikingjelly_runs_every_paper_spec() -> None:
    for spec in PAPER_ENSEMBLE:
        assert get_backend("spikingjelly").supports(spec, 1.0, 1.0) is None


def test_norse_cannot_run_atan_and_says_who_can() -> None:
    with pytest.raises(UserInputError) as err:
        IFNeuron(backend="norse", spec="atan:2")
    msg = str(err.value)
    assert "\n" not in msg
    assert "atan:2" in msg and "backends that can: native, spikingjelly" in msg


def test_norse_spec_switch_is_validated() -> None:
    neuron = IFNeuron(backend="norse")
    with pytest.raises(UserInputError, match="native, spikingjelly"):
        neuron.spec = "atan:2"
    assert str(neuron.spec) == "triangle:1"  # unchanged after the failed switch


def test_spikingjelly_needs_positive_tau() -> None:
    with pytest.raises(UserInputError, match="backends that can: native, norse"):
        IFNeuron(backend="spikingjelly", tau=0.0)


def test_norse_memoryless_tau_zero_matches_native() -> None:
    x = torch.rand(6, 40, dtype=torch.float64) * 1.5
    s_ref, g_ref = _run("native", GradSpec(), 0.0, 1.0, x, torch.ones_like(x))
    s, g = _run("norse", GradSpec(), 0.0, 1.0, x, torch.ones_like(x))
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(g, g_ref)


def test_norse_fires_strictly_above_threshold_at_an_exact_tie() -> None:
    # The documented difference: at u == theta exactly, norse does not fire, native and spikingjelly do.
    x = torch.tensor([[0.25], [0.75]])
    assert IFNeuron("native")(x).flatten().tolist() == [0.0, 1.0]
    assert IFNeuron("spikingjelly")(x).flatten().tolist() == [0.0, 1.0]
    assert IFNeuron("norse")(x).flatten().tolist() == [0.0, 0.0]


def test_spikingjelly_node_state_does_not_leak_between_calls() -> None:
    neuron = IFNeuron("spikingjelly")
    x = torch.full((3, 4), 0.75)
    first = neuron(x)
    second = neuron(x)  # would differ if the node kept its potential from the first call
    assert torch.equal(first, second)
    assert first[:, 0].tolist() == [0.0, 1.0, 0.0]


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(UserInputError) as err:
        IFNeuron(backend="lava")
    msg = str(err.value)
    assert "lava" in msg and "native, spikingjelly, norse" in msg and "\n" not in msg


def test_backend_switch_on_a_module() -> None:
    neuron = IFNeuron()
    x = torch.randn(5, 30) + 0.5
    ref = neuron(x)
    neuron.backend = "spikingjelly"
    assert neuron.backend == "spikingjelly"
    assert torch.equal(neuron(x), ref)
    with pytest.raises(UserInputError):
        neuron.backend = "nope"
    assert neuron.backend == "spikingjelly"


def test_third_party_libraries_are_imported_lazily() -> None:
    code = (
        "import sys, torch\n"
        "import evrobust, evrobust.neurons as n\n"
        "n.IFNeuron()(torch.ones(2, 3)); n.list_backends()\n"
        "bad = [m for m in ('spikingjelly', 'norse', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "n.IFNeuron('spikingjelly')(torch.ones(2, 3))\n"
        "assert 'spikingjelly' in sys.modules and 'norse' not in sys.modules\n"
        "assert 'spikingjelly.datasets' not in sys.modules and 'torchvision' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_missing_library_is_reported_not_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    import evrobust.neurons.backends as registry

    real = registry._module_installed
    monkeypatch.setattr(registry, "_module_installed", lambda name: name != "norse" and real(name))
    monkeypatch.setattr(registry, "_INSTANCES", {})
    assert registry.list_backends() == ["native", "spikingjelly"]
    with pytest.raises(UserInputError) as err:
        IFNeuron(backend="norse")
    msg = str(err.value)
    assert "'norse' package, which is not installed" in msg
    assert "installed backends: native, spikingjelly" in msg
