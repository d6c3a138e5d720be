"""Torch Datasets over evrobust zarr stores.

Every dataset yields ``(x, y)`` with ``x`` float32 in [0, 1] and ``y`` int64:

* image stores: ``x`` is ``[C, H, W]`` = ``pixels / 255`` (the model repeats it over T),
* event stores: ``x`` is ``[T, 2, H, W]`` = ``clip(count / scale, 0, 1)`` with the store's recorded ``scale``.

Two flavours: :class:`StoreDataset` reads one chunk per item (large stores, e.g. CIFAR10-DVS), and
:class:`InMemoryDataset` reads a whole split once (small stores: digits, CIFAR). :func:`open_split` picks by
size unless told.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from evrobust.errors import UserInputError
from evrobust.preprocess.store import read_attrs

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "train+val")
# Splits whose float32 form is below this many bytes are read into memory by default.
IN_MEMORY_LIMIT = 1 << 30


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about a store.

    Attributes:
        name: the dataset name recorded in the store.
        kind: ``"images"`` or ``"frames"``.
        num_classes: K.
        in_channels: C (images) or 2 (frames).
        input_size: H (= W for every built-in dataset), in pixels.
        frames: T for event frames, ``None`` for images.
        mean, std: per-channel statistics of the train split in [0, 1] units (for the model's normalisation).
        classes: class names, index = label.
        scale: the count scale (frames) or 255 (images).
        path: the store.
        split_sizes: ``{split: size}`` of the default scheme.
    """

    name: str
    kind: str
    num_classes: int
    in_channels: int
    input_size: int
    frames: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    scale: float
    path: Path
    split_sizes: dict[str, int]


def check_samples_present(store_path: str | Path, indices: np.ndarray, attrs: dict[str, Any]) -> None:
    """Refuse a store whose samples ``indices`` are flagged done but whose chunk files are gone.

    zarr reads a missing chunk as all zeros: without this check training would silently see blank samples.

    Raises:
        UserInputError: naming how many are missing and the first index.
    """
    from evrobust.preprocess.store import missing_chunks

    done = _check_store_arrays(store_path, attrs)
    n = int(done.shape[0])
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise UserInputError(
            f"{store_path}: split indices outside [0, {n}); the store is damaged, rebuild it"
        )
    # A complete store has every split sample flagged written (finalize_store checks it; skipped samples
    # are left out of the splits), so the flags are not read here: 60,000 tiny chunk reads would cost
    # seconds. The chunk files are checked by one directory listing.
    wanted = np.zeros(n, dtype=np.uint8)
    wanted[idx] = 1
    lost = missing_chunks(store_path, wanted, len(attrs["sample_shape"]))
    if lost.size:
        raise UserInputError(
            f"{store_path}: {lost.size} samples flagged done have no chunk file "
            f"(first index {int(lost[0])}); run `evrobust preprocess verify {store_path}`, then rebuild it"
        )


def _check_store_arrays(store_path: str | Path, attrs: dict[str, Any]) -> zarr.Array:
    """Check the arrays' metadata against the root attributes before any chunk is read; returns ``done``.

    A damaged ``zarr.json`` of an array can claim a huge shape or chunk (a read would allocate it), a labels
    array shorter than the samples (an IndexError deep in a loader) or labels outside ``[0, K)`` (a CUDA
    assert or a wrong loss); each stops here as one line. First the whole tree is walked
    (:func:`~evrobust.preprocess.store_verify.check_store_files`): a link, FIFO or oversized file anywhere in
    the store is refused before zarr opens (and could block on or follow) it.
    """
    from evrobust.preprocess.store import missing_array_chunks
    from evrobust.preprocess.store_verify import check_store_files

    check_store_files(store_path)
    frames = _open_array(store_path, "frames")
    labels_arr = _open_array(store_path, "labels")
    done = _open_array(store_path, "done")
    shape = tuple(attrs["sample_shape"])
    # N: one entry per sample for events; for images, the length at least two of the three arrays agree on
    # (a damaged zarr.json changes one of them).
    lengths = [int(frames.shape[0]), int(labels_arr.shape[0]), int(done.shape[0])]
    n = len(attrs["sources"]) if attrs["kind"] == "events" else max(set(lengths), key=lengths.count)

    def damaged(what: str) -> UserInputError:
        return UserInputError(
            f"{store_path} is damaged ({what}); run `evrobust preprocess verify {store_path}` and rebuild it"
        )

    if tuple(frames.shape) != (n, *shape) or tuple(frames.chunks) != (1, *shape):
        raise damaged(f"frames has shape {tuple(frames.shape)} in chunks {tuple(frames.chunks)}, expected "
                      f"{(n, *shape)} in chunks {(1, *shape)}")  # fmt: skip
    if frames.dtype != np.dtype(attrs["dtype"]):
        raise damaged(f"frames has dtype {frames.dtype}, expected {attrs['dtype']}")
    for name, arr in (("labels", labels_arr), ("done", done)):
        if tuple(arr.shape) != (n,) or np.dtype(arr.dtype).kind not in "iu" or int(np.prod(arr.chunks)) > n:
            raise damaged(f"{name} has shape {tuple(arr.shape)} dtype {arr.dtype}, expected ({n},) integers")
    if n and missing_array_chunks(store_path, "labels", [0]).size:  # zarr would read every label as 0
        raise damaged("the labels chunk file is missing")
    try:
        labels = labels_arr[:]
    except Exception as exc:  # noqa: BLE001 - a damaged labels chunk is a damaged store
        raise damaged(f"the labels cannot be read: {type(exc).__name__}") from None
    bad = np.flatnonzero((labels < 0) | (labels >= int(attrs["num_classes"])))
    if bad.size:
        raise damaged(
            f"{bad.size} labels outside [0, {attrs['num_classes']}), e.g. {int(labels[bad[0]])} at index "
            f"{int(bad[0])}"
        )
    return done


def _read_error(store_path: str | Path, exc: BaseException, index: int | None = None) -> UserInputError:
    """One line for a chunk zarr cannot decode; names the chunk file when the sample is known."""
    message = " ".join(str(exc).split())[:160]
    which = "a sample chunk" if index is None else f"the chunk of sample {index} (frames/c.{index}.0...)"
    return UserInputError(
        f"{store_path}: {which} cannot be read ({type(exc).__name__}: {message}); the store is "
        f"damaged: run `evrobust preprocess verify {store_path}` and rebuild it"
    )


def _complete_attrs(store_path: str | Path) -> dict[str, Any]:
    attrs = read_attrs(store_path)
    if not attrs.get("complete"):
        raise UserInputError(
            f"store {store_path} is incomplete (its preprocessing run did not finish); rerun the same "
            "`evrobust preprocess` command to resume it"
        )
    # What `evrobust preprocess verify` calls a problem, the readers refuse too: overlapping splits of a
    # scheme would leak test samples into training.
    for scheme, parts in attrs.get("splits", {}).items():
        arrays = [np.asarray(v, dtype=np.int64) for v in parts.values()]
        idx = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        if np.unique(idx).size != idx.size:
            raise UserInputError(
                f"store {store_path} is damaged: the splits of scheme {scheme!r} overlap or repeat indices; "
                f"run `evrobust preprocess verify {store_path}` and rebuild it"
            )
    return attrs


def store_info(store_path: str | Path) -> DataInfo:
    """Read the :class:`DataInfo` of a complete store."""
    attrs = _complete_attrs(store_path)
    shape = attrs["sample_shape"]
    frames = attrs["kind"] == "events"
    scheme = attrs["splits"][attrs["default_split"]]
    return DataInfo(
        name=attrs["dataset"],
        kind="frames" if frames else "images",
        num_classes=int(attrs["num_classes"]),
        in_channels=int(shape[1] if frames else shape[0]),
        input_size=int(shape[-2]),
        frames=int(shape[0]) if frames else None,
        mean=tuple(float(m) for m in attrs["mean"]),
        std=tuple(float(s) for s in attrs["std"]),
        classes=tuple(attrs["classes"]),
        scale=float(attrs["scale"]),
        path=Path(store_path),
        split_sizes={k: len(v) for k, v in scheme.items()},
    )


def split_indices(store_path: str | Path, split: str, scheme: str | None = None) -> np.ndarray:
    """The sample indices of ``split`` (``train``, ``val``, ``test`` or ``train+val``) in ``scheme``.

    ``scheme`` defaults to the store's default scheme (``random`` for CIFAR10-DVS: the reference split;
    ``per-class`` is the other one).
    """
    attrs = _complete_attrs(store_path)
    scheme = attrs["default_split"] if scheme is None else scheme
    schemes = attrs["splits"]
    if scheme not in schemes:
        raise UserInputError(
            f"unknown split scheme {scheme!r} for {store_path}; choose one of {', '.join(schemes)}"
        )
    if split not in SPLITS:
        raise UserInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    parts = schemes[scheme]
    names = split.split("+")
    return np.asarray(sorted(i for name in names for i in parts[name]), dtype=np.int64)


def _convert(raw: np.ndarray | torch.Tensor, events: bool, scale: float) -> torch.Tensor:
    """Stored integers -> float32 in [0, 1] (pixels / 255, or clip(count / scale, 0, 1))."""
    t = torch.as_tensor(
        np.asarray(raw).astype(np.float32) if not isinstance(raw, torch.Tensor) else raw.float()
    )
    if events:
        return (t / scale).clamp_(0.0, 1.0)
    return t / 255.0


class StoreDataset(Dataset):
    """Reads one sample chunk per item (for stores too large to hold in memory).

    Items: ``(x float32 [C,H,W] or [T,2,H,W] in [0, 1], y int64 scalar)``.
    """

    def __init__(self, store_path: str | Path, indices: np.ndarray) -> None:
        attrs = _complete_attrs(store_path)
        self.path = Path(store_path)
        self.indices = np.asarray(indices, dtype=np.int64)
        check_samples_present(store_path, self.indices, attrs)
        self.events = attrs["kind"] == "events"
        self.scale = float(attrs["scale"])
        self.labels = torch.from_numpy(
            _open_array(self.path, "labels")[:][self.indices]
        )
        self._frames: zarr.Array | None = None

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers reopen the array themselves instead of inheriting a handle.
        state = dict(self.__dict__)
        state["_frames"] = None
        return state

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._frames is None:
            self._frames = _open_array(self.path, "frames")
        try:
            raw = self._frames[int(self.indices[i])]
        except Exception as exc:  # noqa: BLE001 - a truncated or garbage chunk is a damaged store
            raise _read_error(self.path, exc, int(self.indices[i])) from None
        return _convert(raw, self.events, self.scale), self.labels[i]


def _open_array(store_path: str | Path, name: str) -> zarr.Array:
    """Open array ``name`` of a store read-only; damaged array metadata becomes a one-line UserInputError."""
    try:
        return zarr.open_array(store=str(store_path), path=name, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types for a garbled zarr.json
        raise UserInputError(
            f"{store_path}: array {name!r} cannot be opened ({type(exc).__name__}); "
            f"run `evrobust preprocess verify {store_path}` and rebuild the store"
        ) from None


def read_split_arrays(store_path: str | Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored integers ``[n, ...]`` and labels ``[n]`` of ``indices`` (in that order), read in one go."""
    frames = _open_array(store_path, "frames")
    labels = _open_array(store_path, "labels")[:]
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        return np.zeros((0, *frames.shape[1:]), dtype=frames.dtype), labels[:0]
    order = np.argsort(indices, kind="stable")
    data = np.empty((indices.size, *frames.shape[1:]), dtype=frames.dtype)
    # zarr fetches and decodes the chunks of one selection concurrently; sorted indices keep reads in order.
    try:
        data[order] = frames.get_orthogonal_selection((indices[order],))
    except Exception as exc:  # noqa: BLE001 - a truncated or garbage chunk is a damaged store
        raise _read_error(store_path, exc) from None
    return data, labels[indices]


class InMemoryDataset(Dataset):
    """A whole split held in memory: images as uint8 (converted per item), frames as float32 in [0, 1].

    Attributes ``x`` and ``y`` expose the stored tensors for fast batched training loops.
    """

    def __init__(self, store_path: str | Path, indices: np.ndarray) -> None:
        attrs = _complete_attrs(store_path)
        check_samples_present(store_path, indices, attrs)
        self.events = attrs["kind"] == "events"
        self.scale = float(attrs["scale"])
        data, labels = read_split_arrays(store_path, indices)
        self.x = _convert(data, True, self.scale) if self.events else torch.from_numpy(data)
        self.y = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        return (x if self.events else x.float() / 255.0), self.y[i]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split: ``x`` float32 in [0, 1] ``[n, ...]`` and ``y`` int64 ``[n]``."""
        return (self.x if self.events else self.x.float() / 255.0), self.y


def open_split(
    store_path: str | Path, split: str, scheme: str | None = None, in_memory: bool | None = None
) -> StoreDataset | InMemoryDataset:
    """A torch Dataset over one split of a store.

    Args:
        store_path: a complete store (see :func:`evrobust.datasets.resolve_data`).
        split: ``train``, ``val``, ``test`` or ``train+val``.
        scheme: the split scheme (default: the store's default).
        in_memory: hold the whole split in memory; ``None`` = when its float32 size is below 1 GiB.
    """
    indices = split_indices(store_path, split, scheme)
    if in_memory is None:
        shape = read_attrs(store_path)["sample_shape"]
        in_memory = indices.size * int(np.prod(shape)) * 4 < IN_MEMORY_LIMIT
    if in_memory:
        return InMemoryDataset(store_path, indices)
    return StoreDataset(store_path, indices)


def load_split(
    store_path: str | Path, split: str, scheme: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as tensors ``x`` float32 in [0, 1] ``[n, ...]`` and ``y`` int64 ``[n]``."""
    return InMemoryDataset(store_path, split_indices(store_path, split, scheme)).tensors()
