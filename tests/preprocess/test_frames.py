"""events -> frames kernels vs a plain numpy bincount reference (and tonic's ToFrame where they agree)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evrobust.errors import UserInputError
from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.events import EVENT_DTYPE, as_events, make_events, validate_events
from evrobust.preprocess.frames import events_to_frames, frame_bounds

MNIST = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder


def _frame_of_each_event(t: np.ndarray, m: int, split_by: str) -> np.ndarray:
    """Which frame each event belongs to, spelled out from the documented rule (not from the module)."""
    n = t.shape[0]
    if split_by == "number":
        per = n // m
        idx = np.arange(n)
        return np.minimum(idx // per, m - 1) if per else np.full(n, m - 1)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t0, dur = int(t.min()), int(t.max()) - int(t.min())
    dt = dur // m
    frame = np.full(n, m - 1)
    for j in range(m - 1):  # windows [t0 + j*dt, t0 + (j+1)*dt); the last one takes the rest
        frame[(t >= t0 + j * dt) & (t < t0 + (j + 1) * dt)] = j
    return frame


def _reference(ev: np.ndarray, m: int, w: int, h: int, split_by: str) -> np.ndarray:
    """Per-frame np.bincount over flat (p, y, x) indices, as spikingjelly integrates a segment."""
    frame = _frame_of_each_event(ev["t"], m, split_by)
    out = np.zeros((m, 2, h, w), dtype=np.int64)
    for j in range(m):
        sel = ev[frame == j]
        flat = sel["p"].astype(np.int64) * h * w + sel["y"].astype(np.int64) * w + sel["x"].astype(np.int64)
        out[j] = np.bincount(flat, minlength=2 * h * w).reshape(2, h, w)
    return out


def _random_events(rng: np.random.Generator, n: int, w: int, h: int, t_max: int, sort: bool) -> np.ndarray:
    t = rng.integers(0, t_max + 1, n)
    if sort:
        t = np.sort(t)
    return make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 400),
    m=st.integers(1, 12),
    w=st.integers(1, 17),
    h=st.integers(1, 13),
    t_max=st.sampled_from([0, 1, 5, 11, 1000, 10**9]),
    sort=st.booleans(),
    split_by=st.sampled_from(["number", "time"]),
    seed=st.integers(0, 2**31),
)
def test_matches_bincount_reference(
    n: int, m: int, w: int, h: int, t_max: int, sort: bool, split_by: str, seed: int
) -> None:
    ev = _random_events(np.random.default_rng(seed), n, w, h, t_max, sort)
    out = events_to_frames(ev, m, sensor_size=(w, h), split_by=split_by)
    assert out.shape == (m, 2, h, w) and out.dtype == np.int32
    np.testing.assert_array_equal(out, _reference(ev, m, w, h, split_by))
    assert out.sum() == n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("split_by", ["number", "time"])
def test_large_fixed_seeds(seed: int, split_by: str) -> None:
    ev = _random_events(np.random.default_rng(seed), 200_003, 128, 128, 2_000_000, sort=True)
    out = events_to_frames(ev, 10, sensor_size=(128, 128), split_by=split_by)
    np.testing.assert_array_equal(out, _reference(ev, 10, 128, 128, split_by))


def test_hand_computed_number_split_with_remainder() -> None:
    # 7 events, 3 frames: floor(7/3) = 2 -> frames hold events [0,2), [2,4), [4,7)
    ev = make_events(np.arange(7), [0, 1, 0, 1, 0, 0, 1], [0, 0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 1, 1, 0])
    out = events_to_frames(ev, 3, sensor_size=(2, 2))
    expect = np.zeros((3, 2, 2, 2), dtype=np.int32)
    expect[0, 0, 0, 0] = expect[0, 1, 0, 1] = 1
    expect[1, 1, 1, 0] = expect[1, 0, 1, 1] = 1
    expect[2, 1, 0, 0] = 2
    expect[2, 0, 0, 1] = 1
    np.testing.assert_array_equal(out, expect)


def test_hand_computed_time_split_last_event_and_remainder() -> None:
    # t0 = 100, D = 23, M = 4 -> dt = 5: windows [100,105) [105,110) [110,115) and [115, 123] for the last
    t = [100, 104, 105, 109, 110, 114, 115, 122, 123]
    ev = make_events(t, np.zeros(9), np.zeros(9), np.zeros(9))
    out = events_to_frames(ev, 4, sensor_size=(1, 1), split_by="time")
    assert out[:, 0, 0, 0].tolist() == [2, 2, 2, 3]
    bounds = [[100, 105], [105, 110], [110, 115], [115, 124]]
    np.testing.assert_array_equal(frame_bounds(ev, 4, "time"), bounds)
    np.testing.assert_array_equal(frame_bounds(ev, 4, "number"), [[0, 2], [2, 4], [4, 6], [6, 9]])


def test_edge_cases() -> None:
    empty = np.zeros(0, dtype=EVENT_DTYPE)
    for split_by in ("number", "time"):
        out = events_to_frames(empty, 5, sensor_size=(4, 3), split_by=split_by)
        assert out.shape == (5, 2, 3, 4) and not out.any()
    one = make_events([42], [3], [2], [1])
    for split_by in ("number", "time"):
        out = events_to_frames(one, 5, sensor_size=(4, 3), split_by=split_by)
        assert out.sum() == 1 and out[4, 1, 2, 3] == 1  # a lone event lands in the last frame
    few = make_events([0, 50, 99], [0, 1, 2], [0, 0, 0], [0, 0, 1])  # N < M
    assert events_to_frames(few, 5, (3, 1))[:4].sum() == 0
    # time split: N < M is not special, the events spread by time
    assert events_to_frames(few, 5, (3, 1), "time").sum(axis=(1, 2, 3)).tolist() == [1, 0, 1, 0, 1]
    same_t = make_events(np.full(6, 7), np.arange(6), np.zeros(6), np.zeros(6))  # all at one timestamp
    out = events_to_frames(same_t, 3, (6, 1), "time")
    assert out[:2].sum() == 0 and out[2, 0, 0].tolist() == [1] * 6
    np.testing.assert_array_equal(
        events_to_frames(same_t, 3, (6, 1), "number").sum(axis=(1, 2, 3)), [2, 2, 2]
    )


def test_non_square_orientation_of_axes() -> None:
    ev = make_events([0, 1], [9, 0], [0, 4], [0, 1])  # (x=9, y=0) and (x=0, y=4) on a 10 x 5 sensor
    out = events_to_frames(ev, 1, sensor_size=(10, 5))
    assert out.shape == (1, 2, 5, 10)
    assert out[0, 0, 0, 9] == 1 and out[0, 1, 4, 0] == 1 and out.sum() == 2


def test_accepts_other_field_orders_and_strided_views() -> None:
    rng = np.random.default_rng(9)
    ev = _random_events(rng, 1000, 8, 6, 10_000, sort=True)
    tonic_style = np.zeros(1000, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    for f in ("x", "y", "t"):
        tonic_style[f] = ev[f]
    tonic_style["p"] = ev["p"].astype(bool)
    ref = events_to_frames(ev, 4, (8, 6))
    np.testing.assert_array_equal(events_to_frames(tonic_style, 4, (8, 6)), ref)
    sv = ev[::3]
    np.testing.assert_array_equal(events_to_frames(sv, 4, (8, 6)), _reference(sv, 4, 8, 6, "number"))


@pytest.mark.parametrize(
    ("x", "y", "p"), [(8, 0, 0), (0, 6, 0), (-1, 0, 0), (0, -1, 1), (0, 0, 2), (0, 0, -1)]
)
@pytest.mark.parametrize("split_by", ["number", "time"])
def test_out_of_range_is_a_user_error(x: int, y: int, p: int, split_by: str) -> None:
    ev = make_events([0, 1, 2], [1, x, 2], [1, y, 2], [0, p, 1])
    with pytest.raises(UserInputError, match=r"event 1 .* outside the 8x6 sensor"):
        events_to_frames(ev, 2, sensor_size=(8, 6), split_by=split_by)


def test_bad_arguments() -> None:
    ev = make_events([0], [0], [0], [0])
    with pytest.raises(UserInputError, match="choose one of number, time"):
        events_to_frames(ev, 2, (1, 1), split_by="count")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(UserInputError, match="n_frames must be a positive integer"):
            events_to_frames(ev, bad, (1, 1))  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="sensor_size"):
        events_to_frames(ev, 2, (0, 5))
    with pytest.raises(UserInputError, match="structured array"):
        events_to_frames(np.zeros((3, 4)), 2, (1, 1))


def test_number_split_equals_tonic_to_frame_when_divisible() -> None:
    tonic_f = pytest.importorskip("tonic.functional")
    ev = _random_events(np.random.default_rng(4), 5000, 32, 24, 10**6, sort=True)
    tev = np.zeros(5000, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    for f in ("x", "y", "t"):
        tev[f] = ev[f]
    tev["p"] = ev["p"].astype(bool)
    ref = tonic_f.to_frame_numpy(tev, sensor_size=(32, 24, 2), n_event_bins=10)
    np.testing.assert_array_equal(events_to_frames(ev, 10, (32, 24)), ref)
    # tonic's time bins drop the remainder after M*dt; ours keep it in the last frame
    ref_t = tonic_f.to_frame_numpy(tev, sensor_size=(32, 24, 2), n_time_bins=10)
    ours_t = events_to_frames(ev, 10, (32, 24), "time")
    np.testing.assert_array_equal(ours_t[:9], ref_t[:9])
    assert np.all(ours_t[9] >= ref_t[9]) and ours_t.sum() == 5000


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_real_recording(real_data: Path, split_by: str) -> None:
    ev = read_aedat2(real_data / MNIST, orientation="spikingjelly")
    out = events_to_frames(ev, 10, (128, 128), split_by=split_by)
    np.testing.assert_array_equal(out, _reference(ev, 10, 128, 128, split_by))
    assert out.sum() == 15744
    assert out[:, 1].sum() == 7870  # spikingjelly flips the polarity bit: raw p=0 count lands in channel 1


def test_event_array_helpers() -> None:
    ev = make_events([5, 6], [1, 2], [3, 4], [0, 1])
    assert ev.dtype == EVENT_DTYPE and ev.tolist() == [(5, 1, 3, 0), (6, 2, 4, 1)]
    assert as_events(ev) is ev  # no copy for the canonical dtype
    with pytest.raises(UserInputError, match="same length, got 2, 2, 1, 2"):
        make_events([0, 1], [0, 1], [0], [0, 1])
    with pytest.raises(UserInputError, match=r"missing field\(s\) \['p'\]"):
        as_events(np.zeros(2, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2")]))
    with pytest.raises(UserInputError, match="must be integer or bool"):
        as_events(np.zeros(2, dtype=[("t", "<f8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")]))
    with pytest.raises(UserInputError, match="1-D"):
        as_events(np.zeros((2, 2), dtype=EVENT_DTYPE))
    assert validate_events(ev, (3, 5)) is ev
    with pytest.raises(UserInputError, match=r"event 1 at \(x=2, y=4\) lies outside the 2x5 sensor"):
        validate_events(ev, (2, 5))
    with pytest.raises(UserInputError, match="event 0 has p=3"):
        validate_events(make_events([0], [0], [0], [3]))
