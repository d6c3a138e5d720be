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

Root attributes (``zarr.json``): see :data:`BUILD_KEYS` (fixed at creation, compared on resume) and the keys
:func:`finalize_store` adds: ``complete``, ``splits`` (final index sets, skipped samples removed), ``scale``,
``scale_rule``, ``mean``, ``std``, ``source_sha256`` and ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from evrobust.errors import UserInputError

logger = logging.getLogger(__name__)

FORMAT_NAME = "evrobust-store"
FORMAT_VERSION = 1
KINDS = ("events", "images")

PENDING, WRITTEN, SKIPPED = 0, 1, 2
COUNT_DTYPE = np.dtype("uint16")
COUNT_MAX = int(np.iinfo(COUNT_DTYPE).max)
IMAGE_DTYPE = np.dtype("uint8")
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

# The default count scale: x = clip(count / scale, 0, 1), scale = this percentile of the non-zero per-pixel
# counts of the train split, rounded up to an integer. The non-zero counts are used because most pixels of an
# event frame are empty (a percentile over all pixels would often be 0 or 1); at p99 one active pixel value in
# a hundred saturates at 1.0, so the [0, 1] range is used almost fully and eps keeps its pixel meaning.
SCALE_PERCENTILE = 99.0
SCALE_RULE = f"ceil(p{SCALE_PERCENTILE:g} of the non-zero per-pixel counts of the train split)"


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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:  # a regular file takes it all at once; loop for the rare short write
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            # No fsync per chunk (it would cost ~1 ms x every sample): the rename makes a chunk all-or-nothing
            # for a killed process; after a power loss, `evrobust preprocess verify` finds undecodable chunks.
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
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


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes of the store at ``path`` (raises UserInputError if it is not a store)."""
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        raise UserInputError(
            f"{path} is not an evrobust store (no zarr.json); build one with `evrobust preprocess`"
        )
    try:
        if meta.stat().st_size > MAX_ATTRS_BYTES:
            raise UserInputError(f"{path}/zarr.json is over {MAX_ATTRS_BYTES} bytes; rebuild the store")
        doc = json.loads(meta.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        if isinstance(exc, UserInputError):
            raise
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(f"{path}/zarr.json is unreadable ({message}); rebuild the store") from None
    attrs = doc.get("attributes", {}) if isinstance(doc, dict) else None
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT_NAME:
        raise UserInputError(
            f"{path} is a zarr group but not an evrobust store (attribute format != {FORMAT_NAME})"
        )
    problem = _attrs_problem(attrs)
    if problem:
        raise UserInputError(f"{path}/zarr.json is damaged ({problem}); rebuild the store")
    return attrs


MAX_ATTRS_BYTES = 256 << 20  # the attrs of a 60000-sample store (splits, checksums) are a few MB
MAX_SAMPLE_ELEMENTS = 1 << 28  # one sample of 256 M values: far above any real frame stack
MAX_FRAMES = 1024  # T of an event store (CIFAR10-DVS uses 10)
MAX_SIDE = 1024  # output side of an event store after resizing (CIFAR10-DVS uses 48; the sensor is 128)
MAX_SCALE = 1e9  # a count scale above any count a uint16 store can hold times any count unit


def check_event_options(
    frames: Any, size: Any, sensor: Sequence[int] | None = None, scale: Any = None
) -> None:
    """Refuse event-store options outside the documented limits, before anything is sized by them.

    ``frames`` in [1, MAX_FRAMES], ``size`` (None or) in [1, MAX_SIDE], a sample ``frames x 2 x H x W`` of
    at most MAX_SAMPLE_ELEMENTS values (the limit :func:`read_attrs` applies), ``scale`` (None or) a finite
    number in (0, MAX_SCALE]. The writer refuses exactly what the reader would reject.

    Raises:
        UserInputError: naming the option and the limit.
    """
    if not _is_int(frames) or not 1 <= frames <= MAX_FRAMES:
        raise UserInputError(f"--frames must be an integer in [1, {MAX_FRAMES}], got {frames!r}")
    if size is not None and (not _is_int(size) or not 1 <= size <= MAX_SIDE):
        raise UserInputError(f"--size must be an integer in [1, {MAX_SIDE}] pixels, got {size!r}")
    if sensor is not None:
        h = size if size is not None else max(int(v) for v in sensor)
        elements = frames * 2 * h * h
        if elements > MAX_SAMPLE_ELEMENTS:
            raise UserInputError(
                f"--frames {frames} x 2 x {h} x {h} = {elements} values per sample is over the "
                f"{MAX_SAMPLE_ELEMENTS} a store may hold; lower --frames or --size"
            )
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or not 0 < scale <= MAX_SCALE
    ):
        raise UserInputError(f"--scale must be a finite number in (0, {MAX_SCALE:g}], got {scale!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v)


def _attrs_problem(attrs: dict[str, Any]) -> str | None:
    """The first type/range problem of the root attributes present (None when they are well formed).

    Readers downstream index, reshape and allocate with these values, so a garbled or hostile zarr.json must
    stop here, as one UserInputError, instead of as a TypeError deep inside (or a huge allocation).
    """
    if "kind" in attrs and attrs["kind"] not in KINDS:
        return f"kind {attrs['kind']!r} is not one of {', '.join(KINDS)}"
    shape = attrs.get("sample_shape", [1])
    if not _int_list(shape) or not shape or min(shape) < 1 or math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        return f"sample_shape {str(shape)[:80]} is not a plausible list of positive sizes"
    if "dtype" in attrs and attrs["dtype"] not in (COUNT_DTYPE.name, IMAGE_DTYPE.name):
        return f"dtype {str(attrs['dtype'])[:40]!r} is not uint16 or uint8"
    classes = attrs.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of names"
    n_classes = attrs.get("num_classes", len(classes))
    if not _is_int(n_classes) or n_classes < 1 or n_classes != len(classes):
        return f"num_classes {str(n_classes)[:40]} does not match the {len(classes)} class names"
    if not isinstance(attrs.get("sources", []), list):
        return "sources is not a list"
    for key in ("splits", "planned_splits"):
        schemes = attrs.get(key, {})
        if not isinstance(schemes, dict) or not all(
            isinstance(parts, dict) and all(_int_list(idx) for idx in parts.values())
            for parts in schemes.values()
        ):
            return f"{key} is not a mapping of index lists"
    for key in ("default_split", "stats_split"):
        if key in attrs and not isinstance(attrs[key], str):
            return f"{key} is not a name"
    if "default_split" in attrs and isinstance(attrs.get("planned_splits"), dict):
        if attrs["default_split"] not in attrs["planned_splits"]:
            return f"default_split {attrs['default_split']!r} names no split scheme"
    if "format_version" in attrs and attrs["format_version"] != FORMAT_VERSION:
        version = str(attrs["format_version"])[:20]
        return f"format_version {version} is not {FORMAT_VERSION}, the one this evrobust reads"
    for key in ("mean", "std"):
        v = attrs.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, int | float) and math.isfinite(x) for x in v):
            return f"{key} is not a list of numbers"
    if any(x <= 0 for x in attrs.get("std", [])):
        return "std holds a value <= 0 (inputs are divided by it)"
    request = attrs.get("scale_request")
    if request is not None and (
        not isinstance(request, int | float)
        or isinstance(request, bool)
        or not math.isfinite(request)
        or request <= 0
    ):
        return f"scale_request {str(request)[:40]} is not a positive number"
    scale = attrs.get("scale", 1.0)
    if scale is not None and (
        not isinstance(scale, int | float)
        or isinstance(scale, bool)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        return f"scale {str(scale)[:40]} is not a positive number"
    for key, most in (("frames", MAX_FRAMES), ("resize", MAX_SIDE)):
        v = attrs.get(key)
        if v is not None and (not _is_int(v) or not 1 <= v <= most):
            return f"{key} {str(v)[:40]} is not an integer in [1, {most}]"
    return None


def _json_roundtrip(value: Any) -> Any:
    # Compare what is stored with what is asked for after the same JSON encoding (tuples become lists).
    return json.loads(json.dumps(value))


def _unfinished_creation(path: Path) -> bool:
    """A directory left by a crash inside :func:`create_store`: our arrays, no format attribute, nothing done.

    Such a directory holds no sample yet, so creating the store afresh over it loses nothing.
    """
    try:
        doc = json.loads((path / "zarr.json").read_text())
    except (OSError, json.JSONDecodeError):
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
    problem = _attrs_problem(_json_roundtrip(build))
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
                stale.unlink(missing_ok=True)
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
    lab = group.create_array(
        "labels", shape=(n,), chunks=(n,), dtype="int64", compressors=_COMPRESSOR, fill_value=0
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


def pending_indices(path: str | Path) -> np.ndarray:
    """Indices still to (re)do: pending ones, and skipped ones (retried, so a rerun reports their reasons)."""
    return np.flatnonzero(done_flags(path) != WRITTEN)


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


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_is_store(path: str | Path) -> None:
    """Raise a UserInputError unless ``path`` is (at least the shell of) an evrobust store.

    ``evrobust preprocess verify`` uses it so that a path that is not a store at all (missing, a file, a
    plain directory, another zarr group) is a user error (exit 2); a damaged store is a finding (exit 1).
    """
    path = Path(path)
    if not path.is_dir():
        state = "is a file" if path.exists() else "does not exist"
        raise UserInputError(f"{path} {state}; `verify` checks a store built by `evrobust preprocess`")
    meta = path / "zarr.json"
    try:
        head = meta.read_bytes()[: 1 << 20] if meta.is_file() else b""
    except OSError as exc:
        raise UserInputError(f"{meta} cannot be read ({exc.strerror or exc})") from None
    if not head or FORMAT_NAME.encode() not in head:
        raise UserInputError(f"{path} is not an evrobust store (no zarr.json naming {FORMAT_NAME})")


def verify_store(path: str | Path, raw_dir: str | Path | None = None, deep: bool = True) -> list[str]:
    """Check a store and return its problems (an empty list means it is sound).

    Checks: the format attributes; array shapes, dtypes and chunking; labels in ``[0, num_classes)``; every
    done flag set (1 written or 2 skipped) and the store marked complete; split index sets in range, disjoint
    within a scheme and free of skipped samples; recorded checksums consistent with the per-sample ones;
    with ``raw_dir``, the source files' sha256 against the recorded ones; with ``deep``, every written chunk
    decodes.
    """
    path = Path(path)
    problems: list[str] = []
    # Per-sample / per-source findings are grouped by kind: one line per kind with a count and the first
    # case, instead of one line per sample (a damaged store can have thousands).
    grouped: dict[str, list[str]] = {}

    def finding(kind: str, line: str) -> None:
        grouped.setdefault(kind, []).append(line)

    try:
        attrs = read_attrs(path)
    except UserInputError as exc:
        return [str(exc)]
    if attrs.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version {attrs.get('format_version')} is not {FORMAT_VERSION}")
        return problems
    missing = [k for k in BUILD_KEYS if k not in attrs]
    if missing:
        return [f"root attributes missing: {', '.join(missing)}"]
    n = len(attrs["sources"]) if attrs["kind"] == "events" else None
    try:
        frames = _array(path, "frames")
        labels_arr = _array(path, "labels")
        done_arr = _array(path, "done")
    except Exception as exc:  # noqa: BLE001 - any zarr failure here is a broken store, reported not raised
        return [f"arrays missing or unreadable: {type(exc).__name__}: {exc}"]
    n = frames.shape[0] if n is None else n
    want_shape = (n, *attrs["sample_shape"])
    if tuple(frames.shape) != want_shape:
        problems.append(f"frames has shape {tuple(frames.shape)}, expected {want_shape}")
    if frames.dtype != np.dtype(attrs["dtype"]):
        problems.append(f"frames has dtype {frames.dtype}, expected {attrs['dtype']}")
    if tuple(frames.chunks) != (1, *attrs["sample_shape"]):
        problems.append(f"frames chunks {tuple(frames.chunks)} are not one per sample")
    if tuple(labels_arr.shape) != (n,) or tuple(done_arr.shape) != (n,):
        problems.append(f"labels {labels_arr.shape} / done {done_arr.shape} do not have length {n}")
        return problems
    labels = labels_arr[:]
    bad = np.flatnonzero((labels < 0) | (labels >= attrs["num_classes"]))
    if bad.size:
        problems.append(
            f"{bad.size} labels outside [0, {attrs['num_classes']}), first at index {int(bad[0])}"
        )
    if len(attrs["classes"]) != attrs["num_classes"]:
        problems.append(f"{len(attrs['classes'])} class names for {attrs['num_classes']} classes")
    flags = done_arr[:]
    pending = np.flatnonzero(flags == PENDING)
    if pending.size:
        problems.append(
            f"{pending.size} samples not written (first index {int(pending[0])}); "
            "rerun the preprocess command"
        )
    lost = missing_chunks(path, flags, len(attrs["sample_shape"]))
    if lost.size:
        problems.append(
            f"{lost.size} samples flagged done have no frames chunk file (first index {int(lost[0])}); "
            "rebuild the store (delete it and rerun the preprocess command)"
        )
    odd = np.flatnonzero(flags > SKIPPED)
    if odd.size:
        problems.append(f"{odd.size} done flags hold unknown values")
    if not attrs.get("complete"):
        problems.append("the store is not marked complete (the writing run did not finish)")
        return problems
    skipped = set(np.flatnonzero(flags == SKIPPED).tolist())
    recorded_skips = {int(s["index"]) for s in attrs.get("skipped", [])}
    if attrs["kind"] == "events" and recorded_skips != skipped:
        problems.append(
            f"skipped samples {sorted(skipped)} differ from the recorded {sorted(recorded_skips)}"
        )
    for scheme, parts in attrs.get("splits", {}).items():
        seen: set[int] = set()
        for name, idx in parts.items():
            s = set(idx)
            if len(s) != len(idx):
                problems.append(f"split {scheme}/{name} repeats indices")
            if any(i < 0 or i >= n for i in s):
                problems.append(f"split {scheme}/{name} has indices outside [0, {n})")
            if s & seen:
                problems.append(f"split {scheme}/{name} overlaps another split of {scheme}")
            if s & skipped:
                problems.append(f"split {scheme}/{name} contains skipped samples")
            seen |= s
    default = attrs.get("splits", {}).get(attrs.get("default_split"), {})
    planned = attrs.get("planned_splits", {}).get(attrs.get("default_split"), {})
    if "train" in planned and not default.get("train"):  # (an empty val split is legal for tiny stores)
        problems.append(f"split {attrs['default_split']}/train is empty; training cannot use this store")
    for key in ("scale", "mean", "std"):
        if key not in attrs:
            problems.append(f"attribute {key} missing")
    if attrs.get("scale", 1) is not None and not attrs.get("scale", 1) > 0:
        problems.append(f"scale {attrs.get('scale')} is not positive")
    recorded = attrs.get("source_sha256", {})
    if attrs["kind"] == "events":
        digests = _array(path, "source_sha256")[:]
        for i in np.flatnonzero(flags == WRITTEN):
            src = attrs["sources"][i]
            if recorded.get(src) != bytes(digests[i]).hex():
                line = f"sample {int(i)} ({src}): per-sample checksum differs from the recorded one"
                finding("checksum", line)
    if raw_dir is not None:
        raw = Path(raw_dir)
        from evrobust.preprocess.sources import read_source_bytes, split_zip_source

        for src, digest in recorded.items():
            file = raw / src
            if split_zip_source(src) is not None:  # a member of a per-class zip, hashed through the archive
                try:
                    actual = hashlib.sha256(read_source_bytes(raw, src)).hexdigest()
                except UserInputError as exc:
                    finding("unreadable source", f"source {src}: {exc}")
                    continue
                if actual != digest:
                    finding("changed source", f"source {src}: sha256 differs from the recorded one (zip)")
            elif not file.is_file():
                finding("missing source", f"source {src} is missing under {raw}")
            elif sha256_file(file) != digest:
                finding("changed source", f"source {src}: sha256 differs from the recorded one")
    if deep:
        for i in np.flatnonzero(flags == WRITTEN):
            try:
                frames[int(i)]
            except Exception as exc:  # noqa: BLE001 - a corrupt chunk is a finding, not a crash
                message = " ".join(str(exc).split())[:160]
                line = f"sample {int(i)}: chunk unreadable ({type(exc).__name__}: {message})"
                finding("unreadable chunk", line)
    for kind, lines in grouped.items():
        problems.append(lines[0] if len(lines) == 1 else f"{len(lines)} x {kind}, first: {lines[0]}")
    return problems
