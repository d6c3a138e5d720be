"""The display half of the CIFAR10-DVS recording emulator: motion, LCD refresh, imaging onto the sensor.

CIFAR10-DVS (Li et al. 2017, Front. Neurosci. 11:309) was recorded by upscaling each 32x32 CIFAR-10 image to
512x512 by bicubic interpolation, showing it on a 24" LCD monitor and moving it along a repeated closed loop
in front of a 128x128 DVS (the release README says so). This module turns one image into the sequence of
sensor images the DVS saw, one per screen refresh:

1. **Motion.** The image moves along a diamond (a square turned by 45 degrees) around its rest position:
   vertices ``(+s, 0), (0, +s), (-s, 0), (0, -s)`` screen pixels, ``s = step_px``, travelled at
   ``speed_px_s`` screen pixels per second along the path, ``n_loops`` times. The recording lasts
   ``n_loops * perimeter / speed`` seconds (``perimeter = 4 * sqrt(2) * s``), rounded to whole refreshes.
2. **Refresh.** The monitor shows a new picture every ``1 / refresh_hz`` seconds (60 Hz) and holds it in
   between, at whole screen pixels (the path position at the refresh instant, rounded): the motion reaches
   the sensor as steps, as on an LCD.
3. **Upscaling.** Bicubic interpolation 32 -> 512 (Keys' cubic with a = -0.5, the kernel of MATLAB's and
   PIL's ``bicubic``; half-sample-symmetric borders as MATLAB's ``imresize``), on grey levels (the RGB image
   through the ITU-R 601 luma weights; both steps are linear, so the order does not matter).
4. **Imaging.** The 512x512 screen image covers ``image_size_px`` sensor pixels (centred; 128 = the image
   just fills the 128x128 sensor at rest). Each sensor pixel averages the screen over its square footprint
   (box filter; no further lens blur); outside the image the screen shows the grey level ``background``.
   Upscaling and imaging are linear and separable, so they are applied as two small matrices per axis,
   ``[n_sensor, 32 + 1]`` (the extra column carries the background), never as a 512x512 picture.
5. **Luminance.** The grey level ``v`` (clipped to [0, 1], after resampling) becomes relative luminance
   ``black_level + (1 - black_level) * v ** display_gamma``: the LCD's gamma curve, and the light of a black
   screen (backlight leakage and room light reflected by the panel), which bounds the log contrast.

The result is ``[K, H, W]`` log luminance (natural log), one sensor image per refresh, for the pixel model
of :mod:`evrobust.preprocess.emulator_pixel`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

__all__ = ["diamond_offsets", "render_log_frames", "upscale_matrix"]

SCREEN_PX = 512  # the recording upscaled every image to 512x512 (CIFAR10-DVS README)
BICUBIC_A = -0.5  # Keys (1981); MATLAB imresize and PIL use -0.5 (OpenCV uses -0.75)


def _keys_cubic(x: np.ndarray, a: float = BICUBIC_A) -> np.ndarray:
    """Keys' cubic convolution kernel at offsets ``x`` (support [-2, 2])."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (a + 2) * ax3 - (a + 3) * ax2 + 1
    far = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return np.where(ax <= 1, near, np.where(ax < 2, far, 0.0))


@lru_cache(maxsize=8)
def upscale_matrix(src: int, dst: int = SCREEN_PX) -> np.ndarray:
    """``[dst, src]`` float64 matrix of bicubic upscaling along one axis (rows sum to 1).

    Output sample ``j`` sits at source coordinate ``(j + 0.5) * src / dst - 0.5``; taps that fall outside
    ``[0, src)`` are mirrored back (half-sample symmetric), as MATLAB's ``imresize`` does.
    """
    pos = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    base = np.floor(pos).astype(np.int64)
    out = np.zeros((dst, src))
    for tap in range(-1, 3):
        idx = base + tap
        w = _keys_cubic(pos - idx)
        idx = np.where(idx < 0, -idx - 1, idx)  # half-sample symmetric borders
        idx = np.where(idx >= src, 2 * src - 1 - idx, idx)
        np.add.at(out, (np.arange(dst), idx), w)
    out /= out.sum(axis=1, keepdims=True)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=8)
def _prefix_tables(src: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P, U')``: prefix sums ``[SCREEN_PX + 1, src]`` of the upscale rows; the rows plus a zero row."""
    up = upscale_matrix(src)
    prefix = np.zeros((SCREEN_PX + 1, src))
    np.cumsum(up, axis=0, out=prefix[1:])
    return prefix, np.vstack([up, np.zeros((1, src))])


def _axis_weights(n_sensor: int, src: int, image_size_px: float, offset: float) -> np.ndarray:
    """``[n_sensor, src + 1]`` weights: sensor pixel <- source pixels (bicubic then box) and background.

    The screen image (``SCREEN_PX`` wide) is displaced by ``offset`` screen pixels; its centre at rest
    falls on the sensor's centre. Sensor pixel ``i`` covers screen coordinates ``[a, a + m)`` with
    ``m = SCREEN_PX / image_size_px`` and ``a = SCREEN_PX / 2 + (i - n_sensor / 2) * m``.
    """
    m = SCREEN_PX / image_size_px
    lo = SCREEN_PX / 2 + (np.arange(n_sensor) - n_sensor / 2) * m - offset  # image coordinates
    # The screen is piecewise constant over whole screen pixels: the box average over [lo, hi) is a
    # difference of the running integral I(x) = P[floor x] + frac(x) * U[floor x], P = prefix sums of U.
    prefix, padded = _prefix_tables(src)

    def integral(x: np.ndarray) -> np.ndarray:
        xc = np.clip(x, 0.0, float(SCREEN_PX))
        j = np.floor(xc).astype(np.int64)
        return prefix[j] + (xc - j)[:, None] * padded[j]

    out = np.empty((n_sensor, src + 1))
    out[:, :src] = (integral(lo + m) - integral(lo)) / m
    inside = (np.clip(lo + m, 0, SCREEN_PX) - np.clip(lo, 0, SCREEN_PX)) / m
    out[:, src] = 1.0 - inside
    return out


def diamond_offsets(
    n_loops: int, step_px: float, speed_px_s: float, refresh_hz: float
) -> tuple[np.ndarray, float]:
    """The image's displacement at every screen refresh of the recording.

    Returns ``(offsets, duration_s)``: ``offsets`` ``[K, 2]`` int64 screen pixels ``(dx, dy)`` (dx to the
    right, dy down), refresh ``k`` shown from ``k / refresh_hz`` to ``(k + 1) / refresh_hz``, and the
    recording's duration ``K / refresh_hz`` with ``K = round(n_loops * perimeter / speed * refresh_hz)``
    (at least 1). With ``step_px == 0`` the image stands still.
    """
    perimeter = 4.0 * math.sqrt(2.0) * step_px
    duration = n_loops * perimeter / speed_px_s
    k = max(1, round(duration * refresh_hz))
    if step_px == 0:
        return np.zeros((k, 2), np.int64), k / refresh_hz
    s = (np.arange(k) / refresh_hz * speed_px_s) % perimeter
    edge = np.minimum((s // (perimeter / 4)).astype(np.int64), 3)
    frac = (s - edge * (perimeter / 4)) / (perimeter / 4)
    vx = np.array([1.0, 0.0, -1.0, 0.0, 1.0]) * step_px
    vy = np.array([0.0, 1.0, 0.0, -1.0, 0.0]) * step_px
    x = vx[edge] + (vx[edge + 1] - vx[edge]) * frac
    y = vy[edge] + (vy[edge + 1] - vy[edge]) * frac
    return np.stack([np.rint(x), np.rint(y)], axis=1).astype(np.int64), k / refresh_hz


def render_log_frames(
    gray: np.ndarray,
    offsets: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    image_size_px: float,
    background: float,
    display_gamma: float,
    black_level: float,
) -> np.ndarray:
    """Log luminance seen by every sensor pixel at every refresh (see the module docstring).

    Args:
        gray: ``[h, w]`` float64 grey levels in [0, 1] (the 32x32 image).
        offsets: ``[K, 2]`` screen-pixel displacements ``(dx, dy)`` per refresh.
        sensor_size: ``(W, H)`` sensor pixels.
        image_size_px: sensor pixels covered by the 512-px screen image (both axes).
        background: screen grey level outside the image, in [0, 1].
        display_gamma, black_level: the luminance curve ``black + (1 - black) * v ** gamma``.

    Returns:
        ``[K, H, W]`` float64 natural-log relative luminance.
    """
    w, h = sensor_size
    ih, iw = gray.shape
    padded = np.full((ih + 1, iw + 1), float(background))
    padded[:ih, :iw] = gray
    wx = {int(d): _axis_weights(w, iw, image_size_px, float(d)) for d in np.unique(offsets[:, 0])}
    wy = {int(d): _axis_weights(h, ih, image_size_px, float(d)) for d in np.unique(offsets[:, 1])}
    out = np.empty((offsets.shape[0], h, w))
    for k, (dx, dy) in enumerate(offsets.tolist()):
        np.matmul(wy[dy] @ padded, wx[dx].T, out=out[k])
    _to_log_luminance(out.reshape(-1), _log_luminance_table(float(display_gamma), float(black_level)))
    return out


LUT_SIZE = 1 << 16  # grey-level steps of the luminance table; linear interpolation error < 1e-8 log units


@lru_cache(maxsize=4)
def _log_luminance_table(display_gamma: float, black_level: float) -> np.ndarray:
    """``log(black + (1 - black) * v ** gamma)`` at ``v = j / LUT_SIZE``, ``j = 0..LUT_SIZE`` (+1 pad)."""
    v = np.arange(LUT_SIZE + 2) / LUT_SIZE
    table = np.log(black_level + (1.0 - black_level) * np.minimum(v, 1.0) ** display_gamma)
    table.setflags(write=False)
    return table


@njit(cache=True, nogil=True)
def _to_log_luminance(values: np.ndarray, table: np.ndarray) -> None:
    """In place: grey level (clipped to [0, 1]) -> log luminance by linear interpolation in ``table``.

    A table instead of ``pow`` and ``log`` per sample: 1.3 million samples per recording made those two
    calls most of the rendering time.
    """
    n_steps = table.shape[0] - 2
    for j in range(values.shape[0]):
        x = min(max(values[j], 0.0), 1.0) * n_steps
        k = int(x)
        f = x - k
        values[j] = table[k] * (1.0 - f) + table[k + 1] * f
