"""The preprocessing pipelines behind ``evrobust preprocess``: raw data -> zarr stores.

Each function resolves the output path (``--out``, else ``<data dir>/<name>.zarr``), computes the split
index sets, runs the store builder of :mod:`evrobust.preprocess.build` (with an optional rich progress bar
that shows files/s and events/s), and returns its :class:`~evrobust.preprocess.build.BuildReport`. Rerunning a
command resumes an interrupted build and leaves a complete store as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evrobust.datasets.specs import SPECS, default_store_path
from evrobust.errors import UserInputError
from evrobust.preprocess.build import BuildReport, write_event_store, write_image_store, write_recording_store
from evrobust.preprocess.convert import ON_ERROR, FrameParams, SampleResult
from evrobust.preprocess.embedded import build_digits, build_digits_dvs
from evrobust.preprocess.orientation import CIFAR10DVS_ORIENTATION, ORIENTATIONS
from evrobust.preprocess.parallel import DEFAULT_MODE, check_workers
from evrobust.preprocess.randperm import reference_random_split
from evrobust.preprocess.sources import read_cifar10, read_cifar100, scan_event_dir
from evrobust.preprocess.splits import per_class_split, scheme, tebn_split
from evrobust.preprocess.store_verify import check_is_store, sha256_file, verify_store

logger = logging.getLogger(__name__)

SPLIT_BY = ("number", "time")
CIFAR10DVS_SPLIT_RULE = (
    "random (default): the reference split, torch.randperm(n, generator=torch.Generator().manual_seed(42)) "
    "cut into the first 9n//10 (train part) and the rest (test), as "
    "torch.utils.data.random_split([9000, 1000]) "
    "in the published code; per-class: per class the first 9/10 of the files sorted by name (train part) and "
    "the rest (test); tebn (stored with --split tebn): per class the recordings numbered "
    "0-99 (test) and 100-999 (train part), spikingjelly's CIFAR10DVSTEBNSplit. In all, val = floor(0.1 m) "
    "of the m train-part indices drawn by numpy default_rng(0).permutation, train = the rest."
)
CIFAR_SPLIT_RULE = (
    "standard: the official train and test sets; val = floor(0.1 * 50000) = 5000 of the official train set "
    "drawn by numpy default_rng(0).permutation, train = the other 45000"
)

ProgressHook = Callable[[SampleResult], None]


@contextmanager
def progress_bar(total: int, description: str, enabled: bool) -> Iterator[ProgressHook | None]:
    """A rich progress bar over ``total`` samples that also shows events/s; yields its update hook."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class EventRate(ProgressColumn):
        def render(self, task: Task) -> Text:
            events = task.fields.get("events", 0)
            elapsed = task.elapsed or 0.0
            rate = events / elapsed if elapsed > 0 else 0.0
            return Text(f"{rate / 1e6:.2f} Mev/s" if events else "", style="progress.data.speed")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventRate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total, events=0)

        def hook(result: SampleResult) -> None:
            events = bar.tasks[task].fields["events"] + result.n_events
            bar.update(task, advance=result.n_samples, events=events)

        yield hook


def _out_path(name: str, out: str | Path | None, data_dir: str | Path | None, **frame_opts: object) -> Path:
    path = Path(out) if out is not None else default_store_path(name, data_dir, **frame_opts)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _chain(*hooks: ProgressHook | None) -> ProgressHook | None:
    live = [h for h in hooks if h is not None]
    if not live:
        return None

    def call(result: SampleResult) -> None:
        for h in live:
            h(result)

    return call


def preprocess_cifar10dvs(
    raw: str | Path,
    *,
    frames: int = 10,
    split_by: str = "number",
    size: int | None = 48,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    on_error: str = "fail",
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    scheduler: str | None = None,
    scale: float | None = None,
    orientation: str = CIFAR10DVS_ORIENTATION,
    progress: bool = False,
    on_result: ProgressHook | None = None,
    files_per_task: int | None = None,
    default_split: str = "random",
) -> BuildReport:
    """Build the CIFAR10-DVS frame store from `<raw>/<class>/*.aedat[4]` folders or `<raw>/<class>.zip` files.

    Args:
        raw: the raw directory: per class a folder, or the zip archive as distributed (``airplane.zip``, ...),
            whose ``.aedat`` members are read in place without extracting (see
            :func:`evrobust.preprocess.sources.scan_event_dir`).
        frames: T; split_by: ``number`` or ``time``; size: output side (``None`` keeps 128).
        out: the store path (default ``<data dir>/cifar10dvs.zarr``, non-default frame options in the name).
        data_dir: the data directory (default ``$EVROBUST_DATA`` or ``./data``).
        on_error: ``fail`` (stop at an unreadable file) or ``skip`` (record it and leave it out).
        workers, mode, scheduler: parallelism (see :mod:`evrobust.preprocess.parallel`).
        scale: a fixed count scale instead of the automatic p99 rule.
        orientation: the coordinate convention (default spikingjelly's).
        progress: show a rich progress bar.
        on_result: extra per-sample hook (tests use it to interrupt a run).
        default_split: the scheme training and evaluation use: ``random`` (the reference code's),
            ``per-class`` or ``tebn`` (see :data:`CIFAR10DVS_SPLIT_RULE`). ``random`` and ``per-class`` are
            always stored, ``tebn`` when it is the default.
        files_per_task: files one task converts and writes together (default: automatic, up to 8).
    """
    spec = SPECS["cifar10dvs"]
    if not isinstance(frames, int) or frames < 1:
        raise UserInputError(f"--frames must be a positive integer, got {frames!r}")
    if split_by not in SPLIT_BY:
        raise UserInputError(f"unknown --split-by {split_by!r}; choose one of {', '.join(SPLIT_BY)}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise UserInputError(f"--size must be a positive integer, got {size!r}")
    if on_error not in ON_ERROR:
        raise UserInputError(f"unknown --on-error {on_error!r}; choose one of {', '.join(ON_ERROR)}")
    if orientation not in ORIENTATIONS:
        raise UserInputError(f"unknown orientation {orientation!r}; choose one of {', '.join(ORIENTATIONS)}")
    if scale is not None and not scale > 0:
        raise UserInputError(f"--scale must be positive, got {scale!r}")
    check_workers(workers, mode, scheduler)
    classes = spec.classes or ()
    sensor = spec.sensor or (128, 128)
    sources = scan_event_dir(raw, classes)
    labels = [s.label for s in sources]
    splits = {"random": reference_random_split(len(sources)), "per-class": per_class_split(labels)}
    if default_split == "tebn":
        # Stored only on request: it needs CIFAR10-DVS's numbered file names (a UserInputError otherwise).
        splits["tebn"] = tebn_split([s.path for s in sources], labels)
    if default_split not in splits:
        raise UserInputError(f"unknown split scheme {default_split!r}; choose one of {', '.join(splits)}")
    params = FrameParams(frames, split_by, size, sensor, orientation)
    path = _out_path("cifar10dvs", out, data_dir, frames=frames, split_by=split_by, size=size)
    logger.info("CIFAR10-DVS: %d files from %s -> %s", len(sources), raw, path)
    with progress_bar(len(sources), "cifar10dvs", progress) as hook:
        return write_event_store(
            path,
            dataset="cifar10dvs",
            raw_dir=raw,
            sources=sources,
            classes=classes,
            params=params,
            splits=splits,
            default_split=default_split,
            split_rule=CIFAR10DVS_SPLIT_RULE,
            scale=scale,
            on_error=on_error,
            workers=workers,
            mode=mode,
            scheduler=scheduler,
            on_result=_chain(hook, on_result),
            files_per_task=files_per_task,
        )


def preprocess_cifar(
    name: str,
    raw: str | Path,
    *,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
    on_result: ProgressHook | None = None,
) -> BuildReport:
    """Build the ``cifar10`` or ``cifar100`` image store from the official python-pickle layout.

    ``raw`` is ``cifar-10-batches-py``/``cifar-100-python`` or the folder that holds it. Store rows: the
    official train set in batch order, then the test set. Splits: see :data:`CIFAR_SPLIT_RULE`.
    """
    if name not in ("cifar10", "cifar100"):
        raise UserInputError(f"unknown CIFAR variant {name!r}; choose cifar10 or cifar100")
    images = read_cifar10(raw) if name == "cifar10" else read_cifar100(raw)
    root = images.root if images.root is not None else Path(raw)
    n_train = images.counts["train"]
    n = int(images.labels.shape[0])
    splits = {"standard": scheme(range(n_train), range(n_train, n))}
    sha = [sha256_file(root / f) for f in images.files]
    path = _out_path(name, out, data_dir)
    logger.info("%s: %d images from %s -> %s", name, n, root, path)
    with progress_bar(n, name, progress) as hook:
        return write_image_store(
            path,
            dataset=name,
            images=images,
            splits=splits,
            default_split="standard",
            split_rule=CIFAR_SPLIT_RULE,
            source_sha256=sha,
            workers=workers,
            on_result=_chain(hook, on_result),
        )


CIFAR10DVS_EMU_SPLIT_RULE = (
    "standard: the CIFAR-10 images' own split -- the emulated recordings of CIFAR-10's official train images "
    "train, those of its test images test (the random 9000/1000 and TEBN splits of CIFAR10-DVS do not apply: "
    "those index recordings of 10,000 test images); val = floor(0.1 m) of the m train indices drawn by numpy "
    "default_rng(0).permutation, train = the rest"
)
EMULATED_NOTE = (
    "EMULATED data: recordings made by evrobust's CIFAR10-DVS emulator from CIFAR-10 images, not by a DVS"
)
SEED_RULE = "sample seed = seed_base + the image's row in the CIFAR-10 source (train batches 1-5, then test)"


def _check_raw_out(raw_out: Path, store_path: Path) -> None:
    """Refuse a --raw-out that holds anything but an earlier emulated release (never overwrite real data)."""
    if raw_out.exists() and not raw_out.is_dir():
        raise UserInputError(f"--raw-out {raw_out} is a file; pass a new or empty directory")
    if raw_out.is_dir() and any(raw_out.iterdir()) and not (raw_out / RAW_OUT_MARKER).is_file():
        raise UserInputError(
            f"--raw-out {raw_out} is not empty and was not written by cifar10dvs-emu; pass a new or empty "
            "directory (emulated files never go beside real recordings)"
        )
    if raw_out.resolve() == store_path.resolve() or store_path.resolve().is_relative_to(raw_out.resolve()):
        raise UserInputError(f"--raw-out {raw_out} must not contain the store {store_path}")


RAW_OUT_MARKER = "EMULATED-cifar10dvs-emu.txt"


def preprocess_cifar10dvs_emu(
    raw: str | Path,
    *,
    frames: int = 10,
    split_by: str = "number",
    size: int | None = 48,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    raw_out: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    settings: dict[str, object] | None = None,
    workers: int = 1,
    mode: str = DEFAULT_MODE,
    progress: bool = False,
    on_result: ProgressHook | None = None,
) -> BuildReport:
    """Emulated CIFAR10-DVS: CIFAR-10 images -> emulated DVS recordings -> the frame store, in one step.

    Args:
        raw: the CIFAR-10 python-pickle folder (``cifar-10-batches-py`` or the folder holding it).
        frames, split_by, size: frame options, as for ``cifar10dvs`` (default 10 frames by count, 48x48).
        out, data_dir: the store path (default ``<data dir>/cifar10dvs-emu.zarr``).
        raw_out: also write every recording in the original release layout (``<class>/cifar10_<class>_<i>
            .aedat``, AEDAT 2.0, DVS128 addresses), which ``preprocess cifar10dvs --raw`` reads; a new or
            empty directory (or one this command wrote before).
        limit: take only the first ``limit`` images of CIFAR-10's train and of its test set.
        seed: base seed (see :data:`SEED_RULE`); settings: emulator settings that differ from the defaults
            of :class:`~evrobust.preprocess.emulator_recording.RecordingParams`.
        workers, mode: parallelism over blocks of samples (see :mod:`evrobust.preprocess.parallel`).

    The store's attrs say ``extra.data == "emulated"`` and carry the emulator settings and seed rule; the
    split is CIFAR-10's own (:data:`CIFAR10DVS_EMU_SPLIT_RULE`).
    """
    import numpy as np

    from evrobust.preprocess.emulator_recording import RecordingParams, release_names
    from evrobust.preprocess.sources import ImageSet

    if not isinstance(frames, int) or frames < 1:
        raise UserInputError(f"--frames must be a positive integer, got {frames!r}")
    if split_by not in SPLIT_BY:
        raise UserInputError(f"unknown --split-by {split_by!r}; choose one of {', '.join(SPLIT_BY)}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise UserInputError(f"--size must be a positive integer, got {size!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserInputError(f"--limit must be a positive integer, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**62:
        raise UserInputError(f"--seed must be an integer in [0, 2**62), got {seed!r}")
    check_workers(workers, mode)
    emu = RecordingParams.from_dict(settings or {})
    params = FrameParams(frames, split_by, size, emu.sensor_size, CIFAR10DVS_ORIENTATION)
    path = _out_path("cifar10dvs-emu", out, data_dir, frames=frames, split_by=split_by, size=size)
    if raw_out is not None:
        _check_raw_out(Path(raw_out), path)
    images = read_cifar10(raw)
    n_train = images.counts["train"]
    n_all = int(images.labels.shape[0])
    rows = np.arange(n_all)
    if limit is not None:
        rows = np.concatenate([rows[:n_train][:limit], rows[n_train:][:limit]])
    n_tr = int(np.count_nonzero(rows < n_train))
    subset = ImageSet(
        images=images.images[rows],
        labels=images.labels[rows],
        classes=images.classes,
        files=images.files,
        root=images.root,
        counts={"train": n_tr, "test": int(rows.shape[0]) - n_tr},
    )
    splits = {"standard": scheme(range(n_tr), range(n_tr, int(rows.shape[0])))}
    names = release_names(subset.labels, subset.classes)
    root = images.root if images.root is not None else Path(raw)
    extra = {
        "data": "emulated",
        "note": EMULATED_NOTE,
        "seed_base": seed,
        "seed_rule": SEED_RULE,
        "source_rows": [int(r) for r in rows],
        "source_sha256": {f: sha256_file(root / f) for f in images.files},
        "release_names": "<class>/cifar10_<class>_<i>.aedat, i counting per class in store order",
        "limit": limit,
        # part of the build's identity: a rerun with another --raw-out is refused rather than silently
        # leaving that directory empty (a complete store has nothing left to emulate)
        "raw_out": None if raw_out is None else str(Path(raw_out).resolve()),
    }

    def prepare_raw_out() -> None:
        if raw_out is None:
            return
        from evrobust.safeio.atomic import write_text_atomic

        raw_dir = Path(raw_out)
        raw_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(raw_dir / RAW_OUT_MARKER, EMULATED_NOTE + "\n")  # first: marks the folder as ours
        for c in subset.classes:  # every class folder, so the layout always reads back
            (raw_dir / c).mkdir(exist_ok=True)
    logger.info("cifar10dvs-emu: %d images from %s -> %s (EMULATED)", rows.shape[0], root, path)
    with progress_bar(int(rows.shape[0]), "cifar10dvs-emu", progress) as hook:
        return write_recording_store(
            path,
            dataset="cifar10dvs-emu",
            images=subset,
            params=params,
            settings=emu.to_dict(),
            seeds=[seed + int(r) for r in rows],
            sources=[f"cifar10[{int(r)}]" for r in rows],
            splits=splits,
            default_split="standard",
            split_rule=CIFAR10DVS_EMU_SPLIT_RULE,
            extra=extra,
            raw_out=raw_out,
            raw_names=names if raw_out is not None else None,
            workers=workers,
            mode=mode,
            on_result=_chain(hook, on_result),
            before_tasks=prepare_raw_out,
        )


def preprocess_embedded(
    name: str, *, out: str | Path | None = None, data_dir: str | Path | None = None, workers: int = 1
) -> BuildReport:
    """Build the embedded ``digits`` or ``digits-dvs`` store (no download)."""
    path = _out_path(name, out, data_dir)
    if name == "digits":
        return build_digits(path, workers=workers)
    if name == "digits-dvs":
        return build_digits_dvs(path, workers=workers)
    raise UserInputError(f"{name!r} is not an embedded dataset; choose digits or digits-dvs")


def verify(store_path: str | Path, raw: str | Path | None = None, deep: bool = True) -> list[str]:
    """Check a store (:func:`evrobust.preprocess.store_verify.verify_store`); ``raw``: re-hash sources."""
    path = Path(store_path)
    if not path.exists():
        raise UserInputError(f"store {path} does not exist")
    check_is_store(path)  # not a store at all: a user error (exit 2); a damaged store: findings (exit 1)
    return verify_store(path, raw_dir=raw, deep=deep)
