"""jAER AEDAT 2.0 reader and writer (the container of the original CIFAR10-DVS ``.aedat`` files).

File layout: ASCII header lines that each start with ``#`` (the first is ``#!AER-DAT2.0``; jAER adds an
XML preferences block and may close with ``#End Of ASCII Header``; CRLF or LF), then the payload:
big-endian ``(uint32 address, uint32 timestamp_us)`` pairs, 8 bytes per event.

Address layouts (``layout=``):

``dvs128`` (CIFAR10-DVS, MNIST-DVS, DVS128)
    ``x = (a & 0xFE) >> 1``, ``y = (a & 0x7F00) >> 8``, ``p = a & 1`` on a 128x128 sensor. Addresses with
    bits above bit 14 set are jAER sync/stereo "special" events and are dropped.
``davis`` (DAVIS240/346 recordings)
    ``y = (a >> 22) & 0x1FF``, ``x = (a >> 12) & 0x3FF``, ``p = (a >> 11) & 1``; events with bit 31 set
    (APS frames, IMU samples) or bit 10 set (external/special events) are dropped. The sensor size comes
    from the ``# AEChip:`` header line (DAVIS240 -> 240x180, DAVIS346 -> 346x260) or ``sensor=``.

Coordinates are then mapped by an orientation convention (see :mod:`evrobust.preprocess.orientation`;
``raw`` by default here, ``spikingjelly`` for CIFAR10-DVS). Timestamps are returned as they are stored
(unsigned 32-bit microseconds widened to int64, no wrap-around unwrapping, no sorting).

Every problem with a file (missing, not AEDAT 2.0, garbled or cut header, payload not a multiple of
8 bytes, coordinates outside the sensor) raises :class:`~evrobust.preprocess.events.EventFileError`,
and nothing else escapes the reader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from evrobust.errors import UserInputError
from evrobust.safeio import read_bytes
from evrobust.safeio.atomic import write_bytes_atomic

from .events import EVENT_DTYPE, EventFileError, check_sensor_size, validate_events
from .orientation import orientation_flags, oriented_sensor_size, unorient_events

__all__ = [
    "AEDAT2_LAYOUTS",
    "Aedat2Header",
    "decode_aedat2_payload",
    "parse_aedat2_header",
    "read_aedat2",
    "read_aedat2_header",
    "write_aedat2",
]

logger = logging.getLogger(__name__)

AEDAT2_LAYOUTS = ("dvs128", "davis")
_LAYOUT_CODE = {"dvs128": 0, "davis": 1}
_DEFAULT_SENSOR = {"dvs128": (128, 128), "davis": (1024, 512)}  # davis: the full address-field range
_FIELD_LIMIT = {"dvs128": (128, 128), "davis": (1024, 512)}
# AEChip class-name fragments (lower case) -> raw sensor (W, H); used to size DAVIS recordings.
_CHIP_SENSORS = (("davis240", (240, 180)), ("davis346", (346, 260)), ("dvs128", (128, 128)))
_END_OF_HEADER = b"#End Of ASCII Header"


@dataclass(frozen=True)
class Aedat2Header:
    """What the ASCII header of an AEDAT 2.0 file says.

    ``version`` is the text after ``#!AER-DAT`` (e.g. ``"2.0"``), ``data_offset`` the byte where the payload
    starts, ``chip`` the ``# AEChip:`` class name when present, ``lines`` the header lines without the
    leading ``#`` and line terminator (decoded as Latin-1, which never fails).
    """

    version: str
    data_offset: int
    chip: str | None = None
    lines: tuple[str, ...] = field(default=(), repr=False)


def parse_aedat2_header(data: bytes, path: str | Path = "<bytes>") -> Aedat2Header:
    """Parse the header at the start of ``data``; :class:`EventFileError` (naming ``path``) when it is wrong.

    The header ends at the first line that does not start with ``#`` or right after an
    ``#End Of ASCII Header`` line (after which a payload may begin with the byte ``#``).
    """
    if not data.startswith(b"#!AER-DAT"):
        raise EventFileError(path, "not an AEDAT file: it does not start with a '#!AER-DAT' version line")
    pos = 0
    lines: list[str] = []
    version = ""
    chip: str | None = None
    n = len(data)
    while pos < n and data[pos] == 0x23:  # '#'
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise EventFileError(
                path, f"header line at byte {pos} has no line end: the header is garbled or the file is cut"
            )
        raw_line = data[pos:nl].rstrip(b"\r")
        line = raw_line[1:].decode("latin-1")
        lines.append(line)
        pos = nl + 1
        if len(lines) == 1:
            version = line[len("!AER-DAT") :].strip()
        elif line.lstrip().startswith("AEChip:"):
            chip = line.split(":", 1)[1].strip()
        if raw_line.startswith(_END_OF_HEADER):
            break
    major = version.split(".", 1)[0]
    if major != "2":
        hint = " (AEDAT 4 files are read with read_aedat4)" if major in ("3", "4") else ""
        raise EventFileError(path, f"unsupported AEDAT version {version!r}: this reader handles 2.x{hint}")
    return Aedat2Header(version=version, data_offset=pos, chip=chip, lines=tuple(lines))


def _read_bytes(path: str | Path) -> bytes:
    if not os.path.lexists(path):
        raise EventFileError(path, "no such file")
    if os.path.isdir(path) and not os.path.islink(path):
        raise EventFileError(path, "is a directory, not an AEDAT file")
    try:
        return read_bytes(path, "events")  # regular files only, never through a link, within the cap
    except OSError as exc:
        raise EventFileError(path, f"cannot be read ({exc.strerror or exc})") from None


def read_aedat2_header(path: str | Path) -> Aedat2Header:
    """Read and parse only the header of the AEDAT 2.0 file at ``path``."""
    return parse_aedat2_header(_read_bytes(path), path)


@njit(cache=True, nogil=True, inline="always")
def address_at(payload: np.ndarray, j: int) -> np.uint32:
    """The big-endian 32-bit address of the event record at byte ``j``."""
    return (
        (np.uint32(payload[j]) << 24)
        | (np.uint32(payload[j + 1]) << 16)
        | (np.uint32(payload[j + 2]) << 8)
        | np.uint32(payload[j + 3])
    )


@njit(cache=True, nogil=True, inline="always")
def timestamp_at(payload: np.ndarray, j: int) -> np.int64:
    """The big-endian 32-bit timestamp (us) of the event record at byte ``j``."""
    return (
        (np.int64(payload[j + 4]) << 24)
        | (np.int64(payload[j + 5]) << 16)
        | (np.int64(payload[j + 6]) << 8)
        | np.int64(payload[j + 7])
    )


@njit(cache=True, nogil=True, inline="always")
def keep_address(a: np.uint32, layout: int) -> bool:
    """Whether address ``a`` is a polarity event of ``layout`` (0 = DVS128, 1 = DAVIS)."""
    if layout == 0:
        return a <= 0x7FFF  # dvs128: sync / stereo special events have higher bits set
    return (a >> 31) == 0 and ((a >> 10) & 1) == 0  # davis: APS / IMU samples, external events


@njit(cache=True, nogil=True, inline="always")
def raw_xyp(a: np.uint32, layout: int) -> tuple[np.int64, np.int64, np.int64]:
    """(x, y, polarity) of a kept address in raw sensor coordinates."""
    if layout == 0:
        return np.int64((a >> 1) & 0x7F), np.int64((a >> 8) & 0x7F), np.int64(a & 1)
    return np.int64((a >> 12) & 0x3FF), np.int64((a >> 22) & 0x1FF), np.int64((a >> 11) & 1)


@njit(cache=True, nogil=True)
def _decode_kernel(
    payload: np.ndarray,
    layout: int,
    flip_x: bool,
    flip_y: bool,
    swap_xy: bool,
    flip_p: bool,
    w: int,
    h: int,
    out: np.ndarray,
) -> tuple[int, int]:
    """Decode big-endian (address, timestamp) pairs from ``payload`` (uint8, length 8*n) into ``out``.

    Returns ``(kept, bad)``: the number of events written to ``out[:kept]`` and the payload index of the
    first event outside the ``w x h`` raw sensor (``-1`` when there is none; decoding stops there).
    """
    n = payload.shape[0] // 8
    k = 0
    for i in range(n):
        j = 8 * i
        a = address_at(payload, j)
        if not keep_address(a, layout):  # sync / stereo, APS / IMU samples, external events
            continue
        rx, ry, rp = raw_xyp(a, layout)
        x, y, p = np.int32(rx), np.int32(ry), np.int32(rp)
        ts = timestamp_at(payload, j)
        if x >= w or y >= h:
            return k, i
        if flip_x:
            x = w - 1 - x
        if flip_y:
            y = h - 1 - y
        if swap_xy:
            x, y = y, x
        if flip_p:
            p = 1 - p
        out[k]["t"] = ts
        out[k]["x"] = x
        out[k]["y"] = y
        out[k]["p"] = p
        k += 1
    return k, -1


def _check_layout(layout: str) -> None:
    if layout not in _LAYOUT_CODE:
        choices = ", ".join(AEDAT2_LAYOUTS)
        raise UserInputError(f"unknown AEDAT 2.0 layout {layout!r}; choose one of {choices}")


def _raw_sensor(layout: str, header: Aedat2Header | None, sensor: tuple[int, int] | None) -> tuple[int, int]:
    """The raw sensor (W, H) for ``layout``: explicit ``sensor``, else the AEChip line, else the default."""
    if sensor is not None:
        w, h = check_sensor_size(sensor, "sensor")
        lw, lh = _FIELD_LIMIT[layout]
        if w > lw or h > lh:
            raise UserInputError(
                f"sensor {w}x{h} does not fit the {layout} address layout (at most {lw}x{lh})"
            )
        return w, h
    if layout == "davis" and header is not None and header.chip:
        chip = header.chip.lower()
        for key, size in _CHIP_SENSORS:
            if key in chip:
                return size
    return _DEFAULT_SENSOR[layout]


def decode_aedat2_payload(
    payload: np.ndarray,
    layout: str = "dvs128",
    orientation: str = "raw",
    sensor: tuple[int, int] | None = None,
    path: str | Path = "<bytes>",
) -> np.ndarray:
    """Decode an AEDAT 2.0 payload (uint8 array, length a multiple of 8) into :data:`EVENT_DTYPE` events.

    ``sensor`` is the raw sensor ``(W, H)`` (default per layout); events whose raw address lies outside it
    raise :class:`EventFileError` naming ``path``.
    """
    _check_layout(layout)
    flags = orientation_flags(orientation)
    w, h = _raw_sensor(layout, None, sensor)
    buf = np.ascontiguousarray(payload, dtype=np.uint8).reshape(-1)
    if buf.shape[0] % 8:
        raise EventFileError(
            path, f"payload of {buf.shape[0]} bytes is not a multiple of 8 (the last event is cut short)"
        )
    out = np.empty(buf.shape[0] // 8, dtype=EVENT_DTYPE)
    kept, bad = _decode_kernel(
        buf, _LAYOUT_CODE[layout], flags.flip_x, flags.flip_y, flags.swap_xy, flags.flip_p, w, h, out
    )
    if bad >= 0:
        raise EventFileError(
            path,
            f"event {bad} has an address outside the {w}x{h} {layout} sensor "
            f"(wrong layout? choose one of {', '.join(AEDAT2_LAYOUTS)}, or pass sensor=)",
        )
    if kept < out.shape[0]:
        logger.debug("%s: dropped %d special/non-DVS events", path, out.shape[0] - kept)
        out = out[:kept].copy()
    return out


def check_header_layout(header: Aedat2Header, layout: str, path: str | Path) -> None:
    """Refuse a DAVIS recording (by its ``# AEChip:`` line) asked to be decoded with the DVS128 layout.

    A DAVIS address decoded with the DVS128 masks yields plausible-looking garbage (most events dropped as
    "special", the rest misplaced). Every AEDAT 2.0 decoding path calls this one check.

    Raises:
        EventFileError: naming ``path`` and the chip.
    """
    if layout == "dvs128" and header.chip and "davis" in header.chip.lower():
        raise EventFileError(
            path, f"is a DAVIS recording (AEChip {header.chip}); read it with layout='davis'"
        )


def read_aedat2(
    path: str | Path,
    layout: str = "dvs128",
    orientation: str = "raw",
    sensor: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read the polarity events of a jAER AEDAT 2.0 file.

    Args:
        path: the ``.aedat`` file.
        layout: address layout, ``"dvs128"`` (CIFAR10-DVS) or ``"davis"``.
        orientation: ``"raw"`` (default), ``"jaer"`` or ``"spikingjelly"`` (use
            :data:`~evrobust.preprocess.orientation.CIFAR10DVS_ORIENTATION` for CIFAR10-DVS).
        sensor: raw sensor ``(W, H)``; default 128x128 for dvs128, from the AEChip header for davis.

    Returns:
        ``[N]`` :data:`EVENT_DTYPE` array in file order; ``t`` in microseconds. The oriented sensor size is
        ``oriented_sensor_size(sensor, orientation)``.

    Raises:
        EventFileError: the file is missing, not AEDAT 2.0, has a garbled/cut header, a payload that is not
            a multiple of 8 bytes, or addresses outside the sensor.
        UserInputError: an unknown ``layout`` / ``orientation`` or a bad ``sensor``.
    """
    _check_layout(layout)
    orientation_flags(orientation)  # reject a bad name before touching the file
    data = _read_bytes(path)
    header = parse_aedat2_header(data, path)
    check_header_layout(header, layout, path)
    raw_sensor = _raw_sensor(layout, header, sensor)
    payload = np.frombuffer(data, dtype=np.uint8, offset=header.data_offset)
    return decode_aedat2_payload(payload, layout, orientation, raw_sensor, path)


def _chip_line(layout: str, sensor: tuple[int, int]) -> str | None:
    if layout == "dvs128":
        return "AEChip: ch.unizh.ini.jaer.chip.retina.DVS128"
    names = {
        (240, 180): "eu.seebetter.ini.chips.davis.DAVIS240C",
        (346, 260): "eu.seebetter.ini.chips.davis.Davis346B",
    }
    return f"AEChip: {names[sensor]}" if sensor in names else None


def write_aedat2(
    path: str | Path,
    events: np.ndarray,
    layout: str = "dvs128",
    orientation: str = "raw",
    sensor: tuple[int, int] | None = None,
    header_lines: Sequence[str] = (),
) -> Path:
    """Write ``events`` as a jAER-style AEDAT 2.0 file; the inverse of :func:`read_aedat2`.

    ``events`` are given in ``orientation`` on the oriented sensor; they are mapped back to raw addresses
    of the raw ``sensor`` (default per layout), so ``read_aedat2(path, layout, orientation, sensor)``
    returns them unchanged. Timestamps must lie in ``[0, 2**32)`` us. The header carries
    ``#!AER-DAT2.0``, the jAER format lines, an AEChip line, ``header_lines`` and
    ``#End Of ASCII Header``, with CRLF line ends as jAER writes them; no date, so equal inputs give
    byte-identical files. The file is written to a temporary name and renamed (atomic).
    """
    _check_layout(layout)
    orientation_flags(orientation)
    raw_sensor = _raw_sensor(layout, None, sensor)
    ev = validate_events(events, oriented_sensor_size(raw_sensor, orientation), what=f"write_aedat2({path})")
    if ev.shape[0] and (ev["t"].min() < 0 or ev["t"].max() >= 2**32):
        raise UserInputError(f"write_aedat2({path}): timestamps must lie in [0, 2**32) us for AEDAT 2.0")
    for line in header_lines:
        if "\n" in line or "\r" in line or not line.isascii():
            raise UserInputError(f"write_aedat2({path}): header_lines must be ASCII without line breaks")
    raw = unorient_events(ev, orientation, raw_sensor)
    x = raw["x"].astype(np.uint32)
    y = raw["y"].astype(np.uint32)
    p = raw["p"].astype(np.uint32)
    if layout == "dvs128":
        addr = (y << 8) | (x << 1) | p
    else:
        addr = (y << 22) | (x << 12) | (p << 11)
    pairs = np.empty((ev.shape[0], 2), dtype=">u4")
    pairs[:, 0] = addr
    pairs[:, 1] = raw["t"].astype(np.uint32)
    lines = [
        "!AER-DAT2.0",
        " This is a raw AE data file - do not edit",
        " Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
        " Timestamps tick is 1 us",
        " created by evrobust",
    ]
    chip = _chip_line(layout, raw_sensor)
    if chip:
        lines.append(" " + chip)
    lines += [" " + s for s in header_lines]
    header = "".join(f"#{s}\r\n" for s in lines).encode("latin-1") + _END_OF_HEADER + b"\r\n"
    return write_bytes_atomic(path, header + pairs.tobytes())
