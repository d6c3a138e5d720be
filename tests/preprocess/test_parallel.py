"""Parallel runs: inline, dask threads, dask processes and an existing scheduler give the same bytes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from evrobust.errors import UserInputError
from evrobust.pipelines.preprocess import preprocess_cifar10dvs
from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2
from evrobust.preprocess.parallel import default_batch, run_tasks

MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def square_and_thread(x: int) -> tuple[int, str]:
    return x * x, threading.current_thread().name


def test_sync_and_threads_run_every_task_once() -> None:
    seen: list[tuple[int, str]] = []
    out = run_tasks(square_and_thread, [(i,) for i in range(50)], mode="sync", on_result=seen.append)
    assert [r[0] for r in out] == [i * i for i in range(50)] and seen == out
    assert {r[1] for r in out} == {threading.current_thread().name}  # inline
    out = run_tasks(square_and_thread, [(i,) for i in range(50)], workers=2, mode="threads", batch=3)
    assert sorted(r[0] for r in out) == [i * i for i in range(50)]
    assert threading.current_thread().name not in {r[1] for r in out}  # ran on worker threads


def test_an_error_in_on_result_stops_the_run() -> None:
    count = []

    def stop(result: tuple[int, str]) -> None:
        count.append(result)
        if len(count) == 3:
            raise KeyError("stop")

    with pytest.raises(KeyError):
        run_tasks(
            square_and_thread, [(i,) for i in range(40)], workers=2, mode="threads", batch=1, on_result=stop
        )
    assert len(count) == 3


def test_bad_arguments() -> None:
    with pytest.raises(UserInputError, match="unknown parallel mode 'fibers'; choose one of sync, threads"):
        run_tasks(square_and_thread, [(1,)], mode="fibers")
    with pytest.raises(UserInputError, match="--workers must be a positive integer"):
        run_tasks(square_and_thread, [(1,)], workers=0)
    with pytest.raises(UserInputError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        run_tasks(square_and_thread, [(1,)], scheduler="tcp://127.0.0.1:9", connect_timeout=1.0)
    assert default_batch(10000, 2) == 16 and default_batch(20, 2) == 1


@pytest.fixture(scope="module")
def raw_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rawp") / "raw"
    events = read_aedat2(real_data / MNIST_DVS)
    window = events.shape[0] // 10
    for k, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        part = events[k * window : (k + 1) * window].copy()
        part["t"] -= part["t"][0]
        write_aedat2(root / c / f"cifar10_{c}_0.aedat", part)
    return root


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_processes_and_an_existing_scheduler_write_the_same_store(raw_dir: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    ref = tmp_path / "sync.zarr"
    preprocess_cifar10dvs(raw_dir, frames=3, size=16, out=ref, mode="sync")
    # The one process-based LocalCluster of the suite (slow to start): two single-threaded workers.
    procs = tmp_path / "procs.zarr"
    preprocess_cifar10dvs(raw_dir, frames=3, size=16, out=procs, workers=2, mode="processes")
    assert files_of(procs) == files_of(ref)
    # An existing cluster, reached by address (an in-process one: cheap to start).
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as cluster:
        remote = tmp_path / "remote.zarr"
        preprocess_cifar10dvs(raw_dir, frames=3, size=16, out=remote, scheduler=cluster.scheduler_address)
    assert files_of(remote) == files_of(ref)
