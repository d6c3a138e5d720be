"""Statistics of emulated CIFAR10-DVS recordings beside the real dataset's published numbers.

Emulates the first ``--n-train`` train and ``--n-test`` test images of the exact CIFAR-10 subset in
``shared/data`` (see its PROVENANCE.md) with the default :class:`RecordingParams` (or ``--set name=value``),
seed = the image's row (train subset rows, then 5170 + test rows), and prints per-sample statistics:

* events per sample (mean, standard deviation, 5th/50th/95th percentile) -- target 205,071 on average
  (jackd/stsc ``examples/cifar10-dvs/dataset-info.py``: 2,050,719,068 events over 10,000 recordings);
* recording length ``t[-1] - t[0]`` -- target 1.298 s on average (same file: 12,984,442,259 us in total);
* the ON fraction (not published for the real data);
* events per pixel (mean over the 128x128 pixels, target 205,071 / 16,384 = 12.5), the share of pixels
  with at least one event, and the coefficient of variation of per-pixel counts (spatial spread);
* the event-time spectrum: events binned at 1 ms, mean removed, |FFT|^2 averaged over samples; the
  strongest line between 20 and 200 Hz and its power over the median power there (a 60 Hz screen
  refresh shows as a line at 60 Hz).

``--real FILE.aedat`` adds the same statistics for real AEDAT 2.0 DVS128 recordings (e.g. the MNIST-DVS and
DVS128 files of shared/data; no real CIFAR10-DVS recording is available offline). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/emulator_stats.py --shared ../shared/data \\
        --n-train 500 --n-test 100 --workers 2 \\
        --real ../shared/data/dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat \\
        --real ../shared/data/dvs/aedat2_dvs128/foam90.aedat
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

TARGET_EVENTS = 2_050_719_068 / 10_000  # jackd/stsc examples/cifar10-dvs/dataset-info.py
TARGET_DURATION_S = 12_984_442_259 / 10_000 / 1e6
BIN_US = 1000  # spectrum bins: 1 ms -> up to 500 Hz
SPECTRUM_S = 1.0  # every sample's first second, so all spectra share one frequency grid (1 Hz bins)


def load_images(shared: Path, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """``([n, 3, 32, 32] uint8, [n] seeds)``: the first train and test images of the exact subset."""
    with np.load(shared / "cifar10" / "cifar10_train_subset_5170.npz", allow_pickle=False) as z:
        train = z["data"][:n_train]
        n_all_train = z["data"].shape[0]
    with np.load(shared / "cifar10" / "cifar10_test_first1017.npz", allow_pickle=False) as z:
        test = z["data"][:n_test]
    images = np.concatenate([train, test]).reshape(-1, 3, 32, 32)
    seeds = np.concatenate([np.arange(train.shape[0]), n_all_train + np.arange(test.shape[0])])
    return images, seeds


def sample_stats(events: np.ndarray, sensor: tuple[int, int] = (128, 128)) -> dict[str, Any]:
    """Statistics of one recording (events sorted by time, image orientation, p = 1 ON)."""
    w, h = sensor
    n = int(events.shape[0])
    counts = np.bincount(events["y"].astype(np.int64) * w + events["x"], minlength=w * h)
    t = events["t"]
    hist = np.bincount(((t - t[0]) // BIN_US).astype(np.int64), minlength=int(SPECTRUM_S * 1e6 // BIN_US))
    hist = hist[: int(SPECTRUM_S * 1e6 // BIN_US)].astype(np.float64)
    power = np.abs(np.fft.rfft(hist - hist.mean())) ** 2
    return {
        "events": n,
        "duration_s": float(t[-1] - t[0]) / 1e6 if n else 0.0,
        "on_fraction": float(events["p"].mean()) if n else float("nan"),
        "events_per_pixel": n / (w * h),
        "active_pixels": float(np.count_nonzero(counts)) / (w * h),
        "pixel_cv": float(counts.std() / counts.mean()) if n else float("nan"),
        "power": power,
    }


def spectrum_line(power: np.ndarray, lo: float = 20.0, hi: float = 200.0) -> tuple[float, float]:
    """(frequency in Hz of the strongest bin in [lo, hi], its power / the median power in [lo, hi])."""
    freqs = np.fft.rfftfreq(int(SPECTRUM_S * 1e6 // BIN_US), d=BIN_US / 1e6)
    band = (freqs >= lo) & (freqs <= hi)
    k = int(np.argmax(np.where(band, power, -np.inf)))
    return float(freqs[k]), float(power[k] / np.median(power[band]))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-sample statistics (mean, sd, percentiles; the mean spectrum's strongest line)."""
    ev = np.array([r["events"] for r in rows], dtype=np.float64)
    out: dict[str, Any] = {
        "n": len(rows),
        "events_mean": float(ev.mean()),
        "events_sd": float(ev.std()),
        "events_p5_p50_p95": [float(v) for v in np.percentile(ev, [5, 50, 95])],
    }
    for key in ("duration_s", "on_fraction", "events_per_pixel", "active_pixels", "pixel_cv"):
        out[key] = float(np.nanmean([r[key] for r in rows]))
    mean_power = np.mean([r["power"] for r in rows], axis=0)
    out["line_hz"], out["line_ratio"] = spectrum_line(mean_power)
    freqs = np.fft.rfftfreq(int(SPECTRUM_S * 1e6 // BIN_US), d=BIN_US / 1e6)
    band = (freqs >= 20) & (freqs <= 200)
    out["ratio_at_60hz"] = float(mean_power[np.argmin(np.abs(freqs - 60.0))] / np.median(mean_power[band]))
    return out


def emulate_stats(
    images: np.ndarray, seeds: np.ndarray, settings: dict[str, Any], workers: int
) -> list[dict[str, Any]]:
    """Per-sample statistics of the emulated recordings (threads: the Numba kernel releases the GIL)."""
    from evrobust.preprocess.emulator_recording import RecordingParams, emulate_recording

    params = RecordingParams.from_dict(settings)

    def one(k: int) -> dict[str, Any]:
        return sample_stats(emulate_recording(images[k], params, int(seeds[k])), params.sensor_size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(images.shape[0])))


def real_stats(path: Path) -> dict[str, Any]:
    """Statistics of one real AEDAT 2.0 DVS128 recording (events sorted by time first)."""
    from evrobust.preprocess.aedat2 import read_aedat2
    from evrobust.preprocess.orientation import CIFAR10DVS_ORIENTATION

    ev = read_aedat2(path, orientation=CIFAR10DVS_ORIENTATION)
    ev = ev[np.argsort(ev["t"], kind="stable")]
    return sample_stats(ev)


def _fmt(s: dict[str, Any]) -> list[str]:
    p5, p50, p95 = s["events_p5_p50_p95"]
    return [
        f"{s['events_mean']:,.0f} (sd {s['events_sd']:,.0f}; p5/p50/p95 {p5:,.0f}/{p50:,.0f}/{p95:,.0f})",
        f"{s['duration_s']:.3f}",
        f"{s['on_fraction']:.3f}",
        f"{s['events_per_pixel']:.2f}",
        f"{s['active_pixels']:.3f}",
        f"{s['pixel_cv']:.2f}",
        f"{s['line_hz']:.0f} Hz (x{s['line_ratio']:.0f}); 60 Hz: x{s['ratio_at_60hz']:.0f}",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", dest="settings", action="append", default=[], help="emulator NAME=VALUE")
    parser.add_argument("--real", type=Path, action="append", default=[], help="a real AEDAT 2.0 DVS128 file")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {}
    for pair in args.settings:
        name, _, value = pair.partition("=")
        settings[name] = int(value) if name == "n_loops" else float(value)
    images, seeds = load_images(args.shared, args.n_train, args.n_test)
    start = time.perf_counter()
    ours = summarize(emulate_stats(images, seeds, settings, args.workers))
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"emulated": ours, "seconds": seconds, "settings": settings, "real": {}}
    for path in args.real:
        one = real_stats(path)
        result["real"][path.name] = summarize([one])
    head = ["events / sample", "length (s)", "ON fraction", "events / pixel", "active pixels", "pixel CV",
            "spectrum line (20-200 Hz)"]
    print(f"| quantity | emulated ({ours['n']} samples) | target (real CIFAR10-DVS) | "
          + " | ".join(f"real {name}" for name in result["real"]) + " |")
    print("|---" * (3 + len(result["real"])) + "|")
    targets = [f"{TARGET_EVENTS:,.0f} (mean)", f"{TARGET_DURATION_S:.3f} (mean)", "not published",
               f"{TARGET_EVENTS / 16384:.2f}", "not published", "not published", "60 Hz expected (LCD)"]
    columns = [_fmt(ours)] + [_fmt(s) for s in result["real"].values()]
    for i, name in enumerate(head):
        cells = [columns[0][i], targets[i]] + [c[i] for c in columns[1:]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n{ours['n']} recordings emulated in {seconds:.1f} s ({args.workers} worker threads)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
