"""Store-building drivers: create (or resume) a store, run the per-sample tasks in parallel, finalize it.

These are the torch-free, UI-free cores of ``evrobust preprocess``; the pipelines add path defaults, the
torch-compatible reference split and a progress bar (through ``on_result``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from evrobust.errors import UserInputError
from evrobust.preprocess import store, store_stats
from evrobust.preprocess.convert import (
    ON_ERROR,
    FrameParams,
    SampleResult,
    convert_emulated_block,
    convert_event_files,
    convert_image_block,
    convert_recording_block,
    sample_from_bytes,
)
from evrobust.preprocess.locks import exclusive
from evrobust.preprocess.parallel import DEFAULT_MODE, check_workers, run_tasks
from evrobust.preprocess.sources import EventSource, ImageSet, read_source_bytes, split_zip_source

logger = logging.getLogger(__name__)

IMAGE_BLOCK = 1000  # images per task: one task writes a block of per-sample chunks
EMULATED_BLOCK = 64  # emulated samples per task (~2 ms of emulation each)
RECORDING_BLOCK = 8  # emulated CIFAR10-DVS recordings per task (~0.05-0.1 s each)


@dataclass
class BuildReport:
    """What a build did.

    Attributes:
        path: the store.
        n_samples: samples in the store.
        n_done_now: samples written (or skipped) by this run (0 when the store was already complete).
        n_events: events decoded by this run.
        seconds: wall time of this run's task phase.
        skipped: ``{index: reason}`` of the samples skipped in this run.
        resumed: an existing store was reopened.
    """

    path: Path
    n_samples: int
    n_done_now: int = 0
    n_events: int = 0
    seconds: float = 0.0
    skipped: dict[int, str] = field(default_factory=dict)
    resumed: bool = False


F = TypeVar("F", bound=Callable[..., Any])


def _locked(build: F) -> F:
    """Run a store builder holding the store's exclusive-writer lock (:mod:`evrobust.preprocess.locks`).

    A second writer of the same store is refused with a one-line UserInputError naming the holder; a lock
    left by a killed builder is taken over, so rerunning the command resumes the store.
    """

    @functools.wraps(build)
    def wrapper(path: str | Path, *args: Any, **kwargs: Any) -> Any:
        with exclusive(path, "evrobust preprocess"):
            return build(path, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _already_complete(path: Path) -> bool:
    return bool(store.read_attrs(path).get("complete")) and store.pending_indices(path).size == 0


def _run(
    path: Path,
    fn: Callable[..., SampleResult],
    tasks: list[tuple[Any, ...]],
    sources: Sequence[str],
    on_error: str,
    workers: int,
    mode: str,
    scheduler: str | None,
    on_result: Callable[[SampleResult], None] | None,
    report: BuildReport,
    histograms: dict[int, np.ndarray] | None = None,
) -> None:
    histograms = {} if histograms is None else histograms

    def handle(out: SampleResult | list[SampleResult]) -> None:
        for result in out if isinstance(out, list) else [out]:
            one(result)

    def one(result: SampleResult) -> None:
        if result.status == "error":
            name = sources[result.index]
            if on_error == "fail":
                raise UserInputError(
                    f"cannot read {name}: {result.message}; fix or remove the file, "
                    "or rerun with --on-error skip"
                )
            logger.warning("skipping %s: %s", name, result.message)
            store.mark_skipped(path, result.index)
            report.skipped[result.index] = result.message
        report.n_done_now += result.n_samples
        if result.histogram is not None:
            histograms[result.index] = result.histogram
        report.n_events += result.n_events
        if on_result is not None:
            on_result(result)

    start = time.perf_counter()
    # Tasks are already batched where batching pays (event files, image blocks): one dask task each.
    run_tasks(fn, tasks, workers=workers, mode=mode, scheduler=scheduler, on_result=handle, batch=1)
    report.seconds = time.perf_counter() - start


def convert_zip_event_files(
    store_path: str, items: list[tuple[int, str, str]], params: FrameParams
) -> list[SampleResult]:
    """Like :func:`~evrobust.preprocess.convert.convert_event_files` for sources inside zip archives.

    ``items`` are ``(index, raw_dir, "<class>.zip::<member>")``; each member's bytes are read through the
    archive (:func:`~evrobust.preprocess.sources.read_source_bytes`), decoded, binned and written with their
    sha256; unreadable members give ``"error"`` results and write nothing.
    """
    from evrobust.preprocess.aedat2_frames import sample_histogram

    unit = params.count_unit()
    results: list[SampleResult] = []
    good: list[int] = []
    samples, digests = [], []
    for index, raw, rel in items:
        try:
            data = read_source_bytes(raw, rel)
            # The member name is only a label here (for messages and the suffix); no file is opened by it.
            sample, n_events = sample_from_bytes(data, rel, params, unit, Path(rel))
        except (UserInputError, OSError) as exc:
            results.append(SampleResult(index, 0, "error", " ".join(str(exc).split())))
            continue
        good.append(index)
        samples.append(sample)
        digests.append(np.frombuffer(hashlib.sha256(data).digest(), dtype=np.uint8))
        results.append(SampleResult(index, n_events, "written", histogram=sample_histogram(sample)))
    if good:
        store.write_samples(store_path, good, np.stack(samples), np.stack(digests))
    return results


@_locked
def write_event_store(
    path: str | Path,
    *,
    dataset: str,
    raw_dir: str | Path,
    sources: Sequence[EventSource],
    classes: Sequence[str],
    params: FrameParams,
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    scale: float | None = None,
    on_error: str = "fail",
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    scheduler: str | None = None,
    on_result: Callable[[SampleResult], None] | None = None,
    files_per_task: int | None = None,
) -> BuildReport:
    """Build (or resume, or leave as is when complete) an events store from raw event files.

    Each task decodes one file, bins it to ``params.sample_shape()`` counts and writes its chunk. A file that
    cannot be read stops the build with a UserInputError (``on_error="fail"``) or is flagged skipped and left
    out of every split (``"skip"``). ``files_per_task`` (default: up to 8, at least 8 tasks per worker) sets
    how many files one task converts and writes together.
    """
    if on_error not in ON_ERROR:
        raise UserInputError(f"unknown --on-error {on_error!r}; choose one of {', '.join(ON_ERROR)}")
    check_workers(workers, mode, scheduler)
    path = Path(path)
    raw = Path(raw_dir)
    rels = [s.path for s in sources]
    resumed = not store.create_store(
        path,
        dataset=dataset,
        kind="events",
        sample_shape=params.sample_shape(),
        labels=np.array([s.label for s in sources], dtype=np.int64),
        classes=classes,
        splits=splits,
        default_split=default_split,
        split_rule=split_rule,
        sources=rels,
        sensor=params.sensor,
        orientation=params.orientation,
        frames=params.n_frames,
        split_by=params.split_by,
        resize=params.size,
        count_unit=params.count_unit(),
        scale=scale,
        extra={"layout": params.layout},
    )
    report = BuildReport(path, len(rels), resumed=resumed)
    if resumed and _already_complete(path):
        logger.info("%s is already complete; nothing to do", path)
        return report
    todo = store.pending_indices(path)
    per = files_per_task or max(1, min(8, len(todo) // (8 * workers)))
    if any(split_zip_source(r) is not None for r in rels):
        # Per-class zip archives (as CIFAR10-DVS is distributed): members are read in place, never extracted.
        convert: Callable[..., Any] = convert_zip_event_files
        zitems = [(int(i), str(raw), rels[i]) for i in todo]
        tasks = [(str(path), zitems[k : k + per], params) for k in range(0, len(zitems), per)]
    else:
        convert = convert_event_files
        items = [(int(i), str(raw / rels[i])) for i in todo]
        tasks = [(str(path), items[k : k + per], params) for k in range(0, len(items), per)]
    histograms: dict[int, np.ndarray] = {}
    _run(
        path,
        convert,
        tasks,
        rels,
        on_error,
        workers,
        mode,
        scheduler,
        on_result,
        report,
        histograms,
    )
    store_stats.finalize_store(path, report.skipped, histograms)
    return report


@_locked
def write_image_store(
    path: str | Path,
    *,
    dataset: str,
    images: ImageSet,
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    source_sha256: Sequence[str] | None = None,
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    on_result: Callable[[SampleResult], None] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> BuildReport:
    """Build (or resume) an images store from an in-memory :class:`ImageSet` (uint8 ``[N, C, H, W]``)."""
    check_workers(workers, mode)
    path = Path(path)
    n = int(images.images.shape[0])
    resumed = not store.create_store(
        path,
        dataset=dataset,
        kind="images",
        sample_shape=images.images.shape[1:],
        labels=images.labels,
        classes=images.classes,
        splits=splits,
        default_split=default_split,
        split_rule=split_rule,
        sources=list(images.files),
        source_sha256=source_sha256,
        extra=extra,
    )
    report = BuildReport(path, n, resumed=resumed)
    if resumed and _already_complete(path):
        logger.info("%s is already complete; nothing to do", path)
        return report
    pending = set(store.pending_indices(path).tolist())
    # Blocks are written whole (chunks, then flags), so a block is either entirely done or redone.
    tasks = [
        (str(path), s, images.images[s : min(s + IMAGE_BLOCK, n)])
        for s in range(0, n, IMAGE_BLOCK)
        if any(i in pending for i in range(s, min(s + IMAGE_BLOCK, n)))
    ]
    labels = [str(i) for i in range(n)]
    _run(path, convert_image_block, tasks, labels, "fail", workers, mode, None, on_result, report)
    store_stats.finalize_store(path)
    return report



def _create_emulated_store(
    path: Path,
    dataset: str,
    images: ImageSet,
    params: FrameParams,
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    sources: list[str],
    extra: Mapping[str, Any],
) -> bool:
    """Create (or reopen) the events store of an image-to-event emulation; True when it was reopened."""
    return not store.create_store(
        path,
        dataset=dataset,
        kind="events",
        sample_shape=params.sample_shape(),
        labels=images.labels,
        classes=images.classes,
        splits=splits,
        default_split=default_split,
        split_rule=split_rule,
        sources=sources,
        sensor=params.sensor,
        orientation=params.orientation,
        frames=params.n_frames,
        split_by=params.split_by,
        resize=params.size,
        count_unit=params.count_unit(),
        extra=dict(extra),
    )

@_locked
def write_emulated_store(
    path: str | Path,
    *,
    dataset: str,
    images: ImageSet,
    params: FrameParams,
    emulator: Mapping[str, Any],
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    on_result: Callable[[SampleResult], None] | None = None,
) -> BuildReport:
    """Build (or resume) an events store by running the image-to-event emulator on every image."""
    check_workers(workers, mode)
    path = Path(path)
    n = int(images.images.shape[0])
    sources = [f"{dataset}[{i}]" for i in range(n)]
    resumed = _create_emulated_store(path, dataset, images, params, splits, default_split, split_rule,
                                     sources, {"emulator": dict(emulator)})
    report = BuildReport(path, n, resumed=resumed)
    if resumed and _already_complete(path):
        return report
    pending = set(store.pending_indices(path).tolist())
    tasks = [
        (str(path), s, images.images[s : min(s + EMULATED_BLOCK, n)], params, dict(emulator))
        for s in range(0, n, EMULATED_BLOCK)
        if any(i in pending for i in range(s, min(s + EMULATED_BLOCK, n)))
    ]
    _run(path, convert_emulated_block, tasks, sources, "fail", workers, mode, None, on_result, report)
    store_stats.finalize_store(path)
    return report


@_locked
def write_recording_store(
    path: str | Path,
    *,
    dataset: str,
    images: ImageSet,
    params: FrameParams,
    settings: Mapping[str, Any],
    seeds: Sequence[int],
    sources: Sequence[str],
    splits: Mapping[str, Mapping[str, Sequence[int]]],
    default_split: str,
    split_rule: str,
    extra: Mapping[str, Any],
    raw_out: str | Path | None = None,
    raw_names: Sequence[str] | None = None,
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    on_result: Callable[[SampleResult], None] | None = None,
    before_tasks: Callable[[], None] | None = None,
) -> BuildReport:
    """Build (or resume) an events store of emulated CIFAR10-DVS recordings, one per image.

    ``settings`` are the emulator's :class:`~evrobust.preprocess.emulator_recording.RecordingParams` (as a
    dict), recorded in the attrs, and ``seeds[i]`` the seed of sample ``i`` (the caller records its rule in
    ``extra``), so a resumed build must use the same. With ``raw_out`` every recording is also written as
    ``<raw_out>/<raw_names[i]>`` (the original release layout). Tasks cover :data:`RECORDING_BLOCK` samples
    each. ``before_tasks`` runs once the store is created or reopened and before any sample is emulated (the
    caller prepares ``raw_out`` there, so a refused store leaves no raw directory behind).
    """
    check_workers(workers, mode)
    path = Path(path)
    n = int(images.images.shape[0])
    resumed = _create_emulated_store(path, dataset, images, params, splits, default_split, split_rule,
                                     list(sources), {**extra, "emulator": dict(settings)})
    report = BuildReport(path, n, resumed=resumed)
    if resumed and _already_complete(path):
        logger.info("%s is already complete; nothing to do", path)
        return report
    if before_tasks is not None:
        before_tasks()
    pending = set(store.pending_indices(path).tolist())
    names = list(raw_names) if raw_names is not None else None
    raw = str(raw_out) if raw_out is not None else None
    tasks = []
    for s in range(0, n, RECORDING_BLOCK):
        e = min(s + RECORDING_BLOCK, n)
        if any(i in pending for i in range(s, e)):
            block_names = names[s:e] if names is not None else None
            seeds_b = [int(v) for v in seeds[s:e]]
            block = images.images[s:e]
            tasks.append((str(path), s, block, params, dict(settings), seeds_b, raw, block_names))
    _run(path, convert_recording_block, tasks, list(sources), "fail", workers, mode, None, on_result, report)
    store_stats.finalize_store(path)
    return report
