"""Surrogate-gradient fidelity: does the surrogate's directional derivative predict how the true loss moves?

A spiking network's forward pass is exact; only its backward pass is a surrogate. For a direction ``u`` the
surrogate predicts the change of the cross-entropy ``L`` per input unit as ``g . u`` (``g`` = the input
gradient under a gradient spec); the truth at step ``h`` is the central finite difference of the forward
pass, ``fd_h = (L(x + h u) - L(x - h u)) / (2 h)``. A spiking loss is piecewise constant in ``x`` (spike
counts change in jumps), so at small ``h`` the finite difference is often exactly zero while the loss still
changes a little further out: the gradient-masking signature a defense like SR (a finite difference at
``h = 0.01``) may train into a model.

The pieces (:func:`sign_directions`, :func:`interior`, :func:`ce_and_gradient`, :func:`central_difference`)
are the ones :func:`evrobust.analysis.indicators.fd_disagreement` computes inline: a random sign direction
drawn from a CPU generator seeded with ``seed`` (the first draw is the same tensor), zeroed where a component
lies within ``h`` of a bound of [0, 1] (it cannot move both ways), and the same difference quotient.

:func:`fidelity_check` returns per sample and direction the surrogate derivative, the finite difference at
each step, the relative disagreement ``|a - b| / max(|a|, |b|)`` (0 = agree, 1 = one of the two is zero and
the other not, 2 = opposite signs) and how much the loss changes at the attack radius ``eps`` along the same
direction; :func:`summarize_fidelity` turns them into the numbers ``evrobust analyze fidelity`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import eval_mode, spec_context
from evrobust.errors import UserInputError

__all__ = [
    "DEFAULT_STEPS",
    "ce_and_gradient",
    "central_difference",
    "ce_values",
    "check_steps",
    "directional",
    "disagreement",
    "fidelity_check",
    "interior",
    "sign_directions",
    "summarize_fidelity",
]

DEFAULT_STEPS: tuple[float, ...] = (1e-3, 1e-2, 3e-2)
"""Finite-difference steps (input units): below, at (SR's h) and near the attack radius 8/255 ~ 0.031."""


def check_steps(steps: Sequence[float]) -> list[float]:
    """A strictly increasing list of steps in (0, 0.5] (a central step of 0.5 spans all of [0, 1]).

    Raises:
        UserInputError: an empty list, a step <= 0 or > 0.5, a non-finite or unordered step.
    """
    out = [float(s) for s in steps]
    if not out:
        raise UserInputError("give at least one finite-difference step")
    for s in out:
        if not (math.isfinite(s) and 0.0 < s <= 0.5):
            raise UserInputError(f"a finite-difference step must be in (0, 0.5], got {s!r}")
    if any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise UserInputError(f"the steps must be strictly increasing, got {', '.join(f'{s:g}' for s in out)}")
    return out


def sign_directions(x: Tensor, count: int, seed: int) -> list[Tensor]:
    """``count`` random sign directions like ``x`` (entries -1 / +1), from a CPU generator seeded by ``seed``.

    The first one is the direction :func:`~evrobust.analysis.indicators.fd_disagreement` draws for the same
    ``seed``; the draws do not depend on the device.
    """
    gen = torch.Generator().manual_seed(int(seed))
    return [
        torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 1.0).to(x.device, x.dtype)
        for _ in range(count)
    ]


def interior(u: Tensor, x: Tensor, h: float) -> Tensor:
    """``u`` zeroed where ``x`` lies within ``h`` of 0 or 1 (so that ``x +- h u`` stays in [0, 1])."""
    return torch.where((x >= h) & (x <= 1 - h), u, torch.zeros_like(u))


def ce_values(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy ``[N]`` (nats) of the forward pass, without a graph."""
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y, reduction="none")


def ce_and_gradient(model: nn.Module, x: Tensor, y: Tensor, spec: Any = None) -> tuple[Tensor, Tensor]:
    """``(CE [N] in nats, grad_x CE like x)`` with the backward pass under ``spec`` (``None``: the model's).

    The model runs in eval mode (BN frozen); each sample's gradient is that of its own loss (the batch sum is
    differentiated), so it does not depend on the batch composition.
    """
    x_in = x.detach().clone().requires_grad_(True)
    with eval_mode(model), spec_context(model, spec), torch.enable_grad():
        loss = nn.functional.cross_entropy(model(x_in), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), [x_in])
    return loss.detach(), grad.detach()


def central_difference(model: nn.Module, x: Tensor, y: Tensor, u: Tensor, h: float) -> Tensor:
    """``(L(x + h u) - L(x - h u)) / (2 h)`` ``[N]`` (nats per input unit), the model in eval mode."""
    with eval_mode(model):
        return (ce_values(model, x + h * u, y) - ce_values(model, x - h * u, y)) / (2 * h)


def directional(grad: Tensor, u: Tensor) -> Tensor:
    """``g . u`` per sample ``[N]`` for ``grad`` and ``u`` shaped ``[N, ...]``."""
    n = grad.shape[0]
    return (grad.reshape(n, -1) * u.reshape(n, -1)).sum(1)


def disagreement(a: Tensor, b: Tensor) -> Tensor:
    """``|a - b| / max(|a|, |b|, 1e-12)`` elementwise, in [0, 2]: 0 when equal, 1 when one is zero and the
    other not, 2 when they have equal size and opposite signs."""
    return (a - b).abs() / torch.maximum(a.abs(), b.abs()).clamp_min(1e-12)


def fidelity_check(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    steps: Sequence[float] = DEFAULT_STEPS,
    *,
    spec: Any = None,
    random: int = 2,
    seed: int = 0,
    eps: float = 8 / 255,
) -> dict[str, Any]:
    """Surrogate directional derivatives against central finite differences of the exact forward pass.

    Directions (``D = 1 + random``): ``gradient`` = ``sign(grad_x CE)`` under ``spec`` (the FGSM direction;
    zero where the surrogate gradient is exactly zero), then ``random`` sign directions
    (:func:`sign_directions` with ``seed``, the same for every spec). For each step ``h`` each direction is
    restricted to the components at least ``h`` inside [0, 1] (:func:`interior`), and both the surrogate
    derivative and the finite difference use that restricted direction.

    Args:
        model: maps ``x`` to logits ``[N, K]``; run in eval mode.
        x: ``[N, ...]`` inputs in [0, 1]; y: ``[N]`` int64 labels.
        steps: finite-difference steps (input units), strictly increasing, in (0, 0.5].
        spec: gradient spec of the backward pass (``None``: the model's own).
        random: number of random sign directions (>= 0).
        seed: seed of the random directions.
        eps: the attack radius at which "does the loss change" is asked (input units).

    Returns:
        ``{"directions": [names], "surrogate": [S] of [N, D], "fd": [S] of [N, D], "delta_eps": [S] of
        [N, D]}`` (float64 CPU tensors; index ``s`` is ``steps[s]``): ``surrogate`` = ``g . u_h`` and ``fd``
        the central difference (nats per input unit); ``delta_eps`` = ``max(|L(x + eps u_h) - L(x)|,
        |L(x - eps u_h) - L(x)|)`` in nats, the points clipped to [0, 1].
    """
    steps = check_steps(steps)
    if isinstance(random, bool) or int(random) != random or random < 0:
        raise UserInputError(f"the number of random directions must be an integer >= 0, got {random!r}")
    x = x.detach()
    y = y.to(x.device)
    loss0, grad = ce_and_gradient(model, x, y, spec)
    bases = [grad.sign(), *sign_directions(x, int(random), seed)]
    names = ["gradient", *[f"random-{i}" for i in range(int(random))]]
    out: dict[str, Any] = {"directions": names, "surrogate": [], "fd": [], "delta_eps": []}
    with eval_mode(model):
        for h in steps:
            columns: dict[str, list[Tensor]] = {"surrogate": [], "fd": [], "delta_eps": []}
            for base in bases:
                u = interior(base, x, h)
                columns["surrogate"].append(directional(grad, u))
                columns["fd"].append(central_difference(model, x, y, u, h))
                up = ce_values(model, (x + eps * u).clamp(0.0, 1.0), y) - loss0
                down = ce_values(model, (x - eps * u).clamp(0.0, 1.0), y) - loss0
                columns["delta_eps"].append(torch.maximum(up.abs(), down.abs()))
            for key, parts in columns.items():
                out[key].append(torch.stack(parts, 1).detach().double().cpu())
    return out


def _cosine(a: Tensor, b: Tensor) -> float | None:
    """Cosine of two flat vectors; 0 when exactly one is zero (no agreement), None when both are."""
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 and nb == 0.0:
        return None
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, float((a * b).sum()) / (na * nb)))  # rounding may step past +-1


def summarize_fidelity(surrogate: Tensor, fd: Tensor, delta_eps: Tensor) -> dict[str, Any]:
    """The numbers of one (spec, step) from ``[N, D]`` tensors of :func:`fidelity_check` (possibly
    concatenated over batches).

    - ``cosine``: between the surrogate derivatives and the finite differences over all ``N * D``
      (sample, direction) pairs; 1 = the surrogate points the way the loss moves; 0 also when the finite
      differences are all zero and the surrogate's are not (None when both are all zero);
    - ``ratio``: ``||surrogate|| / ||fd||`` over the same pairs (None when every fd is zero): 1 = the right
      magnitude;
    - ``median_disagreement``: median of :func:`disagreement` over the pairs;
    - ``zero_fd_share``: share of pairs whose finite difference is exactly zero;
    - ``flat_changes_share``: share of *samples* whose finite difference is exactly zero along every
      direction (locally flat) while the loss changes at eps along at least one of them (``delta_eps > 0``).

    "Exactly zero": a spiking network's logits are computed from spikes, so two inputs that give the same
    spikes give bitwise the same loss; any tolerance would hide the jumps this measures.
    """
    a, b = surrogate.reshape(-1), fd.reshape(-1)
    nb = float(b.norm())
    flat = (fd == 0).all(1)
    changes = (delta_eps > 0).any(1)
    return {
        "cosine": _cosine(a, b),
        "ratio": float(a.norm()) / nb if nb > 0 else None,
        "median_disagreement": float(disagreement(a, b).median()) if a.numel() else None,
        "zero_fd_share": float((fd == 0).double().mean()) if fd.numel() else None,
        "flat_changes_share": float((flat & changes).double().mean()) if flat.numel() else None,
    }
