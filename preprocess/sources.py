"""Raw inputs: event-file directories, the CIFAR python pickle layout and scikit-learn's digits (no torch).

* Event directories (CIFAR10-DVS release layout): ``<raw>/<class>/*.aedat`` (or ``*.aedat4``); samples are
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
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError

EVENT_SUFFIXES = (".aedat", ".aedat4")

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
    """List the event files of a ``<raw>/<class>/*.aedat[4]`` directory, class by class, files by name.

    Raises:
        UserInputError: ``raw`` is missing or not a directory, a class folder is missing, or a class folder
            holds no ``.aedat``/``.aedat4`` file.
    """
    root = Path(raw)
    if not root.is_dir():
        raise UserInputError(f"raw directory {root} does not exist; pass --raw DIR with one folder per class")
    missing = [c for c in classes if not (root / c).is_dir()]
    if missing:
        raise UserInputError(
            f"class folder(s) {', '.join(missing)} missing under {root}; expected {root}/<class>/*.aedat for "
            f"the classes {', '.join(classes)}"
        )
    sources: list[EventSource] = []
    for label, name in enumerate(classes):
        files = sorted(
            p.name
            for p in (root / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EVENT_SUFFIXES
        )
        if not files:
            raise UserInputError(f"class folder {root / name} holds no .aedat or .aedat4 file")
        sources.extend(EventSource(f"{name}/{f}", label) for f in files)
    return sources


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals the official CIFAR files use."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct  # the one numpy 2 provides for both names

            return _reconstruct
        return super().find_class(module, name)


def load_cifar_pickle(path: str | Path) -> dict[bytes, Any]:
    """Load one CIFAR pickle (a dict with bytes keys) with the restricted unpickler.

    Raises:
        UserInputError: the file is missing, not a pickle, uses a disallowed global, or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"CIFAR file {path} is missing; expected the official python-pickle layout")
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserInputError(f"{path} is not a readable CIFAR pickle ({exc})") from None
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
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise UserInputError(
            f"{path}: data has shape {data.shape} dtype {data.dtype} with {labels.shape[0]} labels; "
            "expected uint8 [N, 3072] and N labels"
        )
    # Official row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    return data.reshape(-1, 3, 32, 32), labels


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
    classes = [n.decode() for n in meta.get(b"label_names", [])]
    if len(classes) != 10:
        raise UserInputError(f"{root / 'batches.meta'} does not name the 10 CIFAR-10 classes")
    parts = [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]
    return _read_parts(root, parts, b"labels", classes, ["batches.meta"])


def read_cifar100(raw: str | Path) -> ImageSet:
    """Read ``cifar-100-python`` (``raw`` is that folder or its parent): train then test, fine labels."""
    root = _find_layout(Path(raw), "cifar-100-python")
    meta = load_cifar_pickle(root / "meta")
    classes = [n.decode() for n in meta.get(b"fine_label_names", [])]
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
