"""The one-kernel AEDAT 2.0 -> frames path equals decoding then binning, on real and constructed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evrobust.preprocess import store_stats
from evrobust.preprocess.aedat2 import decode_aedat2_payload, parse_aedat2_header, write_aedat2
from evrobust.preprocess.aedat2_frames import aedat2_frames, sample_histogram
from evrobust.preprocess.convert import FrameParams, events_to_sample, sample_from_bytes
from evrobust.preprocess.events import make_events
from evrobust.preprocess.frames import events_to_frames
from evrobust.preprocess.orientation import ORIENTATIONS, oriented_sensor_size

# Real recordings, under the real_data fixture's folder.
MNIST = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"
DAVIS = "dvs/aedat2_davis/IMU_rotDisk.aedat"


def _payload(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8, offset=parse_aedat2_header(data).data_offset)


def _two_step(payload, layout, orientation, sensor, n_frames, split_by):  # noqa: ANN001, ANN202
    events = decode_aedat2_payload(payload, layout, orientation, sensor)
    frames = events_to_frames(events, n_frames, oriented_sensor_size(sensor, orientation), split_by)
    return frames, events.shape[0]


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("n_frames", [1, 7])
def test_real_dvs128_recording(real_data: Path, orientation: str, split_by: str, n_frames: int) -> None:
    payload = _payload((real_data / MNIST).read_bytes())
    expected, n = _two_step(payload, "dvs128", orientation, (128, 128), n_frames, split_by)
    flags = ORIENTATIONS[orientation]
    frames, kept = aedat2_frames(payload, "dvs128", flags, (128, 128), n_frames, split_by)
    assert kept == n > 1000
    assert frames.dtype == np.int32
    np.testing.assert_array_equal(frames, expected)


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_real_davis_recording_drops_imu_and_aps_samples_alike(real_data: Path, split_by: str) -> None:
    payload = _payload((real_data / DAVIS).read_bytes())
    expected, n = _two_step(payload, "davis", "jaer", (240, 180), 5, split_by)
    frames, kept = aedat2_frames(payload, "davis", ORIENTATIONS["jaer"], (240, 180), 5, split_by)
    assert kept == n and n < payload.shape[0] // 8  # some samples were not polarity events
    np.testing.assert_array_equal(frames, expected)


def _file(tmp_path: Path, t, x, y, p, special: int = 0) -> bytes:  # noqa: ANN001
    path = tmp_path / "f.aedat"
    write_aedat2(path, make_events(t, x, y, p))
    data = path.read_bytes()
    if not special:
        return data
    # Splice jAER special events (address bit 15 set) between the polarity events: both paths drop them.
    header = parse_aedat2_header(data).data_offset
    pairs = np.frombuffer(data, dtype=">u4", offset=header).reshape(-1, 2).copy()
    extra = np.array([[0x8000 | k, 7] for k in range(special)], dtype=">u4")
    mixed = np.insert(pairs, np.linspace(0, len(pairs), special).astype(int), extra, axis=0)
    return data[:header] + mixed.tobytes()


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("n_events", [0, 3, 1001])
def test_constructed_files_with_special_events_and_edge_sizes(
    tmp_path: Path, split_by: str, n_events: int
) -> None:
    rng = np.random.default_rng(n_events)
    t = np.sort(rng.integers(0, 5000, n_events))
    data = _file(
        tmp_path,
        t,
        rng.integers(0, 128, n_events),
        rng.integers(0, 128, n_events),
        rng.integers(0, 2, n_events),
        special=9,
    )
    payload = _payload(data)
    for orientation in ORIENTATIONS:
        expected, n = _two_step(payload, "dvs128", orientation, (128, 128), 4, split_by)
        frames, kept = aedat2_frames(payload, "dvs128", ORIENTATIONS[orientation], (128, 128), 4, split_by)
        assert kept == n == n_events
        np.testing.assert_array_equal(frames, expected)


def test_equal_timestamps_put_every_event_in_the_last_time_frame(tmp_path: Path) -> None:
    data = _file(tmp_path, [5, 5, 5], [1, 2, 3], [4, 4, 4], [0, 1, 1])
    frames, kept = aedat2_frames(_payload(data), "dvs128", ORIENTATIONS["raw"], (128, 128), 3, "time")
    assert kept == 3 and frames[:2].sum() == 0
    assert frames[2, 0, 4, 1] == 1 and frames[2, 1, 4, 2] == 1 and frames[2, 1, 4, 3] == 1


def test_uint16_counts_saturate_like_the_stored_clip(tmp_path: Path) -> None:
    n = 65540  # five more events at one pixel than a uint16 holds
    data = _file(tmp_path, np.arange(n), np.full(n, 3), np.full(n, 2), np.ones(n, dtype=int))
    frames, _ = aedat2_frames(
        _payload(data), "dvs128", ORIENTATIONS["raw"], (128, 128), 1, "number", np.uint16
    )
    assert frames.dtype == np.uint16 and frames[0, 1, 2, 3] == 65535 and frames.sum() == 65535


def test_address_outside_the_sensor_is_declined_not_binned(tmp_path: Path) -> None:
    data = _file(tmp_path, [0, 1], [10, 100], [10, 10], [0, 0])
    frames, kept = aedat2_frames(_payload(data), "dvs128", ORIENTATIONS["raw"], (64, 64), 2, "number")
    assert frames is None and kept == 0


@pytest.mark.parametrize("size", [None, 48, 64])
def test_sample_from_bytes_equals_decode_then_events_to_sample(tmp_path: Path, size: int | None) -> None:
    rng = np.random.default_rng(1)
    n = 20000
    data = _file(
        tmp_path,
        np.sort(rng.integers(0, 10**6, n)),
        rng.integers(0, 128, n),
        rng.integers(0, 128, n),
        rng.integers(0, 2, n),
        special=3,
    )
    params = FrameParams(6, "number", size, (128, 128), "spikingjelly")
    unit = params.count_unit()
    sample, kept = sample_from_bytes(data, "f.aedat", params, unit, tmp_path / "f.aedat")
    events = decode_aedat2_payload(_payload(data), "dvs128", "spikingjelly", (128, 128))
    expected = events_to_sample(events, params, unit)
    assert kept == n and sample.dtype == expected.dtype == np.uint16
    np.testing.assert_array_equal(sample, expected)
    np.testing.assert_array_equal(sample_histogram(sample), store_stats.sample_histogram(sample, "events"))


def test_sample_histogram_by_hand() -> None:
    sample = np.zeros((2, 2, 1, 2), dtype=np.uint16)
    sample[0, 0] = [[3, 0]]
    sample[1, 0] = [[3, 1]]
    sample[1, 1] = [[700, 0]]
    # channel 0 holds 0, 3, 3, 1; channel 1 holds 0, 0, 700, 0
    expected = [[0, 0, 0, 1, 1], [0, 1, 3, 0, 700], [1, 1, 2, 3, 1]]
    assert sample_histogram(sample).tolist() == expected
