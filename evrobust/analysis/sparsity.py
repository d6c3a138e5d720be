"""Sparsity of the input gradient ``grad_x f_y`` (paper §4.2, §5.4–5.5; DESIGN §7).

``f_y`` is a probability of the true class computed from the logits ``z = f(x)``:

- ``two_class``: ``sigmoid(z_y - z_k)`` with ``k`` the strongest other class — the quantity the SR
  regulariser penalises (:func:`evrobust.defenses.sr.two_class_probability`, same ``k`` as ``sr_loss``);
- ``softmax``: ``softmax(z)_y``, the full-softmax probability of the true class;
- or any callable ``(logits [N,K], y [N]) -> [N]`` (tests use the raw logit of a linear model).

Norms per sample over all input elements (``C*H*W`` for images, ``T*2*H*W`` for frames):

- ``l0``: number of elements with ``|g_i| > tol`` (absolute tolerance, default ``1e-12``: with float32
  gradients this counts the elements that are not exactly zero — surrogate gradients such as the triangle
  are exactly zero outside their support, which is the sparsity Theorem 1 refers to);
- ``l0_rel``: number of elements with ``|g_i| > rel_tol * max_i |g_i|`` (default ``1e-6``): insensitive to
  the overall gradient scale, so models whose gradients are tiny but dense can be compared fairly;
- ``l1``, ``l2``: the usual norms; ``density`` = ``l0 / d``, ``density_rel`` = ``l0_rel / d``.

The model runs in eval mode (BN statistics frozen, each submodule's flag restored afterwards); the gradient
is taken w.r.t. the input only, so parameter ``.grad`` fields are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import eval_mode, spec_context
from evrobust.defenses.sr import strongest_other_class, two_class_probability
from evrobust.errors import UserInputError
from evrobust.neurons.context import if_neurons

__all__ = [
    "DEFAULT_REL_TOL",
    "DEFAULT_TOL",
    "TARGETS",
    "TargetFn",
    "gradient_norms",
    "input_gradient",
    "model_spec",
    "norms_of",
    "target_values",
]

TARGETS: tuple[str, ...] = ("two_class", "softmax")
"""Named choices of ``f_y``."""
DEFAULT_TOL = 1e-12
"""Absolute tolerance of ``l0``: an element counts as non-zero when ``|g| > DEFAULT_TOL``."""
DEFAULT_REL_TOL = 1e-6
"""Relative tolerance of ``l0_rel``: ``|g| > DEFAULT_REL_TOL * max |g|`` of the same sample."""

TargetFn = Callable[[Tensor, Tensor], Tensor]
"""``(logits [N,K], labels [N]) -> f_y [N]``."""


def _target_fn(target: str | TargetFn) -> TargetFn:
    if callable(target):
        return target
    if target == "two_class":
        return lambda z, y: two_class_probability(z, y, strongest_other_class(z, y))
    if target == "softmax":
        return lambda z, y: torch.softmax(z, dim=1).gather(1, y[:, None]).squeeze(1)
    raise UserInputError(f"unknown gradient target {target!r}; valid choices: {', '.join(TARGETS)}")


def target_values(logits: Tensor, y: Tensor, target: str | TargetFn = "two_class") -> Tensor:
    """``f_y`` ``[N]`` from logits ``[N,K]`` and labels ``[N]`` (see the module docstring for ``target``)."""
    return _target_fn(target)(logits, y)


def model_spec(model: nn.Module) -> str | None:
    """Text form of the gradient spec of the model's first IF neuron (``None`` for a model without any)."""
    neurons = if_neurons(model)
    return str(neurons[0].spec) if neurons else None


def _check_inputs(x: Any, y: Any) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or not x.is_floating_point():
        raise UserInputError("gradient analysis needs tensors: x [N,...] float, y [N] int64")
    if x.dim() < 2 or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise UserInputError(
            f"gradient analysis needs x [N,...] and y [N] with the same N, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )


def input_gradient(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    target: str | TargetFn = "two_class",
    spec: Any = None,
) -> Tensor:
    """``grad_x f_y(x)`` per sample, shaped like ``x``.

    Args:
        model: maps ``x`` to logits ``[N,K]``; run in eval mode.
        x: ``[N, ...]`` float inputs (images ``[N,C,H,W]`` or frames ``[N,T,2,H,W]``, in [0,1]).
        y: ``[N]`` int64 labels.
        target: ``"two_class"``, ``"softmax"`` or a callable ``(logits, y) -> [N]``.
        spec: gradient spec (``GradSpec`` or text such as ``"sigmoid:4"``) for the backward pass; ``None``
            keeps the model's own.

    Returns:
        the detached gradient (same shape and dtype as ``x``). Samples are independent (the sum over the
        batch is differentiated), so the result does not depend on the batch composition.
    """
    _check_inputs(x, y)
    fn = _target_fn(target)
    x_in = x.detach().requires_grad_(True)
    with eval_mode(model), spec_context(model, spec), torch.enable_grad():
        values = fn(model(x_in), y.to(x.device))
        (grad,) = torch.autograd.grad(values.sum(), [x_in])
    return grad.detach()


def norms_of(
    grad: Tensor, tol: float = DEFAULT_TOL, rel_tol: float = DEFAULT_REL_TOL
) -> dict[str, Tensor]:
    """Per-sample ``l0, l0_rel, l1, l2, density, density_rel`` of a gradient batch ``[N, ...]``.

    Returns:
        dict of ``[N]`` float64 tensors (counts are exact integers stored as float64).
    """
    if not tol >= 0.0 or not rel_tol >= 0.0:
        raise UserInputError(f"tolerances must be >= 0, got tol={tol!r}, rel_tol={rel_tol!r}")
    flat = grad.detach().reshape(grad.shape[0], -1).double().abs()
    d = flat.shape[1]
    l0 = (flat > tol).sum(1).double()
    peak = flat.amax(1, keepdim=True)
    # A sample with an all-zero gradient has l0_rel = 0 (``0 > 0`` is false), not d.
    l0_rel = (flat > rel_tol * peak).sum(1).double()
    return {
        "l0": l0,
        "l0_rel": l0_rel,
        "l1": flat.sum(1),
        "l2": flat.square().sum(1).sqrt(),
        "density": l0 / d,
        "density_rel": l0_rel / d,
    }


def gradient_norms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    target: str | TargetFn = "two_class",
    spec: Any = None,
    tol: float = DEFAULT_TOL,
    rel_tol: float = DEFAULT_REL_TOL,
) -> dict[str, Tensor]:
    """Sparsity norms of ``grad_x f_y`` per sample: :func:`input_gradient` then :func:`norms_of`.

    Args:
        model, x, y, target, spec: as in :func:`input_gradient`.
        tol: absolute tolerance of ``l0``; rel_tol: relative tolerance of ``l0_rel``.

    Returns:
        dict ``l0, l0_rel, l1, l2, density, density_rel`` -> ``[N]`` float64 tensors on the CPU.
    """
    grad = input_gradient(model, x, y, target=target, spec=spec)
    return {k: v.cpu() for k, v in norms_of(grad, tol, rel_tol).items()}
