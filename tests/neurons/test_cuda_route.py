"""`native` hands CUDA tensors to spikingjelly's fused kernels where that changes speed only."""

from __future__ import annotations

import pytest
import torch

from evrobust.neurons import GradSpec, IFNeuron
from evrobust.neurons.backends import cuda_route_to_spikingjelly

TRIANGLE = GradSpec.parse("triangle:1")


def test_route_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    x32 = torch.zeros(2, 3)
    assert cuda_route_to_spikingjelly(x32, TRIANGLE, 1.0, 1.0)
    assert cuda_route_to_spikingjelly(x32, GradSpec.parse("rate"), 1.0, 1.0)
    # float64 stays native (spikingjelly would use its slow reference path)
    assert not cuda_route_to_spikingjelly(x32.double(), TRIANGLE, 1.0, 1.0)
    # settings spikingjelly cannot run stay native (tau = 0 has no spikingjelly LIF counterpart)
    assert not cuda_route_to_spikingjelly(x32, TRIANGLE, 0.0, 1.0)
    monkeypatch.setenv("EVROBUST_NATIVE_CUDA", "torch")
    assert not cuda_route_to_spikingjelly(x32, TRIANGLE, 1.0, 1.0)


def test_cpu_tensors_never_leave_native(monkeypatch: pytest.MonkeyPatch) -> None:
    import evrobust.neurons.backends as backends

    def boom(*args: object, **kwargs: object) -> bool:
        raise AssertionError("routing consulted for a CPU tensor")

    monkeypatch.setattr(backends, "cuda_route_to_spikingjelly", boom)
    out = IFNeuron("native", TRIANGLE)(torch.full((3, 2), 0.6))
    assert out[:, 0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("spec", ["triangle:1", "sigmoid:4", "atan:2", "rate"])
def test_routed_and_unrouted_cuda_agree(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(8, 32, 64, generator=gen) * 0.7 + 0.4).cuda()
    up = torch.randn(x.shape, generator=gen).cuda()

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        xi = x.clone().requires_grad_()
        out = IFNeuron("native", spec)(xi)
        (g,) = torch.autograd.grad(out, xi, up)
        return out, g

    routed = run()
    monkeypatch.setenv("EVROBUST_NATIVE_CUDA", "torch")
    plain = run()
    assert torch.equal(routed[0], plain[0])
    torch.testing.assert_close(routed[1], plain[1], rtol=1e-5, atol=1e-6)
