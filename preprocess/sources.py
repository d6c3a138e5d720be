"""Raw inputs: event-file directories, the CIFAR python pickle layout and scikit-learn's digits (no torch).

* Event directories (CIFAR10-DVS release layout): ``<raw>/<class>/*.aedat`` (or ``*.aedat4``), or the
  per-class zips as distributed (``<raw>/airplane.zip``, ...), read member by member in place; samples are
  ordered class by class (in the dataset's class order), files by name (plain string order, the order of a
  sorted directory listing, which is also spikingjelly's order), so index sets can be compared with theirs.
* CIFAR-10/100: the official ``cifar-10-batches-py/`` and ``cifar-100-python/`` pickles, read with a
  restricted unpickler that admits only the globals the official files use (numpy's array reconstruction,
  ``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes).
  Anything else in a pickle (``os.system``, ...) is refused before it runs.
* digits: ``sklearn.datasets.load_digits`` (ships in the wheel), 1797 8x8 images with values 0..16 mapped to
  uint8 by ``v * 255 // 16`` (0 -> 0, 16 -> 255).
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError

EVENT_SUFFIXES = (".aedat", ".aedat4")
ZIP_SEPARATOR = "::"  # "<class>.zip::<member>" names a zip member in a store's sources
MAX_MEMBER_BYTES = 1 << 30  # a CIFAR10-DVS recording is a few MB
MAX_PICKLE_BYTES = 1 << 30  # the largest official file (cifar-100 train) is ~155 MB

# Globals the official CIFAR pickles need: Python 2 wrote numpy.core.multiarray; numpy 2 writes numpy._core.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


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
        with zipfile.ZipFile(path) as zf:
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
    return archive, member


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
        try:
            return (root / rel).read_bytes()
        except OSError as exc:
            raise UserInputError(f"cannot read {root / rel} ({exc.strerror or exc})") from None
    archive, member = parts
    where = f"{root / archive}::{member}"
    if "/" in archive or archive in ("", ".", ".."):
        raise UserInputError(f"{rel!r} is not a zip source of the form <class>.zip::<member>")
    try:
        with zipfile.ZipFile(root / archive) as zf:
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


def _checked_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` as the unpickler may call it: plain numeric and bytes dtypes only, never ``object``.

    An object-dtype array would unpickle its elements as further pickled objects; refusing the dtype closes
    that door before any element is read.
    """
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in "biufcSU":
        raise pickle.UnpicklingError(f"dtype {dtype} is not allowed in a CIFAR file (numeric arrays only)")
    return dtype


def _checked_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` (the start of every pickled array), for plain ndarrays of bounded size only.

    ``_reconstruct`` allocates the (empty) array before its data arrive; an object array of a huge claimed
    shape would be filled with ``None`` at once, so both are refused here, before numpy allocates.
    """
    from numpy._core.multiarray import _reconstruct  # numpy 2 provides it for both pickled module names

    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy.ndarray objects are allowed in a CIFAR file")
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not all(isinstance(d, int) and 0 <= d for d in dims) or math.prod(dims) > MAX_PICKLE_BYTES:
        raise pickle.UnpicklingError(f"array shape {shape!r} is not plausible for a CIFAR file")
    _checked_dtype(dtype)
    return _reconstruct(subtype, shape, dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals the official CIFAR files use.

    ``numpy.dtype`` is replaced by :func:`_checked_dtype`; ``pickle``'s ``persistent_load`` is left
    undefined, so a persistent id fails too.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        if name == "_reconstruct":
            return _checked_reconstruct
        if name == "dtype":
            return _checked_dtype
        return super().find_class(module, name)


def load_cifar_pickle(path: str | Path) -> dict[bytes, Any]:
    """Load one CIFAR pickle (a dict with bytes keys) with the restricted unpickler.

    The file is read whole (at most :data:`MAX_PICKLE_BYTES`) and unpickled from memory: a pickle opcode that
    claims a 10^12-byte string then fails as truncated instead of asking the file object for that many bytes.
    Object arrays are refused (their elements would be pickled objects); every error of the unpickler
    becomes one UserInputError line.

    Raises:
        UserInputError: the file is missing, too large, not a pickle, uses a disallowed global, holds an
            object array, or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"CIFAR file {path} is missing; expected the official python-pickle layout")
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise UserInputError(f"{path} is {size} bytes, larger than any CIFAR batch; not a CIFAR pickle")
    try:
        data = path.read_bytes()
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - hostile bytes can raise nearly anything; all mean "unreadable"
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {message})"
        ) from None
    if not isinstance(obj, dict):
        raise UserInputError(f"{path} holds a {type(obj).__name__}, not the CIFAR dict")
    return obj


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


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = load_cifar_pickle(path)
    if b"data" not in batch or label_key not in batch:
        raise UserInputError(f"{path} lacks the keys data/{label_key.decode()} of a CIFAR batch")
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserInputError(f"{path}: data/labels are not numeric arrays ({exc})") from None
    if (
        labels.ndim != 1
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or data.shape[0] != labels.shape[0]
    ):
        raise UserInputError(
            f"{path}: data has shape {data.shape} dtype {data.dtype} with {labels.shape[0]} labels; "
            "expected uint8 [N, 3072] and N labels"
        )
    # Official row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    return data.reshape(-1, 3, 32, 32), labels


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
    meta = load_cifar_pickle(root / "batches.meta")
    classes = _class_names(meta, b"label_names", root / "batches.meta")
    if len(classes) != 10:
        raise UserInputError(f"{root / 'batches.meta'} does not name the 10 CIFAR-10 classes")
    parts = [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]
    return _read_parts(root, parts, b"labels", classes, ["batches.meta"])


def read_cifar100(raw: str | Path) -> ImageSet:
    """Read ``cifar-100-python`` (``raw`` is that folder or its parent): train then test, fine labels."""
    root = _find_layout(Path(raw), "cifar-100-python")
    meta = load_cifar_pickle(root / "meta")
    classes = _class_names(meta, b"fine_label_names", root / "meta")
    if len(classes) != 100:
        raise UserInputError(f"{root / 'meta'} does not name the 100 CIFAR-100 fine classes")
    return _read_parts(root, [("train", "train"), ("test", "test")], b"fine_labels", classes, ["meta"])


def _read_parts(
    root: Path, parts: list[tuple[str, str]], label_key: bytes, classes: list[str], meta_files: list[str]
) -> ImageSet:
    images, labels = [], []
    counts: dict[str, int] = {}
    for name, part in parts:
        x, y = _cifar_batch(root / name, label_key)
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise UserInputError(f"{root / name}: labels outside [0, {len(classes)})")
        images.append(x)
        labels.append(y)
        counts[part] = counts.get(part, 0) + int(y.shape[0])
    return ImageSet(
        images=np.concatenate(images),
        labels=np.concatenate(labels),
        classes=classes,
        files=meta_files + [name for name, _ in parts],
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
