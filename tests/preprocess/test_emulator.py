"""Image -> event emulator: physical invariants, an independent scipy/numpy reference, real images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from evrobust.errors import UserInputError
from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.emulator import emulate_events, make_raw_cifar10dvs_dir, to_gray
from evrobust.preprocess.events import EVENT_DTYPE
from evrobust.preprocess.frames import events_to_frames
from evrobust.preprocess.orientation import CIFAR10DVS_ORIENTATION

CIFAR = "cifar10/cifar10_test_first1017.npz"  # under the real_data fixture's folder
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar(data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` real CIFAR-10 test images ``[n, 3, 32, 32]`` and labels (``data``: real_data)."""
    with np.load(data / CIFAR, allow_pickle=False) as z:
        return z["data"][:n].reshape(n, 3, 32, 32), z["labels"][:n]


def _edge_image() -> np.ndarray:
    img = np.zeros((32, 32), np.uint8)
    img[:, 16:] = 255  # a vertical edge between columns 15 and 16
    return img


def _per_pixel_counts(ev: np.ndarray, w: int, h: int) -> np.ndarray:
    """``[2, H, W]`` event counts per polarity."""
    return events_to_frames(ev, 1, sensor_size=(w, h))[0]


def test_constant_image_emits_nothing() -> None:
    for value in (0, 77, 255):
        img = np.full((8, 8), value, np.uint8)
        assert emulate_events(img, (20, 20), amplitude_px=3.0).shape == (0,)
        # a uniform background of the same grey: still nothing, even where the image outline moves
        assert emulate_events(img, (20, 20), upscale=2, background=value / 255).shape == (0,)
    # ... while a different background makes the outline of the constant image visible
    assert emulate_events(np.full((8, 8), 200, np.uint8), (20, 20), upscale=2, background=0.0).shape[0] > 0


def test_static_image_emits_nothing(real_data: Path) -> None:
    img, _ = _cifar(real_data, 1)
    assert emulate_events(img[0], amplitude_px=0.0).shape == (0,)


def test_moving_edge_emits_both_polarities_at_the_edge() -> None:
    ev = emulate_events(_edge_image(), (32, 32), amplitude_px=2.0, threshold_sigma=0.0)
    assert ev.dtype == EVENT_DTYPE and ev.shape[0] > 0
    counts = _per_pixel_counts(ev, 32, 32)
    assert counts[0].sum() > 0 and counts[1].sum() > 0
    cols = np.flatnonzero(counts.sum(axis=(0, 1)))
    # the edge sits at x = 16 and moves +-2 px: only pixels within 2 px (plus the bilinear blur) fire
    assert cols.min() >= 16 - 3 and cols.max() <= 16 + 2
    # a vertical edge moving vertically changes nothing: every row fires alike
    per_row = counts.sum(axis=(0, 2))
    assert np.all(per_row == per_row[0])


def test_closed_loop_gives_equal_on_and_off_counts_per_pixel(real_data: Path) -> None:
    # after one closed loop every pixel is back at its start level L0 = its first reference; the reference
    # only moves in steps of the pixel's threshold C and ends within C of L0 (a return exactly onto a
    # level it left fires), so it is back at L0: ON count == OFF count per pixel, exactly
    imgs, _ = _cifar(real_data, 3)
    for k in range(3):
        ev = emulate_events(imgs[k], (64, 64), seed=k)
        counts = _per_pixel_counts(ev, 64, 64)
        assert counts.sum() > 1000
        assert counts[1].max() >= 3  # busy pixels fire repeatedly and still balance
        np.testing.assert_array_equal(counts[0], counts[1])


def test_deterministic_under_a_seed(real_data: Path) -> None:
    imgs, _ = _cifar(real_data, 1)
    a = emulate_events(imgs[0], (48, 48), seed=7)
    np.testing.assert_array_equal(a, emulate_events(imgs[0], (48, 48), seed=7))
    assert not np.array_equal(a, emulate_events(imgs[0], (48, 48), seed=8))  # threshold mismatch differs
    b = emulate_events(imgs[0], (48, 48), seed=1, threshold_sigma=0.0)
    np.testing.assert_array_equal(b, emulate_events(imgs[0], (48, 48), seed=2, threshold_sigma=0.0))


def test_event_count_shrinks_as_threshold_grows(real_data: Path) -> None:
    imgs, _ = _cifar(real_data, 2)
    for img in imgs:
        counts = [emulate_events(img, (64, 64), threshold=c).shape[0] for c in (0.05, 0.1, 0.2, 0.4, 0.8)]
        assert all(a > b for a, b in zip(counts, counts[1:], strict=False)), counts


def test_timestamps_coordinates_and_order(real_data: Path) -> None:
    imgs, _ = _cifar(real_data, 1)
    ev = emulate_events(imgs[0], (40, 30), n_steps=10, duration_us=5000)
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() >= 0 and ev["t"].max() <= 5000
    assert ev["x"].min() >= 0 and ev["x"].max() < 40 and ev["y"].min() >= 0 and ev["y"].max() < 30
    assert set(np.unique(ev["p"]).tolist()) == {0, 1}
    # every event lies between two step times t_k = 500 k; each step produces events
    step = np.ceil(ev["t"] / 500).astype(int)
    assert set(np.unique(np.maximum(step, 1)).tolist()) == set(range(1, 11))


def _reference_counts(gray: np.ndarray, w: int, h: int, n_steps: int, amp: float, c: float) -> np.ndarray:
    """Per-pixel [2, H, W] event counts from the documented model, rendered with scipy's map_coordinates
    (order=1, mode='nearest' = bilinear with border extension) and vectorised over pixels."""
    ndimage = pytest.importorskip("scipy.ndimage")
    ih, iw = gray.shape
    scale = min(w / iw, h / ih)
    ox, oy = (w - iw * scale) / 2, (h - ih * scale) / 2
    sy, sx = np.mgrid[0:h, 0:w].astype(np.float64)
    ref = None
    counts = np.zeros((2, h, w), np.int64)
    for k in range(n_steps + 1):
        phi = 2 * math.pi * k / n_steps
        u = (sx + 0.5 - ox - amp * math.cos(phi)) / scale - 0.5
        v = (sy + 0.5 - oy - amp * math.sin(phi)) / scale - 0.5
        level = np.log(ndimage.map_coordinates(gray, [v, u], order=1, mode="nearest") + 0.05)
        if ref is None:
            ref = level
            continue
        diff = level - ref
        n = np.floor(np.abs(diff) / c + 1e-9).astype(np.int64)
        counts[1] += np.where(diff > 0, n, 0)
        counts[0] += np.where(diff < 0, n, 0)
        ref = ref + np.sign(diff) * n * c
    return counts


def test_matches_independent_reference(real_data: Path) -> None:
    imgs, _ = _cifar(real_data, 2)
    for img in imgs:
        ev = emulate_events(img, (48, 40), n_steps=24, amplitude_px=1.5, threshold=0.15, threshold_sigma=0.0)
        ref = _reference_counts(to_gray(img), 48, 40, 24, 1.5, 0.15)
        got = _per_pixel_counts(ev, 48, 40)
        np.testing.assert_array_equal(got, ref)
        assert got.sum() > 500


def test_to_gray() -> None:
    rgb = np.zeros((3, 1, 2), np.uint8)
    rgb[0, 0, 0] = 255  # pure red
    rgb[:, 0, 1] = 255  # white
    np.testing.assert_allclose(to_gray(rgb), [[0.299, 1.0]])
    np.testing.assert_allclose(to_gray(np.array([[0, 51]], np.uint8)), [[0.0, 0.2]])
    with pytest.raises(UserInputError, match="uint8"):
        to_gray(np.zeros((4, 4), np.float32))
    with pytest.raises(UserInputError, match=r"\[3, H, W\]"):
        to_gray(np.zeros((4, 4, 3), np.uint8)[..., :2].transpose(2, 0, 1).reshape(2, 4, 4).repeat(2, 0))


def test_bad_arguments() -> None:
    img = np.zeros((4, 4), np.uint8)
    for kwargs, msg in [
        ({"n_steps": 1}, "n_steps"),
        ({"threshold": 0.0}, "threshold"),
        ({"amplitude_px": -1.0}, "amplitude_px"),
        ({"duration_us": 3}, "duration_us"),
        ({"background": 2.0}, "background"),
        ({"upscale": 0.0}, "upscale"),
        ({"sensor_size": (0, 4)}, "sensor_size"),
        ({"sensor_size": (8, 8), "sensor": (9, 9)}, "disagree"),
    ]:
        with pytest.raises(UserInputError, match=msg):
            emulate_events(img, **kwargs)  # type: ignore[arg-type]
    assert emulate_events(img, sensor=(8, 8)).shape == (0,)  # `sensor` is an alias of sensor_size


def test_raw_cifar10dvs_dir_round_trip(real_data: Path, tmp_path: Path) -> None:
    imgs, labels = _cifar(real_data, 6)
    paths = make_raw_cifar10dvs_dir(imgs, labels, CLASSES, tmp_path, n_steps=12, seed=3)
    assert sorted(p.name for p in (tmp_path).iterdir()) == sorted(CLASSES)
    expect_names = {}
    for k, (path, label) in enumerate(zip(paths, labels, strict=True)):
        cls = CLASSES[int(label)]
        i = expect_names.setdefault(cls, 0)
        expect_names[cls] += 1
        assert path == tmp_path / cls / f"cifar10_{cls}_{i}.aedat"
        back = read_aedat2(path, orientation=CIFAR10DVS_ORIENTATION)
        np.testing.assert_array_equal(back, emulate_events(imgs[k], (128, 128), n_steps=12, seed=3 + k))
        raw = read_aedat2(path)  # the raw addresses are the spikingjelly mapping undone
        np.testing.assert_array_equal(raw["x"], 127 - back["y"])
        np.testing.assert_array_equal(raw["y"], 127 - back["x"])
        np.testing.assert_array_equal(raw["p"], 1 - back["p"])
    # labels [3 8 8 0 6 6]: the second ship is ship_1
    assert (tmp_path / "ship" / "cifar10_ship_1.aedat").is_file()


def test_raw_dir_bad_inputs(tmp_path: Path) -> None:
    imgs = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(UserInputError, match="labels must lie in"):
        make_raw_cifar10dvs_dir(imgs, [0, 5], ["a", "b"], tmp_path)
    with pytest.raises(UserInputError, match="must match"):
        make_raw_cifar10dvs_dir(imgs, [0], ["a", "b"], tmp_path)
    with pytest.raises(UserInputError, match="distinct folder names"):
        make_raw_cifar10dvs_dir(imgs, [0, 1], ["a", "a"], tmp_path)
