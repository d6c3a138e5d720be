"""Image -> event emulator: a static image moved along a small closed loop in front of an emulated DVS.

CIFAR10-DVS was recorded by showing each CIFAR-10 image on a monitor and moving it along a small closed
loop in front of a DVS128. This module emulates that, for the embedded ``digits-dvs`` data and for building
CIFAR10-DVS-shaped raw directories in tests:

1. The image becomes grey levels ``I`` in [0, 1] (uint8 / 255; RGB through the ITU-R 601 luma weights
   0.299, 0.587, 0.114) and is scaled by ``upscale`` (default: the largest scale that fits the sensor)
   and centred on the sensor.
2. For ``k = 0..n_steps`` the image is displaced by ``amplitude_px * (cos(2 pi k / n_steps),
   sin(2 pi k / n_steps))`` sensor pixels -- one circle, so step ``n_steps`` is back at the start -- and
   rendered by bilinear sampling at the pixel centres. Outside the image the sensor sees ``background``
   (``None``: the image's border pixels extended, so only the image content produces events; a number:
   a uniform grey level, so the image's outline produces events too).
3. Every pixel works on the log intensity ``L = log(I + log_eps)`` and remembers the level ``ref`` at
   which it last fired (initially ``L`` at step 0). Whenever ``|L - ref|`` reaches the pixel's contrast
   threshold ``C``, it emits ``n = floor(|L - ref| / C)`` events (computed with a relative 1e-9 slack for
   float rounding, so a return exactly onto a level it left fires) of polarity ``1`` (brighter, ON) or
   ``0`` (darker, OFF) and moves ``ref`` by ``n * C`` towards ``L``. Per-pixel thresholds are
   ``C = threshold * (1 + threshold_sigma * z)``, ``z`` standard normal from ``seed`` (fixed-pattern
   mismatch of a real sensor), floored at ``0.01``.
4. Step ``k`` happens at ``t_k = round(k * duration_us / n_steps)``; the ``j``-th crossing between steps
   ``k-1`` and ``k`` gets the time where the linearly interpolated log intensity reaches its level. Events
   are returned sorted by time (ties in pixel order: row, then column).

Events are in image orientation (x = column, y = row, 0 at the top-left; p = 1 ON), i.e. the
``spikingjelly`` / ``jaer`` conventions of :mod:`evrobust.preprocess.orientation`, which is what
:func:`make_raw_cifar10dvs_dir` writes so that reading the files back with
:data:`~evrobust.preprocess.orientation.CIFAR10DVS_ORIENTATION` returns exactly these events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numba import njit

from evrobust.errors import UserInputError

from .aedat2 import write_aedat2
from .events import EVENT_DTYPE, check_sensor_size
from .orientation import CIFAR10DVS_ORIENTATION, orientation_flags

__all__ = ["emulate_events", "make_raw_cifar10dvs_dir", "to_gray"]

logger = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114])


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``, ``[1, H, W]`` or ``[3, H, W]`` -> float64 ``[H, W]`` grey levels in [0, 1]."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise UserInputError(f"emulate_events: expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img[0] if img.shape[0] == 1 else np.tensordot(_LUMA, img.astype(np.float64), axes=1)
    if img.ndim != 2 or img.shape[0] == 0 or img.shape[1] == 0:
        raise UserInputError(
            f"emulate_events: expected an image [H, W], [1, H, W] or [3, H, W], got shape {np.shape(image)}"
        )
    return img.astype(np.float64) / 255.0


@njit(cache=True, nogil=True)
def _render_log(
    gray: np.ndarray,
    w: int,
    h: int,
    scale: float,
    ox: float,
    oy: float,
    background: float,
    log_eps: float,
    out: np.ndarray,
) -> None:
    """Bilinear render of ``gray`` (placed at ``(ox, oy)``, ``scale`` sensor px per image px) into ``out``
    ``[h, w]`` as ``log(I + log_eps)``. ``background < 0`` means clamp-to-edge outside the image."""
    ih, iw = gray.shape
    for sy in range(h):
        v = (sy + 0.5 - oy) / scale - 0.5
        for sx in range(w):
            u = (sx + 0.5 - ox) / scale - 0.5
            if background >= 0.0 and (u < -0.5 or u > iw - 0.5 or v < -0.5 or v > ih - 0.5):
                val = background
            else:
                uc = min(max(u, 0.0), iw - 1.0)
                vc = min(max(v, 0.0), ih - 1.0)
                u0 = min(int(math.floor(uc)), iw - 1)
                v0 = min(int(math.floor(vc)), ih - 1)
                u1 = min(u0 + 1, iw - 1)
                v1 = min(v0 + 1, ih - 1)
                fu = uc - u0
                fv = vc - v0
                top = gray[v0, u0] * (1.0 - fu) + gray[v0, u1] * fu
                bot = gray[v1, u0] * (1.0 - fu) + gray[v1, u1] * fu
                val = top * (1.0 - fv) + bot * fv
            out[sy, sx] = math.log(val + log_eps)


@njit(cache=True, nogil=True)
def _crossings(
    logs: np.ndarray, thresholds: np.ndarray, times: np.ndarray, out: np.ndarray, fill: bool
) -> int:
    """Count (``fill=False``) or write (``fill=True``) the events of a rendered sequence.

    ``logs`` ``[K+1, H, W]`` log intensities per step, ``thresholds`` ``[H, W]``, ``times`` ``[K+1]``
    int64 us; ``out`` an EVENT_DTYPE array with room for the count. Returns the number of events.
    """
    n_steps = logs.shape[0] - 1
    h = logs.shape[1]
    w = logs.shape[2]
    ref = logs[0].copy()
    k_out = 0
    for k in range(1, n_steps + 1):
        t_prev = times[k - 1]
        span = times[k] - t_prev
        for y in range(h):
            for x in range(w):
                cur = logs[k, y, x]
                c = thresholds[y, x]
                diff = cur - ref[y, x]
                # exact-arithmetic rule |diff| >= n*c; the 1e-9 absorbs float rounding so that a pixel that
                # returns exactly to a level it left (always the case on a closed loop) does fire
                n = int(math.floor(abs(diff) / c + 1e-9))
                if n == 0:
                    continue
                sign = 1.0 if diff > 0 else -1.0
                if fill:
                    prev = logs[k - 1, y, x]
                    delta = cur - prev
                    for j in range(1, n + 1):
                        level = ref[y, x] + sign * j * c
                        frac = 1.0
                        if delta != 0.0:
                            frac = min(max((level - prev) / delta, 0.0), 1.0)
                        e = out[k_out + j - 1]
                        e.t = t_prev + np.int64(round(frac * span))
                        e.x = x
                        e.y = y
                        e.p = 1 if sign > 0 else 0
                ref[y, x] += sign * n * c
                k_out += n
    return k_out


def _resolve_sensor(
    sensor_size: tuple[int, int] | None, sensor: tuple[int, int] | None
) -> tuple[int, int]:
    if sensor is not None and sensor_size is not None and tuple(sensor) != tuple(sensor_size):
        raise UserInputError(f"emulate_events: sensor={sensor} and sensor_size={sensor_size} disagree")
    return check_sensor_size(sensor_size or sensor or (128, 128), "sensor_size")


def emulate_events(
    image: np.ndarray,
    sensor_size: tuple[int, int] | None = None,
    *,
    upscale: float | None = None,
    n_steps: int = 48,
    amplitude_px: float = 2.0,
    threshold: float = 0.2,
    threshold_sigma: float = 0.03,
    duration_us: int = 1_000_000,
    background: float | None = None,
    log_eps: float = 0.05,
    seed: int = 0,
    sensor: tuple[int, int] | None = None,
) -> np.ndarray:
    """Emulate a DVS watching ``image`` move once around a small circle (see the module docstring).

    Args:
        image: uint8 ``[H, W]``, ``[1, H, W]`` or ``[3, H, W]``.
        sensor_size: sensor ``(W, H)``, default 128x128 (``sensor`` is an accepted alias).
        upscale: sensor pixels per image pixel; default the largest scale that fits the sensor.
        n_steps: rendered positions per loop (>= 2).
        amplitude_px: loop radius in sensor pixels (>= 0).
        threshold: mean contrast threshold in log-intensity units (> 0).
        threshold_sigma: relative per-pixel threshold mismatch (>= 0; 0 = identical pixels).
        duration_us: duration of the loop in microseconds (>= n_steps).
        background: grey level in [0, 1] outside the image, or ``None`` to extend the border pixels.
        log_eps: offset inside the logarithm (> 0), so black pixels have a finite log intensity.
        seed: seeds the threshold mismatch; equal arguments give identical events.

    Returns:
        ``[N]`` :data:`~evrobust.preprocess.events.EVENT_DTYPE` events sorted by time, ``t`` in
        ``[0, duration_us]``, on the ``(W, H)`` sensor, p = 1 ON.
    """
    w, h = _resolve_sensor(sensor_size, sensor)
    gray = to_gray(image)
    if not (isinstance(n_steps, int | np.integer) and n_steps >= 2):
        raise UserInputError(f"emulate_events: n_steps must be an integer >= 2, got {n_steps!r}")
    checks = [
        (amplitude_px >= 0, f"amplitude_px must be >= 0, got {amplitude_px}"),
        (threshold > 0, f"threshold must be > 0, got {threshold}"),
        (threshold_sigma >= 0, f"threshold_sigma must be >= 0, got {threshold_sigma}"),
        (log_eps > 0, f"log_eps must be > 0, got {log_eps}"),
        (int(duration_us) >= n_steps, f"duration_us must be >= n_steps ({n_steps}), got {duration_us}"),
        (background is None or 0 <= background <= 1, f"background must be None or in [0, 1]: {background}"),
        (upscale is None or upscale > 0, f"upscale must be > 0, got {upscale}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserInputError(f"emulate_events: {msg}")
    ih, iw = gray.shape
    scale = float(upscale) if upscale is not None else min(w / iw, h / ih)
    ox0 = (w - iw * scale) / 2.0
    oy0 = (h - ih * scale) / 2.0
    rng = np.random.default_rng(seed)
    thresholds = threshold * (1.0 + threshold_sigma * rng.standard_normal((h, w)))
    thresholds = np.maximum(thresholds, 0.01)
    times = np.rint(np.arange(n_steps + 1) * (int(duration_us) / n_steps)).astype(np.int64)
    logs = np.empty((n_steps + 1, h, w), dtype=np.float64)
    bg = -1.0 if background is None else float(background)
    for k in range(n_steps + 1):
        phi = 2.0 * math.pi * (k % n_steps) / n_steps  # step n_steps renders exactly like step 0
        dx = amplitude_px * math.cos(phi)
        dy = amplitude_px * math.sin(phi)
        _render_log(gray, w, h, scale, ox0 + dx, oy0 + dy, bg, float(log_eps), logs[k])
    dummy = np.empty(0, dtype=EVENT_DTYPE)
    n = _crossings(logs, thresholds, times, dummy, False)
    out = np.empty(n, dtype=EVENT_DTYPE)
    _crossings(logs, thresholds, times, out, True)
    # stable sort by time: ties keep the kernel's (step, row, column) order
    return out[np.argsort(out["t"], kind="stable")]


def make_raw_cifar10dvs_dir(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    root: str | Path,
    *,
    prefix: str = "cifar10_",
    orientation: str = CIFAR10DVS_ORIENTATION,
    sensor_size: tuple[int, int] = (128, 128),
    seed: int = 0,
    **emulator: object,
) -> list[Path]:
    """Emulate ``images`` and write them as a CIFAR10-DVS-shaped raw directory of AEDAT 2.0 files.

    Writes ``<root>/<class>/<prefix><class>_<i>.aedat`` (``i`` counts per class from 0, as in the original
    release, e.g. ``airplane/cifar10_airplane_0.aedat``) in the DVS128 address layout, mapped from image
    orientation by ``orientation`` so that ``read_aedat2(path, orientation=orientation)`` returns exactly
    ``emulate_events(images[k], sensor_size, seed=seed + k, **emulator)`` (for a sensor other than 128x128
    pass the raw sensor as ``sensor=`` to the reader too). Every class gets a folder, even an empty one.
    ``images`` is ``[N, H, W]`` or ``[N, C, H, W]`` uint8. Returns the written paths in input order.
    """
    imgs = np.asarray(images)
    labs = np.asarray(labels).reshape(-1)
    if imgs.ndim not in (3, 4) or imgs.shape[0] != labs.shape[0]:
        raise UserInputError(
            f"make_raw_cifar10dvs_dir: images [N, (C,) H, W] and labels [N] must match, got shapes "
            f"{imgs.shape} and {labs.shape}"
        )
    names = [str(c) for c in class_names]
    if len(set(names)) != len(names) or any(not c or "/" in c or c in (".", "..") for c in names):
        raise UserInputError(f"make_raw_cifar10dvs_dir: class names must be distinct folder names: {names}")
    if labs.size and (labs.min() < 0 or labs.max() >= len(names)):
        raise UserInputError(
            f"make_raw_cifar10dvs_dir: labels must lie in [0, {len(names)}), got {labs.min()}..{labs.max()}"
        )
    orientation_flags(orientation)
    w, h = check_sensor_size(sensor_size, "sensor_size")
    raw_sensor = (h, w) if orientation_flags(orientation).swap_xy else (w, h)
    root = Path(root)
    for c in names:
        (root / c).mkdir(parents=True, exist_ok=True)
    counters = dict.fromkeys(range(len(names)), 0)
    paths = []
    for k in range(labs.shape[0]):
        label = int(labs[k])
        events = emulate_events(imgs[k], (w, h), seed=seed + k, **emulator)  # type: ignore[arg-type]
        path = root / names[label] / f"{prefix}{names[label]}_{counters[label]}.aedat"
        counters[label] += 1
        write_aedat2(path, events, layout="dvs128", orientation=orientation, sensor=raw_sensor)
        paths.append(path)
    logger.info("wrote %d emulated recordings under %s", len(paths), root)
    return paths
