"""The in-memory event format shared by every reader, kernel and the emulator.

An event stream is a 1-D numpy structured array of dtype :data:`EVENT_DTYPE`:

* ``t`` int64, microseconds (relative or absolute, as the file holds them),
* ``x`` int16, column (0 = left in the chosen orientation),
* ``y`` int16, row (0 = top in the chosen orientation),
* ``p`` int8, polarity 0 or 1 (which physical sign is 1 depends on the orientation; see
  :mod:`evrobust.preprocess.orientation`).

The dtype is packed (13 bytes per event), the layout tonic and spikingjelly users expect field by field.
Sensor sizes are always given as ``(W, H)`` = (number of columns, number of rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evrobust.errors import UserInputError

__all__ = [
    "EVENT_DTYPE",
    "EventFileError",
    "as_events",
    "check_sensor_size",
    "make_events",
    "validate_events",
]

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])


class EventFileError(UserInputError):
    """An event file that cannot be read: missing, not the expected format, garbled header or truncated.

    It is the only exception the readers let escape; its message names the file and the problem. Being a
    :class:`~evrobust.errors.UserInputError`, the CLI reports it as one line and exits with code 2.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def make_events(
    t: np.ndarray | list[int],
    x: np.ndarray | list[int],
    y: np.ndarray | list[int],
    p: np.ndarray | list[int],
) -> np.ndarray:
    """Build an :data:`EVENT_DTYPE` array from four equally long 1-D sequences.

    Values are cast to the field types (``t`` int64 us, ``x``/``y`` int16 pixels, ``p`` int8); a length
    mismatch raises :class:`UserInputError`.
    """
    cols = [np.asarray(v).reshape(-1) for v in (t, x, y, p)]
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        lengths = ", ".join(str(c.shape[0]) for c in cols)
        raise UserInputError(f"make_events: t, x, y, p must have the same length, got {lengths}")
    out = np.empty(n, dtype=EVENT_DTYPE)
    for name, col in zip(("t", "x", "y", "p"), cols, strict=True):
        out[name] = col
    return out


def as_events(events: np.ndarray, what: str = "events") -> np.ndarray:
    """Return ``events`` as a 1-D :data:`EVENT_DTYPE` array (no copy when it already is one).

    Any structured array with integer/bool fields ``t``, ``x``, ``y``, ``p`` (in any order, e.g. tonic's
    ``[x, y, t, p]`` layout) is converted; anything else raises :class:`UserInputError` naming ``what``.
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise UserInputError(
            f"{what}: expected a numpy structured array with fields t, x, y, p (EVENT_DTYPE), "
            f"got {type(events).__name__}"
        )
    if events.ndim != 1:
        raise UserInputError(f"{what}: expected a 1-D event array, got shape {events.shape}")
    if events.dtype == EVENT_DTYPE:
        return events
    names = events.dtype.names
    missing = [f for f in ("t", "x", "y", "p") if f not in names]
    if missing:
        raise UserInputError(f"{what}: missing field(s) {missing}; an event array needs t, x, y, p")
    for f in ("t", "x", "y", "p"):
        kind = events.dtype.fields[f][0].kind
        if kind not in "iub":
            raise UserInputError(f"{what}: field {f!r} must be integer or bool, got dtype {events.dtype[f]}")
    return make_events(events["t"], events["x"], events["y"], events["p"])


def check_sensor_size(sensor_size: tuple[int, int] | list[int], what: str = "sensor_size") -> tuple[int, int]:
    """Validate a sensor size ``(W, H)`` (both in 1..32767, the int16 coordinate range) and return it."""
    try:
        w, h = (int(v) for v in sensor_size)
    except (TypeError, ValueError):
        raise UserInputError(
            f"{what} must be a pair (W, H) of positive integers, got {sensor_size!r}"
        ) from None
    if not (1 <= w <= 32767 and 1 <= h <= 32767):
        raise UserInputError(f"{what} must be a pair (W, H) of integers in 1..32767, got {sensor_size!r}")
    return w, h


def validate_events(
    events: np.ndarray, sensor_size: tuple[int, int] | None = None, what: str = "events"
) -> np.ndarray:
    """Check an event array and return it as :data:`EVENT_DTYPE`.

    Checks: the fields (see :func:`as_events`), polarity in {0, 1} and, when ``sensor_size = (W, H)`` is
    given, ``0 <= x < W`` and ``0 <= y < H``. The first offending event is named in the
    :class:`UserInputError`. Costs a few vectorised passes; the frame kernels do their own in-loop check.
    """
    ev = as_events(events, what)
    if ev.shape[0] == 0:
        return ev
    bad_p = np.flatnonzero((ev["p"] != 0) & (ev["p"] != 1))
    if bad_p.size:
        i = int(bad_p[0])
        raise UserInputError(f"{what}: polarity must be 0 or 1, event {i} has p={int(ev['p'][i])}")
    if sensor_size is not None:
        w, h = check_sensor_size(sensor_size)
        bad = np.flatnonzero((ev["x"] < 0) | (ev["x"] >= w) | (ev["y"] < 0) | (ev["y"] >= h))
        if bad.size:
            i = int(bad[0])
            raise UserInputError(
                f"{what}: event {i} at (x={int(ev['x'][i])}, y={int(ev['y'][i])}) lies outside the "
                f"{w}x{h} sensor (W x H); pass the right sensor_size or crop the events"
            )
    return ev
