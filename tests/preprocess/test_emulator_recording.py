"""The CIFAR10-DVS recording emulator: pixel model against hand-computed references, display, noise, files.

Statistical tolerances are stated at each assertion (as multiples of the standard deviation of the quantity
under the model), so a correct implementation fails with negligible probability and a wrong rate fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from evrobust.errors import UserInputError
from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.emulator_display import diamond_offsets, render_log_frames, upscale_matrix
from evrobust.preprocess.emulator_pixel import PixelNoise, draw_pixel_state, pixel_events
from evrobust.preprocess.emulator_recording import (
    RecordingParams,
    emulate_recording,
    release_names,
    write_recordings,
)
from evrobust.preprocess.orientation import CIFAR10DVS_ORIENTATION

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
QUIET = {"leak_rate_hz": 0.0, "shot_noise_rate_hz": 0.0}  # no noise events at all


def _cifar(data: Path, n: int) -> np.ndarray:
    with np.load(data / "cifar10" / "cifar10_test_first1017.npz", allow_pickle=False) as z:
        return z["data"][:n].reshape(n, 3, 32, 32)


def _noise(n: int, c_on: float = 0.2, c_off: float = 0.2, **kw: np.ndarray) -> PixelNoise:
    """Hand-made pixel draws: equal thresholds, no leak, zero phase, no shot noise unless given."""
    return PixelNoise(
        kw.get("c_on", np.full(n, c_on)),
        kw.get("c_off", np.full(n, c_off)),
        kw.get("leak", np.zeros(n)),
        kw.get("phase", np.zeros(n)),
        kw.get("shot_ptr", np.zeros(n + 1, np.int64)),
        kw.get("shot_t", np.zeros(0)),
        kw.get("shot_p", np.zeros(0, np.int8)),
    )


def _per_pixel_gaps(ev: np.ndarray, width: int) -> np.ndarray:
    """Time gaps (us) between consecutive events of the same pixel."""
    pix = ev["y"].astype(np.int64) * width + ev["x"]
    order = np.lexsort((ev["t"], pix))
    same = np.diff(pix[order]) == 0
    return np.diff(ev["t"][order])[same]


# --- pixel model, hand-computed ------------------------------------------------------------------------


def test_step_edge_fires_at_the_edge_with_the_right_polarity_and_times() -> None:
    w, h = 8, 2
    logs = np.zeros((3, h, w))
    logs[1:, :, 4:] = 0.5  # the right half brightens by 0.5 log units at the second refresh ...
    logs[2, :, 4:] = -0.1  # ... then darkens to -0.1 at the third
    t_frames = np.array([0.0, 1000.0, 2000.0])
    ev = pixel_events(logs, t_frames, 3000.0, _noise(w * h), cutoff_hz=0.0, refractory_period_s=0.0, width=w)
    # instantaneous photoreceptor: floor(0.5 / 0.2) = 2 ON events per right-half pixel at t = 1000 (ref ends
    # at 0.4), then (-0.1 - 0.4) / 0.2 -> 2 OFF events at t = 2000 (ref 0.0; -0.1 is within one threshold)
    assert set(ev["x"].tolist()) == {4, 5, 6, 7}
    on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
    assert on.shape[0] == 2 * 4 * h and np.all(on["t"] == 1000)
    assert off.shape[0] == 2 * 4 * h and np.all(off["t"] == 2000)
    # with a 100 Hz photoreceptor the crossings of 0.2 and 0.4 come at tau ln(0.5 / 0.3) and tau ln(0.5 / 0.1)
    ev = pixel_events(logs[:2], t_frames[:2], 1e6, _noise(w * h), cutoff_hz=100.0, refractory_period_s=0.0,
                      width=w)
    tau = 1e6 / (2 * math.pi * 100.0)
    expect = sorted([round(1000 + tau * math.log(0.5 / 0.3)), round(1000 + tau * math.log(0.5 / 0.1))] * 8)
    assert ev["t"].tolist() == expect and np.all(ev["p"] == 1)


def test_thresholds_used_per_pixel_and_spread_has_the_set_sigma() -> None:
    n = 128 * 128
    noise = draw_pixel_state(n, 1e6, pos_thres=0.2, neg_thres=0.3, sigma_thres=0.03, leak_rate_hz=0.0,
                             leak_jitter_fraction=0.0, shot_noise_rate_hz=0.0, noise_rate_cov_decades=0.0,
                             seed=3)
    # sample std of n normals has relative standard error 1/sqrt(2n) = 0.55 %: 3 % is > 5 standard errors
    for c, mean in ((noise.c_on, 0.2), (noise.c_off, 0.3)):
        assert abs(c.std() / 0.03 - 1) < 0.03
        assert abs(c.mean() - mean) < 5 * 0.03 / math.sqrt(n)
    assert not np.allclose(noise.c_on - 0.2, noise.c_off - 0.3)  # independent draws
    # the kernel fires floor(1.0 / C_on[i] + u[i]) ON events on a +1.0 step (the pixel starts u[i] C_on[i]
    # below its level, the leak phase): it uses each pixel's own threshold
    logs = np.zeros((2, n))
    logs[1] = 1.0
    ev = pixel_events(logs, np.array([0.0, 10.0]), 20.0, noise, cutoff_hz=0.0, refractory_period_s=0.0,
                      width=128)
    counts = np.bincount(ev["y"].astype(np.int64) * 128 + ev["x"], minlength=n)
    np.testing.assert_array_equal(counts, np.floor(1.0 / noise.c_on + noise.phase).astype(np.int64))


def test_static_scene_gives_leak_events_at_the_set_rate() -> None:
    n, rate, dur = 64 * 64, 2.0, 1e6
    noise = draw_pixel_state(n, dur, pos_thres=0.2, neg_thres=0.2, sigma_thres=0.03, leak_rate_hz=rate,
                             leak_jitter_fraction=0.1, shot_noise_rate_hz=0.0, noise_rate_cov_decades=0.0,
                             seed=1)
    logs = np.full((60, n), -1.0)
    ev = pixel_events(logs, np.arange(60) * dur / 60, dur, noise, cutoff_hz=100.0, refractory_period_s=0.0,
                      width=64)
    # per pixel floor(u + r_i * T) events, u ~ U(0, 1): mean r T, variance <= 1/4 + (0.1 r T)^2 = 0.29
    expected, sd = n * rate * dur * 1e-6, math.sqrt(n * 0.29)
    assert abs(ev.shape[0] - expected) < 5 * sd, (ev.shape[0], expected)
    assert np.all(ev["p"] == 1)  # leakage only ever lowers the memorised level: ON events
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].max() <= dur


def test_static_image_gives_only_shot_noise_at_the_set_rate() -> None:
    # a uniform grey image on a background of the same grey: the display shows no change at all
    grey = np.full((3, 32, 32), 128, np.uint8)
    params = RecordingParams(background=128 / 255, leak_rate_hz=0.0, shot_noise_rate_hz=5.0,
                             sensor_size=(64, 64), image_size_px=64.0)
    ev = emulate_recording(grey, params, seed=5)
    dur = params.duration_s()
    # Poisson count, per-pixel rates log-normal with mean exactly the set rate: var = N + (rate T)^2 n s^2
    n = 64 * 64
    expected = n * 5.0 * dur
    s2 = math.exp((0.1 * math.log(10)) ** 2) - 1
    sd = math.sqrt(expected + (5.0 * dur) ** 2 * n * s2)
    assert abs(ev.shape[0] - expected) < 5 * sd, (ev.shape[0], expected)
    assert abs(ev["p"].mean() - 0.5) < 5 * 0.5 / math.sqrt(ev.shape[0])  # ON or OFF with equal probability
    assert emulate_recording(grey, RecordingParams(background=128 / 255, **QUIET), seed=5).shape == (0,)


def test_moving_edge_fires_at_the_edge_and_polarity_follows_the_motion() -> None:
    img = np.zeros((32, 32), np.uint8)
    img[:, 16:] = 255  # dark left half, bright right half: the edge maps to sensor column 64
    # the image is larger than the sensor, so its borders never show; no noise, instantaneous pixels
    params = RecordingParams(image_size_px=160.0, sigma_thres=0.0, cutoff_hz=0.0, refractory_period_s=0.0,
                             **QUIET)
    ev = emulate_recording(img, params)
    assert ev.shape[0] > 1000
    # bicubic reaches 2 source px = 10 sensor px either side, the motion +-8 screen px = 2.5 sensor px
    assert ev["x"].min() >= 64 - 13 and ev["x"].max() <= 64 + 13
    assert np.all(np.bincount(ev["y"], minlength=128) > 0)  # the edge spans every row
    offsets, _ = diamond_offsets(params.n_loops, params.step_px, params.speed_px_s, params.refresh_hz)
    t_refresh = np.rint(np.arange(offsets.shape[0]) * 1e6 / 60).astype(np.int64)
    assert set(np.unique(ev["t"]).tolist()) <= set(t_refresh.tolist())  # events only at refreshes
    for k in range(1, offsets.shape[0]):
        at = ev[ev["t"] == t_refresh[k]]
        dx = offsets[k, 0] - offsets[k - 1, 0]
        if dx > 0:  # the bright side moves right over the edge pixels: they darken -> OFF
            assert at.shape[0] > 0 and np.all(at["p"] == 0)
        elif dx < 0:
            assert at.shape[0] > 0 and np.all(at["p"] == 1)


def test_refractory_period_is_never_violated(real_data: Path) -> None:
    img = _cifar(real_data, 1)[0]
    for refractory in (0.0005, 0.005):
        ev = emulate_recording(img, RecordingParams(refractory_period_s=refractory, shot_noise_rate_hz=20.0))
        gaps = _per_pixel_gaps(ev, 128)
        assert gaps.size > 10_000 and gaps.min() >= round(refractory * 1e6)
    # ... and it binds: without it many same-pixel events come closer than 5 ms; with it they are postponed
    # (a crossing still pending when the period ends fires then), so few are lost
    free = emulate_recording(img, RecordingParams(refractory_period_s=0.0, **QUIET))
    held = emulate_recording(img, RecordingParams(refractory_period_s=0.005, **QUIET))
    assert np.count_nonzero(_per_pixel_gaps(free, 128) < 5000) > 10_000
    assert _per_pixel_gaps(held, 128).min() >= 5000 and held.shape[0] <= free.shape[0]


def test_seed_reproduces_events_bit_for_bit(real_data: Path) -> None:
    img = _cifar(real_data, 2)[1]
    a = emulate_recording(img, seed=11)
    b = emulate_recording(img.copy(), RecordingParams(), seed=11)
    assert a.tobytes() == b.tobytes() and a.shape[0] > 100_000
    assert a.tobytes() != emulate_recording(img, seed=12).tobytes()
    assert np.all(np.diff(a["t"]) >= 0)


def test_recording_shape_and_duration(real_data: Path) -> None:
    params = RecordingParams()
    assert params.duration_s() == pytest.approx(1.3)  # 78 refreshes at 60 Hz
    offsets, duration = diamond_offsets(params.n_loops, params.step_px, params.speed_px_s, params.refresh_hz)
    assert offsets.shape == (78, 2) and duration == pytest.approx(1.3)
    assert np.abs(offsets).sum(axis=1).max() <= params.step_px  # on the diamond |dx| + |dy| <= step
    ev = emulate_recording(_cifar(real_data, 1)[0])
    assert ev["t"].min() >= 0 and ev["t"].max() < 1_300_000
    assert ev["x"].max() < 128 and ev["y"].max() < 128


def test_upscaling_and_rendering() -> None:
    up = upscale_matrix(32)
    np.testing.assert_allclose(up.sum(axis=1), 1.0)
    ramp = np.arange(32.0)
    # bicubic reproduces a linear ramp away from the borders: sample j sits at (j + 0.5) / 16 - 0.5
    j = np.arange(40, 470)
    np.testing.assert_allclose((up @ ramp)[j], (j + 0.5) / 16 - 0.5, atol=1e-9)
    gray = np.full((32, 32), 0.5)
    logs = render_log_frames(gray, np.zeros((1, 2), np.int64), (16, 16), image_size_px=8.0, background=1.0,
                             display_gamma=2.0, black_level=0.1)
    inside = math.log(0.1 + 0.9 * 0.25)
    assert logs[0, 8, 8] == pytest.approx(inside) and logs[0, 0, 0] == pytest.approx(0.0)
    # a sensor pixel straddling the image border averages grey levels first (then the LCD curve)
    assert inside < logs[0, 8, 4] or logs[0, 8, 4] == pytest.approx(inside)


def test_bad_settings_are_user_errors() -> None:
    for kwargs, msg in [
        ({"n_loops": 0}, "n_loops"),
        ({"speed_px_s": 0.0}, "speed_px_s"),
        ({"black_level": 0.0}, "black_level"),
        ({"pos_thres": -0.1}, "pos_thres"),
        ({"sigma_thres": float("nan")}, "finite"),
        ({"sensor_size": (0, 5)}, "sensor_size"),
    ]:
        with pytest.raises(UserInputError, match=msg):
            RecordingParams(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="unknown emulator setting"):
        RecordingParams.from_dict({"threshold": 0.2})
    with pytest.raises(UserInputError, match="seed"):
        emulate_recording(np.zeros((4, 4), np.uint8), seed=-1)
    with pytest.raises(UserInputError, match="uint8"):
        emulate_recording(np.zeros((4, 4), np.float32))


# --- files -------------------------------------------------------------------------------------------------


def test_written_file_reads_back_to_exactly_the_emulated_events(real_data: Path, tmp_path: Path) -> None:
    imgs = _cifar(real_data, 3)
    labels = [3, 8, 8]  # the first three test labels
    names = release_names(labels, CLASSES)
    assert names == ["cat/cifar10_cat_0.aedat", "ship/cifar10_ship_0.aedat", "ship/cifar10_ship_1.aedat"]
    params = RecordingParams(n_loops=1)
    events = [emulate_recording(img, params, seed=k) for k, img in enumerate(imgs)]
    paths = write_recordings(tmp_path, names, events)
    for path, ev in zip(paths, events, strict=True):
        back = read_aedat2(path, orientation=CIFAR10DVS_ORIENTATION)
        assert back.tobytes() == ev.tobytes()
        raw = read_aedat2(path)  # raw DVS128 addresses: the spikingjelly mapping undone
        np.testing.assert_array_equal(raw["x"], 127 - ev["y"])
        np.testing.assert_array_equal(raw["p"], 1 - ev["p"])
        assert b"EMULATED" in path.read_bytes()[:600]
