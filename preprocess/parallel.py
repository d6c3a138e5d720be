"""Run conversion tasks over files: inline, on a dask.distributed local cluster, or on an existing cluster.

Every task writes its own chunk (see :mod:`evrobust.preprocess.convert`), so workers never send sample data
back to the driver; the driver only sees small :class:`~evrobust.preprocess.convert.SampleResult` records,
which it hands to ``on_result`` as they complete (progress bars, fail-fast on a bad file).

Modes (``mode=``):

``sync``
    inline in the calling thread, in task order: no start-up cost, deterministic; used for one worker.
``threads``
    a pool of ``workers`` threads in this process (``concurrent.futures``, no dask cluster: a local
    ``LocalCluster(processes=False)`` took 0.3-1 s to start and ~2 ms per task, as much as converting the
    files of a small raw dir). The frame kernels are numba ``nogil`` functions, and file reads, sha256 and
    zstd release the GIL, so threads scale without process start-up or pickling (see
    ``scripts/bench_preprocess_e2e.py`` for the measured numbers that made this the default).
``processes``
    a ``LocalCluster`` with ``workers`` single-threaded worker processes. The caller's script needs an
    ``if __name__ == "__main__":`` guard, as for any process pool.

With ``scheduler="tcp://host:port"`` the tasks go to that existing dask cluster instead (its workers must
see the raw files and the store path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from evrobust.errors import UserInputError

logger = logging.getLogger(__name__)


def _check_scheduler_address(address: str) -> None:
    """Refuse a malformed ``--scheduler`` address (unknown scheme, no/invalid port) as one line."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown address scheme {scheme!r}; known: {', '.join(sorted(backends))}")
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as exc:
        raise UserInputError(
            f"{address!r} is not a dask scheduler address ({exc}); check --scheduler (e.g. tcp://host:8786)"
        ) from None


def quiet_dask_logging() -> None:
    """Hold dask.distributed's loggers at WARNING unless evrobust logs at DEBUG (``-v``).

    distributed configures its own loggers on import (``distributed.scheduler`` etc. at INFO, with a stderr
    handler of their own), so a level set on the parent logger alone does not hold them, and worker
    processes configure theirs again from the ``DASK_LOGGING__DISTRIBUTED`` environment variable.
    """
    import os

    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("distributed", "dask"):
            log = logging.getLogger(name)
            if log.level < logging.WARNING:
                log.setLevel(logging.WARNING)

MODES = ("sync", "threads", "processes")
DEFAULT_MODE = "threads"

R = TypeVar("R")


def _apply_batch(fn: Callable[..., R], batch: Sequence[tuple[Any, ...]]) -> list[R]:
    """Run several tasks in one dask task (a dask task costs ~2 ms of scheduling; a small file less)."""
    return [fn(*args) for args in batch]


def default_batch(n_tasks: int, workers: int) -> int:
    """Tasks per dask task: enough to amortise scheduling, few enough to keep >= 8 batches per worker."""
    return max(1, min(16, n_tasks // (8 * workers)))


def _run_threads(
    fn: Callable[..., R],
    tasks: Sequence[tuple[Any, ...]],
    workers: int,
    on_result: Callable[[R], None] | None,
    results: list[R],
) -> list[R]:
    """Run the tasks on ``workers`` threads; results reach ``on_result`` in this thread as they complete."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evrobust-preprocess")
    try:
        # Keep only a few tasks queued per thread: an exception from on_result (fail-fast on a bad file,
        # an interrupt) then leaves little to cancel, and no finished results pile up unreported.
        queue = iter(tasks)
        pending = {pool.submit(fn, *args) for args in _take(queue, 2 * workers)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                results.append(result)
                if on_result is not None:
                    on_result(result)
            pending |= {pool.submit(fn, *args) for args in _take(queue, len(done))}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _take(queue: Any, n: int) -> list[tuple[Any, ...]]:
    out = []
    for args in queue:
        out.append(args)
        if len(out) == n:
            break
    return out


def check_workers(workers: int, mode: str) -> None:
    """Validate the worker count and mode (UserInputError naming the valid choices)."""
    if mode not in MODES:
        raise UserInputError(f"unknown parallel mode {mode!r}; choose one of {', '.join(MODES)}")
    if not isinstance(workers, int) or workers < 1:
        raise UserInputError(f"--workers must be a positive integer, got {workers!r}")


def run_tasks(
    fn: Callable[..., R],
    tasks: Sequence[tuple[Any, ...]],
    *,
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    scheduler: str | None = None,
    on_result: Callable[[R], None] | None = None,
    batch: int | None = None,
    connect_timeout: float = 10.0,
) -> list[R]:
    """Run ``fn(*args)`` for every ``args`` in ``tasks`` and return the results in completion order.

    Args:
        fn: a top-level (importable, picklable) function.
        tasks: argument tuples, one per task.
        workers: thread count (``threads``) or worker processes (``processes``); ``mode="sync"`` or
            ``workers=1`` in ``threads`` mode without a scheduler runs inline.
        mode: see the module docstring.
        scheduler: address of an existing dask scheduler; overrides ``mode`` and ``workers``.
        on_result: called in the driver thread with each result as it completes; an exception it raises
            cancels the remaining tasks and propagates (already written chunks stay valid).
        batch: tasks per dask task (processes, scheduler; default :func:`default_batch`); results are still
            reported one by one. Threads take one task at a time.
        connect_timeout: seconds to wait for ``scheduler``.
    """
    check_workers(workers, mode)
    results: list[R] = []
    if not tasks:
        return results
    from threadpoolctl import threadpool_limits

    if scheduler is None and (mode == "sync" or workers == 1 and mode == "threads"):
        # One thread in a cluster buys nothing but start-up time; run inline. BLAS is held to one thread: the
        # area resize is a small matmul, and OpenBLAS threads spin-waiting beside zarr's I/O thread made it
        # ~50x slower on a 2-core machine (measured: 0.23 s vs 13.8 s for 40 files).
        with threadpool_limits(1, "blas"):
            for args in tasks:
                result = fn(*args)
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results
    if scheduler is None and mode == "threads":
        # Worker threads each running a multi-threaded BLAS would oversubscribe the cores (see above).
        with threadpool_limits(1, "blas"):
            return _run_threads(fn, tasks, workers, on_result, results)

    quiet_dask_logging()  # before the import: worker processes read the setting from the environment
    from distributed import Client, LocalCluster, as_completed

    quiet_dask_logging()  # after it: distributed set its own loggers to INFO when it was first imported

    if scheduler is not None:
        _check_scheduler_address(scheduler)  # before a client starts its event loop
        try:
            client = Client(scheduler, timeout=f"{connect_timeout}s")
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
            raise UserInputError(
                f"cannot reach the dask scheduler at {scheduler} ({exc}); check --scheduler"
            ) from None
        cluster = None
    else:
        # Single-threaded worker processes (dask sets OPENBLAS/OMP_NUM_THREADS=1 in them).
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        size = batch or default_batch(len(tasks), workers)
        batches = [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]
        futures = client.map(_apply_batch, [fn] * len(batches), batches, pure=False)
        try:
            for future in as_completed(futures):
                for result in future.result():
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results
