"""AEDAT 4.0 reader (``.aedat4``, the format of tonic's converted CIFAR10-DVS release), via ``aedat``.

The ``aedat`` package (a Rust extension) parses the IOHeader, decompresses the LZ4/Zstd packets and yields
per-packet numpy arrays. This module picks one event stream (by default the lowest-numbered stream of type
``"events"``, what tonic reads), concatenates its packets and returns :data:`EVENT_DTYPE` events with
``p = 1`` for ON (the file's ``on`` flag). Timestamps are kept as stored (absolute microseconds since
the Unix epoch on a DV recording); subtract ``t[0]`` if relative times are wanted.

Any problem with the file (missing, not AEDAT 4, corrupt packets, no event stream, coordinates outside the
declared sensor) raises :class:`~evrobust.preprocess.events.EventFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.safeio import open_read

from .events import EVENT_DTYPE, EventFileError

__all__ = ["Aedat4Stream", "aedat4_streams", "read_aedat4"]


@dataclass(frozen=True)
class Aedat4Stream:
    """One stream of an AEDAT 4 file: its id, type (``"events"``, ``"imus"``, ``"triggers"``, ``"frame"``)
    and, for event and frame streams, the sensor size ``(W, H)``."""

    stream_id: int
    type: str
    sensor_size: tuple[int, int] | None


# The `aedat` Rust extension reports most corrupt input as RuntimeError/OSError, but a panic inside it
# surfaces as pyo3's PanicException, which derives from BaseException (not Exception). The readers therefore
# catch BaseException (minus KeyboardInterrupt/SystemExit) around every call into the extension, so a corrupt
# file is always an EventFileError, never a traceback.


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _decoder(path: str | Path) -> Any:  # aedat.Decoder ships no type stubs
    p = Path(path)
    if not p.exists():
        raise EventFileError(path, "no such file")
    if p.is_dir():
        raise EventFileError(path, "is a directory, not an AEDAT 4 file")
    # The aedat decoder opens the path itself: it is checked here first (a regular file, not a link or FIFO,
    # within the size cap), and the magic is read through the same safe open.
    with open_read(p, "events") as fh:
        magic = fh.read(14)
    if not magic.startswith(b"#!AER-DAT4.0"):
        hint = " (AEDAT 2.0: use read_aedat2)" if magic.startswith(b"#!AER-DAT2") else ""
        raise EventFileError(path, f"not an AEDAT 4.0 file: it does not start with '#!AER-DAT4.0'{hint}")
    import aedat  # local import: only this reader needs the Rust extension

    try:
        return aedat.Decoder(str(p))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust panic (see above)
        raise EventFileError(path, f"cannot be decoded as AEDAT 4.0 ({_describe(exc)})") from None


def aedat4_streams(path: str | Path) -> list[Aedat4Stream]:
    """List the streams of an AEDAT 4 file, sorted by id."""
    decoder = _decoder(path)
    streams = []
    for sid, info in sorted(decoder.id_to_stream().items()):
        size = (int(info["width"]), int(info["height"])) if "width" in info else None
        streams.append(Aedat4Stream(stream_id=int(sid), type=str(info["type"]), sensor_size=size))
    return streams


def read_aedat4(path: str | Path, stream_id: int | None = None) -> np.ndarray:
    """Read the polarity events of one event stream of an AEDAT 4 file.

    Args:
        path: the ``.aedat4`` file.
        stream_id: which event stream; ``None`` picks the lowest-numbered stream of type ``"events"``.

    Returns:
        ``[N]`` :data:`EVENT_DTYPE` in file order (``t`` in us, ``p = 1`` ON); the stream's sensor size
        ``(W, H)`` is in :func:`aedat4_streams`.

    Raises:
        EventFileError: missing/corrupt file, no such event stream, or events outside the sensor.
    """
    decoder = _decoder(path)
    streams = {int(k): v for k, v in decoder.id_to_stream().items()}
    event_ids = sorted(k for k, v in streams.items() if v.get("type") == "events")
    if not event_ids:
        raise EventFileError(path, "has no event stream")
    if stream_id is None:
        stream_id = event_ids[0]
    elif stream_id not in event_ids:
        raise EventFileError(path, f"has no event stream {stream_id}; its event streams are {event_ids}")
    info = streams[stream_id]
    sensor = (int(info["width"]), int(info["height"]))
    chunks = []
    try:
        for packet in decoder:
            if packet["stream_id"] == stream_id and "events" in packet:
                chunks.append(packet["events"])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a corrupt packet or a Rust panic
        raise EventFileError(path, f"corrupt AEDAT 4.0 packet ({_describe(exc)})") from None
    n = sum(c.shape[0] for c in chunks)
    out = np.empty(n, dtype=EVENT_DTYPE)
    pos = 0
    for c in chunks:
        k = c.shape[0]
        out["t"][pos : pos + k] = c["t"]
        out["x"][pos : pos + k] = c["x"]
        out["y"][pos : pos + k] = c["y"]
        out["p"][pos : pos + k] = c["on"]
        pos += k
    if n and (int(out["x"].max()) >= sensor[0] or int(out["y"].max()) >= sensor[1]):
        raise EventFileError(path, f"has events outside its declared {sensor[0]}x{sensor[1]} sensor")
    return out
