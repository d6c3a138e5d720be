"""Measured check of the paper's Theorem 1 (Theorem 4.3 / Appendix A; DESIGN §7).

Definitions 4.1–4.2 of the paper use *squared* changes of the true-class probability ``f_y`` in the L-inf
cube of radius eps around ``x``::

    rho_rand = E_{delta ~ U([-eps, eps]^d)} (f_y(x + delta) - f_y(x))^2
    rho_adv  = sup_{|delta|_inf <= eps}      (f_y(x + delta) - f_y(x))^2

With the first-order expansion ``f_y(x + delta) - f_y(x) ~ g . delta`` (``g = grad_x f_y(x)``, the surrogate
gradient) and ``E[delta_i delta_j] = eps^2/3 [i = j]``, Appendix A gets ``rho_rand ~ eps^2 ||g||_2^2 / 3``
(Eq. 19) and ``rho_adv ~ eps^2 ||g||_1^2`` (Eq. 20), hence the estimate ``ratio ~ 3 ||g||_1^2 / ||g||_2^2``
(Eq. 21) and the bounds ``3 <= ratio <= 3 ||g||_0`` (Eq. 22, from ``||g||_2 <= ||g||_1 <= sqrt(l0) ||g||_2``).
The bounds hold for the *first-order* ratio; for a real SNN (piecewise constant in ``x``: spike counts
change in jumps) the measured ratio need not obey them, which is what this module measures.

Per sample this module reports:

- ``rho_rand``: Monte Carlo mean over ``mc_samples`` i.i.d. draws of delta (standard error available as
  ``rho_rand_se``), and ``rand_abs`` = the mean of ``|f_y(x + delta) - f_y(x)|`` over the same draws;
- ``rho_adv``: the largest squared change found by two sign-gradient runs (ascending and descending ``f_y``,
  ``pgd_steps`` steps of ``eps/4`` each, started at the first-order maximisers ``+-eps * sign(g)``; elements
  with ``g_i = 0`` start at a random vertex coordinate) and by the Monte Carlo draws — a lower bound of the
  supremum, exact for a linear ``f_y`` (the start is then already the maximiser);
- ``ratio = rho_adv / rho_rand`` (NaN where ``rho_rand = 0``: ``f_y`` did not move under any draw);
- ``estimate = 3 l1^2 / l2^2`` and ``upper = 3 l0`` (``l0`` with absolute tolerance ``tol``), and the
  first-order predictions ``rho_rand_linear = eps^2 l2^2 / 3``, ``rho_adv_linear = eps^2 l1^2``.

For the ``two_class`` target the competitor ``k`` is fixed at the clean input (as SR does), so ``f_y`` is one
smooth function of the logits whose gradient at ``x`` is exactly :func:`~evrobust.analysis.input_gradient`.
By default ``x + delta`` is **not** clipped to [0,1]: the theorem's cube is the full cube (``clip=True``
clips, which changes the distribution of the draws for pixels near 0 or 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.analysis.sparsity import DEFAULT_TOL, TargetFn, _target_fn, norms_of
from evrobust.attacks.base import eval_mode, spec_context
from evrobust.defenses.sr import strongest_other_class, two_class_probability
from evrobust.errors import UserInputError

__all__ = ["DEFAULT_MC_SAMPLES", "DEFAULT_PGD_STEPS", "summarize_theorem", "theorem_check"]

DEFAULT_MC_SAMPLES = 64
"""Monte Carlo draws per sample for ``rho_rand``."""
DEFAULT_PGD_STEPS = 20
"""Sign-gradient steps per direction for ``rho_adv``."""


def _fixed_target(model: nn.Module, x: Tensor, y: Tensor, target: str | TargetFn) -> TargetFn:
    """``f_y`` as a function of the logits, with the two-class competitor fixed at the clean input."""
    if target == "two_class":
        with torch.no_grad():
            k = strongest_other_class(model(x), y)
        return lambda z, labels: two_class_probability(z, labels, k)
    return _target_fn(target)


def _values(model: nn.Module, fn: TargetFn, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return fn(model(x), y).double()


def _grad(model: nn.Module, fn: TargetFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(f_y [N] float64, grad_x f_y like x)`` at ``x``."""
    x_in = x.detach().requires_grad_(True)
    with torch.enable_grad():
        values = fn(model(x_in), y)
        (grad,) = torch.autograd.grad(values.sum(), [x_in])
    return values.detach().double(), grad.detach()


def _place(x: Tensor, delta: Tensor, clip: bool) -> Tensor:
    out = x + delta
    return out.clamp(0.0, 1.0) if clip else out


def _sign_ascent(
    model: nn.Module,
    fn: TargetFn,
    x: Tensor,
    y: Tensor,
    f0: Tensor,
    g0: Tensor,
    eps: float,
    steps: int,
    direction: float,
    clip: bool,
    generator: torch.Generator,
) -> Tensor:
    """Largest ``(f_y(x + delta) - f0)^2`` ``[N]`` seen while ascending ``direction * f_y`` in the cube."""
    random_sign = torch.randint(0, 2, x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1
    start = torch.where(g0 != 0, g0.sign(), random_sign)
    delta = direction * eps * start
    best = torch.zeros_like(f0)
    alpha = eps / 4
    for step in range(steps + 1):
        values, grad = _grad(model, fn, _place(x, delta, clip), y)
        best = torch.maximum(best, (values - f0).square())
        if step == steps:
            break
        delta = (delta + direction * alpha * grad.sign()).clamp(-eps, eps)
    return best


def theorem_check(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    target: str | TargetFn = "two_class",
    spec: Any = None,
    mc_samples: int = DEFAULT_MC_SAMPLES,
    pgd_steps: int = DEFAULT_PGD_STEPS,
    clip: bool = False,
    seed: int = 0,
    tol: float = DEFAULT_TOL,
) -> dict[str, Tensor]:
    """Per-sample measured vulnerabilities beside the Theorem 1 estimate and bounds (module docstring).

    Args:
        model: maps ``x`` to logits ``[N,K]``; run in eval mode.
        x: ``[N, ...]`` inputs in [0,1]; y: ``[N]`` int64 labels.
        eps: L-inf radius (input units), > 0.
        target: ``two_class`` | ``softmax`` | callable ``(logits, y) -> [N]``.
        spec: gradient spec for every gradient taken (``None`` = the model's own).
        mc_samples: Monte Carlo draws for ``rho_rand`` (>= 2).
        pgd_steps: sign-gradient steps per direction for ``rho_adv`` (>= 0).
        clip: clip ``x + delta`` to [0,1].
        seed: seed of the draws (CPU generator).
        tol: absolute tolerance of ``l0``.

    Returns:
        dict of ``[N]`` float64 CPU tensors: ``rho_rand, rho_rand_se, rand_abs, rho_adv, ratio, estimate,
        upper, lower, l0, l1, l2, rho_rand_linear, rho_adv_linear``.
    """
    if not (isinstance(eps, int | float) and math.isfinite(eps) and 0.0 < eps <= 1.0):
        raise UserInputError(f"theorem check needs 0 < eps <= 1 (input units), got {eps!r}")
    if isinstance(mc_samples, bool) or int(mc_samples) != mc_samples or mc_samples < 2:
        raise UserInputError(f"mc_samples must be an integer >= 2, got {mc_samples!r}")
    if isinstance(pgd_steps, bool) or int(pgd_steps) != pgd_steps or pgd_steps < 0:
        raise UserInputError(f"pgd_steps must be an integer >= 0, got {pgd_steps!r}")
    x = x.detach()
    y = y.to(x.device)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    with eval_mode(model), spec_context(model, spec):
        fn = _fixed_target(model, x, y, target)
        f0, g0 = _grad(model, fn, x, y)
        norms = norms_of(g0, tol=tol)
        total = torch.zeros_like(f0)
        total_sq = torch.zeros_like(f0)
        total_abs = torch.zeros_like(f0)
        best = torch.zeros_like(f0)
        for _ in range(int(mc_samples)):
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            change = _values(model, fn, _place(x, eps * (2 * noise - 1), clip), y) - f0
            sq = change.square()
            total += sq
            total_sq += sq.square()
            total_abs += change.abs()
            best = torch.maximum(best, sq)
        m = float(mc_samples)
        rho_rand = total / m
        variance = (total_sq / m - rho_rand.square()).clamp_min(0.0) * m / (m - 1)
        for direction in (1.0, -1.0):
            found = _sign_ascent(model, fn, x, y, f0, g0, eps, int(pgd_steps), direction, clip, generator)
            best = torch.maximum(best, found)
    l0, l1, l2 = norms["l0"], norms["l1"], norms["l2"]
    nan = torch.full_like(rho_rand, float("nan"))
    ratio = torch.where(rho_rand > 0, best / rho_rand.where(rho_rand > 0, 1.0), nan)
    estimate = torch.where(l2 > 0, 3.0 * l1.square() / l2.square().where(l2 > 0, 1.0), nan)
    out = {
        "rho_rand": rho_rand,
        "rho_rand_se": (variance / m).sqrt(),
        "rand_abs": total_abs / m,
        "rho_adv": best,
        "ratio": ratio,
        "estimate": estimate,
        "upper": 3.0 * l0,
        "lower": torch.full_like(l0, 3.0),
        "l0": l0,
        "l1": l1,
        "l2": l2,
        "rho_rand_linear": eps**2 * l2.square() / 3.0,
        "rho_adv_linear": eps**2 * l1.square(),
    }
    return {k: v.detach().cpu().double() for k, v in out.items()}


def _finite_list(values: Tensor) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values.tolist()]


def _mean(values: Tensor) -> float | None:
    return float(values.mean()) if values.numel() else None


def summarize_theorem(per_sample: dict[str, Tensor], rel_slack: float = 1e-9) -> dict[str, Any]:
    """JSON summary of :func:`theorem_check` results (possibly concatenated over batches).

    ``in_bounds`` is the share of samples with a defined ratio for which ``3 <= ratio <= 3 l0``;
    ``below_estimate`` the share with ``ratio <= 3 l1^2 / l2^2``; both use a relative slack ``rel_slack``
    for float rounding, and are ``None`` when no ratio is defined.
    """
    ratio = per_sample["ratio"]
    defined = torch.isfinite(ratio)
    r = ratio[defined]
    lo = per_sample["lower"][defined] * (1 - rel_slack)
    hi = per_sample["upper"][defined] * (1 + rel_slack)
    est = per_sample["estimate"][defined]
    n_def = int(defined.sum())
    below = (r <= est * (1 + rel_slack)) & torch.isfinite(est)
    keys = ("rho_rand", "rho_adv", "estimate", "upper", "rho_rand_linear", "rho_adv_linear", "rand_abs")
    mean: dict[str, float | None] = {k: _mean(per_sample[k][torch.isfinite(per_sample[k])]) for k in keys}
    mean["ratio"] = _mean(r)
    finite_est = per_sample["estimate"][torch.isfinite(per_sample["estimate"])]
    return {
        "defined": n_def,
        "in_bounds": float(((r >= lo) & (r <= hi)).float().mean()) if n_def else None,
        "below_estimate": float(below.float().mean()) if n_def else None,
        "mean": mean,
        "median": {
            "ratio": float(r.median()) if n_def else None,
            "estimate": float(finite_est.median()) if finite_est.numel() else None,
        },
        "per_sample": {k: _finite_list(v) for k, v in per_sample.items() if k != "lower"},
    }
