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
from evrobust.preprocess.build import BuildReport, write_event_store, write_image_store
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
