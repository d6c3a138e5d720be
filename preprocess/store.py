"""The zarr v3 store schema: one self-describing directory per dataset, written resumably and verifiable.

Layout of a store at ``<path>`` (a zarr v3 group)::

    frames          events: [N, T, 2, H, W] uint16 counts   images: [N, C, H, W] uint8 pixels
                    one chunk per sample, zstd-compressed
    labels          [N] int64, one chunk (written once, when the store is created)
    done            [N] uint8, one chunk per sample: 0 = pending, 1 = written, 2 = skipped (unreadable source)
    source_sha256   events only: [N, 32] uint8, one chunk per sample, the sha256 of the sample's source file

Chunk files are named ``c.<sample>.0.0...`` (zarr v3's default key encoding with ``.`` separators: one flat
directory per array). Event counts are stored in units of ``1/count_unit`` events (the exact area resize makes
fractional counts; see :meth:`evrobust.preprocess.convert.FrameParams.count_unit`).

Counts are stored as ``uint16`` and saturate at 65535: after a 128->48 resize a pixel sums about seven sensor
pixels, and a real recording does not put 65535 events of one polarity on one pixel in one frame, so nothing
is lost in practice, while ``uint8`` would clip busy frames (hundreds of events per pixel happen). Zero-heavy
frames compress well either way.

Images are stored once, ``[C, H, W]``; they are repeated over T inside the model, never here.

Write protocol (what makes a store resumable and idempotent): the root attributes and the ``labels`` array are
written when the store is created; a worker writes a sample's ``frames`` chunk (and its ``source_sha256``) and
only then its ``done`` flag, so nothing half-written is ever marked done. A rerun with the same inputs reopens
the store, redoes every sample whose flag is not 1, and :func:`finalize_store` rewrites the root attributes
from the stored data only. An interrupted run therefore ends byte-identical to an uninterrupted one.

Root attributes (``zarr.json``, read and checked by :mod:`.store_attrs`): see :data:`BUILD_KEYS` (fixed at
creation, compared on resume) and the keys :func:`finalize_store` adds: ``complete``, ``splits`` (final index
sets, skipped samples removed), ``scale``, ``scale_rule``, ``mean``, ``std``, ``source_sha256`` and
``skipped``. The count statistics and :func:`finalize_store` are in :mod:`.store_stats`, verification in
:mod:`.store_verify`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from evrobust.errors import UserInputError
from evrobust.preprocess.store_attrs import (  # noqa: F401 - re-exported: the store's public schema
    COUNT_DTYPE,
    COUNT_MAX,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_DTYPE,
    KINDS,
    MAX_FRAMES,
    MAX_SAMPLE_ELEMENTS,
    MAX_SCALE,
    MAX_SIDE,
    attrs_problem,
    check_event_options,
    read_attrs,
)
from evrobust.safeio import open_new, parse_json, read_bytes, remove_file, roundtrip

logger = logging.getLogger(__name__)

PENDING, WRITTEN, SKIPPED = 0, 1, 2
# Level 3 is zstd's default: ~4x on event frames at a few hundred MB/s per core.
_COMPRESSOR = ZstdCodec(level=3)

# The root attributes fixed when a store is created. A rerun must ask for the same build, else it would mix
# samples made with different options into one store.
BUILD_KEYS = (
    "format",
    "format_version",
    "dataset",
    "kind",
    "sample_shape",
    "dtype",
    "num_classes",
    "classes",
    "sensor",
    "orientation",
    "frames",
    "split_by",
    "resize",
    "count_unit",
    "sources",
    "source_sha256_planned",
    "planned_splits",
    "split_rule",
    "default_split",
    "stats_split",
    "scale_request",
    "extra",
)


_OPEN: dict[tuple[str, str, str], tuple[int, int, zarr.Array]] = {}


def _array(path: Path, name: str, mode: str = "r") -> zarr.Array:
    """Open one array of a store, reusing a handle of this process while its metadata file is unchanged.

    Opening costs a metadata read and several event-loop round trips, more than writing a small chunk; the
    cache key includes the metadata file's inode and mtime, so a store deleted and rebuilt is reopened.
    """
    meta = Path(path) / name / "zarr.json"
    try:
        st = meta.stat()
        stamp = (st.st_ino, st.st_mtime_ns)
    except OSError:
        stamp = (0, 0)
    key = (str(path), name, mode)
    hit = _OPEN.get(key)
    if hit is not None and hit[:2] == stamp and stamp != (0, 0):
        return hit[2]
    arr = zarr.open_array(store=str(path), path=name, mode=mode, zarr_format=3)
    if len(_OPEN) > 256:
        _OPEN.clear()
    _OPEN[key] = (*stamp, arr)
    return arr


_ZSTD = None
# Chunk keys "c.<i>.0.0..." (zarr v3 default encoding with "." separators): one flat directory of chunk files
# per array, instead of a directory tree per sample ("c/<i>/0/0/..."), which cost four mkdirs per sample.
_KEYS = {"name": "default", "separator": "."}
# Arrays whose chunks are zstd-compressed (the others are raw little-endian bytes); must match create_store.
_COMPRESSED = {"frames": True, "labels": True, "done": False, "source_sha256": False}


def _write_chunk(path: Path, name: str, index: int, value: np.ndarray) -> None:
    """Write the chunk of sample ``index`` of array ``name`` straight to its file, atomically.

    The bytes are exactly what zarr writes for our codecs (``bytes`` little-endian, then ``zstd`` level 3 for
    compressed arrays; checked by a test), at a fraction of the cost: a zarr write is a round trip through its
    event-loop thread plus per-chunk bookkeeping, which dominated the run time of small files. The chunk key
    is ``c.<index>.0...`` (see ``_KEYS``; one chunk per sample along axis 0; ``value`` is the
    sample without that axis, 0-d for the done flag). Written to a temporary name and renamed, so a chunk
    file is either absent or complete.
    """
    global _ZSTD
    target = path / name / ".".join(["c", str(index), *(["0"] * np.ndim(value))])
    data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    if _COMPRESSED[name]:
        if _ZSTD is None:
            from numcodecs import Zstd

            _ZSTD = Zstd(level=_COMPRESSOR.level)
        data = bytes(_ZSTD.encode(data))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with write_errors(path, f"sample {index} of {name}"):
        try:
            fh = open_new(tmp)  # O_EXCL | O_NOFOLLOW: never through a link planted at the temporary name
        except FileExistsError:  # left by a killed writer that had this pid and thread id
            remove_file(tmp)
            fh = open_new(tmp)
        try:
            with fh:
                view = memoryview(data)
                while view:  # a regular file takes it all at once; loop for the rare short write
                    view = view[os.write(fh.fileno(), view) :]
            # No fsync per chunk (it would cost ~1 ms x every sample): the rename makes a chunk all-or-nothing
            # for a killed process; after a power loss, `evrobust preprocess verify` finds undecodable chunks.
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError, UserInputError):
                remove_file(tmp)
            raise


@contextmanager
def write_errors(path: Path, what: str) -> Iterator[None]:
    """Turn an OSError while writing the store into one UserInputError line (ENOSPC, EDQUOT, EFBIG, EACCES).

    Whatever was written before stays valid (chunks are renamed into place only when complete, flags come
    after their chunks), so the message tells the user to fix the cause and rerun, which resumes.
    """
    try:
        yield
    except OSError as exc:
        raise UserInputError(
            f"cannot write {what} of the store {path} ({exc.strerror or exc}); "
            "free some space or fix the permissions, then rerun the same command to resume"
        ) from None


def _json_roundtrip(value: Any) -> Any:
    # Compare what is stored with what is asked for after the same JSON encoding (tuples become lists).
    return roundtrip(value)


def _unfinished_creation(path: Path) -> bool:
    """A directory left by a crash inside :func:`create_store`: our arrays, no format attribute, nothing done.

    Such a directory holds no sample yet, so creating the store afresh over it loses nothing.
    """
    try:
        doc = parse_json(read_bytes(path / "zarr.json", "store_metadata"), f"{path}/zarr.json")
    except UserInputError:
        return False
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes", {}), dict):
        return False
    children = {p.name for p in path.iterdir()} - {"zarr.json"}
    return (
        "format" not in doc.get("attributes", {})
        and children <= {"frames", "labels", "done", "source_sha256"}
        and not any((path / "done").glob("c.*"))
    )


def create_store(
    path: str | Path,
    *,
    dataset: str,
    kind: str,
    sample_shape: Sequence[int],
    labels: np.ndarray,
    classes: Sequence[str],
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    sources: Sequence[str],
    source_sha256: Sequence[str] | None = None,
    sensor: Sequence[int] | None = None,
    orientation: str | None = None,
    frames: int | None = None,
    split_by: str | None = None,
    resize: int | None = None,
    count_unit: int = 1,
    scale: float | None = None,
    stats_split: str = "train",
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Create the store at ``path``, or reopen it for resuming when it was created with the same build.

    Args:
        path: the store directory (``*.zarr``).
        dataset: the dataset name recorded in the attrs (``cifar10dvs``, ``cifar10``, ``digits``, ...).
        kind: ``"events"`` (frames ``[T, 2, H, W]`` counts) or ``"images"`` (``[C, H, W]`` uint8 pixels).
        sample_shape: the shape of one sample, as above.
        labels: ``[N]`` integer class indices in ``[0, len(classes))``.
        classes: class names, index = label.
        splits: ``{scheme: {"train": idx, "val": idx, "test": idx}}`` planned index sets.
        default_split: the scheme :func:`evrobust.datasets.open_split` uses unless told otherwise.
        split_rule: a sentence per scheme saying how the index sets were made (recorded for the reader).
        sources: one entry per sample (events: the source file relative to the raw dir) or per source file
            (images: the batch files); recorded so a rerun can check it reads the same inputs.
        source_sha256: for images, the sha256 of each entry of ``sources`` (known before writing); events
            get theirs per sample from the workers.
        sensor, orientation, frames, split_by, resize: event options (``sensor`` = ``[W, H]`` in pixels).
        count_unit: stored integers per event (area resizing makes fractional counts; see
            :meth:`evrobust.preprocess.convert.FrameParams.count_unit`); 1 for images.
        scale: the count scale; ``None`` = the automatic rule :data:`SCALE_RULE` (events), 255 for images.
        stats_split: the split of ``default_split`` used for the scale and the mean/std.
        extra: further JSON-serialisable build facts (e.g. emulator settings).

    Returns:
        True if a new store was created, False if an existing one with the same build was reopened.

    Raises:
        UserInputError: ``path`` holds something else, or a store built with different inputs/options.
    """
    if kind not in KINDS:
        raise UserInputError(f"unknown store kind {kind!r}; choose one of {', '.join(KINDS)}")
    path = Path(path)
    labels = np.asarray(labels, dtype=np.int64)
    n = int(labels.shape[0])
    dtype = COUNT_DTYPE if kind == "events" else IMAGE_DTYPE
    if labels.ndim != 1 or n == 0:
        raise UserInputError(f"no samples to write to {path}")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise UserInputError(f"labels out of range [0, {len(classes)}) for {path}")
    build: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "kind": kind,
        "sample_shape": [int(s) for s in sample_shape],
        "dtype": dtype.name,
        "num_classes": len(classes),
        "classes": list(classes),
        "sensor": None if sensor is None else [int(s) for s in sensor],
        "orientation": orientation,
        "frames": frames,
        "split_by": split_by,
        "resize": resize,
        "count_unit": int(count_unit),
        "sources": list(sources),
        "source_sha256_planned": None if source_sha256 is None else list(source_sha256),
        "planned_splits": {
            s: {k: [int(i) for i in v] for k, v in parts.items()} for s, parts in splits.items()
        },
        "split_rule": split_rule,
        "default_split": default_split,
        "stats_split": stats_split,
        "scale_request": scale,
        "extra": dict(extra or {}),
    }
    if default_split not in build["planned_splits"]:
        raise UserInputError(f"default split scheme {default_split!r} is not among {sorted(splits)}")
    if kind == "events":
        check_event_options(frames if frames is not None else 1, resize, None, scale)
    # The writer refuses whatever the readers (read_attrs) would reject, so no store is ever unreadable.
    problem = attrs_problem(_json_roundtrip(build))
    if problem:
        raise UserInputError(f"cannot create the store {path}: {problem}")
    if (path / "zarr.json").exists() and not _unfinished_creation(path):
        old = read_attrs(path)
        want = _json_roundtrip(build)
        differing = [k for k in BUILD_KEYS if old.get(k) != want.get(k)]
        if differing:
            raise UserInputError(
                f"{path} already holds a store built from different inputs or options "
                f"(differs in: {', '.join(differing)}); pass another --out path or delete it"
            )
        stored_labels = _array(path, "labels")[:]
        if stored_labels.shape != labels.shape or not np.array_equal(stored_labels, labels):
            raise UserInputError(f"{path} holds different labels; pass another --out path or delete it")
        # Temporary chunk files of a killed writer (never renamed into place) are garbage; drop them.
        for name in ("frames", "done", "source_sha256"):
            for stale in (path / name).glob(".c.*.tmp"):
                with contextlib.suppress(UserInputError):  # a link or FIFO there is left alone
                    remove_file(stale)
        logger.info("resuming the store at %s", path)
        return False
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{path} is a file, not a store directory; choose another --out path")
    if path.exists() and any(path.iterdir()) and not _unfinished_creation(path):
        raise UserInputError(f"{path} exists and is not an evrobust store; choose another --out path")
    with write_errors(path, "the arrays"):
        # zarr's mode="w" clears the directory first: do that on the real path, never through a symlink.
        _create_arrays(Path(os.path.realpath(path)), build, labels, kind, dtype)
    logger.info("created the store at %s (%d samples, sample shape %s)", path, n, build["sample_shape"])
    return True


def _create_arrays(path: Path, build: dict[str, Any], labels: np.ndarray, kind: str, dtype: np.dtype) -> None:
    """Create the arrays, write the labels, then the root attributes (see :func:`create_store`)."""
    n = int(labels.shape[0])
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    shape = (n, *build["sample_shape"])
    group.create_array(
        "frames",
        shape=shape,
        chunks=(1, *build["sample_shape"]),
        dtype=dtype,
        compressors=_COMPRESSOR,
        fill_value=0,
        chunk_key_encoding=_KEYS,
        dimension_names=(
            ["sample", "time", "polarity", "y", "x"] if kind == "events" else ["sample", "channel", "y", "x"]
        ),
    )
    # write_empty_chunks: the labels chunk is written even when every label is 0 (one class), so that a
    # missing labels chunk always means damage (verify and the readers refuse it; zarr would read zeros).
    lab = group.create_array(
        "labels",
        shape=(n,),
        chunks=(n,),
        dtype="int64",
        compressors=_COMPRESSOR,
        fill_value=0,
        config={"write_empty_chunks": True},
    )
    group.create_array(
        "done",
        shape=(n,),
        chunks=(1,),
        dtype="uint8",
        compressors=None,
        fill_value=PENDING,
        chunk_key_encoding=_KEYS,
    )
    if kind == "events":
        group.create_array(
            "source_sha256",
            shape=(n, 32),
            chunks=(1, 32),
            dtype="uint8",
            compressors=None,
            fill_value=0,
            chunk_key_encoding=_KEYS,
        )
    lab[:] = labels
    # Attributes last: a directory with arrays but no format attribute is not yet a store, so a crash here
    # leaves nothing that a rerun would mistake for a resumable store.
    group.attrs.put({**build, "complete": False})


def write_sample(path: str | Path, index: int, sample: np.ndarray, sha256: bytes | None = None) -> None:
    """Write one sample's chunk (and its source checksum), then mark it done.

    Args:
        path: the store.
        index: the sample index in ``[0, N)``.
        sample: events ``[T, 2, H, W]`` integer counts (values above 65535 saturate) or images ``[C, H, W]``
            uint8.
        sha256: the 32-byte digest of the sample's source file (events stores).
    """
    digest = None if sha256 is None else np.frombuffer(sha256, dtype=np.uint8)[None]
    write_samples(path, [index], sample[None], digest)


def write_samples(
    path: str | Path, indices: list[int], samples: np.ndarray, sha256: np.ndarray | None
) -> None:
    """Write samples at ``indices`` (``samples`` ``[B, ...]``, ``sha256`` ``[B, 32]`` uint8), then flag them.

    Every chunk (frames, checksum) is written before any done flag of the batch.
    """
    path = Path(path)
    frames = _array(path, "frames")
    if tuple(samples.shape[1:]) != tuple(frames.shape[1:]):
        raise ValueError(f"sample shape {samples.shape[1:]} != store sample shape {frames.shape[1:]}")
    if any(not 0 <= int(i) < frames.shape[0] for i in indices):
        raise ValueError(f"sample index out of range [0, {frames.shape[0]})")
    if frames.dtype == COUNT_DTYPE and samples.dtype != COUNT_DTYPE:
        samples = np.minimum(samples, COUNT_MAX).astype(COUNT_DTYPE)
    samples = samples.astype(frames.dtype, copy=False)
    for k, i in enumerate(indices):
        _write_chunk(path, "frames", int(i), samples[k])
        if sha256 is not None:
            _write_chunk(path, "source_sha256", int(i), np.asarray(sha256[k], dtype=np.uint8))
    # The flags come last: a crash before them leaves the samples pending, and a rerun rewrites them.
    flag = np.array(WRITTEN, dtype=np.uint8)
    for i in indices:
        _write_chunk(path, "done", int(i), flag)


def write_block(path: str | Path, start: int, block: np.ndarray, sha256: np.ndarray | None = None) -> None:
    """Write samples ``start .. start+B`` (``block`` ``[B, ...]``, ``sha256`` ``[B, 32]`` uint8), then flags.

    Images are uint8 ``[B, C, H, W]``; event counts are saturated to uint16 like :func:`write_sample`.
    """
    write_samples(path, list(range(start, start + int(block.shape[0]))), block, sha256)


def mark_skipped(path: str | Path, index: int) -> None:
    """Flag sample ``index`` as skipped (its source could not be read); it is left out of every split."""
    _write_chunk(Path(path), "done", int(index), np.array(SKIPPED, dtype=np.uint8))


def done_flags(path: str | Path) -> np.ndarray:
    """The ``[N]`` uint8 done flags (0 pending, 1 written, 2 skipped)."""
    return _array(Path(path), "done")[:]


def missing_chunks(path: str | Path, flags: np.ndarray, sample_ndim: int) -> np.ndarray:
    """Indices flagged written (1) whose ``frames`` chunk file is absent.

    Every writer writes a sample's chunk before its flag (an all-zero sample too), so a missing chunk of a
    flagged sample is damage (a deleted or lost file); zarr would read it as all zeros without complaint.
    One directory listing, no chunk is read.
    """
    try:
        names = set(os.listdir(Path(path) / "frames"))
    except OSError:
        names = set()
    tail = "." + ".".join(["0"] * sample_ndim) if sample_ndim else ""
    written = np.flatnonzero(flags == WRITTEN)
    return np.asarray([i for i in written.tolist() if f"c.{i}{tail}" not in names], dtype=np.int64)


def missing_array_chunks(path: str | Path, name: str, chunks: Any) -> np.ndarray:
    """The chunk indices along axis 0 (``chunks``) whose chunk file of array ``name`` is absent.

    zarr reads an absent chunk as the fill value, so a deleted labels or flag chunk would pass silently as
    zeros; readers and ``verify`` call this first. The chunk keys come from the array's own metadata (the
    labels use ``c/0``, the per-sample arrays ``c.<i>``); one walk of the array's folder, no chunk is read.
    """
    folder = Path(path) / name
    arr = _array(Path(path), name)
    present = {
        (Path(d) / f).relative_to(folder).as_posix() for d, _, files in os.walk(folder) for f in files
    }
    inner = (0,) * (arr.ndim - 1)
    return np.asarray(
        [int(i) for i in chunks if arr.metadata.encode_chunk_key((int(i), *inner)) not in present],
        dtype=np.int64,
    )


def pending_indices(path: str | Path) -> np.ndarray:
    """Indices still to (re)do: pending ones, and skipped ones (retried, so a rerun reports their reasons)."""
    return np.flatnonzero(done_flags(path) != WRITTEN)

