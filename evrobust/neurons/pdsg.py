"""PDSG: potential-dependent surrogate gradient (Lun et al., CVPR 2025), the math of a crafting-only spec.

Lun, Feng, Ni, Liang, Wang, Li, Yu, Cui: "Towards Effective and Sparse Adversarial Attack on Spiking Neural
Networks via Breaking Invisible Surrogate Gradients", CVPR 2025 (code: ryime/PDSG-SDA, ``utils/attack.py``:
``PDSG``, ``surrogate_func`` and ``PDSG_LIFNode``). The surrogate is a normalised Gaussian whose width follows
the spread of the layer's own membrane potential on the input under attack, so an attack gets a gradient of
the right scale whatever the layer's potential range (a fixed-width surrogate can be far too narrow or too
wide for a given layer, which hides the gradient from the attacker).

The formula implemented here, for an IF layer with potentials ``u [T, N, C, ...]`` (before spike and reset)
and ``v = u - theta``::

    sigma[t, c] = std{ u[s, n, c, ...] : s <= t, every sample n, every spatial position }   (Bessel, n - 1)
    sigma       = 1 where that std is 0 or undefined (a single value)
    dS/dU[t]    = exp(-(v - sigma/2)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)      (sigma of channel c, step t)

That is the density of a normal distribution with mean ``sigma/2`` and standard deviation ``sigma`` (area 1,
peak ``1 / (sqrt(2 pi) sigma)`` at ``u = theta + sigma/2``): centred half a width *above* the threshold. The
statistics are *time-accumulated*: at step ``t`` they pool the steps ``0 .. t`` (the reference's comment cites
time-accumulated batch normalisation). ``sigma`` carries no gradient (the reference computes it under
``no_grad`` from detached potentials) and is in units of membrane potential, like ``v``. For ``[T, N, F]``
(a linear layer) every feature ``F`` is a channel; for ``[T, N]`` or ``[T]`` the whole layer is one channel.
There is no free parameter: the spec is written ``pdsg``.

The whole membrane trace is known when the backward runs (the native kernel keeps ``u [T, ...]`` for BPTT), so
the causal, time-accumulated statistics are computed there exactly, per step, from the same potentials the
reference would have collected step by step; nothing is kept between forward passes. The statistics pool the
batch the neuron sees, so one sample's gradient depends on the other samples of the attacked batch (as in the
reference): the spec is crafting-only (:data:`evrobust.neurons.spec.CRAFTING_MODES`).

Where this differs from the reference, on purpose:

* The channel axis is always axis 2 of ``[T, N, C, ...]``. The reference guesses it from the shape of one
  step: a 4-D step with square maps is per channel (the same as ours), a 4-D step with non-square maps is
  taken as a transformer layer and reduced per axis 3, and any other rank is reduced per last axis (the same
  as ours for ``[T, N, F]``).
* The reference replaces only ``sigma == 0`` by 1; a single value per channel (one sample, one position, at
  ``t = 0``) gives an undefined (NaN) unbiased std there, which would poison the whole input gradient. Here
  every non-finite or zero ``sigma`` becomes 1.
* The neuron dynamics are evrobust's (IF/LIF with hard reset, ``H(0) = 1``, reset kept in the BPTT graph);
  the reference runs spikingjelly-style LIF (tau = 2, no input decay, hard reset, reset not detached) with the
  same ``>= 0`` spike and the same undetached reset, so only the neuron model, not the estimator, differs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PDSG_SHIFT", "pdsg_grad", "pdsg_sigma"]

PDSG_SHIFT = 0.5
"""Offset of the Gaussian's centre above the threshold, in units of its width ``sigma``."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def pdsg_sigma(u: Tensor) -> Tensor:
    """Time-accumulated per-channel standard deviation of the potentials ``u``, without autograd.

    Args:
        u: membrane potentials before reset, ``[T, N, C, ...]`` (or ``[T, N]``, ``[T]``: one channel), in
            units of membrane potential.

    Returns:
        ``sigma`` with ``sigma[t]`` broadcastable against ``u[t]``: ``[T, 1, C, 1, ...]`` for ``[T, N, C,
        ...]``, ``[T, 1]`` for ``[T, N]``, ``[T]`` for ``[T]``; dtype of ``u``. ``sigma[t, 0, c]`` is the
        unbiased std of ``u[0..t, :, c, ...]`` (all samples and positions of channel ``c`` up to step
        ``t``), replaced by 1 where it is 0 or undefined.
    """
    T = u.shape[0]
    # View as [T, A, C, B]: A = samples, C = channels, B = positions; for [T, N] and [T] one channel.
    if u.dim() >= 3:
        grouped = u.reshape(T, u.shape[1], u.shape[2], -1)
        shape = (T, 1, u.shape[2], *([1] * (u.dim() - 3)))
    else:
        grouped = u.reshape(T, -1, 1, 1)
        shape = (T,) + (1,) * (u.dim() - 1)
    with torch.no_grad():
        # Per step: mean and sum of squared deviations of each channel (n values each), then Chan's pairwise
        # combination folds the steps 0..t together; the running moments of [T, C] live in float64.
        var, mean = torch.var_mean(grouped.detach(), dim=(1, 3), correction=0)
        n = grouped.shape[1] * grouped.shape[3]
        mean = mean.double()
        m2 = var.double() * n
        sigma = torch.empty_like(mean)
        run_mean = torch.zeros_like(mean[0])
        run_m2 = torch.zeros_like(mean[0])
        count = 0
        for t in range(T):
            total = count + n
            delta = mean[t] - run_mean
            run_mean = run_mean + delta * (n / total)
            run_m2 = run_m2 + m2[t] + delta.square() * (count * n / total)
            count = total
            # one value in all (total = 1): undefined (NaN), caught below like a zero spread
            sigma[t] = (run_m2 / (total - 1)).sqrt() if total > 1 else math.nan
        good = torch.isfinite(sigma) & (sigma > 0)
        sigma = torch.where(good, sigma, torch.ones_like(sigma))
    return sigma.to(u.dtype).reshape(shape)


def pdsg_grad(v: Tensor, sigma: Tensor | float) -> Tensor:
    """PDSG surrogate ``exp(-(v - sigma/2)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)`` at ``v = u - theta``.

    The normal density with mean ``sigma/2`` and standard deviation ``sigma`` (area 1). ``sigma`` (> 0, units
    of membrane potential) broadcasts against ``v`` (e.g. ``[1, C, 1, 1]`` from :func:`pdsg_sigma` for one
    step); the result has ``v``'s shape after broadcasting.
    """
    z = (v - PDSG_SHIFT * sigma) / sigma
    return torch.exp(-0.5 * z.square()) * _INV_SQRT_2PI / sigma
