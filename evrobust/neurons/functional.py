"""IF / LIF dynamics as a pure function over time-major tensors (DESIGN §3), native torch backend.

Dynamics, for an input current ``I`` of shape ``[T, ...]`` (time first, any trailing shape)::

    u[t] = tau * u[t-1] * (1 - s[t-1]) + I[t]      u[-1] = 0, s[-1] = 0
    s[t] = H(u[t] - theta),   H(0) = 1

IF is ``tau = theta = 1``: integrate, fire at threshold, hard reset to 0. The backward is BPTT through the
reset factor ``(1 - s)`` (reset not detached), with ``dS/dU`` replaced by a surrogate (see
:mod:`evrobust.neurons.surrogates`), or the rate gradient approximation (see :mod:`evrobust.neurons.rate`).

The whole time loop is one ``torch.autograd.Function`` with a hand-written backward (instead of autograd
recording ~5 ops per step). It saves the membrane potentials ``u`` (before reset) and the spikes, and runs
BPTT one time step at a time with ``h[t] = u[t] (1 - s[t])`` (potential after reset) and
``sg[t] = surrogate(u[t] - theta)``::

    dL/du[t] = dL/ds[t] * sg[t] + dL/dh[t] * ((1 - s[t]) - u[t] * sg[t])      (reset not detached)
    dL/dh[t] = tau * dL/du[t+1],      dL/dI[t] = dL/du[t]

Double backward (``create_graph=True`` through the neuron) is not supported: the backward is marked
``once_differentiable``. Inputs that do not require grad skip storing ``u``.

Crafting-only specs (see :mod:`evrobust.neurons.spec`): ``bptr`` runs the same dynamics with a strict
threshold ``s = 1[u > theta]`` and the backward ``dL/dI[t] = dL/ds[t] * 1[sum_t s > 0]``;
``ann`` returns ``relu(I) / theta`` (same shape ``[T, ...]``); ``pdsg`` runs the same dynamics and BPTT with
the Gaussian surrogate of :mod:`evrobust.neurons.pdsg`, whose width comes from the layer's own potentials
``u`` (per channel, time-accumulated); ``assg`` needs the per-attack statistics of
:class:`evrobust.neurons.assg.AssgState` and is run by :func:`evrobust.neurons.assg.assg_multistep`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from evrobust.errors import UserInputError
from evrobust.neurons.pdsg import pdsg_grad, pdsg_sigma
from evrobust.neurons.rate import rate_multistep
from evrobust.neurons.spec import DEFAULT_SPEC, GradSpec
from evrobust.neurons.surrogates import get_surrogate

__all__ = [
    "ann_multistep",
    "bptr_multistep",
    "bptt_backward",
    "check_neuron_params",
    "check_time_major",
    "if_membrane",
    "if_multistep",
    "pdsg_multistep",
    "reuse_backward_terms",
]

# Set by reuse_backward_terms(): IF layers run forward under it keep their backward terms for a second pass.
_REUSE_TERMS: ContextVar[bool] = ContextVar("evrobust_reuse_backward_terms", default=False)


@contextmanager
def reuse_backward_terms() -> Iterator[None]:
    """Native IF layers whose forward runs in this block keep the surrogate terms of their first backward.

    For graphs that are back-propagated twice (``retain_graph=True``), as SR does: its inputs-only backward
    and its final backward both run BPTT through the clean pass. The first backward stores, per layer,
    ``sg = surrogate(u - theta)`` and ``1 - s`` (the per-step tensors it computes anyway, two of the size
    of ``u`` per layer); the second reads and then drops them instead of evaluating the surrogate again,
    with the same arithmetic, so the gradients are bitwise those of a plain second backward (measured:
    BPTT of VGG-11's IF layers 28 ms per plain pass, 12 ms per reusing pass, on one CPU thread). Outside
    the block nothing is stored. The flag is a context variable, restored on exit (nesting and threads are
    safe).
    """
    token = _REUSE_TERMS.set(True)
    try:
        yield
    finally:
        _REUSE_TERMS.reset(token)


def check_time_major(x: Tensor) -> None:
    """Raise :class:`UserInputError` unless ``x`` is a floating tensor ``[T, ...]`` with ``T >= 1``."""
    if not isinstance(x, Tensor):
        raise UserInputError(f"neuron input must be a torch.Tensor [T, ...], got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise UserInputError(
            f"neuron input must be time-major [T, ...] with T >= 1, got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise UserInputError(f"neuron input must be a floating-point tensor, got dtype {x.dtype}")


def check_neuron_params(tau: float, theta: float) -> None:
    """Raise :class:`UserInputError` unless ``0 <= tau <= 1`` and ``theta > 0``."""
    if not 0.0 <= float(tau) <= 1.0:
        raise UserInputError(f"leak factor tau must be in [0, 1] (1 = IF, no leak), got {tau!r}")
    if not float(theta) > 0.0:
        raise UserInputError(f"threshold theta must be > 0, got {theta!r}")


def _if_forward(
    x: Tensor, tau: float, theta: float, keep_u: bool, strict: bool = False
) -> tuple[Tensor | None, Tensor]:
    """Run the dynamics without autograd: (membrane potentials ``u`` before reset or None, spikes ``s``).

    ``strict`` fires on ``u > theta`` (the BPTR forward) instead of ``u >= theta``.

    One time step at a time, writing into preallocated outputs: per step the working set is one frame of the
    neurons, which stays in cache, where whole-sequence temporaries would not (measured 3-4x slower on CPU).
    Comparisons write float spikes directly and the reset is a multiply-add: on CPU, ``masked_fill``/``where``
    and bool-to-float copies measured 5-9x slower than these.
    """
    with torch.no_grad():
        spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
        u_all = torch.empty_like(spikes) if keep_u else None
        # Reused per-step buffers (no allocation inside the loop): the potential after the previous step's
        # reset, and the current potential when the whole sequence is not kept.
        kept = torch.empty_like(spikes[0])
        u_step = None if keep_u else torch.empty_like(kept)
        for t in range(x.shape[0]):
            out = u_step if u_all is None else u_all[t]
            if t == 0:
                u = x[0] if u_all is None else out.copy_(x[0])
            elif tau == 1.0:
                u = torch.add(x[t], kept, out=out)
            else:
                u = torch.add(x[t], kept, alpha=tau, out=out)
            if strict:
                torch.gt(u, theta, out=spikes[t])
            else:
                torch.ge(u, theta, out=spikes[t])  # H(0) = 1
            if t + 1 < x.shape[0]:
                # hard reset: u - u * s is exactly 0 where s = 1 and exactly u where s = 0
                torch.addcmul(u, u, spikes[t], value=-1.0, out=kept)
        return u_all, spikes


def if_membrane(x: Tensor, tau: float = 1.0, theta: float = 1.0) -> Tensor:
    """Membrane potentials ``u[t]`` before reset, ``[T, ...]`` like ``x``; no autograd (runs under no_grad).

    Spikes are ``u >= theta``.
    """
    u, _ = _if_forward(x, float(tau), float(theta), keep_u=True)
    return cast(Tensor, u)


def _if_spikes(x: Tensor, tau: float, theta: float) -> Tensor:
    """Spikes only, without storing the potentials (the forward of the rate spec)."""
    return _if_forward(x, tau, theta, keep_u=False)[1]


class _IFSurrogateFunction(torch.autograd.Function):
    """Fused multi-step IF with surrogate BPTT. ``apply(x, surrogate_name, width, tau, theta)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, surrogate: str, width: float, tau: float, theta: float
    ) -> Tensor:
        needs_grad = ctx.needs_input_grad[0]
        u, spikes = _if_forward(x, tau, theta, keep_u=needs_grad)
        if needs_grad:
            ctx.save_for_backward(u, spikes)
        ctx.params = (surrogate, width, tau, theta)
        ctx.reuse = needs_grad and _REUSE_TERMS.get()
        ctx.terms = None
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_s: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # type: ignore[override]
        u, spikes = ctx.saved_tensors
        surrogate, width, tau, theta = ctx.params
        grad_fn = get_surrogate(surrogate).grad
        reused = ctx.terms  # per step (sg, 1 - s) kept by the first of two backward passes, or None
        keep: list[tuple[Tensor, Tensor | None]] | None = [] if ctx.reuse and reused is None else None
        grad_u = bptt_backward(
            grad_s, u, spikes, lambda t, v: grad_fn(v, width), tau, theta, reused=reused, keep=keep
        )
        # Kept for exactly one more pass: dropped once used, so they never outlive the backward that needs
        # them (the graph's nodes can stay alive much longer, e.g. through a returned logits tensor).
        ctx.terms = keep
        return grad_u, None, None, None, None


def bptt_backward(
    grad_s: Tensor,
    u: Tensor,
    spikes: Tensor,
    surrogate_at: Callable[[int, Tensor], Tensor],
    tau: float,
    theta: float,
    *,
    reused: list[tuple[Tensor, Tensor | None]] | None = None,
    keep: list[tuple[Tensor, Tensor | None]] | None = None,
) -> Tensor:
    """BPTT through the IF dynamics (reset not detached): ``dL/dI [T, ...]`` from ``dL/ds [T, ...]``.

    ``surrogate_at(t, v)`` gives dS/dU at time step ``t`` for ``v = u[t] - theta`` (shape of one step); it
    lets the sharpness vary per time step and neuron (ASSG), while fixed-width surrogates ignore ``t``.
    ``reused``: the per-step ``(sg, 1 - s)`` pairs of an earlier pass over the same ``u`` and ``spikes``
    (``surrogate_at`` is then not called; see :func:`reuse_backward_terms`); ``keep``: a list that receives
    this pass's pairs, indexed by time step (by reference, no copies).
    """
    grad_u = torch.empty_like(u)
    carry: Tensor | None = None  # dL/dh[t] = tau * dL/du[t+1]
    pairs: list[tuple[Tensor, Tensor | None]] = []
    for t in range(u.shape[0] - 1, -1, -1):
        ut = u[t]
        sg, not_s = reused[t] if reused is not None else (surrogate_at(t, ut - theta), None)
        if carry is None:
            torch.mul(grad_s[t], sg, out=grad_u[t])
        else:
            if not_s is None:
                not_s = 1.0 - spikes[t]
            # dL/du = dL/ds sg + carry ((1 - s) - u sg) = sg (dL/ds - carry u) + carry (1 - s)
            direct = torch.addcmul(grad_s[t], carry, ut, value=-1.0).mul_(sg)
            torch.addcmul(direct, carry, not_s, out=grad_u[t])
        if keep is not None:
            pairs.append((sg, not_s))
        carry = grad_u[t] if tau == 1.0 else grad_u[t] * tau
    if keep is not None:
        keep.extend(reversed(pairs))
    return grad_u


class _BptrFunction(torch.autograd.Function):
    """BPTR (SNN-RAT ``RateBp``): strict-threshold IF spikes; backward ``grad * 1[neuron fired at all]``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, tau: float, theta: float) -> Tensor:  # type: ignore[override]
        spikes = _if_forward(x, tau, theta, keep_u=False, strict=True)[1]
        if ctx.needs_input_grad[0]:
            # mean_t s > 0  <=>  the neuron fired at least once; one mask [1, ...] broadcast over time
            ctx.save_for_backward(spikes.amax(0, keepdim=True))
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_s: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (fired,) = ctx.saved_tensors
        return grad_s * fired, None, None


def bptr_multistep(x: Tensor, tau: float = 1.0, theta: float = 1.0) -> Tensor:
    """BPTR crafting forward: spikes ``[T, ...]`` of ``u > theta`` (strict) with the BPTR backward."""
    return _BptrFunction.apply(x, float(tau), float(theta))


class _PdsgFunction(torch.autograd.Function):
    """IF dynamics; BPTT with the PDSG Gaussian whose width is the per-channel spread of this pass's ``u``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, tau: float, theta: float) -> Tensor:  # type: ignore[override]
        needs_grad = ctx.needs_input_grad[0]
        u, spikes = _if_forward(x, tau, theta, keep_u=needs_grad)
        if needs_grad:
            ctx.save_for_backward(u, spikes)
        ctx.params = (tau, theta)
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_s: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        u, spikes = ctx.saved_tensors
        tau, theta = ctx.params
        # The statistics are computed here, from the saved trace, so a forward without grad pays nothing;
        # sigma[t] only pools steps 0..t, as the reference collects them step by step.
        sigma = pdsg_sigma(u)
        grad = bptt_backward(grad_s, u, spikes, lambda t, v: pdsg_grad(v, sigma[t]), tau, theta)
        return grad, None, None


def pdsg_multistep(x: Tensor, tau: float = 1.0, theta: float = 1.0) -> Tensor:
    """IF spikes ``[T, ...]`` (the model's own forward) with the PDSG backward (:mod:`evrobust.neurons.pdsg`).

    ``x`` is ``[T, N, C, ...]`` (channel axis 2), ``[T, N, F]`` (per feature) or ``[T, N]`` / ``[T]`` (one
    channel); the surrogate's width pools all samples of ``x``.
    """
    return _PdsgFunction.apply(x, float(tau), float(theta))


def ann_multistep(x: Tensor, theta: float = 1.0) -> Tensor:
    """ReLU-ANN crafting forward: ``relu(x) / theta`` ``[T, ...]`` (the IF rate's slope below saturation).

    For ``theta = 1`` this is the plain ReLU of SNN-RAT's ``Act_attack``; the leak is ignored (a ReLU network
    over the same weights). Differentiable by ordinary autograd.
    """
    out = torch.relu(x)
    return out if theta == 1.0 else out / theta


def if_multistep(
    x: Tensor, spec: GradSpec | str = DEFAULT_SPEC, tau: float = 1.0, theta: float = 1.0
) -> Tensor:
    """Multi-step IF/LIF neuron, native backend.

    Args:
        x: input current ``[T, ...]`` (time first), floating point.
        spec: gradient spec (or its text form, e.g. ``"sigmoid:4"``, ``"rate"``).
        tau: leak factor in [0, 1]; 1 = IF.
        theta: firing threshold > 0 (same units as ``x``).

    Returns:
        spikes ``[T, ...]`` in {0, 1}, dtype of ``x``; differentiable w.r.t. ``x`` under ``spec``.
    """
    check_time_major(x)
    check_neuron_params(tau, theta)
    spec = GradSpec.parse(spec)
    tau, theta = float(tau), float(theta)
    if spec.is_rate:
        return rate_multistep(x, lambda inp: _if_spikes(inp, tau, theta), tau, theta)
    if spec.mode == "bptr":
        return bptr_multistep(x, tau, theta)
    if spec.mode == "ann":
        return ann_multistep(x, theta)
    if spec.mode == "pdsg":
        return pdsg_multistep(x, tau, theta)
    if spec.stateful:
        raise UserInputError(
            f"gradient spec {str(spec)!r} keeps statistics of one attack; run it through an IFNeuron inside "
            "gradient_spec(model, spec) (e.g. as an attack's spec), not through if_multistep"
        )
    return _IFSurrogateFunction.apply(x, spec.surrogate, spec.width, tau, theta)
