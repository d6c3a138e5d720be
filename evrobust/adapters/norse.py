"""Adapter for norse 1.1 neurons (``norse.torch.module``).

Neurons: norse modules (or subclasses) holding a parameter NamedTuple ``p`` with the fields ``method`` and
``alpha``, directly or in a nested parameter tuple (``LIFCell``, ``LIF``, ``IAFCell``, ``LIFBoxCell``,
``LSNNCell``, ``LIFRefracCell`` via ``p.lif``, ...). Their step functions fire with
``threshold(v - v_th, p.method, p.alpha)``, where ``threshold`` is the module-level dispatcher of
``norse.torch.functional.threshold``, imported *by name* into ``lif.py``, ``iaf.py``, ``lif_box.py``, ...

Swap, in two parts:

* each neuron gets ``p = p._replace(method="evrobust:<spec>")`` (a sentinel no norse method uses; the
  original tuple object comes back on exit);
* while any swap is active, every loaded ``norse.*`` module attribute that *is* norse's ``threshold`` points
  to :func:`_dispatch` instead. It serves the sentinel methods (forward: norse's own ``heaviside``, so spikes
  stay bit-identical; backward: the evrobust surrogate) and hands every other method to norse's original
  unchanged, so other norse models in the process (and evrobust's own norse backend) are unaffected. The
  install is reference-counted under a lock: overlapping swaps nest, and the last one out restores the
  originals.

None of these paths is TorchScript in norse 1.1 (only ``filter.py`` and ``correlation_sensor.py`` are
scripted, and neither thresholds); a neuron whose step function is a ``torch.jit.ScriptFunction`` would have
``threshold`` compiled in, so it is refused (:meth:`NorseAdapter.neuron_reason`), as are ``method="adjoint"``
neurons, whose backward is norse's adjoint solver.

Hidden state: norse modules keep none between calls (the state is passed in and returned; a missing state
means "start at rest"), so reset, snapshot and restore have nothing to do.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.adapters.base import ForeignSpike, NeuronAdapter, SurrogateGrad, surrogate_backward
from evrobust.neurons.spec import GradSpec

__all__ = ["NorseAdapter", "SENTINEL_PREFIX", "dispatcher_installed", "sentinel"]

SENTINEL_PREFIX = "evrobust:"
"""Prefix of the ``method`` strings that select an evrobust surrogate (``"evrobust:sigmoid:4"``)."""


def sentinel(spec: GradSpec) -> str:
    """The norse ``method`` string that selects ``spec``'s surrogate inside a swap."""
    return f"{SENTINEL_PREFIX}{spec}"


@lru_cache(maxsize=256)
def _sentinel_backward(method: str) -> tuple[SurrogateGrad, float]:
    return surrogate_backward(GradSpec.parse(method[len(SENTINEL_PREFIX):]))


def _threshold_module() -> ModuleType | None:
    """``norse.torch.functional.threshold``, or None when norse is not loaded (then no model holds its
    modules, and importing it would cost seconds)."""
    if "norse" not in sys.modules:
        return None
    try:
        with warnings.catch_warnings():
            # norse's import scripts two functions with torch.jit, which torch 2.13 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            from norse.torch.functional import threshold
    except ImportError:
        return None
    return threshold


# --- the threshold dispatcher -----------------------------------------------------------------------------

_LOCK = threading.Lock()
_depth = 0
_patched: list[tuple[ModuleType, str]] = []
_original: Callable[[Tensor, str, Any], Tensor] | None = None
_heaviside: Callable[[Tensor], Tensor] | None = None


def _dispatch(x: Tensor, method: str, alpha: Any) -> Tensor:
    """Stand-in for norse's ``threshold(x, method, alpha)``: evrobust sentinels here, the rest to norse."""
    if _original is None or _heaviside is None:
        raise RuntimeError("evrobust's norse threshold dispatcher was called before it was ever installed")
    if isinstance(method, str) and method.startswith(SENTINEL_PREFIX):
        if not (torch.is_grad_enabled() and x.requires_grad):
            return _heaviside(x)
        grad_fn, width = _sentinel_backward(method)
        with torch.no_grad():
            spikes = _heaviside(x.detach())
        return ForeignSpike.apply(x, spikes, grad_fn, width)
    return _original(x, method, alpha)


def _install() -> None:
    global _depth, _original, _heaviside
    with _LOCK:
        if _depth == 0:
            thr = _threshold_module()
            if thr is None:
                raise RuntimeError("norse is not loaded")
            original = thr.threshold
            if original is _dispatch:  # a previous uninstall failed half way; norse's own is still known
                original = _original
            # Kept after the last uninstall too: a reference to _dispatch taken while it was installed (a
            # norse module imported during a swap) must still reach norse's own functions.
            _original = original
            _heaviside = thr.heaviside
            _patched.clear()
            for name, module in list(sys.modules.items()):
                if module is None or not (name == "norse" or name.startswith("norse.")):
                    continue
                for attr, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attr, _dispatch)
                        _patched.append((module, attr))
        _depth += 1


def _uninstall() -> None:
    global _depth
    with _LOCK:
        _depth -= 1
        if _depth == 0:
            for module, attr in _patched:
                if getattr(module, attr, None) is _dispatch:
                    setattr(module, attr, _original)
            _patched.clear()


@contextmanager
def dispatcher_installed() -> Iterator[None]:
    """Within the block, norse's ``threshold`` name (in every loaded norse module) is :func:`_dispatch`;
    nests (reference-counted); the originals are back when the outermost block exits."""
    _install()
    try:
        yield
    finally:
        _uninstall()


# --- parameter tuples -------------------------------------------------------------------------------------


def _is_params(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields") and hasattr(value, "_replace")


def _has_method(p: Any) -> bool:
    """True if ``p`` is a parameter tuple with ``method`` and ``alpha``, or holds one (nested)."""
    if not _is_params(p):
        return False
    if "method" in p._fields and "alpha" in p._fields:
        return True
    return any(_has_method(getattr(p, f)) for f in p._fields)


def _methods(p: Any) -> list[Any]:
    """Every ``method`` value in ``p`` and its nested parameter tuples."""
    if not _is_params(p):
        return []
    if "method" in p._fields and "alpha" in p._fields:
        return [p.method]
    return [m for f in p._fields for m in _methods(getattr(p, f))]


def _with_method(p: Any, method: str) -> Any:
    """A copy of ``p`` whose every ``method`` (nested too) is ``method``."""
    if "method" in p._fields and "alpha" in p._fields:
        return p._replace(method=method)
    nested = {f: getattr(p, f) for f in p._fields}
    return p._replace(**{f: _with_method(v, method) for f, v in nested.items() if _has_method(v)})


def _is_norse_class(module: nn.Module) -> bool:
    return any(c.__module__.startswith("norse.") for c in type(module).__mro__)


class NorseAdapter(NeuronAdapter):
    """norse 1.1 neurons: swaps ``p.method`` for a sentinel served by a ``threshold`` dispatcher."""

    library = "norse"
    attribute = "p"
    # encoders and decoders without a parameter tuple (the LIF encoders have one and are found as neurons)
    passive_modules = ("norse.torch.module.encode", "norse.torch.module.spikes_to_times_decoder")

    def find(self, model: nn.Module) -> list[nn.Module]:
        if _threshold_module() is None:
            return []
        return [m for m in model.modules() if _is_norse_class(m) and _has_method(getattr(m, "p", None))]

    def neuron_reason(self, neuron: nn.Module) -> str | None:
        name = type(neuron).__name__
        if "adjoint" in _methods(neuron.p):
            return f"norse {name} uses method='adjoint', whose backward is norse's adjoint solver"
        for attr in ("activation", "activation_sparse"):
            fn = getattr(neuron, attr, None)
            if fn is None:
                continue
            if isinstance(fn, torch.jit.ScriptFunction):
                return f"norse {name}'s {attr} is TorchScript-compiled, so its threshold cannot be swapped"
            if not str(getattr(fn, "__module__", "")).startswith("norse."):
                return f"norse {name}'s {attr} is not norse's own step function"
        return None

    def _install(self, neuron: nn.Module, spec: GradSpec) -> Any:
        original = neuron.p
        neuron.p = _with_method(original, sentinel(spec))
        return original

    @contextmanager
    def swap(self, neurons: list[nn.Module], spec: GradSpec) -> Iterator[None]:
        # Dispatcher first and out last: a sentinel method must never reach norse's own threshold.
        with ExitStack() as stack:
            reason = self.check(neurons, spec)
            if reason is None and neurons:
                stack.enter_context(dispatcher_installed())
            stack.enter_context(super().swap(neurons, spec))
            yield
