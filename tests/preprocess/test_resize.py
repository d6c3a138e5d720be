"""Frame resizing: exact area weighting vs a supersampling reference, nearest-bin vs a loop reference."""

from __future__ import annotations

from math import lcm
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evrobust.errors import UserInputError
from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.events import make_events
from evrobust.preprocess.frames import events_to_frames
from evrobust.preprocess.resize import area_weights, resize_events, resize_frames

MNIST = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder


def _supersample_reference(frames: np.ndarray, tw: int, th: int) -> np.ndarray:
    """Area resize by brute force: split every source pixel into equal sub-pixels on the lcm grid, then
    sum the sub-pixels that fall inside each target pixel."""
    h, w = frames.shape[-2:]
    ly, lx = lcm(h, th), lcm(w, tw)
    fine = np.repeat(np.repeat(frames.astype(np.float64), ly // h, axis=-2), lx // w, axis=-1)
    fine /= (ly // h) * (lx // w)
    lead = frames.shape[:-2]
    return fine.reshape(*lead, th, ly // th, tw, lx // tw).sum(axis=(-3, -1))


def _bin_reference(frames: np.ndarray, tw: int, th: int) -> np.ndarray:
    h, w = frames.shape[-2:]
    out = np.zeros((*frames.shape[:-2], th, tw), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            out[..., i * th // h, j * tw // w] += frames[..., i, j]
    return out


def test_area_weights_hand_computed() -> None:
    # 3 -> 2: the middle source pixel is cut in half
    np.testing.assert_allclose(area_weights(3, 2), [[1, 0.5, 0], [0, 0.5, 1]])
    # 128 -> 48: blocks of 8 source pixels -> 3 target pixels; shares 1, 1, 2/3 | 1/3, 1, 1, 1/3 | 2/3, 1, 1
    w = area_weights(128, 48)
    np.testing.assert_allclose(w[0, :3], [1, 1, 2 / 3])
    np.testing.assert_allclose(w[1, 2:6], [1 / 3, 1, 1, 1 / 3])
    np.testing.assert_allclose(w[2, 5:8], [2 / 3, 1, 1])
    np.testing.assert_allclose(w.sum(axis=0), 1.0)  # every source pixel is fully distributed
    np.testing.assert_allclose(w.sum(axis=1), 128 / 48)  # every target pixel gathers the same area


def test_area_128_to_48_equals_supersampling_and_preserves_counts() -> None:
    rng = np.random.default_rng(0)
    frames = rng.poisson(3.0, size=(10, 2, 128, 128)).astype(np.int32)
    out = resize_frames(frames)
    assert out.shape == (10, 2, 48, 48) and out.dtype == np.float32
    np.testing.assert_allclose(out, _supersample_reference(frames, 48, 48), rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=(-2, -1)), frames.sum(axis=(-2, -1)), rtol=1e-6)
    # a uniform frame stays uniform: no fixed stripe pattern
    flat = resize_frames(np.ones((1, 128, 128), np.int32), 48)
    np.testing.assert_allclose(flat, (128 / 48) ** 2, rtol=1e-6)


def test_area_integer_factor_is_the_box_sum() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 50, size=(3, 2, 128, 128)).astype(np.int32)
    box = frames.reshape(3, 2, 64, 2, 64, 2).sum(axis=(3, 5))
    np.testing.assert_array_equal(resize_frames(frames, 64), box)
    np.testing.assert_array_equal(resize_frames(frames, 64, method="bin"), box)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    th=st.integers(1, 20),
    tw=st.integers(1, 20),
    seed=st.integers(0, 99),
)
def test_area_any_sizes_non_square_and_upsampling(h: int, w: int, th: int, tw: int, seed: int) -> None:
    frames = np.random.default_rng(seed).integers(0, 9, size=(2, h, w))
    out = resize_frames(frames, (tw, th))
    assert out.shape == (2, th, tw)
    np.testing.assert_allclose(out, _supersample_reference(frames, tw, th), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), frames.sum(axis=(1, 2)), rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), data=st.data())
def test_bin_equals_loop_reference(h: int, w: int, data: st.DataObject) -> None:
    th = data.draw(st.integers(1, h))
    tw = data.draw(st.integers(1, w))
    frames = np.random.default_rng(h * 31 + w).integers(0, 9, size=(2, 2, h, w)).astype(np.int32)
    out = resize_frames(frames, (tw, th), method="bin")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, _bin_reference(frames, tw, th))
    assert out.sum() == frames.sum()


def test_bin_resize_equals_binning_the_events() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    ev = make_events(np.arange(n), rng.integers(0, 128, n), rng.integers(0, 96, n), rng.integers(0, 2, n))
    full = events_to_frames(ev, 4, sensor_size=(128, 96))
    small = events_to_frames(resize_events(ev, (128, 96), (48, 36)), 4, sensor_size=(48, 36))
    np.testing.assert_array_equal(resize_frames(full, (48, 36), method="bin"), small)


def test_real_recording_resized_to_48(real_data: Path) -> None:
    frames = events_to_frames(read_aedat2(real_data / MNIST, orientation="spikingjelly"), 10, (128, 128))
    out = resize_frames(frames, 48)
    np.testing.assert_allclose(out.sum(axis=(-2, -1)), frames.sum(axis=(-2, -1)), rtol=1e-6)
    np.testing.assert_allclose(out, _supersample_reference(frames, 48, 48), rtol=1e-6)


def test_bad_inputs() -> None:
    frames = np.zeros((2, 8, 8), np.int32)
    with pytest.raises(UserInputError, match="choose one of area, bin"):
        resize_frames(frames, 4, method="bilinear")
    with pytest.raises(UserInputError, match="only downsamples"):
        resize_frames(frames, 16, method="bin")
    with pytest.raises(UserInputError, match="float frames"):
        resize_frames(frames.astype(np.float32), 4, method="bin")
    with pytest.raises(UserInputError, match="size"):
        resize_frames(frames, 0)
    with pytest.raises(UserInputError, match="at least 2 axes"):
        resize_frames(np.zeros(5), 2)
    with pytest.raises(UserInputError, match="outside the 8x8"):
        resize_events(make_events([0], [8], [0], [0]), (8, 8), 4)
