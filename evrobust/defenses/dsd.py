"""Dominant singular deflation (DSD; Zhang, Hu, Min, ICLR 2026; code Apple26419/SNN_DSD ``utils/tvc.py``).

After the backward pass and before the optimizer step, every parameter gradient with at least two
dimensions, viewed as a matrix ``G`` ``[out, rest]`` (a conv kernel ``[out, in, kh, kw]`` becomes
``[out, in*kh*kw]``), loses its top singular component: ``G <- G - s_1 u_1 v_1^T``. One-dimensional
gradients (biases, BatchNorm scales and shifts, DLIF input gains, WRN residual weights) are left alone,
as the reference's ``grad.dim() < 2`` test does. No hyper-parameters.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

ZERO_NORM = 1e-8
"""Gradients with a Frobenius norm below this are left unchanged (the reference's guard, tvc.py line 195)."""


def deflate_dominant(grad: Tensor) -> Tensor:
    """``G - s_1 u_1 v_1^T`` of ``grad`` viewed as ``[shape[0], numel / shape[0]]``; same shape as ``grad``.

    Tensors with fewer than two dimensions and (near-)zero matrices come back unchanged. The SVD runs in
    float32 at least (bf16/fp16 gradients are promoted and cast back).
    """
    if grad.dim() < 2:
        return grad
    matrix = grad.reshape(grad.shape[0], -1)
    if float(torch.linalg.matrix_norm(matrix.float())) < ZERO_NORM:
        return grad
    work = matrix if matrix.dtype in (torch.float32, torch.float64) else matrix.float()
    try:
        u, s, vh = torch.linalg.svd(work, full_matrices=False)
    except RuntimeError as exc:  # an ill-conditioned matrix the solver cannot handle: leave it, say so
        log.warning("DSD: SVD of a %s gradient failed (%s); left undeflated", tuple(grad.shape), exc)
        return grad
    deflated = work - s[0] * torch.outer(u[:, 0], vh[0, :])
    return deflated.to(grad.dtype).reshape(grad.shape)


@torch.no_grad()
def dominant_singular_deflation(model: nn.Module) -> int:
    """Deflate, in place, the ``.grad`` of every parameter of ``model`` with ``dim >= 2``.

    Returns:
        the number of gradients deflated.
    """
    count = 0
    for param in model.parameters():
        if param.grad is not None and param.grad.dim() >= 2:
            param.grad.copy_(deflate_dominant(param.grad))
            count += 1
    return count
