"""Neuron backends inside whole models: same weights, same logits and input gradients as native."""

from __future__ import annotations

import pytest
import torch

from evrobust.models import list_models

from .conftest import assert_active, if_neurons, make_active, small_model

OTHER_BACKENDS = ("spikingjelly", "norse")


def _logits_and_grad(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xi = x.clone().requires_grad_(True)
    logits = model(xi)
    torch.nn.functional.cross_entropy(logits, torch.arange(x.shape[0]) % 10).backward()
    assert xi.grad is not None
    return logits.detach(), xi.grad


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@pytest.mark.parametrize("name", list_models())
def test_backend_gives_the_native_logits_and_gradients(name: str, backend: str) -> None:
    x = torch.rand(4, 2, 8, 8)
    native = make_active(small_model(name, in_channels=2, input_size=8, T=4), x)
    other = small_model(**{**native.config, "neuron_backend": backend})
    assert all(n.backend == backend for n in if_neurons(other))
    # The neurons hold no state, so a native checkpoint loads as is.
    other.load_state_dict(native.state_dict(), strict=True)
    other.eval()
    logits, grad = _logits_and_grad(native, x)
    assert_active(logits)
    logits_o, grad_o = _logits_and_grad(other, x)
    torch.testing.assert_close(logits_o, logits, rtol=1e-5, atol=1e-5)
    assert (grad != 0).any()
    torch.testing.assert_close(grad_o, grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list_models())
def test_cuda_forward_matches_cpu(name: str) -> None:
    x = torch.rand(4, 3, 16, 16)
    model = make_active(small_model(name, input_size=16, T=4, mean=[0.5] * 3, std=[0.25] * 3), x)
    want = model(x)
    got = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
