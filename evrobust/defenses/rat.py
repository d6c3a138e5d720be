"""RAT baseline (Ding et al., NeurIPS 2022): Parseval retraction of conv and linear weights.

After every optimizer step each weight matrix ``W`` (conv kernels reshaped to ``[out, in*kh*kw]``) takes
one step towards the Stiefel manifold: ``W <- (1 + beta) W - beta W W^T W``, the gradient step of
``||W W^T - I||^2 / 4`` with step ``beta``. As in the SNN-RAT code, linear layers with at least 200 rows
update a random 30 % of their rows (``W_r <- (1 + beta) W_r - beta W_r W_r^T W_r``, where ``W_r`` is the
chosen rows) to keep the cost of the huge classifier layers low. Weight decay is off when RAT is used.

Also as in the SNN-RAT code, the learnable residual mixing weights (:class:`ConvexCombination`, WRN) are
projected back onto the probability simplex after each step, so the residual join stays a convex
combination under RAT (other defenses leave them free, as the reference code does).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evrobust.models.layers import ConvexCombination

DEFAULT_BETA = 5e-4
ROW_SAMPLE_THRESHOLD = 200
ROW_SAMPLE_FRACTION = 0.3


def _retract(w: Tensor, beta: float) -> Tensor:
    """One retraction step on a matrix ``w`` ``[rows, cols]``; returns the new matrix."""
    # (W W^T) W for wide matrices, W (W^T W) for tall ones: the inner Gram matrix is the small one.
    wt = w.transpose(0, 1)
    cubic = (w @ wt) @ w if w.shape[0] <= w.shape[1] else w @ (wt @ w)
    return (1.0 + beta) * w - beta * cubic


@torch.no_grad()
def parseval_retraction(
    model: nn.Module,
    beta: float = DEFAULT_BETA,
    row_fraction: float = ROW_SAMPLE_FRACTION,
    row_threshold: int = ROW_SAMPLE_THRESHOLD,
    generator: torch.Generator | None = None,
) -> None:
    """Apply one Parseval retraction step in place to every ``nn.Conv2d``/``nn.Linear`` weight in ``model``.

    Args:
        model: the network (a DDP wrapper works too: its submodules are visited).
        beta: retraction strength (5e-4 in this project, following the brief's RAT setting).
        row_fraction: share of rows updated in large linear layers.
        row_threshold: linear layers with at least this many rows use row sampling.
        generator: RNG for the row choice (default: the global torch RNG, saved in checkpoints).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            weight = module.weight
            flat = weight.reshape(weight.shape[0], -1)
            weight.copy_(_retract(flat, beta).reshape(weight.shape))
        elif isinstance(module, nn.Linear):
            weight = module.weight
            rows = weight.shape[0]
            if rows < row_threshold:
                weight.copy_(_retract(weight, beta))
            else:
                chosen = torch.randperm(rows, generator=generator)[: int(rows * row_fraction)]
                chosen = chosen.to(weight.device)
                weight[chosen] = _retract(weight[chosen], beta)
        elif isinstance(module, ConvexCombination):
            module.comb.copy_(project_to_simplex(module.comb))


def project_to_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of a vector ``v`` ``[n]`` onto ``{w : w >= 0, sum w = 1}`` (sort-based).

    With ``u`` = ``v`` sorted descending, ``k`` = the largest index with ``u_k > (sum_{j<=k} u_j - 1) / k``
    and ``gamma = (sum_{j<=k} u_j - 1) / k``, the projection is ``max(v - gamma, 0)``.
    """
    u = torch.sort(v, descending=True).values
    css = torch.cumsum(u, dim=0) - 1.0
    ks = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    k = int(torch.nonzero(u - css / ks > 0).max()) + 1
    gamma = css[k - 1] / k
    return (v - gamma).clamp_min(0.0)


def orthogonality_error(weight: Tensor) -> float:
    """``|| W W^T - I ||_F`` for a conv or linear weight (conv reshaped to ``[out, in*kh*kw]``)."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    gram = flat @ flat.transpose(0, 1)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return float(torch.linalg.matrix_norm(gram - eye))
