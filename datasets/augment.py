"""Batched training augmentation as tensor ops on a whole batch (no per-sample Python loop).

* Images ``[N, C, H, W]``: random crop with 4-pixel zero padding, then horizontal flip with p = 0.5 (the CIFAR
  recipe of the paper's Appendix D).
* Event frames ``[N, T, 2, H, W]``: horizontal flip with p = 0.5, then ONE of three operations drawn uniformly
  per sample, as the authors' CIFAR10-DVS loader does (its ``function_nda`` with M = 1, N = 2): a roll by
  integer offsets in [-5, 5] along H and W (wrapping around), a rotation by an angle uniform in [-30, 30]
  degrees (nearest neighbour, zero fill; the same angle for all T frames), or a cutout of one square of side
  16 centred at a uniform pixel and clipped at the border. All T frames of a sample get the same transform.

Both functions take an optional ``torch.Generator`` so that runs are reproducible, and return a new tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROLL_MAX = 5
ROTATE_DEG = 30.0
CUTOUT_SIDE = 16
OPS = ("roll", "rotate", "cutout")


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator).to(device)


def _randint(
    low: int, high: int, n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return torch.randint(low, high, (n,), generator=generator).to(device)


def crop_flip(
    x: torch.Tensor, offsets_y: torch.Tensor, offsets_x: torch.Tensor, flip: torch.Tensor, pad: int = 4
) -> torch.Tensor:
    """Crop ``[N, C, H, W]`` from the zero-padded batch at per-sample offsets in ``[0, 2*pad]``, then flip.

    ``offsets_y``/``offsets_x`` are int ``[N]``; ``flip`` is bool ``[N]`` (mirror along W).
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets_y.view(n, 1) + torch.arange(h, device=x.device).view(1, h)  # [N, H]
    cols = offsets_x.view(n, 1) + torch.arange(w, device=x.device).view(1, w)  # [N, W]
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    # Gather rows then columns: [N, C, Hp, Wp] -> [N, C, H, Wp] -> [N, C, H, W].
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, x.shape[1], h, padded.shape[3]))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, x.shape[1], h, w))


def augment_images(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) + horizontal flip of an image batch ``[N, C, H, W]``."""
    n = x.shape[0]
    oy = _randint(0, 2 * pad + 1, n, generator, x.device)
    ox = _randint(0, 2 * pad + 1, n, generator, x.device)
    flip = _rand(n, generator, x.device) < 0.5
    return crop_flip(x, oy, ox, flip, pad)


def roll_frames(x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
    """Per-sample ``torch.roll`` of ``[N, ..., H, W]`` by ``shift_y``/``shift_x`` (int ``[N]``) on H, W."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    lead = x.shape[1:-2]
    # torch.roll: out[i] = in[(i - s) mod size].
    rows = (torch.arange(h, device=x.device).view(1, h) - shift_y.view(n, 1)) % h
    cols = (torch.arange(w, device=x.device).view(1, w) - shift_x.view(n, 1)) % w
    flat = x.reshape(n, -1, h, w)
    c = flat.shape[1]
    out = flat.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    return out.reshape(n, *lead, h, w)


def rotate_frames(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate ``[N, ..., H, W]`` about the centre by ``degrees`` ``[N]`` (anticlockwise, nearest, 0 fill)."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    flat = x.reshape(n, -1, h, w)
    theta = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output coordinates to input ones; a counter-clockwise image rotation by theta samples
    # the input at the output point rotated by -theta (y grows downwards in the grid). Square inputs only use
    # the pure rotation; for H != W the normalised coordinates are rescaled to keep angles true.
    ar = w / h
    mat = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    mat[:, 0, 0] = cos
    mat[:, 0, 1] = -sin / ar
    mat[:, 1, 0] = sin * ar
    mat[:, 1, 1] = cos
    grid = F.affine_grid(mat, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype).reshape(x.shape)


def cutout_frames(
    x: torch.Tensor, centre_y: torch.Tensor, centre_x: torch.Tensor, side: int = CUTOUT_SIDE
) -> torch.Tensor:
    """Zero a ``side``-square per sample centred at (``centre_y``, ``centre_x``), clipped at the border.

    The square covers rows ``[cy - side//2, cy + side//2)`` and the same for columns, as in the reference
    Cutout.
    """
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    cy, cx = centre_y.view(n, 1, 1), centre_x.view(n, 1, 1)
    half = side // 2
    inside = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)  # [N, H, W]
    keep = (~inside).to(x.dtype).view(n, *([1] * (x.dim() - 3)), h, w)
    return x * keep


def augment_frames(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip + one of {roll, rotate, cutout} per sample, on event frames ``[N, T, 2, H, W]`` in [0, 1]."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    dev = x.device
    flip = _rand(n, generator, dev) < 0.5
    op = _randint(0, len(OPS), n, generator, dev)
    shifts = _randint(-ROLL_MAX, ROLL_MAX + 1, 2 * n, generator, dev)
    angles = (_rand(n, generator, dev) * 2.0 - 1.0) * ROTATE_DEG
    cy = _randint(0, h, n, generator, dev)
    cx = _randint(0, w, n, generator, dev)
    view = [n] + [1] * (x.dim() - 1)
    x = torch.where(flip.view(view), x.flip(-1), x)
    rolled = roll_frames(x, shifts[:n], shifts[n:])
    rotated = rotate_frames(x, angles)
    cut = cutout_frames(x, cy, cx)
    # Computing all three and selecting is cheaper than three masked gathers for the batch sizes used here.
    return torch.where((op == 0).view(view), rolled, torch.where((op == 1).view(view), rotated, cut))
