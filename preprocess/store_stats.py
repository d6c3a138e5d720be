"""Count statistics of a store and its finalization: value histograms, the count scale, mean/std.

The workers compute :func:`sample_histogram` while a sample is in memory; :func:`finalize_store` sums the
histograms of the stats split (reading back the samples no worker reported), derives the count scale
(:func:`auto_scale`, the rule :data:`SCALE_RULE`) and the per-channel mean/std (:func:`stats_from_histogram`),
and writes the final root attributes. The store schema and the write protocol are in
:mod:`evrobust.preprocess.store`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from evrobust.errors import UserInputError
from evrobust.preprocess.store import (
    BUILD_KEYS,
    COUNT_MAX,
    PENDING,
    SKIPPED,
    WRITTEN,
    _array,
    done_flags,
    read_attrs,
    write_errors,
)

# finalize_store logs under the store module's name, as it did before the statistics moved here.
logger = logging.getLogger("evrobust.preprocess.store")

# The default count scale: x = clip(count / scale, 0, 1), scale = this percentile of the non-zero per-pixel
# counts of the train split, rounded up to an integer. The non-zero counts are used because most pixels of an
# event frame are empty (a percentile over all pixels would often be 0 or 1); at p99 one active pixel value in
# a hundred saturates at 1.0, so the [0, 1] range is used almost fully and eps keeps its pixel meaning.
SCALE_PERCENTILE = 99.0
SCALE_RULE = f"ceil(p{SCALE_PERCENTILE:g} of the non-zero per-pixel counts of the train split)"


def sample_histogram(sample: np.ndarray, kind: str) -> np.ndarray:
    """The per-channel value histogram of one stored sample, sparse: ``[3, nnz]`` int64 rows (channel, value,
    count) over the non-zero bins.

    Workers compute it while the sample is in memory, so finalizing need not read the sample back; sparse
    because a frame holds a few hundred distinct values out of 65536 (a few KB per result, not 1 MB).
    ``sample`` is events ``[T, 2, H, W]`` or images ``[C, H, W]``.
    """
    channels = sample.shape[1] if kind == "events" else sample.shape[0]
    parts = []
    for c in range(channels):
        values = sample[:, c] if kind == "events" else sample[c]
        counts = np.bincount(values.ravel().astype(np.int64))
        nz = np.flatnonzero(counts)
        parts.append(np.stack([np.full(nz.shape[0], c), nz, counts[nz]]))
    return np.concatenate(parts, axis=1).astype(np.int64)


def _histograms(
    path: Path, indices: np.ndarray, kind: str, known: Mapping[int, np.ndarray] | None = None
) -> np.ndarray:
    """Per-channel value histograms ``[C, K]`` int64 of the given samples (K = 65536 events, 256 images).

    ``known`` histograms (from this run's workers) are used as they are; the other samples are read back in
    parallel blocks. Integer sums are exact and order-free, so the result does not depend on which samples
    were known or on the thread count.
    """
    frames = _array(path, "frames")
    channels = frames.shape[2] if kind == "events" else frames.shape[1]
    nbins = COUNT_MAX + 1 if kind == "events" else 256
    total = np.zeros((channels, nbins), dtype=np.int64)
    known = known or {}
    for i in indices:
        h = known.get(int(i))
        if h is not None:
            np.add.at(total, (h[0], h[1]), h[2])
    rest = np.asarray([i for i in indices if int(i) not in known], dtype=np.int64)
    blocks = [np.sort(rest[i : i + 64]) for i in range(0, len(rest), 64)]

    def one(block: np.ndarray) -> np.ndarray:
        data = frames.get_orthogonal_selection((block,))
        hist = np.zeros((channels, nbins), dtype=np.int64)
        for c in range(channels):
            values = data[:, :, c] if kind == "events" else data[:, c]
            counts = np.bincount(values.ravel())
            hist[c, : counts.shape[0]] += counts
        return hist

    with ThreadPoolExecutor(max_workers=4) as pool:
        for hist in pool.map(one, blocks):
            total += hist
    return total


def auto_scale(hist: np.ndarray, percentile: float = SCALE_PERCENTILE) -> float:
    """The count scale from per-channel histograms ``[C, K]``: ceil of ``percentile`` of non-zero counts.

    Returns 1.0 when there are no non-zero counts.
    """
    pooled = hist.sum(axis=0)[1:]
    total = int(pooled.sum())
    if total == 0:
        return 1.0
    cumulative = np.cumsum(pooled)
    # The smallest count c with P(count <= c | count > 0) >= percentile/100 (the "higher" percentile).
    rank = math.ceil(total * percentile / 100.0)
    return float(int(np.searchsorted(cumulative, rank)) + 1)


def stats_from_histogram(hist: np.ndarray, scale: float) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``clip(value / scale, 0, 1)`` from value histograms ``[C, K]``."""
    values = np.minimum(np.arange(hist.shape[1], dtype=np.float64) / scale, 1.0)
    means, stds = [], []
    for c in range(hist.shape[0]):
        n = hist[c].sum()
        if n == 0:
            means.append(0.0)
            stds.append(1.0)
            continue
        mean = float((hist[c] * values).sum() / n)
        var = float((hist[c] * (values - mean) ** 2).sum() / n)
        # Rounded so that the JSON text is stable across platforms' last-bit float differences.
        means.append(round(mean, 8))
        stds.append(round(max(math.sqrt(var), 1e-8), 8))
    return means, stds


def finalize_store(
    path: str | Path,
    skipped_reasons: Mapping[int, str] | None = None,
    histograms: Mapping[int, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Mark a fully written store complete: final splits, scale, mean/std, checksums and skipped files.

    Everything is derived from the stored data and the creation attributes (plus the reasons for skipped
    samples), so finalizing after a resumed run gives the same bytes as after an uninterrupted one.
    ``histograms`` (``{index: sample_histogram(...)}`` of the samples this run wrote) spare reading those
    samples back; they must be the histograms of what was written.

    Raises:
        UserInputError: some sample is still pending.
    """
    path = Path(path)
    attrs = read_attrs(path)
    flags = done_flags(path)
    pending = np.flatnonzero(flags == PENDING)
    if pending.size:
        raise UserInputError(
            f"{path}: {pending.size} samples are not written yet; rerun the preprocess command"
        )
    skipped = set(np.flatnonzero(flags == SKIPPED).tolist())
    splits = {
        scheme: {name: [i for i in idx if i not in skipped] for name, idx in parts.items()}
        for scheme, parts in attrs["planned_splits"].items()
    }
    stats_idx = np.asarray(splits[attrs["default_split"]].get(attrs["stats_split"], []), dtype=np.int64)
    if stats_idx.size == 0:
        raise UserInputError(
            f"{path}: the {attrs['stats_split']} split is empty; no statistics can be computed"
        )
    hist = _histograms(path, stats_idx, attrs["kind"], histograms)
    if attrs["kind"] == "images":
        scale, rule = 255.0, "255 (uint8 pixels)"
    elif attrs["scale_request"] is not None:
        scale, rule = float(attrs["scale_request"]), "given by the user"
    else:
        scale, rule = auto_scale(hist), SCALE_RULE
    mean, std = stats_from_histogram(hist, scale)
    reasons = dict(skipped_reasons or {})
    if attrs["kind"] == "events":
        digests = _array(path, "source_sha256")[:]
        sha = {attrs["sources"][i]: bytes(digests[i]).hex() for i in range(len(flags)) if flags[i] == WRITTEN}
        skipped_list = [
            {"index": int(i), "source": attrs["sources"][i], "reason": reasons.get(int(i), "unreadable")}
            for i in sorted(skipped)
        ]
    else:
        sha = dict(zip(attrs["sources"], attrs["source_sha256_planned"] or [], strict=False))
        skipped_list = []
    final = {
        **{k: attrs[k] for k in BUILD_KEYS},
        "complete": True,
        "splits": splits,
        "scale": scale,
        "scale_rule": rule,
        "mean": mean,
        "std": std,
        "source_sha256": sha,
        "skipped": skipped_list,
    }
    with write_errors(path, "the final attributes"):  # zarr writes zarr.json via temp + rename
        zarr.open_group(str(path), mode="r+", zarr_format=3).attrs.put(final)
    logger.info("finalized %s: scale %g, %d skipped", path, scale, len(skipped_list))
    return final
