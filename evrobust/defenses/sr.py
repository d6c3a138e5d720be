"""Gradient sparsity regularisation (SR), paper §4.3 / Algorithm 1, vectorised over the batch.

The regulariser approximates ``|| grad_x f_y(x) ||_1`` by a finite difference along the signed gradient
(Proposition 4.4): with ``d = sign(grad_x f_y(x))``, ``(f_y(x + h d) - f_y(x)) / h ~ || grad_x f_y ||_1``,
where ``f_y`` is the two-class softmax of the true class against the strongest other class.

Cost: one forward pass on ``x``, one backward pass that computes input gradients only (no weight
gradients are requested, so autograd skips them), one forward pass on ``x + h d``, and the caller's
single backward pass through both graphs. No double back-propagation is needed because ``d`` is a sign
and therefore treated as a constant (the released code detaches it too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons.functional import reuse_backward_terms

PENALTIES: tuple[str, ...] = ("l2sq", "l1")
"""``l2sq`` = mean(D^2), what the authors' released code trains with (the published lambdas 0.008 /
0.002 / 0.001 were tuned with it; default). ``l1`` = mean(|D|), the paper's Eq. 14."""


def check_sr_arguments(lam: float, h: float, penalty: str) -> None:
    """Raise :class:`UserInputError` for a negative ``lam``, non-positive ``h`` or unknown ``penalty``."""
    if not lam >= 0.0:  # also rejects NaN
        raise UserInputError(f"lambda must be >= 0 (got {lam}); the paper uses 0.001 .. 0.008")
    if not h > 0.0:
        raise UserInputError(f"finite-difference step h must be > 0 (got {h}); the paper uses 0.01")
    if penalty not in PENALTIES:
        raise UserInputError(f"unknown SR penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")


def strongest_other_class(logits: Tensor, y: Tensor) -> Tensor:
    """Index of the largest logit other than the true class.

    Args:
        logits: ``[N, K]`` class scores.
        y: ``[N]`` int64 true labels.

    Returns:
        ``[N]`` int64 indices ``k != y`` (ties resolve to the lowest index, as ``argmax`` does).
    """
    masked = logits.detach().scatter(1, y[:, None], float("-inf"))
    return masked.argmax(dim=1)


def two_class_probability(logits: Tensor, y: Tensor, k: Tensor) -> Tensor:
    """``f_y = e^{z_y} / (e^{z_y} + e^{z_k})`` computed stably as ``sigmoid(z_y - z_k)``.

    Args:
        logits: ``[N, K]``; y, k: ``[N]`` int64 class indices.

    Returns:
        ``[N]`` probabilities in [0, 1] (no overflow for huge logits: the sigmoid saturates instead).
    """
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_k = logits.gather(1, k[:, None]).squeeze(1)
    return torch.sigmoid(z_y - z_k)


def sr_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    lam: float,
    h: float = 0.01,
    penalty: str = "l2sq",
) -> dict[str, Tensor]:
    """Cross-entropy plus the finite-difference gradient sparsity penalty (paper Eq. 14, DESIGN §5).

    ``z = f(x)``; ``k = argmax_{j != y} z_j``; ``p = sigmoid(z_y - z_k)``; ``d = sign(dp/dx)``;
    ``x2 = x + h d``; ``p2 = sigmoid(f(x2)_y - f(x2)_k)`` with the same ``k``; ``D = (p2 - p) / h``;
    ``loss = CE(z, y) + lam * penalty(D)``.

    ``x2`` is deliberately *not* clamped to [0, 1], as in the authors' code: it only serves the difference
    quotient, and clamping would shorten the step for saturated pixels (values 0 or 1 are common in images
    and in clipped event frames), so ``D`` would no longer be the directional derivative along ``d``.

    The weight gradient of ``loss`` flows through both forward passes (``p`` is not detached). The model is
    run in whatever mode it is in (training mode during training: BatchNorm sees two batches per step, as
    in the reference code). Parameter ``.grad`` fields are not touched; call
    ``out["loss"].backward(inputs=params)``
    (restricting to the parameters skips the unneeded input gradient of the clean pass).

    Args:
        model: maps ``x`` to logits ``[N, K]``.
        x: ``[N, ...]`` inputs in [0, 1] (images ``[N,C,H,W]`` or frames ``[N,T,2,H,W]``).
        y: ``[N]`` int64 labels.
        lam: weight of the penalty (>= 0).
        h: finite-difference step in input units (> 0).
        penalty: ``"l2sq"`` (mean D^2, default) or ``"l1"`` (mean |D|).

    Returns:
        dict with ``loss`` (scalar), ``ce`` (scalar), ``reg`` (scalar penalty before ``lam``),
        ``logits`` (``[N, K]`` on the clean input) and ``fd`` (``[N]`` the finite differences ``D``).
    """
    check_sr_arguments(lam, h, penalty)
    x_in = x.detach().requires_grad_(True)
    # The clean graph is back-propagated twice (inputs-only, then the final backward): its IF layers keep
    # their surrogate terms from the first pass for the second (bitwise the same gradients, less work).
    with reuse_backward_terms():
        logits = model(x_in)
    k = strongest_other_class(logits, y)
    p = two_class_probability(logits, y, k)
    # Inputs-only backward: autograd computes no weight gradients here. The graph is kept for the final
    # backward through both passes; create_graph is unnecessary since sign() has zero derivative.
    (grad_x,) = torch.autograd.grad(p.sum(), x_in, retain_graph=True)
    direction = grad_x.sign()
    x2 = x.detach() + h * direction
    p2 = two_class_probability(model(x2), y, k)
    fd = (p2 - p) / h
    reg = fd.square().mean() if penalty == "l2sq" else fd.abs().mean()
    ce = F.cross_entropy(logits, y)
    return {"loss": ce + lam * reg, "ce": ce, "reg": reg, "logits": logits, "fd": fd}
