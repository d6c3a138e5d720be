"""Attack-failure indicators (Pintor et al., NeurIPS 2022; Zimmermann et al., NeurIPS 2022; Carlini et al.).

A robust accuracy is only as good as the attacks behind it. These tests look for signs that an attack, not
the model, is why a sample survived:

- :func:`binarization_test` (Zimmermann et al., "Increasing Confidence in Adversarial Robustness
  Evaluations"): on the model's frozen features, a new two-class readout is fitted so that each selected
  clean sample is class 0 and a point of its eps-ball is class 1. For those samples an adversarial example
  provably exists within eps, so an attack that does not find one is broken there. The readout is linear in
  the last Linear layer's output, so the binarized model is the original network with only its last layer
  replaced: every surrogate, every neuron and every masking effect of the backbone stays.
- :func:`loss_still_moving`: the share of samples whose best loss still rose over the last tenth of a
  gradient attack's iterations (it stopped too early: raise the steps).
- :func:`fd_disagreement`: per sample, the share of exactly-zero input-gradient components, and how far the
  surrogate directional derivative is from a central finite difference of the same loss.

Each returns plain numbers; :class:`Indicator` carries a verdict, the stage it is about and the remedy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import eval_mode, predict, project_linf

__all__ = [
    "BINARIZATION_PASS",
    "Indicator",
    "binarization_test",
    "binarized_model",
    "fd_disagreement",
    "last_linear",
    "loss_still_moving",
    "readout_features",
]

BINARIZATION_PASS = 0.95
"""An attack must break at least this share of the provably breakable points (Zimmermann et al.)."""


@dataclass(frozen=True)
class Indicator:
    """One attack-failure indicator: what it measured, whether it passed, and what to do if not."""

    name: str
    stage: str
    passed: bool | None
    value: float | None
    detail: str
    remedy: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """``(parent, attribute name, module)`` of the last :class:`nn.Linear` in ``model``'s module order.

    Raises:
        ValueError: the model has no Linear layer.
    """
    found: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise ValueError("the model has no nn.Linear layer")
    return found


def _with_last_linear(model: nn.Module, layer: nn.Linear) -> nn.Module:
    """A deep copy of ``model`` whose last Linear is ``layer`` (the original is untouched)."""
    clone = copy.deepcopy(model)
    parent, name, _ = last_linear(clone)
    setattr(parent, name, layer)
    return clone


def readout_features(model: nn.Module, x: Tensor) -> Tensor | None:
    """``phi(x) [N, F]`` such that ``model(x) = phi(x) @ W.T + b`` for the last Linear's ``(W, b)``.

    Found by replacing the last Linear with the identity: exact for readouts linear in that layer's output
    (the mean over time steps, the last step, the leak-free membrane). ``None`` when the model's readout is
    not (checked numerically against the model's own logits).
    """
    _, _, layer = last_linear(model)
    dims = layer.in_features
    identity = nn.Linear(dims, dims).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(dims))
        identity.bias.zero_()
    probe = _with_last_linear(model, identity)
    with eval_mode(model), eval_mode(probe), torch.no_grad():
        phi = probe(x)
        logits = model(x)
    rebuilt = phi @ layer.weight.T + layer.bias
    if phi.shape != (x.shape[0], dims) or not torch.allclose(rebuilt, logits, atol=1e-3, rtol=1e-3):
        return None
    return phi


def binarized_model(model: nn.Module, w: Tensor, b: float) -> nn.Module:
    """The network with its last Linear replaced by a two-class readout: logits ``[0, w.phi + b]``."""
    _, _, layer = last_linear(model)
    head = nn.Linear(layer.in_features, 2).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[1] = w
        head.bias.zero_()
        head.bias[1] = b
    return _with_last_linear(model, head).eval()


def _fit_readout(inner: Tensor, outer: Tensor, steps: int = 500) -> tuple[Tensor, float]:
    """A logistic readout, class 0 for ``inner [a, F]`` and 1 for ``outer [c, F]`` (balanced weights),
    fitted in standardised feature space and mapped back: ``(w [F], b)``."""
    feats = torch.cat([inner, outer]).double()
    labels = torch.cat([torch.zeros(len(inner)), torch.ones(len(outer))]).double()
    weights = torch.where(labels == 1, 0.5 / len(outer), 0.5 / len(inner))
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    z = (feats - mean) / std
    w = torch.zeros(z.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        score = z @ w + b
        bce = nn.functional.binary_cross_entropy_with_logits(score, labels, reduction="none")
        loss = (weights * bce).sum()
        loss = loss + 1e-4 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        w_raw = w / std
        b_raw = b - (w_raw * mean).sum()
    return w_raw.float(), float(b_raw)


def binarization_test(
    model: nn.Module,
    x: Tensor,
    eps: float,
    attacks: dict[str, Callable[[nn.Module, Tensor, Tensor], Tensor]],
    *,
    inner_points: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Zimmermann et al.'s binarization test on the frozen features of ``model``.

    For each sample ``x_i``: ``inner_points`` random points within ``eps / 4`` of it (and ``x_i``) are class
    0, one random vertex of its eps-ball is class 1; one logistic readout is fitted over all samples'
    features. A sample is *provably breakable* when the binarized model puts ``x_i`` in class 0 and its vertex
    in class 1: an adversarial example exists within eps. Each attack in ``attacks``
    (``f(model, x, y) -> x_adv``) then runs on the binarized model, label 0, on those samples.

    Returns:
        ``{"valid": k, "samples": n, "rates": {name: share of valid samples broken}}``; ``valid`` may be 0
        (then ``rates`` are None), or ``{"skipped": reason}`` when the readout is not linear in the last
        Linear's output.
    """
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    signs = torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 1.0).to(x.device, x.dtype)
    vertex = project_linf(x + eps * signs, x, eps)
    jitter = [(2 * torch.rand(x.shape, generator=gen) - 1).to(x.device, x.dtype) for _ in range(inner_points)]
    inner = [x] + [project_linf(x + 0.25 * eps * j, x, eps) for j in jitter]
    # one probe and one forward pass for every point (each readout_features call copies the model)
    phi = readout_features(model, torch.cat([vertex, *inner]))
    if phi is None:
        return {"skipped": "the readout is not linear in the last Linear layer's output (max, rate)"}
    w, b = _fit_readout(phi[n:].cpu(), phi[:n].cpu())
    binary = binarized_model(model, w.to(x.device), b)
    zeros = torch.zeros(n, dtype=torch.long, device=x.device)
    valid = (predict(binary, x) == 0) & (predict(binary, vertex) == 1)
    out: dict[str, Any] = {"valid": int(valid.sum()), "samples": n, "rates": {}}
    if not bool(valid.any()):
        out["rates"] = {name: None for name in attacks}
        return out
    xv, yv = x[valid], zeros[valid]
    for name, attack in attacks.items():
        x_adv = attack(binary, xv, yv)
        out["rates"][name] = float((predict(binary, x_adv) != yv).float().mean())
    return out


def loss_still_moving(best: Tensor, fooled: Tensor, tail: float = 0.1, tol: float = 0.01) -> tuple[int, int]:
    """``(moving, survivors)``: of the samples a run did not fool, how many had their best loss still rise
    over its last ``tail`` of iterations by more than ``tol`` of the run's whole rise.

    Args:
        best: ``[S + 1, m]`` best loss so far after each iteration (row 0: the start).
        fooled: ``[m]`` bool, samples the run fooled (excluded: their loss need not converge).
    """
    steps = best.shape[0] - 1
    if steps < 1:
        return 0, 0
    k = max(1, math.ceil(tail * steps))
    keep = ~fooled.to(best.device)
    if not bool(keep.any()):
        return 0, 0
    b = best[:, keep]
    total = (b[-1] - b[0]).abs()
    late = b[-1] - b[-1 - k]
    moving = late > tol * total.clamp_min(1e-12)
    moving &= late > 1e-7  # a rise below float resolution is not a rise
    return int(moving.sum()), int(keep.sum())


def fd_disagreement(
    model: nn.Module, x: Tensor, y: Tensor, h: float = 1e-3, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Per sample: ``(zero share [N], disagreement [N])``.

    ``zero share``: the fraction of exactly-zero components of the input gradient of the CE loss (under the
    model's current surrogate). ``disagreement``: along one random sign direction ``u``,
    ``|g.u - fd| / max(|g.u|, |fd|, 1e-12)`` with the central difference ``fd = (L(x + h u) - L(x - h u)) /
    (2h)``, in [0, 2]: 0 when the surrogate predicts the loss's change, 1 when one of the two is zero and
    the other not (a spiking network's loss is piecewise constant, so a small step often leaves it
    unchanged), 2 when they have opposite signs and equal size. The pieces are
    :mod:`evrobust.analysis.fidelity`'s, which ``evrobust analyze fidelity`` uses at several steps.
    """
    from evrobust.analysis.fidelity import (
        ce_and_gradient,
        central_difference,
        directional,
        disagreement,
        interior,
        sign_directions,
    )

    # components within h of a bound of [0, 1] cannot move both ways: the direction leaves them alone
    u = interior(sign_directions(x, 1, seed)[0], x, h)
    _, grad = ce_and_gradient(model, x, y)  # the model's current spec, eval mode
    zero_share = (grad.reshape(x.shape[0], -1) == 0).float().mean(1)
    return zero_share, disagreement(directional(grad, u), central_difference(model, x, y, u, h)).detach()
