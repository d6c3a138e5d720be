"""Raw inputs: event-file directories, the CIFAR python pickle layout and scikit-learn's digits (no torch).

* Event directories (CIFAR10-DVS release layout): ``<raw>/<class>/*.aedat`` (or ``*.aedat4``), or the
  per-class zips as distributed (``<raw>/airplane.zip``, ...), read member by member in place; samples are
  ordered class by class (in the dataset's class order), files by name (plain string order, the order of a
  sorted directory listing, which is also spikingjelly's order), so index sets can be compared with theirs.
* CIFAR-10/100: the official ``cifar-10-batches-py/`` and ``cifar-100-python/`` pickles, read with a
  bounded allow-list unpickler (:mod:`evrobust.preprocess.cifar_pickle`) that admits only the globals the
  official files use and bounds input size, depth, item count and array bytes by what a batch holds (10,000
  x 3,072 bytes; 50,000 for CIFAR-100's train file). Anything else (``os.system``, ...) is refused first.
* digits: ``sklearn.datasets.load_digits`` (ships in the wheel), 1797 8x8 images with values 0..16 mapped to
  uint8 by ``v * 255 // 16`` (0 -> 0, 16 -> 255).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError
from evrobust.preprocess.cifar_pickle import (
    CIFAR10_BATCH_ROWS,
    CIFAR100_TRAIN_ROWS,
    CIFAR_ROW_BYTES,
    PickleLimits,
    load_cifar_pickle,
)
from evrobust.safeio import open_read

EVENT_SUFFIXES = (".aedat", ".aedat4")
ZIP_SEPARATOR = "::"  # "<class>.zip::<member>" names a zip member in a store's sources
MAX_MEMBER_BYTES = 1 << 30  # a CIFAR10-DVS recording is a few MB


@dataclass(frozen=True)
class EventSource:
    """One raw event file: ``path`` relative to the raw dir (POSIX separators) and its class index."""

    path: str
    label: int


def scan_event_dir(raw: str | Path, classes: tuple[str, ...] | list[str]) -> list[EventSource]:
    """List the event files of a raw directory, class by class, files by name.

    Each class is either a folder ``<raw>/<class>/*.aedat[4]`` or, as CIFAR10-DVS is distributed, a zip
    archive ``<raw>/<class>.zip`` whose ``.aedat`` members are read in place (never extracted). A zip member
    is recorded as ``"<class>.zip::<member name>"``; its name is only ever a key into the archive, never a
    path, so hostile names (``../../x.aedat``, absolute paths) cannot write or read anything outside it. The
    class of a member is its archive's class, whatever folder its name mentions.

    Raises:
        UserInputError: ``raw`` is missing or not a directory, a class has neither folder nor zip, a zip is
            unreadable, or a class holds no event file.
    """
    root = Path(raw)
    if not root.is_dir():
        # (wording kept: the CLI tests pin it; a <class>.zip per class is accepted too, see the docstring)
        raise UserInputError(f"raw directory {root} does not exist; pass --raw DIR with one folder per class")
    missing = [c for c in classes if not (root / c).is_dir() and not (root / f"{c}.zip").is_file()]
    if missing:
        raise UserInputError(
            f"class folder(s) {', '.join(missing)} missing under {root} (no folder and no zip); expected "
            f"{root}/<class>/*.aedat or {root}/<class>.zip for the classes {', '.join(classes)}"
        )
    sources: list[EventSource] = []
    for label, name in enumerate(classes):
        if (root / name).is_dir():
            files = sorted(
                p.name
                for p in (root / name).iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EVENT_SUFFIXES
            )
            sources.extend(EventSource(f"{name}/{f}", label) for f in files)
            where = root / name
        else:
            members = zip_event_members(root / f"{name}.zip")
            sources.extend(EventSource(f"{name}.zip{ZIP_SEPARATOR}{m}", label) for m in members)
            files = members
            where = root / f"{name}.zip"
        if not files:
            raise UserInputError(f"{where} holds no .aedat or .aedat4 file")
    return sources


def zip_event_members(path: str | Path) -> list[str]:
    """The AEDAT 2.0 members of a zip archive (names ending ``.aedat``), sorted by name, duplicates once.

    Directory entries, hidden files and ``__MACOSX`` resource forks are left out. ``.aedat4`` members are
    not listed: the AEDAT 4 decoder reads only real files.

    Raises:
        UserInputError: the archive is missing or not a readable zip file.
    """
    path = Path(path)
    try:
        with open_read(path, "raw_archive") as raw, zipfile.ZipFile(raw) as zf:
            names = {
                info.filename
                for info in zf.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".aedat")
                and not _basename(info.filename).startswith(".")
                and "__MACOSX" not in info.filename.split("/")
            }
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError) as exc:
        raise UserInputError(f"{path} is not a readable zip archive ({exc})") from None
    return sorted(names)


def _basename(member: str) -> str:
    return member.replace("\\", "/").rsplit("/", 1)[-1]


def split_zip_source(rel: str) -> tuple[str, str] | None:
    """``("<class>.zip", member)`` for a zip source recorded by :func:`scan_event_dir`, else None."""
    if ZIP_SEPARATOR not in rel:
        return None
    archive, member = rel.split(ZIP_SEPARATOR, 1)
    # A zip source is "<class>.zip::<member>" (no folder before the archive); "cat/a::b.aedat" is a legal
    # file name in a class folder and is read as that file.
    if "/" in archive or not archive.lower().endswith(".zip"):
        return None
    return archive, member


def read_event_file(path: str | Path, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of one plain event file, at most ``max_bytes`` (the same cap as a zip member).

    The size is checked before reading (a sparse file claiming gigabytes costs nothing), and the read is
    bounded by it in 16 MiB chunks, so a file that grows meanwhile cannot make it read more.

    Raises:
        UserInputError: the file is missing, unreadable, or larger than ``max_bytes``.
    """
    path = Path(path)
    try:
        # Regular files only, never through a link; a FIFO cannot block (evrobust.safeio).
        with open_read(path, "events") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise UserInputError(
                    f"{path} is {size} bytes, over the {max_bytes} allowed for one event file "
                    "(a CIFAR10-DVS recording is a few MB)"
                )
            chunks, total = [], 0
            while total <= size:
                block = fh.read(min(16 << 20, size + 1 - total))
                if not block:
                    break
                chunks.append(block)
                total += len(block)
    except OSError as exc:
        raise UserInputError(f"cannot read {path} ({exc.strerror or exc})") from None
    if total > size:
        raise UserInputError(f"{path} grew while it was read; rerun when nothing writes it")
    return b"".join(chunks)


def read_source_bytes(raw: str | Path, rel: str, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of one raw source: a file ``<raw>/<rel>`` or a zip member ``<raw>/<class>.zip::<member>``.

    A zip member is read through the archive (bounded by ``max_bytes``, checked against both the size the
    archive claims and the bytes actually inflated, so a zip bomb stops early).

    Raises:
        UserInputError: the file/archive/member is missing, too large, encrypted or corrupt.
    """
    root = Path(raw)
    parts = split_zip_source(rel)
    if parts is None:
        return read_event_file(root / rel, max_bytes)
    archive, member = parts
    where = f"{root / archive}::{member}"
    if "/" in archive or archive in ("", ".", ".."):
        raise UserInputError(f"{rel!r} is not a zip source of the form <class>.zip::<member>")
    try:
        with open_read(root / archive, "raw_archive") as raw, zipfile.ZipFile(raw) as zf:
            info = zf.getinfo(member)
            if info.file_size > max_bytes:
                raise UserInputError(f"{where} claims {info.file_size} bytes, over the {max_bytes} allowed")
            with zf.open(info) as fh:
                data = fh.read(max_bytes + 1)
    except KeyError:
        raise UserInputError(f"{where}: no such member in the archive") from None
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError, NotImplementedError) as exc:
        raise UserInputError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    except zlib.error as exc:
        raise UserInputError(f"{where} is corrupt ({exc})") from None
    if len(data) > max_bytes:
        raise UserInputError(f"{where} inflates to more than the {max_bytes} bytes allowed")
    return data


@dataclass
class ImageSet:
    """Images and labels read from a raw dataset.

    Attributes:
        images: ``[N, C, H, W]`` uint8.
        labels: ``[N]`` int64.
        classes: class names, index = label.
        files: the source files read (relative to ``root``), in reading order.
        root: the directory they were read from.
        counts: samples per source part, e.g. ``{"train": 50000, "test": 10000}`` (rows are in that order).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str] = field(default_factory=list)
    root: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _cifar_batch(
    path: Path, label_key: bytes, max_rows: int = CIFAR10_BATCH_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """``([N, 3, 32, 32] uint8, [N] int64)`` of one batch file of at most ``max_rows`` images.

    The pickle is bounded by :meth:`PickleLimits.for_rows` before anything is converted; ``data`` must be a
    real uint8 array ``[N, 3072]`` (the official layout) and the labels a flat list/array of N integers.
    """
    batch = load_cifar_pickle(path, PickleLimits.for_rows(max_rows))
    if b"data" not in batch or label_key not in batch:
        raise UserInputError(f"{path} lacks the keys data/{label_key.decode()} of a CIFAR batch")
    data, raw_labels = batch[b"data"], batch[label_key]
    if not isinstance(data, np.ndarray) or not isinstance(raw_labels, (list, np.ndarray)):
        raise UserInputError(
            f"{path}: data is a {type(data).__name__} and labels a {type(raw_labels).__name__}; expected a "
            "numpy uint8 array and a list of integers"
        )
    if isinstance(raw_labels, list) and not all(type(v) is int for v in raw_labels):
        raise UserInputError(f"{path}: {label_key.decode()} holds something other than integers")
    try:
        labels = np.asarray(raw_labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserInputError(f"{path}: labels are not an integer array ({exc})") from None
    if (
        labels.ndim != 1
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != CIFAR_ROW_BYTES
        or data.shape[0] != labels.shape[0]
        or data.shape[0] > max_rows
    ):
        raise UserInputError(
            f"{path}: data has shape {data.shape} dtype {data.dtype} with {labels.shape[0]} labels; "
            f"expected uint8 [N, {CIFAR_ROW_BYTES}] with N <= {max_rows} and N labels"
        )
    # Official row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    return np.ascontiguousarray(data).reshape(-1, 3, 32, 32), labels


def _class_names(meta: dict[bytes, Any], key: bytes, path: Path) -> list[str]:
    names = meta.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise UserInputError(f"{path}: {key.decode()} is not a list of byte strings")
    return [n.decode("utf-8", errors="replace") for n in names]


def _find_layout(raw: Path, folder: str) -> Path:
    if (raw / folder).is_dir():
        return raw / folder
    if raw.is_dir():
        return raw
    raise UserInputError(
        f"raw directory {raw} does not exist; pass --raw pointing at {folder}/ or its parent"
    )


def read_cifar10(raw: str | Path) -> ImageSet:
    """Read ``cifar-10-batches-py`` (``raw`` is that folder or its parent): train batches 1..5, then test."""
    root = _find_layout(Path(raw), "cifar-10-batches-py")
    meta = load_cifar_pickle(root / "batches.meta", PickleLimits.for_rows(0))
    classes = _class_names(meta, b"label_names", root / "batches.meta")
    if len(classes) != 10:
        raise UserInputError(f"{root / 'batches.meta'} does not name the 10 CIFAR-10 classes")
    parts = [(f"data_batch_{i}", "train", CIFAR10_BATCH_ROWS) for i in range(1, 6)]
    parts.append(("test_batch", "test", CIFAR10_BATCH_ROWS))
    return _read_parts(root, parts, b"labels", classes, ["batches.meta"])


def read_cifar100(raw: str | Path) -> ImageSet:
    """Read ``cifar-100-python`` (``raw`` is that folder or its parent): train then test, fine labels."""
    root = _find_layout(Path(raw), "cifar-100-python")
    meta = load_cifar_pickle(root / "meta", PickleLimits.for_rows(0))
    classes = _class_names(meta, b"fine_label_names", root / "meta")
    if len(classes) != 100:
        raise UserInputError(f"{root / 'meta'} does not name the 100 CIFAR-100 fine classes")
    parts = [("train", "train", CIFAR100_TRAIN_ROWS), ("test", "test", CIFAR10_BATCH_ROWS)]
    return _read_parts(root, parts, b"fine_labels", classes, ["meta"])


def _read_parts(
    root: Path, parts: list[tuple[str, str, int]], label_key: bytes, classes: list[str], meta_files: list[str]
) -> ImageSet:
    images, labels = [], []
    counts: dict[str, int] = {}
    for name, part, max_rows in parts:
        x, y = _cifar_batch(root / name, label_key, max_rows)
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise UserInputError(f"{root / name}: labels outside [0, {len(classes)})")
        images.append(x)
        labels.append(y)
        counts[part] = counts.get(part, 0) + int(y.shape[0])
    return ImageSet(
        images=np.concatenate(images),
        labels=np.concatenate(labels),
        classes=classes,
        files=meta_files + [name for name, _, _ in parts],
        root=root,
        counts=counts,
    )


def digits_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map digits' 0..16 intensities to uint8 0..255 by ``v * 255 // 16`` (exact at both ends)."""
    v = np.asarray(values)
    return (np.rint(v).astype(np.int64) * 255 // 16).astype(np.uint8)


def read_digits() -> ImageSet:
    """scikit-learn's digits: ``[1797, 1, 8, 8]`` uint8 images, labels 0..9, classes ``"0".."9"``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = digits_to_uint8(bunch.images)[:, None]
    return ImageSet(
        images=images,
        labels=np.asarray(bunch.target, dtype=np.int64),
        classes=[str(i) for i in range(10)],
        files=[],
        root=None,
        counts={"all": int(images.shape[0])},
    )
