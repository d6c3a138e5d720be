"""``evrobust preprocess ...``: thin typer wrappers over :mod:`evrobust.pipelines.preprocess`."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from evrobust.preprocess.build import BuildReport

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="preprocess",
    help="Turn raw data into zarr stores (resumable: rerun the same command to continue an interrupted run).",
    no_args_is_help=True,
    add_completion=False,
)


class SplitBy(StrEnum):
    number = "number"
    time = "time"


class OnError(StrEnum):
    fail = "fail"
    skip = "skip"


class Mode(StrEnum):
    threads = "threads"
    processes = "processes"
    sync = "sync"


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory for the default store path [env EVROBUST_DATA, else ./data]."
    ),
]
Out = Annotated[Path | None, typer.Option("--out", help="Store path (default: <data dir>/<name>.zarr).")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="Local workers (dask LocalCluster when > 1).")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
NoDownload = Annotated[
    bool,
    typer.Option(
        "--no-download",
        help="Never download: stop with the list of files to put into <data dir>/raw/<name>/.",
    ),
]


def _raw_default(name: str, raw: Path | None, data_dir: Path | None, no_download: bool) -> Path:
    """``--raw`` if given, else ``<data dir>/raw/<name>`` (cheap checks only, no download)."""
    if raw is not None:
        return raw
    from evrobust.preprocess.download import raw_status

    return raw_status(name, data_dir, download=not no_download)[0]


def _raw_or_download(
    name: str, raw: Path | None, data_dir: Path | None, no_download: bool, progress: bool
) -> Path:
    """``--raw`` if given, else ``<data dir>/raw/<name>``, fetched and checked on first use."""
    if raw is not None:
        return raw
    from evrobust.preprocess.download import ensure_raw

    return ensure_raw(name, data_dir, download=not no_download, progress=progress)


def _out_default(name: str, out: Path | None, data_dir: Path | None, **frame_opts: object) -> Path:
    from evrobust.datasets.specs import default_store_path

    return out if out is not None else default_store_path(name, data_dir, **frame_opts)  # type: ignore[arg-type]


def _echo_defaults(ctx: typer.Context, raw: Path, raw_given: bool, out: Path) -> None:
    from evrobust.pipelines.cli.defaults import defaults_line

    notes = {} if raw_given else {"raw": "downloaded on first use"}
    typer.echo(defaults_line(ctx, {"raw": raw, "out": out}, notes))


def _report(report: BuildReport) -> None:
    if report.resumed and report.n_done_now == 0:
        typer.echo(f"{report.path}: already complete ({report.n_samples} samples)")
        return
    rate = report.n_done_now / report.seconds if report.seconds > 0 else 0.0
    skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
    typer.echo(
        f"{report.path}: wrote {report.n_done_now} of {report.n_samples} samples in {report.seconds:.1f} s "
        f"({rate:.1f}/s, {report.n_events} events){skipped}"
    )


@app.command(
    "cifar10dvs",
    help="CIFAR10-DVS: <raw>/<class>/*.aedat, .aedat4 or <raw>/<class>.zip (read in place) -> frames. "
    "Without --raw: the official per-class zips, downloaded into <data dir>/raw/cifar10dvs on first use.",
)
def cifar10dvs_command(
    ctx: typer.Context,
    raw: Annotated[
        Path | None,
        typer.Option(
            "--raw", help="One folder or <class>.zip per class [<data dir>/raw/cifar10dvs, downloaded]."
        ),
    ] = None,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per sample (T).")] = 10,
    split_by: Annotated[SplitBy, typer.Option("--split-by", help="Equal event counts or equal time.")] = (
        SplitBy.number
    ),
    size: Annotated[int, typer.Option("--size", min=1, help="Output side in pixels after resizing.")] = 48,
    out: Out = None,
    on_error: Annotated[OnError, typer.Option("--on-error", help="Unreadable file: stop or skip it.")] = (
        OnError.fail
    ),
    workers: Workers = 1,
    mode: Annotated[Mode, typer.Option("--mode", help="Local worker kind.")] = Mode.threads,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Address of an existing dask scheduler (tcp://host:port)."),
    ] = None,
    scale: Annotated[
        float | None,
        typer.Option("--scale", help="Fixed count scale (default: p99 of non-zero train counts)."),
    ] = None,
    data_dir: DataDir = None,
    progress: Progress = True,
    no_download: NoDownload = False,
    split: Annotated[
        str,
        typer.Option("--split", help="Scheme used for training/evaluation: random (the reference code's), "
                     "per-class (first 9/10 of each class's files by name train) or tebn (recordings "
                     "0-99 of each class test, spikingjelly's CIFAR10DVSTEBNSplit; needs numbered file "
                     "names)."),
    ] = "random",
) -> None:
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs

    store = _out_default("cifar10dvs", out, data_dir, frames=frames, split_by=split_by.value, size=size)
    _echo_defaults(ctx, _raw_default("cifar10dvs", raw, data_dir, no_download), raw is not None, store)
    raw_dir = _raw_or_download("cifar10dvs", raw, data_dir, no_download, progress)
    _report(
        preprocess_cifar10dvs(
            raw_dir,
            frames=frames,
            split_by=split_by.value,
            size=size,
            out=out,
            data_dir=data_dir,
            on_error=on_error.value,
            workers=workers,
            mode=mode.value,
            scheduler=scheduler,
            scale=scale,
            progress=progress,
            default_split=split,
        )
    )


def _cifar(
    ctx: typer.Context,
    name: str,
    raw: Path | None,
    out: Path | None,
    data_dir: Path | None,
    progress: bool,
    no_download: bool,
) -> None:
    from evrobust.pipelines.preprocess import preprocess_cifar

    store = _out_default(name, out, data_dir)
    _echo_defaults(ctx, _raw_default(name, raw, data_dir, no_download), raw is not None, store)
    raw_dir = _raw_or_download(name, raw, data_dir, no_download, progress)
    _report(preprocess_cifar(name, raw_dir, out=out, data_dir=data_dir, progress=progress))


RawCifar = Annotated[
    Path | None,
    typer.Option(
        "--raw",
        help="The python-pickle folder or the folder holding it [<data dir>/raw/<name>, downloaded].",
    ),
]


@app.command(
    "cifar10",
    help="CIFAR-10 python pickles (cifar-10-batches-py) -> image store; downloaded without --raw.",
)
def cifar10_command(
    ctx: typer.Context,
    raw: RawCifar = None,
    out: Out = None,
    data_dir: DataDir = None,
    progress: Progress = True,
    no_download: NoDownload = False,
) -> None:
    _cifar(ctx, "cifar10", raw, out, data_dir, progress, no_download)


@app.command(
    "cifar100",
    help="CIFAR-100 python pickles (cifar-100-python, fine labels) -> image store; downloaded without --raw.",
)
def cifar100_command(
    ctx: typer.Context,
    raw: RawCifar = None,
    out: Out = None,
    data_dir: DataDir = None,
    progress: Progress = True,
    no_download: NoDownload = False,
) -> None:
    _cifar(ctx, "cifar100", raw, out, data_dir, progress, no_download)


def _parse_settings(pairs: list[str]) -> dict[str, object]:
    """``--set name=value`` pairs -> emulator settings (numbers; ``sensor_size`` as ``W,H``)."""
    from evrobust.errors import UserInputError

    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UserInputError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set pos_thres=0.25")
        name = name.strip()
        try:
            if name == "sensor_size":
                out[name] = tuple(int(v) for v in value.split(","))
            elif name == "n_loops":
                out[name] = int(value)
            else:
                out[name] = float(value)
        except ValueError:
            raise UserInputError(f"--set {pair!r}: {value!r} is not a number") from None
    return out


@app.command(
    "cifar10dvs-emu",
    help="EMULATED CIFAR10-DVS: CIFAR-10 images (python pickles) -> emulated DVS128 recordings -> frames, in "
    "one step (see docs/emulated-cifar10dvs.md). The store keeps CIFAR-10's own train/test split.",
)
def cifar10dvs_emu_command(
    ctx: typer.Context,
    raw: RawCifar = None,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per sample (T).")] = 10,
    split_by: Annotated[SplitBy, typer.Option("--split-by", help="Equal event counts or equal time.")] = (
        SplitBy.number
    ),
    size: Annotated[int, typer.Option("--size", min=1, help="Output side in pixels after resizing.")] = 48,
    out: Out = None,
    raw_out: Annotated[
        Path | None,
        typer.Option(
            "--raw-out",
            help="Also write the recordings in the original release layout "
            "(<class>/cifar10_<class>_<i>.aedat, AEDAT 2.0), readable by `preprocess cifar10dvs --raw`.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Only the first N images of the train and of the test set."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Base seed; a sample's seed = base + its source row.")
    ] = 0,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Emulator setting NAME=VALUE (e.g. pos_thres=0.25); repeatable."),
    ] = None,
    workers: Workers = 1,
    mode: Annotated[Mode, typer.Option("--mode", help="Local worker kind.")] = Mode.threads,
    data_dir: DataDir = None,
    progress: Progress = True,
    no_download: NoDownload = False,
) -> None:
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs_emu

    emulator = _parse_settings(settings or [])
    store = _out_default("cifar10dvs-emu", out, data_dir, frames=frames, split_by=split_by.value, size=size)
    _echo_defaults(ctx, _raw_default("cifar10", raw, data_dir, no_download), raw is not None, store)
    raw_dir = _raw_or_download("cifar10", raw, data_dir, no_download, progress)
    _report(
        preprocess_cifar10dvs_emu(
            raw_dir,
            frames=frames,
            split_by=split_by.value,
            size=size,
            out=out,
            data_dir=data_dir,
            raw_out=raw_out,
            limit=limit,
            seed=seed,
            settings=emulator,
            workers=workers,
            mode=mode.value,
            progress=progress,
        )
    )


@app.command("digits", help="scikit-learn's digits (embedded, no download) -> image store.")
def digits_command(out: Out = None, data_dir: DataDir = None) -> None:
    from evrobust.pipelines.preprocess import preprocess_embedded

    _report(preprocess_embedded("digits", out=out, data_dir=data_dir))


@app.command("digits-dvs", help="digits through the image-to-event emulator -> event-frame store.")
def digits_dvs_command(out: Out = None, data_dir: DataDir = None, workers: Workers = 1) -> None:
    from evrobust.pipelines.preprocess import preprocess_embedded

    _report(preprocess_embedded("digits-dvs", out=out, data_dir=data_dir, workers=workers))


@app.command("verify", help="Check a store; exits with code 1 when it has problems.")
def verify_command(
    store: Annotated[Path, typer.Argument(help="The store to check.")],
    raw: Annotated[
        Path | None, typer.Option("--raw", help="Also re-hash the source files under this dir.")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Skip decoding every chunk.")] = False,
) -> None:
    from evrobust.pipelines.preprocess import verify

    problems = verify(store, raw=raw, deep=not quick)
    if problems:
        for p in problems:
            typer.echo(f"problem: {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{store}: ok")
