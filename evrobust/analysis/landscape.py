"""The loss around a test sample along a few directions, over radii from far below to far above eps.

Gradient masking by a finite-difference penalty (SR penalises ``(f(x + h d) - f(x)) / h`` at ``h = 0.01``)
would flatten the loss at the scale of ``h`` and leave it steep at the scale of the attack radius
``eps = 8/255 ~ 0.031``. This module measures the loss ``L(clip(x + r u))`` for radii ``r`` on a grid and
unit-L-inf directions ``u``:

- ``gradient``: ``sign(grad_x CE)`` under a gradient spec (the FGSM direction, the attacker's first guess);
- ``random-<i>``: seeded random sign directions (:func:`evrobust.analysis.fidelity.sign_directions`);
- ``adversarial``: ``(x_adv - x) / ||x_adv - x||_inf`` towards an adversarial example (the caller supplies
  ``x_adv``; ``evrobust analyze landscape`` finds it with PGD), so ``r = ||x_adv - x||_inf`` reaches it.

Per sample and radius: the cross-entropy (nats), the margin ``z_y - max_{j != y} z_j`` (logit units; < 0 =
misclassified) and the share of the direction's non-zero components that clipping to [0, 1] shortened.
:func:`rise_radius` gives the first radius at which the loss has risen by a set amount: the width of the
flat region around the sample along that direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from evrobust.attacks.base import eval_mode
from evrobust.errors import UserInputError

__all__ = [
    "DEFAULT_POINTS",
    "DEFAULT_RISE",
    "MIN_RADIUS",
    "adversarial_direction",
    "check_radii",
    "default_radii",
    "loss_along",
    "margins",
    "median_rise",
    "quartiles",
    "rise_radius",
]

MIN_RADIUS = 1e-3
"""Smallest default radius (input units): a tenth of SR's h = 0.01, below any step an attack takes."""
DEFAULT_POINTS = 16
"""Log-spaced radii of the default grid (from :data:`MIN_RADIUS` to 4 eps)."""
DEFAULT_RISE = 0.1
"""Rise of the cross-entropy (nats) that ends the flat region (0.1 nats ~ the true-class probability falling
by 10 % of itself)."""


def default_radii(eps: float, points: int = DEFAULT_POINTS) -> list[float]:
    """``points`` log-spaced radii from :data:`MIN_RADIUS` to ``4 eps`` (both included)."""
    if not (math.isfinite(eps) and 0.0 < eps <= 0.25) or 4 * eps <= MIN_RADIUS:
        raise UserInputError(f"eps must be in ({MIN_RADIUS / 4:g}, 0.25] for the default radii, got {eps!r}")
    if isinstance(points, bool) or int(points) != points or points < 2:
        raise UserInputError(f"the number of radii must be an integer >= 2, got {points!r}")
    lo, hi = math.log10(MIN_RADIUS), math.log10(4 * eps)
    out = [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(int(points))]
    out[0], out[-1] = MIN_RADIUS, 4 * eps  # exact ends, not 10**log10 rounding
    return out


def check_radii(radii: Sequence[float]) -> list[float]:
    """A strictly increasing list of radii in (0, 1].

    Raises:
        UserInputError: fewer than one radius, a radius <= 0, > 1 or non-finite, or a grid that does not
            increase strictly.
    """
    out = [float(r) for r in radii]
    if not out:
        raise UserInputError("give at least one radius")
    for r in out:
        if not (math.isfinite(r) and 0.0 < r <= 1.0):
            raise UserInputError(f"a radius must be in (0, 1] (input units), got {r!r}")
    if any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise UserInputError(f"the radii must be strictly increasing, got {', '.join(f'{r:g}' for r in out)}")
    return out


def margins(logits: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j`` ``[N]`` from logits ``[N, K]`` and labels ``[N]`` (logit units)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return z_y - other


def adversarial_direction(x: Tensor, x_adv: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, r)``: the unit-L-inf direction from ``x`` to ``x_adv`` and the distance ``r [N]`` (input units).

    ``x + r u = x_adv`` exactly up to rounding; a sample with ``x_adv = x`` gets ``u = 0`` and ``r = 0``.
    """
    delta = (x_adv - x).detach()
    r = delta.reshape(delta.shape[0], -1).abs().amax(1)
    scale = torch.where(r > 0, r, torch.ones_like(r)).reshape(-1, *([1] * (x.dim() - 1)))
    return delta / scale, r


def loss_along(
    model: nn.Module, x: Tensor, y: Tensor, u: Tensor, radii: Sequence[float]
) -> dict[str, Tensor]:
    """Loss, margin and clipping at ``clip(x + r u, 0, 1)`` for each radius ``r``.

    Args:
        model: maps ``x`` to logits ``[N, K]``; run in eval mode, no graph.
        x: ``[N, ...]`` inputs in [0, 1]; y: ``[N]`` int64 labels.
        u: ``[N, ...]`` directions (entries in [-1, 1]; a unit L-inf direction makes ``r`` the distance).
        radii: ``R`` radii in input units.

    Returns:
        ``ce [N, R]`` (nats), ``margin [N, R]`` (logit units), ``clipped [N, R]`` (share of the non-zero
        components of ``u`` whose value clipping changed), all float64 on the CPU.
    """
    n = x.shape[0]
    moving = (u != 0).reshape(n, -1)
    count = moving.sum(1).clamp_min(1).double()
    ce, margin, clipped = [], [], []
    with eval_mode(model), torch.no_grad():
        for r in radii:
            raw = x + float(r) * u
            point = raw.clamp(0.0, 1.0)
            logits = model(point)
            ce.append(nn.functional.cross_entropy(logits, y, reduction="none").double())
            margin.append(margins(logits, y).double())
            cut = (point != raw).reshape(n, -1) & moving
            clipped.append(cut.sum(1).double() / count)
    return {k: torch.stack(v, 1).cpu() for k, v in (("ce", ce), ("margin", margin), ("clipped", clipped))}


def rise_radius(ce0: Tensor, ce: Tensor, radii: Sequence[float], rise: float) -> Tensor:
    """First radius at which ``ce - ce0 >= rise`` per sample ``[N]`` (NaN where it never does).

    Args:
        ce0: ``[N]`` the loss at the sample itself; ce: ``[N, R]`` the loss along a direction.
        radii: the ``R`` radii of ``ce``; rise: the rise in nats (> 0).
    """
    if not (math.isfinite(rise) and rise > 0):
        raise UserInputError(f"the loss rise must be a number > 0 (nats), got {rise!r}")
    risen = (ce - ce0.reshape(-1, 1).to(ce.dtype)) >= rise
    grid = torch.as_tensor(list(radii), dtype=torch.float64)
    first = risen.double().argmax(1)  # the first True (argmax of a 0/1 row returns the first maximum)
    return torch.where(risen.any(1), grid[first], torch.full_like(grid[first], float("nan")))


def quartiles(values: Tensor) -> dict[str, list[float]]:
    """``q1``, ``median``, ``q3`` over samples (dim 0) of ``[N, R]`` values: three lists of ``R`` numbers."""
    q = torch.quantile(values.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
    return {"q1": q[0].tolist(), "median": q[1].tolist(), "q3": q[2].tolist()}


def median_rise(radius: Tensor) -> float | None:
    """The (lower) median of :func:`rise_radius` values ``[N]``, a never-rising sample (NaN) counting as an
    infinite radius: None when at least half the samples never rise within the grid (or there are none)."""
    if radius.numel() == 0:
        return None
    ordered = torch.where(torch.isnan(radius), torch.full_like(radius, math.inf), radius).sort().values
    value = float(ordered[(ordered.numel() - 1) // 2])
    return value if math.isfinite(value) else None
