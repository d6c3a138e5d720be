"""Spatial resizing of count frames (CIFAR10-DVS default: 128x128 -> 48x48).

Two ways to combine pixels, both acting on the last two axes ``[..., H, W]`` (typically ``[T, 2, H, W]``):

``method="area"`` (default) -- exact area weighting
    Lay the source and target grids over the same square. Every source pixel spreads its count over the
    target pixels it overlaps, in proportion to the overlapped area. Per axis, with source length ``S``
    and target length ``R``, source pixel ``i`` spans ``[i*R, (i+1)*R)`` and target pixel ``a`` spans
    ``[a*S, (a+1)*S)`` in units of ``1/(S*R)`` of the side; the integer overlap ``O[a, i]`` gives the share
    ``O[a, i] / R``. So ``out = (O_y @ F @ O_x^T) / (R_y * R_x)``, computed as an integer-valued float64
    product (exact below 2**53) and divided once, then rounded to float32. For 128 -> 48 each source pixel
    goes 1, 2/3 + 1/3 or 1/3 + 2/3 to one or two target pixels per axis; each target pixel gathers
    (8/3)^2 = 7.1 source pixels' worth, the same for every target pixel (no fixed-pattern stripes).
    The total count is preserved (up to the one float32 rounding per pixel); for an integer factor
    (128 -> 64, 128 -> 32) it is the plain box sum and the values are whole numbers. Upsampling works too.
    Returns float32.

``method="bin"`` -- nearest-bin accumulation (downsampling only)
    Source pixel ``i`` goes wholly to target pixel ``floor(i * R / S)``. Integer in, int32 out, counts
    preserved exactly; identical to binning the *events* with :func:`resize_events` before
    :func:`~evrobust.preprocess.frames.events_to_frames`. For non-integer factors the target pixels gather
    unequal numbers of source pixels (2 or 3 per axis for 128 -> 48), which shows as a fixed stripe
    pattern in dense frames; prefer ``area`` unless integer counts are required.

Sizes are ``(W, H)`` pairs or one int for a square target.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from evrobust.errors import UserInputError

from .events import as_events, check_sensor_size

__all__ = ["RESIZE_METHODS", "area_weights", "resize_events", "resize_frames"]

RESIZE_METHODS = ("area", "bin")


def _target_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        return check_sensor_size((int(size), int(size)), "size")
    return check_sensor_size(size, "size")  # type: ignore[arg-type]


@lru_cache(maxsize=64)
def _overlap(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` float64 matrix of integer overlaps ``O[a, i]`` (units of 1/(src*dst) of the side)."""
    a = np.arange(dst)[:, None]
    i = np.arange(src)[None, :]
    lo = np.maximum(i * dst, a * src)
    hi = np.minimum((i + 1) * dst, (a + 1) * src)
    out = np.clip(hi - lo, 0, None).astype(np.float64)
    out.setflags(write=False)
    return out


def area_weights(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` float64 share of source pixel ``i`` landing in target pixel ``a`` (columns sum to 1)."""
    if src < 1 or dst < 1:
        raise UserInputError(f"area_weights: sizes must be positive, got src={src}, dst={dst}")
    return _overlap(int(src), int(dst)) / dst


def _bin_starts(src: int, dst: int) -> np.ndarray:
    """First source index of each target bin under ``a = floor(i * dst / src)`` (needs dst <= src)."""
    return np.searchsorted(np.arange(src) * dst // src, np.arange(dst), side="left")


def resize_frames(
    frames: np.ndarray, size: int | tuple[int, int] = 48, method: str = "area"
) -> np.ndarray:
    """Resize the last two axes ``[..., H, W]`` of ``frames`` to ``size = (W', H')`` (or ``size`` x ``size``).

    Returns ``[..., H', W']``: float32 for ``method="area"``, int32 for ``method="bin"``. See the module
    docstring for the exact rules. Raises :class:`UserInputError` for a bad method, size or input.
    """
    if method not in RESIZE_METHODS:
        raise UserInputError(f"unknown resize method {method!r}; choose one of {', '.join(RESIZE_METHODS)}")
    arr = np.asarray(frames)
    if arr.ndim < 2:
        raise UserInputError(f"resize_frames: frames need at least 2 axes [..., H, W], got shape {arr.shape}")
    if arr.dtype.kind not in "iuf" or arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise UserInputError(
            f"resize_frames: expected non-empty numeric frames [..., H, W], got {arr.dtype} {arr.shape}"
        )
    h, w = arr.shape[-2:]
    tw, th = _target_size(size)
    if method == "area":
        oy = _overlap(h, th)
        ox = _overlap(w, tw)
        lead = arr.shape[:-2]
        flat = arr.reshape(-1, h, w).astype(np.float64)
        out = np.matmul(np.matmul(oy, flat), ox.T) / float(th * tw)
        return out.astype(np.float32).reshape(*lead, th, tw)
    if arr.dtype.kind == "f":
        raise UserInputError("resize_frames: method='bin' sums integer counts; got float frames (use 'area')")
    if th > h or tw > w:
        raise UserInputError(
            f"resize_frames: method='bin' only downsamples, {w}x{h} -> {tw}x{th} (use method='area')"
        )
    out = np.add.reduceat(arr, _bin_starts(h, th), axis=-2, dtype=np.int32)
    return np.add.reduceat(out, _bin_starts(w, tw), axis=-1, dtype=np.int32)


def resize_events(
    events: np.ndarray, sensor_size: tuple[int, int], size: int | tuple[int, int] = 48
) -> np.ndarray:
    """Map event coordinates from ``sensor_size = (W, H)`` to ``size`` by the ``bin`` rule ``x' = x*W'//W``.

    Returns a new :data:`~evrobust.preprocess.events.EVENT_DTYPE` array; ``events_to_frames`` of the result
    on the target grid equals ``resize_frames(..., method="bin")`` of the full-size frames.
    """
    w, h = check_sensor_size(sensor_size)
    tw, th = _target_size(size)
    if tw > w or th > h:
        raise UserInputError(f"resize_events: only downsampling is defined, {w}x{h} -> {tw}x{th}")
    ev = as_events(events).copy()
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    if ev.shape[0] and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h):
        raise UserInputError(f"resize_events: events lie outside the {w}x{h} sensor (W x H)")
    ev["x"] = x * tw // w
    ev["y"] = y * th // h
    return ev
