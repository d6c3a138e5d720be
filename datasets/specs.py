"""What each known dataset is: classes, kind, sensor, default frame options, store file name, origin.

This module is torch-free and cheap to import (the CLI and the preprocessing pipelines read it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evrobust.errors import UserInputError
from evrobust.preprocess.embedded import DIGITS_DVS_FRAMES, DIGITS_DVS_SENSOR

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS_CLASSES = tuple(str(i) for i in range(10))

DATA_ENV = "EVROBUST_DATA"
DEFAULT_DATA_DIR = "data"


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset.

    Attributes:
        name: the name used on the command line and in store attrs.
        kind: ``"events"`` or ``"images"`` (the store kind).
        classes: class names (``None`` = read from the raw files, e.g. CIFAR-100's meta file).
        embedded: built on first use without any download (digits, digits-dvs).
        sensor: raw sensor ``(W, H)`` in pixels (events).
        frames, split_by, size: default frame options (events).
        build_hint: the command that builds the store (named in errors).
    """

    name: str
    kind: str
    classes: tuple[str, ...] | None
    embedded: bool
    sensor: tuple[int, int] | None = None
    frames: int | None = None
    split_by: str | None = None
    size: int | None = None
    build_hint: str = ""


SPECS: dict[str, DatasetSpec] = {
    "cifar10dvs": DatasetSpec(
        "cifar10dvs",
        "events",
        CIFAR10_CLASSES,
        False,
        sensor=(128, 128),
        frames=10,
        split_by="number",
        size=48,
        build_hint="evrobust preprocess cifar10dvs",
    ),
    "cifar10dvs-emu": DatasetSpec(
        "cifar10dvs-emu",
        "events",
        CIFAR10_CLASSES,
        False,
        sensor=(128, 128),
        frames=10,
        split_by="number",
        size=48,
        build_hint="evrobust preprocess cifar10dvs-emu",
    ),
    "cifar10": DatasetSpec(
        "cifar10", "images", CIFAR10_CLASSES, False, build_hint="evrobust preprocess cifar10"
    ),
    "cifar100": DatasetSpec(
        "cifar100", "images", None, False, build_hint="evrobust preprocess cifar100"
    ),
    "digits": DatasetSpec("digits", "images", DIGITS_CLASSES, True, build_hint="evrobust preprocess digits"),
    "digits-dvs": DatasetSpec(
        "digits-dvs",
        "events",
        DIGITS_CLASSES,
        True,
        sensor=DIGITS_DVS_SENSOR,
        frames=DIGITS_DVS_FRAMES,
        split_by="number",
        size=None,
        build_hint="evrobust preprocess digits-dvs",
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of a known dataset (UserInputError listing the known names otherwise)."""
    try:
        return SPECS[name]
    except KeyError:
        raise UserInputError(
            f"unknown dataset {name!r}; choose one of {', '.join(SPECS)} or give a store path"
        ) from None


def data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$EVROBUST_DATA``, else ``./data``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(DEFAULT_DATA_DIR)


def store_name(
    name: str, frames: int | None = None, split_by: str | None = None, size: int | None = None
) -> str:
    """The default store file name: ``<name>.zarr``, with non-default frame options encoded in it.

    Example: ``store_name("cifar10dvs", 16, "time", 64) == "cifar10dvs-T16-time-64.zarr"``.
    """
    spec = get_spec(name)
    if spec.kind == "events":
        frames = spec.frames if frames is None else frames
        split_by = spec.split_by if split_by is None else split_by
        size = spec.size if size is None else size
        if (frames, split_by, size) != (spec.frames, spec.split_by, spec.size):
            side = "native" if size is None else str(size)
            return f"{name}-T{frames}-{split_by}-{side}.zarr"
    return f"{name}.zarr"


def default_store_path(
    name: str,
    data_dir_: str | Path | None = None,
    frames: int | None = None,
    split_by: str | None = None,
    size: int | None = None,
) -> Path:
    """``<data dir>/<store_name(...)>``."""
    return data_dir(data_dir_) / store_name(name, frames, split_by, size)
