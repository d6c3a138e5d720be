"""The embedded datasets, built without any download: ``digits`` and its event version ``digits-dvs``.

``digits``: scikit-learn's 1797 8x8 digit images (values 0..16 -> uint8 by ``v * 255 // 16``), one channel.

``digits-dvs``: every digit is turned into events by the image-to-event emulator (the image moves along a
small closed loop in front of an emulated sensor, an event fires where a pixel's log intensity changes by more
than the contrast threshold, as CIFAR10-DVS was recorded from a moving screen), then binned into
:data:`DIGITS_DVS_FRAMES` frames by event count on the :data:`DIGITS_DVS_SENSOR` sensor. Sizes are chosen so
that training a small SNN on it takes well under a minute on two CPU cores.

Split (both): a seeded hold-out, test = 20% (``default_rng(0).permutation``), val = 10% of the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from evrobust.preprocess.build import BuildReport
    from evrobust.preprocess.convert import FrameParams

# The builders are imported inside the functions: the dataset specs read the constants below, and that must
# not cost zarr/sklearn imports.

logger = logging.getLogger(__name__)

EMBEDDED = ("digits", "digits-dvs")
DIGITS_DVS_SENSOR = (20, 20)
DIGITS_DVS_FRAMES = 4
# Emulator settings for digits-dvs (keyword arguments of emulate_events), recorded in the store attrs.
DIGITS_DVS_EMULATOR: dict[str, object] = {"sensor_size": DIGITS_DVS_SENSOR, "upscale": 2, "seed": 0}
SPLIT_RULE = (
    "hold-out: test = first floor(0.2 n) of numpy default_rng(0).permutation(n); val = floor(0.1 m) of the "
    "remaining m drawn by default_rng(0).permutation; train = the rest"
)


def digits_dvs_params() -> FrameParams:
    """Frame options of digits-dvs: 4 frames by event count on the 20x20 emulated sensor, no resize."""
    from evrobust.preprocess.convert import FrameParams

    return FrameParams(
        n_frames=DIGITS_DVS_FRAMES, split_by="number", size=None, sensor=DIGITS_DVS_SENSOR, orientation="raw"
    )


def build_digits(path: str | Path, workers: int = 1) -> BuildReport:
    """Build (or resume) the digits images store at ``path``."""
    from evrobust.preprocess.build import write_image_store
    from evrobust.preprocess.sources import read_digits
    from evrobust.preprocess.splits import holdout_split

    images = read_digits()
    splits = {"holdout": holdout_split(images.labels.shape[0])}
    return write_image_store(
        path,
        dataset="digits",
        images=images,
        splits=splits,
        default_split="holdout",
        split_rule=SPLIT_RULE,
        workers=workers,
        extra={"source": "sklearn.datasets.load_digits", "intensity": "v * 255 // 16"},
    )


def build_digits_dvs(path: str | Path, workers: int = 1, mode: str = "threads") -> BuildReport:
    """Build (or resume) the digits-dvs events store at ``path`` (runs the emulator on every digit)."""
    from evrobust.preprocess.build import write_emulated_store
    from evrobust.preprocess.sources import read_digits
    from evrobust.preprocess.splits import holdout_split

    images = read_digits()
    splits = {"holdout": holdout_split(images.labels.shape[0])}
    return write_emulated_store(
        path,
        dataset="digits-dvs",
        images=images,
        params=digits_dvs_params(),
        emulator=DIGITS_DVS_EMULATOR,
        splits=splits,
        default_split="holdout",
        split_rule=SPLIT_RULE,
        workers=workers,
        mode=mode,
    )


def digits_dvs_bin_times(indices: np.ndarray) -> np.ndarray:
    """``[n, T, 2]`` int64: the first and last event time (us) of each frame of digits-dvs samples.

    The store keeps the frames, not the events; the emulator is deterministic (the same image and settings
    give the same events bit for bit), so the events are rebuilt here on demand and split into frames by
    event count exactly as the store was built (:func:`~evrobust.preprocess.frames.frame_bounds`). An empty
    frame gets the previous frame's last time for both.
    """
    import numpy as np

    from evrobust.preprocess.emulator import emulate_events
    from evrobust.preprocess.frames import frame_bounds
    from evrobust.preprocess.sources import read_digits

    images = read_digits().images
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    out = np.zeros((idx.size, DIGITS_DVS_FRAMES, 2), dtype=np.int64)
    for row, i in enumerate(idx):
        events = emulate_events(images[int(i)], **DIGITS_DVS_EMULATOR)  # type: ignore[arg-type]
        t = events["t"].astype(np.int64)
        last = int(t[0]) if t.size else 0
        for k, (start, stop) in enumerate(frame_bounds(events, DIGITS_DVS_FRAMES, "number")):
            if stop > start:
                out[row, k] = (t[start], t[stop - 1])
                last = int(t[stop - 1])
            else:
                out[row, k] = (last, last)
    return out


def build_embedded(name: str, path: str | Path) -> BuildReport:
    """Build the embedded dataset ``name`` (``digits`` or ``digits-dvs``) at ``path``."""
    logger.info("building the embedded dataset %s at %s (first use)", name, path)
    if name == "digits":
        return build_digits(path)
    if name == "digits-dvs":
        return build_digits_dvs(path)
    raise ValueError(f"{name!r} is not an embedded dataset; choose one of {', '.join(EMBEDDED)}")
