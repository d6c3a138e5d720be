"""digits-dvs: the emulator's events, binned into frames, are what the store holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from evrobust.datasets import open_split, store_info
from evrobust.preprocess.build import write_emulated_store
from evrobust.preprocess.embedded import DIGITS_DVS_EMULATOR, SPLIT_RULE, digits_dvs_params
from evrobust.preprocess.emulator import emulate_events
from evrobust.preprocess.frames import events_to_frames
from evrobust.preprocess.sources import read_digits
from evrobust.preprocess.splits import holdout_split
from evrobust.preprocess.store_verify import verify_store


def test_digits_dvs_samples_are_emulated_frames(tmp_path: Path) -> None:
    digits = read_digits()
    n = 70  # two emulation blocks: a partial block is handled too
    digits.images, digits.labels = digits.images[:n], digits.labels[:n]
    out = tmp_path / "dd.zarr"
    write_emulated_store(
        out,
        dataset="digits-dvs",
        images=digits,
        params=digits_dvs_params(),
        emulator=DIGITS_DVS_EMULATOR,
        splits={"holdout": holdout_split(n)},
        default_split="holdout",
        split_rule=SPLIT_RULE,
    )
    assert verify_store(out) == []
    frames = zarr.open_array(store=str(out), path="frames", mode="r")
    assert frames.shape == (n, 4, 2, 20, 20)
    for i in (0, 37, 69):
        events = emulate_events(digits.images[i], **DIGITS_DVS_EMULATOR)
        assert events.shape[0] > 1000  # a moving digit produces ON and OFF edges
        ref = events_to_frames(events, 4, sensor_size=(20, 20), split_by="number")
        np.testing.assert_array_equal(frames[i], ref)
        assert ref[:, 0].sum() > 0 and ref[:, 1].sum() > 0
    info = store_info(out)
    assert (info.kind, info.frames, info.in_channels, info.input_size) == ("frames", 4, 2, 20)
    x, y = open_split(out, "test")[0]
    assert x.shape == (4, 2, 20, 20) and 0 <= float(x.min()) and float(x.max()) <= 1
