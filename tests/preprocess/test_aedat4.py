"""AEDAT 4 reader on the real tonic sample (320x240, LZ4), cross-checked against tonic's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evrobust.preprocess.aedat4 import Aedat4Stream, aedat4_streams, read_aedat4
from evrobust.preprocess.events import EVENT_DTYPE, EventFileError

SAMPLE = "dvs/aedat4/sample.aedat4"  # under the real_data fixture's folder


def test_streams_of_the_sample(real_data: Path) -> None:
    sample = real_data / SAMPLE
    streams = aedat4_streams(sample)
    assert streams[0] == Aedat4Stream(stream_id=0, type="events", sensor_size=(320, 240))
    assert {s.type for s in streams} == {"events", "imus", "triggers"}


def test_events_of_stream_0_equal_tonic_reader(real_data: Path) -> None:
    sample = real_data / SAMPLE
    tio = pytest.importorskip("tonic.io")
    ev = read_aedat4(sample)
    ref = tio.read_aedat4(str(sample))
    assert ev.dtype == EVENT_DTYPE
    assert ev.shape == ref.shape == (111_954,)
    np.testing.assert_array_equal(ev["t"], ref["t"].astype(np.int64))
    np.testing.assert_array_equal(ev["x"], ref["x"])
    np.testing.assert_array_equal(ev["y"], ref["y"])
    np.testing.assert_array_equal(ev["p"], ref["on"].astype(np.int8))
    assert ev["x"].max() < 320 and ev["y"].max() < 240
    assert set(np.unique(ev["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(ev["t"]) >= 0)
    # absolute DV timestamps (microseconds since the epoch: a 2020 recording)
    assert 1_577_836_800_000_000 < ev["t"][0] < 1_609_459_200_000_000


def test_explicit_stream_and_bad_stream(real_data: Path) -> None:
    sample = real_data / SAMPLE
    np.testing.assert_array_equal(read_aedat4(sample, stream_id=0), read_aedat4(sample))
    msg = r"sample\.aedat4: has no event stream 2; its event streams are \[0\]"
    with pytest.raises(EventFileError, match=msg):
        read_aedat4(sample, stream_id=2)


def test_broken_inputs(real_data: Path, tmp_path: Path) -> None:
    sample = real_data / SAMPLE
    with pytest.raises(EventFileError, match="no such file"):
        read_aedat4(tmp_path / "missing.aedat4")
    aedat2 = real_data / "dvs" / "aedat2_dvs128" / "mnist_0_scale04_0001.aedat"
    with pytest.raises(EventFileError, match="use read_aedat2"):
        read_aedat4(aedat2)
    cut = tmp_path / "cut.aedat4"
    data = sample.read_bytes()
    for n in (20, 3000, len(data) // 2, len(data) - 100):
        cut.write_bytes(data[:n])
        try:
            ev = read_aedat4(cut)
        except EventFileError as exc:
            assert "cut.aedat4" in str(exc)
        else:  # a cut that ends on a packet boundary may still decode: then it is a prefix
            full = read_aedat4(sample)
            np.testing.assert_array_equal(ev, full[: ev.shape[0]])
