"""scripts/emulator_stats.py at a small size: its numbers against direct computation and stated tolerances."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from evrobust.preprocess.emulator_recording import emulate_recording
from evrobust.preprocess.events import make_events

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "emulator_stats.py"


@pytest.fixture(scope="module")
def stats() -> ModuleType:
    spec = importlib.util.spec_from_file_location("emulator_stats", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spectrum_finds_a_hand_made_refresh_line(stats: ModuleType) -> None:
    # 10 events at every 60 Hz refresh instant (rounded to us) for one second, nothing else
    ticks = np.repeat(np.rint(np.arange(60) * 1e6 / 60).astype(np.int64), 10)
    ev = make_events(ticks, np.zeros_like(ticks), np.zeros_like(ticks), np.ones_like(ticks))
    row = stats.sample_stats(ev)
    hz, ratio = stats.spectrum_line(row["power"])
    assert hz == 60.0 and ratio > 100
    assert row["events"] == 600 and row["on_fraction"] == 1.0 and row["events_per_pixel"] == 600 / 16384
    assert row["active_pixels"] == 1 / 16384


def test_stats_script_small(
    stats: ModuleType, real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mnist = real_data / "dvs" / "aedat2_dvs128" / "mnist_0_scale04_0001.aedat"
    out = stats.main(["--shared", str(real_data), "--n-train", "3", "--n-test", "1", "--real", str(mnist),
                      "--json", str(tmp_path / "s.json")])
    ours = out["emulated"]
    images, seeds = stats.load_images(real_data, 3, 1)
    assert seeds.tolist() == [0, 1, 2, 5170]  # train rows, then 5170 + test rows
    direct = [emulate_recording(images[k], seed=int(seeds[k])).shape[0] for k in range(4)]
    assert ours["n"] == 4 and ours["events_mean"] == pytest.approx(np.mean(direct), rel=1e-12)
    assert ours["events_per_pixel"] == pytest.approx(ours["events_mean"] / 16384)
    # tolerances: per-sample sd is about 51,000 (25 samples), so a 4-sample mean lies within +-50 % of
    # the 205,071 target unless the defaults drift; every recording lasts 78 refreshes (1.3 s) less the
    # wait for its first and after its last event, under one refresh (16.7 ms)
    assert abs(ours["events_mean"] / 205_071 - 1) < 0.5
    assert 1.3 - 0.0167 < ours["duration_s"] <= 1.3
    assert 0.4 < ours["on_fraction"] < 0.6
    assert ours["line_hz"] == 60.0 and ours["line_ratio"] > 50  # the 60 Hz screen refresh dominates
    assert 0.5 < ours["active_pixels"] <= 1.0
    real = out["real"][mnist.name]
    assert real["events_mean"] == 15_744  # the file's event count (PROVENANCE.md)
    assert (tmp_path / "s.json").is_file() and "| events / sample |" in capsys.readouterr().out
