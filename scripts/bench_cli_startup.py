"""Start-up time of the ``evrobust`` command: ``--help`` of the root and of ``preprocess`` (goal < 0.5 s).

Every measurement is a fresh process running the installed console script, so it includes the interpreter
start, the imports and the help rendering. The commands take turns (interleaved repeats) and the best and
the median wall times are reported, beside two references: a bare ``python -c pass`` and ``import torch``
(what every command paid before commands were loaded lazily). Usage::

    python scripts/bench_cli_startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("evrobust", path=str(Path(sys.executable).parent)) or "evrobust"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "evrobust --help": [exe, "--help"],
        "evrobust preprocess --help": [exe, "preprocess", "--help"],
        "evrobust preprocess cifar10dvs --help": [exe, "preprocess", "cifar10dvs", "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for cmd in cases.values():  # warm the file cache once
        subprocess.run(cmd, capture_output=True, check=True)
    for _ in range(args.repeats):
        for name, cmd in cases.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    print(
        f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"{args.repeats} interleaved repeats\n"
    )
    print("| command | best s | median s | goal |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        goal = "< 0.5 s" if name.startswith("evrobust") and name.count(" ") <= 2 else ""
        print(f"| `{name}` | {min(t):.3f} | {statistics.median(t):.3f} | {goal} |")


if __name__ == "__main__":
    main()
