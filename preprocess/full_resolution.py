"""Full-resolution event counts of an emulated store, rebuilt on demand (for the event-domain attacks).

A CIFAR10-DVS store is usually resized at preprocessing (128x128 -> 48x48 by area shares), and an event can
no longer be inserted or deleted in the resized frames. The event attacks need the counts at the sensor's
resolution. An emulated store (``cifar10dvs-emu``) records everything its recordings came from: the emulator
settings, the per-sample seed rule and each sample's CIFAR-10 row, and the sha256 of the CIFAR-10 files.
The emulator is deterministic, so given those CIFAR-10 files the recordings, and their counts at sensor
resolution in the store's own frames, are rebuilt here exactly (the pipeline checks that resizing them gives
the stored frames bit for bit). Torch-free, like the rest of ``preprocess``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evrobust.errors import UserInputError

__all__ = ["REBUILDABLE", "emulated_full_counts"]

REBUILDABLE: tuple[str, ...] = ("cifar10dvs-emu",)
"""Datasets whose full-resolution counts can be rebuilt from their sources."""


def emulated_full_counts(
    store: str | Path, indices: Sequence[int] | np.ndarray, raw: str | Path
) -> np.ndarray:
    """``[n, T, 2, Hs, Ws]`` uint16: samples ``indices`` of a ``cifar10dvs-emu`` store at sensor resolution.

    Args:
        store: a complete ``cifar10dvs-emu`` store.
        indices: store sample indices.
        raw: the CIFAR-10 python-pickle folder the store was built from (``cifar-10-batches-py`` or its
            parent).

    Raises:
        UserInputError: another dataset, a store without its build record, or CIFAR-10 files other than those
            the store was built from (their sha256 differs), in one line.
    """
    from evrobust.preprocess.convert import FrameParams, events_to_sample
    from evrobust.preprocess.emulator_recording import RecordingParams, emulate_recording
    from evrobust.preprocess.sources import read_cifar10
    from evrobust.preprocess.store import read_attrs
    from evrobust.preprocess.store_verify import sha256_file

    attrs = read_attrs(store)
    if attrs.get("dataset") not in REBUILDABLE:
        raise UserInputError(f"{store} ({attrs.get('dataset')}) cannot rebuild its recordings; only "
                             f"{', '.join(REBUILDABLE)} stores can")
    extra = attrs.get("extra") or {}
    needed = ("emulator", "seed_base", "source_rows", "source_sha256")
    if any(key not in extra for key in needed):
        raise UserInputError(f"{store} lacks the record of its build ({', '.join(needed)}); rebuild it")
    images = read_cifar10(raw)
    root = images.root if images.root is not None else Path(raw)
    for name, digest in extra["source_sha256"].items():
        if sha256_file(root / name) != digest:
            raise UserInputError(f"{root / name} is not the CIFAR-10 file {store} was built from (its sha256 "
                                 "differs); give the raw folder the store was built from")
    params = FrameParams(int(attrs["frames"]), str(attrs["split_by"]), None, tuple(attrs["sensor"]),
                         str(attrs["orientation"]))
    settings = RecordingParams.from_dict(extra["emulator"])
    rows = extra["source_rows"]
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    out = np.empty((idx.size, *params.sample_shape()), dtype=np.uint16)
    for k, i in enumerate(idx):
        row = int(rows[int(i)])
        events = emulate_recording(images.images[row], settings, int(extra["seed_base"]) + row)
        out[k] = events_to_sample(events, params, 1)
    return out
