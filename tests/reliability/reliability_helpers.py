"""Shared helpers of the reliability suite: real raw files, subprocess runs of the CLI, directory digests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Real files, relative to the real_data fixture's folder (tests/conftest.py), which skips when it is absent.
# AEDAT 2.0, 128x128 sensor, DVS128 address layout: the container of the original CIFAR10-DVS files
MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"
FOAM = "dvs/aedat2_dvs128/foam90.aedat"
AEDAT4 = "dvs/aedat4/sample.aedat4"
CIFAR10_META = "cifar10/batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def make_raw_dir(data: Path, root: Path, per_class: int) -> Path:
    """A CIFAR10-DVS-layout raw dir of copies of the two real DVS128 recordings in ``data`` (evrobust refuses
    symbolic links to sources; the recordings are 130 KB and 50 KB)."""
    srcs = [data / MNIST_DVS, data / FOAM]
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shutil.copyfile(srcs[(c + i) % 2], root / name / f"{name}_{i:03d}.aedat")
    return root


def cli_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EVROBUST_DATA=str(tmp / "data"),
        EVROBUST_LOG_DIR=str(tmp / "logs"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONHASHSEED="0",
    )
    return env


def cli(args: list[str], tmp: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``evrobust ARGS`` in a fresh interpreter and wait for it."""
    return subprocess.run(
        [sys.executable, "-c", "from evrobust.pipelines.cli.app import main; main()", *args],
        env=cli_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
        **kw,  # type: ignore[arg-type]
    )


def cli_kill_when(
    args: list[str], tmp: Path, condition: Callable[[], bool], timeout: float = 120.0
) -> bool:
    """Start ``evrobust ARGS``, SIGKILL it as soon as ``condition()`` holds; True if it was killed mid-run."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from evrobust.pipelines.cli.app import main; main()", *args],
        env=cli_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if condition():
                os.killpg(proc.pid, 9)  # the whole group: dask worker processes die with the driver
                proc.wait(30)
                return True
            time.sleep(0.002)
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(30)
            raise AssertionError(f"evrobust {' '.join(args)} ran past {timeout}s")
        return False
    finally:
        if proc.stderr is not None:
            proc.stderr.close()


def tree_digest(root: Path, ignore: Callable[[Path], bool] = lambda p: False) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (byte-for-byte comparison of two trees)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not ignore(p):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_error_line(stderr: str) -> str:
    """The single non-log line of a failed command's stderr (asserts there is exactly one, no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def run_bounded(
    code: str, tmp: Path, address_space: int = 1 << 30, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c CODE`` with its address space capped (``RLIMIT_AS``) and a wall-clock timeout.

    A regression that allocates what a hostile file claims then fails the test (MemoryError, a non-zero exit
    or the timeout) instead of taking the machine down. The code should print its findings on stdout.
    """
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        cpu = int(timeout) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    env = cli_env(tmp)
    env.update(OPENBLAS_NUM_THREADS="1", NUMEXPR_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )
