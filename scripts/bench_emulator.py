"""Throughput of ``evrobust preprocess cifar10dvs-emu``: CIFAR-10 images -> emulated recordings -> frames.

Writes the official CIFAR-10 pickle layout of the exact subset in ``shared/data`` (5,170 train + 1,017
test images; ``scripts/cifar_pickle_layout.py``) to a temporary folder, then builds the emulated CIFAR10-DVS
store (default settings, 10 frames, 48x48) through the pipeline the command runs, once per worker count,
and prints a table: images, wall seconds, images/s, events/s. The emulator alone (one thread, no store) is
timed first on ``--single`` images. Usage (the full subset, for the record; keep other jobs light)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/bench_emulator.py --shared ../shared/data \\
        --workers 2
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_emulator.py --limit 100 --workers 1 2   # quick

``--limit N`` takes the first N images of the train and of the test set (as the command's ``--limit``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _layout(shared: Path, out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("cifar_pickle_layout", Path(__file__).with_name(
        "cifar_pickle_layout.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_cifar10(shared, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--single", type=int, default=50, help="images for the one-thread emulator timing")
    args = parser.parse_args(argv)
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs_emu
    from evrobust.preprocess.emulator_recording import emulate_recording

    with tempfile.TemporaryDirectory(prefix="bench-emu-") as tmp:
        raw = _layout(args.shared, Path(tmp) / "raw")
        with np.load(args.shared / "cifar10" / "cifar10_train_subset_5170.npz", allow_pickle=False) as z:
            imgs = z["data"][: args.single].reshape(-1, 3, 32, 32)
        emulate_recording(imgs[0])  # compile / load the Numba cache outside the timing
        start = time.perf_counter()
        n_ev = sum(int(emulate_recording(im, seed=k).shape[0]) for k, im in enumerate(imgs))
        single = time.perf_counter() - start
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
        print(f"emulator only, 1 thread: {len(imgs)} recordings in {single:.2f} s = "
              f"{single / len(imgs) * 1e3:.1f} ms each, {n_ev / single / 1e6:.2f} M events/s\n")
        print("| images | workers (threads) | wall s | images/s | M events/s | est. full subset (6,187) |")
        print("|---|---|---|---|---|---|")
        for workers in args.workers:
            out = Path(tmp) / f"emu-{workers}.zarr"
            start = time.perf_counter()
            report = preprocess_cifar10dvs_emu(raw, out=out, limit=args.limit, workers=workers)
            wall = time.perf_counter() - start
            rate = report.n_samples / wall
            mev = report.n_events / wall / 1e6
            print(f"| {report.n_samples} | {workers} | {wall:.1f} | {rate:.1f} | {mev:.2f} "
                  f"| {6187 / rate / 60:.1f} min |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
