"""AEDAT 2.0 payload -> count frames in one kernel, without materialising the decoded events.

The store builder's hot path. :func:`~evrobust.preprocess.aedat2.decode_aedat2_payload` followed by
:func:`~evrobust.preprocess.frames.events_to_frames` writes every event as a 13-byte record and reads it
back; here a first pass over the addresses counts the kept events (and, for ``split_by="time"``, finds the
time range), and a second pass decodes each event again and adds it straight into its frame. The frames are
identical to the two-step path (``tests/preprocess/test_aedat2_frames.py`` compares them on every layout,
orientation and split).

Without resizing the stored sample is the saturated ``uint16`` count itself, so the kernel can write it
directly (``saturate=True``) and the int32 frame, the clip and the cast are skipped.

Files the kernel cannot take as they are (an address outside the sensor) are reported, not raised: the
caller falls back to the two-step path, which raises the exact :class:`EventFileError` for them.

:func:`sample_histogram` is the one-pass version of :func:`evrobust.preprocess.store_stats.sample_histogram`
for event samples (same sparse ``[3, nnz]`` result).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from evrobust.preprocess.aedat2 import address_at, keep_address, raw_xyp, timestamp_at

__all__ = ["aedat2_frames", "sample_histogram"]

_SPLIT_CODE = {"number": 0, "time": 1}


@njit(cache=True, nogil=True)
def _payload_frames(
    payload: np.ndarray,
    layout: int,
    flip_x: bool,
    flip_y: bool,
    swap_xy: bool,
    flip_p: bool,
    w: int,
    h: int,
    n_frames: int,
    split_code: int,
    out: np.ndarray,
    limit: int,
) -> tuple[int, int]:
    """Bin the events of ``payload`` (uint8, 8 bytes per event) into ``out`` (flat ``[M*2*H'*W']``).

    ``w x h`` is the raw sensor; ``H' x W'`` the oriented one. Returns ``(kept, bad)``: the number of events
    binned and the payload index of the first event outside the raw sensor (``-1`` if none; nothing is
    binned then). A count stops at ``limit`` when ``limit >= 0`` (65535: saturated uint16 samples).
    """
    n = payload.shape[0] // 8
    kept = 0
    t0 = np.int64(0)
    t1 = np.int64(0)
    for i in range(n):  # pass 1: count, check, time range
        j = 8 * i
        a = address_at(payload, j)
        if not keep_address(a, layout):
            continue
        x, y, _ = raw_xyp(a, layout)
        if x >= w or y >= h:
            return kept, i
        if split_code == 1:
            t = timestamp_at(payload, j)
            if kept == 0 or t < t0:
                t0 = t
            if kept == 0 or t > t1:
                t1 = t
        kept += 1
    ow, oh = (h, w) if swap_xy else (w, h)
    plane = ow * oh
    last = n_frames - 1
    per = kept // n_frames
    dt = (t1 - t0) // n_frames
    # A pixel of a frame cannot count more events than the frame holds: when no frame holds more than
    # ``limit`` events, no count can saturate and the loop needs no check (the check measured 2x slower).
    biggest = kept - last * per if split_code == 0 else kept
    saturate = limit >= 0 and biggest > limit
    f = last if per == 0 else 0
    next_start = per  # split by number: kept index where frame f + 1 starts (a counter, not a division)
    k = 0
    for i in range(n):  # pass 2: bin
        j = 8 * i
        a = address_at(payload, j)
        if not keep_address(a, layout):
            continue
        x, y, p = raw_xyp(a, layout)
        if flip_x:
            x = w - 1 - x
        if flip_y:
            y = h - 1 - y
        if swap_xy:
            x, y = y, x
        if flip_p:
            p = 1 - p
        if split_code == 0:
            if k == next_start and f < last:
                f += 1
                next_start += per
        else:
            f = last if dt == 0 else min((timestamp_at(payload, j) - t0) // dt, last)
        idx = (f * 2 + p) * plane + y * ow + x
        if not saturate or out[idx] < limit:
            out[idx] += 1
        k += 1
    return kept, -1


def aedat2_frames(
    payload: np.ndarray,
    layout: str,
    flags: object,
    sensor: tuple[int, int],
    n_frames: int,
    split_by: str,
    dtype: np.dtype | type = np.int32,
) -> tuple[np.ndarray | None, int]:
    """Frames ``[M, 2, H', W']`` of an AEDAT 2.0 payload, and the number of events binned.

    Args:
        payload: uint8 bytes after the header (length a multiple of 8).
        layout: ``"dvs128"`` or ``"davis"``.
        flags: an :class:`~evrobust.preprocess.orientation.OrientationFlags`.
        sensor: the raw sensor ``(W, H)``.
        n_frames, split_by: as :func:`~evrobust.preprocess.frames.events_to_frames`.
        dtype: ``int32`` counts, or ``uint16`` counts saturated at 65535 (the stored sample without resize).

    Returns:
        ``(frames, kept)``; ``frames`` is ``None`` when an event lies outside the raw sensor (the caller
        decodes the two-step way to raise the precise error).
    """
    w, h = sensor
    ow, oh = (h, w) if flags.swap_xy else (w, h)  # type: ignore[attr-defined]
    dtype = np.dtype(dtype)
    out = np.zeros(n_frames * 2 * oh * ow, dtype=dtype)
    kept, bad = _payload_frames(
        payload,
        0 if layout == "dvs128" else 1,
        flags.flip_x,  # type: ignore[attr-defined]
        flags.flip_y,  # type: ignore[attr-defined]
        flags.swap_xy,  # type: ignore[attr-defined]
        flags.flip_p,  # type: ignore[attr-defined]
        w,
        h,
        n_frames,
        _SPLIT_CODE[split_by],
        out,
        int(np.iinfo(dtype).max) if dtype.kind == "u" else -1,
    )
    if bad >= 0:
        return None, 0
    return out.reshape(n_frames, 2, oh, ow), kept


@njit(cache=True, nogil=True)
def _channel_counts(sample: np.ndarray, channel: int, counts: np.ndarray) -> None:
    t_n, _, h, w = sample.shape
    for t in range(t_n):
        for y in range(h):
            for x in range(w):
                counts[sample[t, channel, y, x]] += 1


@njit(cache=True, nogil=True)
def _channel_max(sample: np.ndarray, channel: int) -> int:
    t_n, _, h, w = sample.shape
    top = 0
    for t in range(t_n):
        for y in range(h):
            for x in range(w):
                v = sample[t, channel, y, x]
                if v > top:
                    top = v
    return top


def sample_histogram(sample: np.ndarray) -> np.ndarray:
    """Sparse per-channel value histogram ``[3, nnz]`` int64 (channel, value, count) of a uint16 event sample.

    Equal to ``store_stats.sample_histogram(sample, "events")`` for ``[T, 2, H, W]`` samples, without the
    int64 copies that ``np.bincount`` needs.
    """
    parts = []
    for c in range(sample.shape[1]):
        counts = np.zeros(_channel_max(sample, c) + 1, dtype=np.int64)
        _channel_counts(sample, c, counts)
        nz = np.flatnonzero(counts)
        parts.append(np.stack([np.full(nz.shape[0], c), nz, counts[nz]]))
    return np.concatenate(parts, axis=1).astype(np.int64)
