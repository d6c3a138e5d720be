"""Orientation conventions: how raw sensor addresses map to image columns, rows and polarities.

A DVS128 AEDAT-2.0 address holds a raw column ``rx = (a & 0xFE) >> 1``, a raw row ``ry = (a & 0x7F00) >> 8``
and a raw polarity bit ``rp = a & 1``. On the DVS128 the bit is 0 for an ON event (brightness up) and the
raw axes are mirrored: jAER's DVS128 extractor shows ``x = 127 - rx`` and ``y = ry`` with y pointing *up*.
The published CIFAR10-DVS pipelines disagree on what to do with this, so the choice is an explicit option:

``raw``
    ``x = rx, y = ry, p = rp`` -- the address fields untouched (p = 1 is OFF on a DVS128).
``jaer``
    ``x = W-1-rx, y = H-1-ry, p = 1-rp`` -- the picture jAER displays for a DVS128, with rows counted
    top-down; p = 1 is ON. (Checked against jAER's DVS128 extractor only; DAVIS chips map differently, so
    use ``raw`` for ``layout="davis"``.)
``spikingjelly`` (the default for CIFAR10-DVS, :data:`CIFAR10DVS_ORIENTATION`)
    ``x = H-1-ry, y = W-1-rx, p = 1-rp`` -- what ``spikingjelly.datasets.cifar10_dvs`` produces
    (``x' = 127 - y, y' = 127 - x, p' = 1 - p``); the transpose of ``jaer``. It is the default because
    most published CIFAR10-DVS results (and their frame tensors) come from that loader, so models and frames
    built here line up with them pixel for pixel. p = 1 is ON.

Each convention is a composition ``flip x, flip y, then swap axes, then flip p`` on the raw sensor
``(W, H)``; a swapping convention turns the sensor size into ``(H, W)``. All three are involutions on square
sensors, and :func:`unorient_events` inverts them in general (the AEDAT writer uses it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evrobust.errors import UserInputError

from .events import EVENT_DTYPE, check_sensor_size

__all__ = [
    "CIFAR10DVS_ORIENTATION",
    "ORIENTATIONS",
    "OrientationFlags",
    "orient_events",
    "orientation_flags",
    "oriented_sensor_size",
    "unorient_events",
]


@dataclass(frozen=True)
class OrientationFlags:
    """The steps of a convention, applied in this order: flip x, flip y (on the raw sensor), swap, flip p."""

    flip_x: bool
    flip_y: bool
    swap_xy: bool
    flip_p: bool


ORIENTATIONS: dict[str, OrientationFlags] = {
    "raw": OrientationFlags(flip_x=False, flip_y=False, swap_xy=False, flip_p=False),
    "jaer": OrientationFlags(flip_x=True, flip_y=True, swap_xy=False, flip_p=True),
    "spikingjelly": OrientationFlags(flip_x=True, flip_y=True, swap_xy=True, flip_p=True),
}

CIFAR10DVS_ORIENTATION = "spikingjelly"


def orientation_flags(orientation: str) -> OrientationFlags:
    """Look up a convention by name; an unknown name raises :class:`UserInputError` listing the choices."""
    try:
        return ORIENTATIONS[orientation]
    except (KeyError, TypeError):
        raise UserInputError(
            f"unknown orientation {orientation!r}; choose one of {', '.join(ORIENTATIONS)}"
        ) from None


def oriented_sensor_size(sensor_size: tuple[int, int], orientation: str) -> tuple[int, int]:
    """Sensor ``(W, H)`` after applying ``orientation`` to a raw sensor of size ``sensor_size``."""
    w, h = check_sensor_size(sensor_size)
    return (h, w) if orientation_flags(orientation).swap_xy else (w, h)


def orient_events(events: np.ndarray, orientation: str, sensor_size: tuple[int, int]) -> np.ndarray:
    """Map raw-address events (on a raw sensor ``(W, H)``) to ``orientation``; returns a new array.

    Coordinates must already lie on the raw sensor (the readers guarantee it).
    """
    flags = orientation_flags(orientation)
    w, h = check_sensor_size(sensor_size)
    out = np.array(events, dtype=EVENT_DTYPE, copy=True)
    x = out["x"].astype(np.int32)
    y = out["y"].astype(np.int32)
    if flags.flip_x:
        x = (w - 1) - x
    if flags.flip_y:
        y = (h - 1) - y
    if flags.swap_xy:
        x, y = y, x
    out["x"] = x
    out["y"] = y
    if flags.flip_p:
        out["p"] = 1 - out["p"]
    return out


def unorient_events(events: np.ndarray, orientation: str, sensor_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`orient_events`: oriented events back to raw address fields.

    ``sensor_size`` is the *raw* sensor ``(W, H)`` (as for :func:`orient_events`).
    """
    flags = orientation_flags(orientation)
    w, h = check_sensor_size(sensor_size)
    out = np.array(events, dtype=EVENT_DTYPE, copy=True)
    x = out["x"].astype(np.int32)
    y = out["y"].astype(np.int32)
    if flags.swap_xy:
        x, y = y, x
    if flags.flip_x:
        x = (w - 1) - x
    if flags.flip_y:
        y = (h - 1) - y
    out["x"] = x
    out["y"] = y
    if flags.flip_p:
        out["p"] = 1 - out["p"]
    return out
