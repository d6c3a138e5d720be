"""Event streams -> fixed numbers of 2-channel count frames (Numba kernels).

``events_to_frames(events, M, sensor_size=(W, H), split_by=...)`` returns ``[M, 2, H, W]`` int32 counts:
``out[j, c, y, x]`` is the number of events of polarity ``c`` at pixel ``(x, y)`` that fall into frame
``j``. Channel 0 holds polarity 0, channel 1 polarity 1. With ``N`` events:

``split_by="number"`` (order-based; what spikingjelly does)
    frame ``j`` holds the events with index ``[j*floor(N/M), (j+1)*floor(N/M))`` in array order, and the
    last frame ``M-1`` also takes the remainder, i.e. runs to ``N``. With ``N < M`` every event lands in
    the last frame.
``split_by="time"``
    with ``t0 = min(t)``, ``D = max(t) - t0`` and ``dt = floor(D/M)``, frame ``j`` holds the events with
    ``t0 + j*dt <= t < t0 + (j+1)*dt`` and the last frame takes every event with ``t >= t0 + (M-1)*dt``,
    which always includes the last event (``t = t0 + D``) and the ``D - M*dt`` remainder. When
    ``D < M`` (``dt = 0``) the first ``M-1`` windows are empty and every event lands in the last frame.
    Frame membership depends on ``t`` only, so the input need not be sorted; for sorted input ``t0`` and
    ``t0 + D`` are the first and last timestamps and the frames equal spikingjelly's.

Empty input gives all-zero frames. A coordinate outside the sensor or a polarity other than 0/1 raises
:class:`~evrobust.errors.UserInputError` naming the first offending event; the check happens inside the
kernel, at no extra pass over the data.

House style: validate -> one pass of a ``nogil`` Numba kernel over the flat field arrays into a
preallocated output -> return, so dask threads can convert many files in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from evrobust.errors import UserInputError

from .events import as_events, check_sensor_size

__all__ = ["SPLIT_BY", "events_to_frames", "frame_bounds"]

SPLIT_BY = ("number", "time")


@njit(cache=True, nogil=True, error_model="numpy")
def _frames_by_number(ev: np.ndarray, n_frames: int, w: int, h: int, out: np.ndarray) -> int:
    """Split ``ev`` (EVENT_DTYPE) by event index into ``out`` (flat ``[M*2*H*W]`` int32).

    Returns the index of the first event outside the sensor / with a bad polarity, or -1. Reading the
    packed records directly is ~25% faster than three strided field views.
    """
    n = ev.shape[0]
    per = n // n_frames
    uw = np.uint64(w)
    uh = np.uint64(h)
    plane = uw * uh
    for j in range(n_frames):
        lo = j * per
        hi = n if j == n_frames - 1 else lo + per
        base = np.uint64(j) * np.uint64(2) * plane
        for i in range(lo, hi):
            e = ev[i]
            # negative coordinates wrap to huge unsigned values: one compare per field checks both ends
            xi = np.uint64(np.int64(e.x))
            yi = np.uint64(np.int64(e.y))
            pi = np.uint64(np.int64(e.p))
            if xi >= uw or yi >= uh or pi > 1:
                return i
            out[base + pi * plane + yi * uw + xi] += 1
    return -1


@njit(cache=True, nogil=True, error_model="numpy")
def _frames_by_time(ev: np.ndarray, n_frames: int, w: int, h: int, out: np.ndarray) -> int:
    """Split ``ev`` by equal time windows into ``out`` (flat ``[M*2*H*W]`` int32); bad event index or -1."""
    n = ev.shape[0]
    if n == 0:
        return -1
    t0 = ev[0].t
    t1 = t0
    for i in range(n):
        ti = ev[i].t
        if ti < t0:
            t0 = ti
        if ti > t1:
            t1 = ti
    dt = (t1 - t0) // n_frames
    uw = np.uint64(w)
    uh = np.uint64(h)
    plane = uw * uh
    last = n_frames - 1
    for i in range(n):
        e = ev[i]
        j = last
        if dt > 0:
            j = min((e.t - t0) // dt, last)
        xi = np.uint64(np.int64(e.x))
        yi = np.uint64(np.int64(e.y))
        pi = np.uint64(np.int64(e.p))
        if xi >= uw or yi >= uh or pi > 1:
            return i
        out[(np.uint64(j) * np.uint64(2) + pi) * plane + yi * uw + xi] += 1
    return -1


def _check_n_frames(n_frames: int) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 1:
        raise UserInputError(f"n_frames must be a positive integer, got {n_frames!r}")
    return int(n_frames)


def _check_split_by(split_by: str) -> str:
    if split_by not in SPLIT_BY:
        raise UserInputError(f"unknown split_by {split_by!r}; choose one of {', '.join(SPLIT_BY)}")
    return split_by


def events_to_frames(
    events: np.ndarray,
    n_frames: int,
    sensor_size: tuple[int, int],
    split_by: str = "number",
) -> np.ndarray:
    """Integrate ``events`` into ``n_frames`` two-channel count frames.

    Args:
        events: ``[N]`` :data:`~evrobust.preprocess.events.EVENT_DTYPE` array (or any structured array with
            integer fields t, x, y, p).
        n_frames: number of frames ``M >= 1``.
        sensor_size: ``(W, H)``; may be non-square.
        split_by: ``"number"`` or ``"time"`` (see the module docstring for the exact windows).

    Returns:
        ``[M, 2, H, W]`` int32 event counts, channel = polarity.

    Raises:
        UserInputError: bad arguments, or an event outside the sensor / with polarity not in {0, 1}.
    """
    m = _check_n_frames(n_frames)
    w, h = check_sensor_size(sensor_size)
    _check_split_by(split_by)
    ev = as_events(events)
    out = np.zeros(m * 2 * h * w, dtype=np.int32)
    kernel = _frames_by_number if split_by == "number" else _frames_by_time
    bad = kernel(ev, m, w, h, out)
    if bad >= 0:
        e = ev[bad]
        raise UserInputError(
            f"events_to_frames: event {bad} (x={int(e['x'])}, y={int(e['y'])}, p={int(e['p'])}) lies outside "
            f"the {w}x{h} sensor (W x H) or has a polarity other than 0/1; pass the right sensor_size"
        )
    return out.reshape(m, 2, h, w)


def frame_bounds(events: np.ndarray, n_frames: int, split_by: str = "number") -> np.ndarray:
    """The window each frame covers, as ``[M, 2]`` int64 ``[start, stop)`` bounds.

    For ``"number"`` the bounds are event indices, for ``"time"`` timestamps in microseconds (the last
    stop is ``max(t) + 1`` so that the last event is inside). Useful for inspecting a split and for
    writing frames of a known timeline; the kernels do not use it.
    """
    m = _check_n_frames(n_frames)
    _check_split_by(split_by)
    ev = as_events(events)
    n = ev.shape[0]
    bounds = np.zeros((m, 2), dtype=np.int64)
    if split_by == "number":
        per = n // m
        bounds[:, 0] = np.arange(m) * per
        bounds[:, 1] = bounds[:, 0] + per
        bounds[-1, 1] = n
        return bounds
    if n == 0:
        return bounds
    t0 = int(ev["t"].min())
    dt = (int(ev["t"].max()) - t0) // m
    bounds[:, 0] = t0 + np.arange(m) * dt
    bounds[:, 1] = bounds[:, 0] + dt
    bounds[-1, 1] = int(ev["t"].max()) + 1
    return bounds
