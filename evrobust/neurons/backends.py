"""Backend registry: who runs the multi-step IF dynamics (``native``, ``spikingjelly``, ``norse``).

A backend is a small object with ``name``, ``available()``, ``supports(spec, tau, theta) -> str | None`` (None
when it can run that combination, else the reason) and ``run(x, spec, tau, theta) -> spikes``. Third-party
libraries are imported lazily, only when their backend is first used, so ``import evrobust`` stays light.

The rate spec (RGA) needs nothing from a backend but its forward spikes, so it is implemented once, around any
backend's forward (:func:`evrobust.neurons.rate.rate_multistep`); every backend supports it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Protocol

import torch
from torch import Tensor

from evrobust.errors import UserInputError
from evrobust.neurons.functional import if_multistep
from evrobust.neurons.spec import GradSpec

__all__ = [
    "Backend",
    "BACKEND_NAMES",
    "cuda_route_to_spikingjelly",
    "get_backend",
    "list_backends",
    "NativeBackend",
    "require_support",
]


class Backend(Protocol):
    """What :class:`evrobust.neurons.IFNeuron` needs from a backend."""

    name: str

    def available(self) -> bool: ...

    def supports(self, spec: GradSpec, tau: float, theta: float) -> str | None: ...

    def run(self, x: Tensor, spec: GradSpec, tau: float, theta: float) -> Tensor: ...


class NativeBackend:
    """Pure torch, fused time loop with a hand-written backward; runs every spec on any device."""

    name = "native"

    def available(self) -> bool:
        return True

    def supports(self, spec: GradSpec, tau: float, theta: float) -> str | None:
        return None

    def run(self, x: Tensor, spec: GradSpec, tau: float, theta: float) -> Tensor:
        if x.is_cuda and cuda_route_to_spikingjelly(x, spec, tau, theta):
            return get_backend("spikingjelly").run(x, spec, tau, theta)
        return if_multistep(x, spec, tau, theta)


def cuda_route_to_spikingjelly(x: Tensor, spec: GradSpec, tau: float, theta: float) -> bool:
    """Whether ``native`` hands a CUDA tensor to spikingjelly's fused CUDA/Triton kernels.

    On a GPU the native per-step Python loop launches several small kernels per time step; spikingjelly's
    multi-step kernels fuse the whole loop. The two agree on spikes and gradients under every spec both run
    (parity tests), so routing changes speed only. Not routed: float64 (spikingjelly's reference path), specs
    or settings spikingjelly cannot run, or ``EVROBUST_NATIVE_CUDA=torch`` in the environment.
    """
    if os.environ.get("EVROBUST_NATIVE_CUDA", "auto") == "torch" or x.dtype == torch.float64:
        return False
    if not _module_installed("spikingjelly"):
        return False
    return get_backend("spikingjelly").supports(spec, tau, theta) is None


def _module_installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _make_spikingjelly() -> Backend:
    from evrobust.neurons.backend_spikingjelly import SpikingJellyBackend

    return SpikingJellyBackend()


def _make_norse() -> Backend:
    from evrobust.neurons.backend_norse import NorseBackend

    return NorseBackend()


# name -> (top-level module that must be importable, factory). Factories import their library lazily.
_FACTORIES = {
    "native": (None, NativeBackend),
    "spikingjelly": ("spikingjelly", _make_spikingjelly),
    "norse": ("norse", _make_norse),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_FACTORIES)

_INSTANCES: dict[str, Backend] = {}


def list_backends() -> list[str]:
    """Names of the backends whose library is installed (``native`` always)."""
    return [name for name, (module, _) in _FACTORIES.items() if module is None or _module_installed(module)]


def get_backend(name: str) -> Backend:
    """The (shared, stateless) backend object for ``name``; UserInputError if unknown or not installed."""
    if name in _INSTANCES:
        return _INSTANCES[name]
    if name not in _FACTORIES:
        raise UserInputError(
            f"unknown neuron backend {name!r}; valid choices: {', '.join(BACKEND_NAMES)} "
            f"(installed: {', '.join(list_backends())})"
        )
    module, factory = _FACTORIES[name]
    if module is not None and not _module_installed(module):
        raise UserInputError(
            f"neuron backend {name!r} needs the {module!r} package, which is not installed; "
            f"installed backends: {', '.join(list_backends())}"
        )
    backend = factory()
    _INSTANCES[name] = backend
    return backend


def require_support(backend: Backend, spec: GradSpec, tau: float, theta: float) -> None:
    """Raise UserInputError if ``backend`` cannot run ``spec`` at (tau, theta), naming those that can."""
    reason = backend.supports(spec, tau, theta)
    if reason is None:
        return
    able = [n for n in list_backends() if get_backend(n).supports(spec, tau, theta) is None]
    raise UserInputError(
        f"neuron backend {backend.name!r} cannot run gradient spec {str(spec)!r} with tau={tau:g}, "
        f"theta={theta:g} ({reason}); backends that can: {', '.join(able)}"
    )
