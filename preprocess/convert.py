"""Per-sample conversion tasks that a worker runs: decode a raw file, bin it to frames, write its chunk.

Each task is a top-level function of plain arguments (picklable for process and cluster workers). It writes
its own chunk into the store and returns a :class:`SampleResult`; a file that cannot be read is reported in
the result (never raised), so the driver decides between failing and skipping, and no half-written sample is
ever flagged done.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from evrobust.errors import UserInputError
from evrobust.preprocess import store

logger = logging.getLogger(__name__)

ON_ERROR = ("fail", "skip")


@lru_cache(maxsize=32)
def _share_denominator(src: int, dst: int) -> int:
    """The smallest q with every area-resize share ``src -> dst`` a multiple of 1/q."""
    from evrobust.preprocess.resize import area_weights

    weights = area_weights(src, dst)
    for q in range(1, dst + 1):
        if np.allclose(weights * q, np.rint(weights * q), atol=1e-9):
            return q
    raise ValueError(f"no integer count unit for resizing {src} -> {dst}")  # shares are multiples of 1/dst


@dataclass(frozen=True)
class FrameParams:
    """How events become a stored sample.

    Attributes:
        n_frames: T, the number of frames.
        split_by: ``"number"`` (equal event counts) or ``"time"`` (equal time windows).
        size: output side in pixels after resizing (``None`` keeps the sensor size).
        sensor: the raw sensor ``(W, H)`` of the files.
        orientation: the coordinate convention (see :mod:`evrobust.preprocess.orientation`).
        layout: AEDAT 2.0 address layout (``"dvs128"`` for CIFAR10-DVS).
    """

    n_frames: int
    split_by: str
    size: int | None
    sensor: tuple[int, int]
    orientation: str
    layout: str = "dvs128"

    def __post_init__(self) -> None:
        # Sizes are checked against the store's documented limits before anything is sized by them (the
        # area-resize weights alone are size x sensor floats).
        store.check_event_options(self.n_frames, self.size, self.sensor)

    def oriented_sensor(self) -> tuple[int, int]:
        """The sensor ``(W, H)`` after the orientation (a transposing convention swaps W and H)."""
        from evrobust.preprocess.orientation import oriented_sensor_size

        return oriented_sensor_size(self.sensor, self.orientation)

    def count_unit(self) -> int:
        """Stored integers per event: area resizing spreads an event over target pixels in shares k/q.

        The stored value is ``rint(resized_count * count_unit)``, exact for the area shares (for 128 -> 48:
        shares of 1/3 per axis, so ``count_unit = 9``); 1 without resizing or for integer factors.
        """
        if self.size is None:
            return 1
        w, h = self.oriented_sensor()
        return _share_denominator(h, self.size) * _share_denominator(w, self.size)

    def sample_shape(self) -> tuple[int, int, int, int]:
        """``(T, 2, H, W)`` of one stored sample."""
        w, h = self.oriented_sensor()
        if self.size is not None:
            w = h = self.size
        return (self.n_frames, 2, h, w)


@dataclass(frozen=True)
class SampleResult:
    """What one task did: ``status`` is ``"written"`` or ``"error"`` (then ``message`` says why).

    ``index`` is the (first) sample index, ``n_samples`` how many samples the task covered, ``n_events`` how
    many events it decoded (0 for images), ``histogram`` the written sample's per-channel value histogram
    (:func:`~evrobust.preprocess.store_stats.sample_histogram`; single-sample tasks only).
    """

    index: int
    n_events: int
    status: str
    message: str = ""
    n_samples: int = 1
    histogram: np.ndarray | None = None


def decode_event_bytes(data: bytes, name: str, params: FrameParams, path: Path) -> np.ndarray:
    """Decode one event file (``.aedat`` = AEDAT 2.0, ``.aedat4`` = AEDAT 4.0) to EVENT_DTYPE events."""
    if name.lower().endswith(".aedat4"):
        from evrobust.preprocess.aedat4 import read_aedat4

        # DV's AEDAT 4 files (tonic's CIFAR10-DVS conversion) store image coordinates already: no
        # orientation is applied to them, so a raw dir should not mix the two formats.
        return read_aedat4(path)
    from evrobust.preprocess.aedat2 import check_header_layout, decode_aedat2_payload, parse_aedat2_header

    header = parse_aedat2_header(data, path)
    check_header_layout(header, params.layout, path)
    payload = np.frombuffer(data, dtype=np.uint8, offset=header.data_offset)
    return decode_aedat2_payload(payload, params.layout, params.orientation, params.sensor, path)


def events_to_sample(events: np.ndarray, params: FrameParams, unit: int | None = None) -> np.ndarray:
    """Bin events into ``[T, 2, H, W]`` counts, area-resize, and store ``rint(count * count_unit)`` as uint16.

    Values above 65535 saturate. ``unit`` defaults to ``params.count_unit()``.
    """
    from evrobust.preprocess.frames import events_to_frames

    frames = events_to_frames(
        events, params.n_frames, sensor_size=params.oriented_sensor(), split_by=params.split_by
    )
    return frames_to_sample(frames, params, unit)


def _resizes(params: FrameParams) -> bool:
    w, h = params.oriented_sensor()
    return params.size is not None and (h, w) != (params.size, params.size)


def frames_to_sample(frames: np.ndarray, params: FrameParams, unit: int | None = None) -> np.ndarray:
    """Count frames ``[T, 2, H, W]`` -> the stored sample: area-resize, ``rint(count * unit)``, uint16."""
    if params.size is not None and tuple(frames.shape[-2:]) != (params.size, params.size):
        from evrobust.preprocess.resize import resize_frames

        frames = resize_frames(frames, params.size)
    unit = params.count_unit() if unit is None else unit
    if frames.dtype.kind == "f" or unit != 1:
        frames = np.rint(frames.astype(np.float64) * unit)
    return np.clip(frames, 0, store.COUNT_MAX).astype(store.COUNT_DTYPE, copy=False)


def _aedat2_sample(data: bytes, params: FrameParams, unit: int, path: Path) -> tuple[np.ndarray, int] | None:
    """The stored sample of an AEDAT 2.0 file's bytes by the one-kernel path, or None to take the two steps.

    None for a payload the kernel does not take (cut short, or an address outside the sensor): the two-step
    decode then raises the precise error.
    """
    from evrobust.preprocess.aedat2 import check_header_layout, parse_aedat2_header
    from evrobust.preprocess.aedat2_frames import aedat2_frames
    from evrobust.preprocess.orientation import orientation_flags

    header = parse_aedat2_header(data, path)
    check_header_layout(header, params.layout, path)  # the one DAVIS check every decoding path makes
    payload = np.frombuffer(data, dtype=np.uint8, offset=header.data_offset)
    if payload.shape[0] % 8 or params.layout not in ("dvs128", "davis"):
        return None
    # Without resizing (and a unit of 1) the saturated uint16 counts are the stored sample itself.
    direct = unit == 1 and not _resizes(params)
    frames, kept = aedat2_frames(
        payload,
        params.layout,
        orientation_flags(params.orientation),
        params.sensor,
        params.n_frames,
        params.split_by,
        store.COUNT_DTYPE if direct else np.int32,
    )
    if frames is None:
        return None
    return (frames if direct else frames_to_sample(frames, params, unit)), kept


def sample_from_bytes(
    data: bytes, name: str, params: FrameParams, unit: int, path: Path
) -> tuple[np.ndarray, int]:
    """One event file's bytes -> (its stored ``[T, 2, H, W]`` uint16 sample, the number of events binned).

    AEDAT 2.0 files take the one-kernel path of :mod:`evrobust.preprocess.aedat2_frames` (the same frames as
    decoding then binning, without the decoded event array); AEDAT 4 files and anything that kernel declines
    are decoded first.
    """
    if not name.lower().endswith(".aedat4"):
        fast = _aedat2_sample(data, params, unit, path)
        if fast is not None:
            return fast
    events = decode_event_bytes(data, name, params, path)
    return events_to_sample(events, params, unit), int(events.shape[0])


def _read_event_sample(source: str, params: FrameParams, unit: int) -> tuple[np.ndarray, int, bytes]:
    from evrobust.preprocess.sources import read_event_file

    path = Path(source)
    data = read_event_file(path)  # bounded: a huge (or sparse) file is refused by its size, never read whole
    sample, n_events = sample_from_bytes(data, path.name, params, unit, path)
    return sample, n_events, hashlib.sha256(data).digest()


def convert_event_file(store_path: str, index: int, source: str, params: FrameParams) -> SampleResult:
    """Read ``source``, bin it, write sample ``index`` of ``store_path`` with its sha256, then flag it done.

    An unreadable file (any :class:`~evrobust.errors.UserInputError` from the readers/kernels, or an OS error)
    gives an ``"error"`` result and writes nothing.
    """
    return convert_event_files(store_path, [(index, source)], params)[0]


def convert_event_files(
    store_path: str, items: list[tuple[int, str]], params: FrameParams
) -> list[SampleResult]:
    """Convert several files (``(index, source)`` pairs) and write their samples with one call per array.

    A zarr write is a round trip to zarr's I/O thread (~1 ms, more than decoding a small file), so a task
    covers a few files and writes their chunks together; the done flags still come after the chunks. Files
    that cannot be read give ``"error"`` results and are not written.
    """
    from evrobust.preprocess.aedat2_frames import sample_histogram

    unit = params.count_unit()
    results: list[SampleResult] = []
    good: list[int] = []
    samples, digests = [], []
    for index, source in items:
        try:
            sample, n_events, digest = _read_event_sample(source, params, unit)
        except (UserInputError, OSError) as exc:
            results.append(SampleResult(index, 0, "error", " ".join(str(exc).split())))
            continue
        good.append(index)
        samples.append(sample)
        digests.append(np.frombuffer(digest, dtype=np.uint8))
        results.append(SampleResult(index, n_events, "written", histogram=sample_histogram(sample)))
    if good:
        store.write_samples(store_path, good, np.stack(samples), np.stack(digests))
    return results


def convert_image_block(store_path: str, start: int, block: np.ndarray) -> SampleResult:
    """Write images ``[B, C, H, W]`` uint8 as samples ``start..start+B`` and flag them done."""
    store.write_block(store_path, start, block)
    return SampleResult(start, 0, "written", n_samples=int(block.shape[0]))


def convert_emulated_block(
    store_path: str, start: int, images: np.ndarray, params: FrameParams, emulator: dict[str, object]
) -> SampleResult:
    """Emulate events for images ``[B, C, H, W]`` uint8, bin them, and write samples ``start..start+B``.

    ``emulator`` holds the keyword arguments of :func:`evrobust.preprocess.emulator.emulate_events`. The
    recorded checksum of a sample is the sha256 of its image bytes (its source). A whole block is written in
    one call (chunks, then flags): emulated samples are small, so per-call overhead would dominate.
    """
    from evrobust.preprocess.emulator import emulate_events

    unit = params.count_unit()
    samples, digests, n_events = [], [], 0
    for image in images:
        events = emulate_events(image, **emulator)  # type: ignore[arg-type]
        n_events += int(events.shape[0])
        samples.append(events_to_sample(events, params, unit))
        digests.append(
            np.frombuffer(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest(), np.uint8)
        )
    store.write_block(store_path, start, np.stack(samples), np.stack(digests))
    return SampleResult(start, n_events, "written", n_samples=len(samples))


def convert_recording_block(
    store_path: str,
    start: int,
    images: np.ndarray,
    params: FrameParams,
    settings: dict[str, object],
    seeds: list[int],
    raw_out: str | None = None,
    names: list[str] | None = None,
) -> SampleResult:
    """Emulate CIFAR10-DVS recordings of images ``[B, 3, H, W]``, bin them, write samples ``start..start+B``.

    ``settings`` are :class:`~evrobust.preprocess.emulator_recording.RecordingParams` as a dict, ``seeds``
    the per-sample seeds. With ``raw_out`` each recording is also written as ``<raw_out>/<names[b]>`` in the
    release layout (AEDAT 2.0, atomically, before the block's chunks and done flags). The recorded checksum
    of a sample is the sha256 of its image bytes.
    """
    from evrobust.preprocess.emulator_recording import RecordingParams, emulate_recording, write_recordings

    emu = RecordingParams.from_dict(settings)
    unit = params.count_unit()
    samples, digests, n_events = [], [], 0
    for b, image in enumerate(images):
        events = emulate_recording(image, emu, seeds[b])
        n_events += int(events.shape[0])
        if raw_out is not None and names is not None:
            write_recordings(raw_out, [names[b]], [events], emu.sensor_size)
        samples.append(events_to_sample(events, params, unit))
        digests.append(
            np.frombuffer(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest(), np.uint8)
        )
    store.write_block(store_path, start, np.stack(samples), np.stack(digests))
    return SampleResult(start, n_events, "written", n_samples=len(samples))
