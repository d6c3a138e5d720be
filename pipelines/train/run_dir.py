"""Run directories: layout, config guard, metrics log, training-state checkpoints, and ``load_run``.

A run directory holds::

    config.json                   resolved options, defense, model config, data, versions, git commit
    metrics.jsonl                 one JSON object per finished epoch
    checkpoint-last.safetensors   model + optimizer + scheduler + RNG states + epoch (after every epoch)
    checkpoint-best.safetensors   the same, for the epoch with the best validation accuracy so far

``load_run(run_dir)`` rebuilds the model from ``config.json`` and loads the best (or last) weights: the entry
point of the attack and analysis pipelines. ``config["data"]`` names the dataset and its store path, so they
can reopen the test split.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import math
import os
import platform
import stat
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evrobust.checkpoint import load_checkpoint
from evrobust.errors import UserInputError
from evrobust.models import create_model
from evrobust.neurons import enable_input_gains
from evrobust.pipelines.train.config import check_model_config_limits
from evrobust.safeio import UnsafeFileError, open_append, parse_json, read_bytes
from evrobust.safeio.atomic import write_text_atomic
from evrobust.safeio.files import describe_mode
from evrobust.safeio.schemas import validate

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "checkpoint-last.safetensors"
BEST_CHECKPOINT = "checkpoint-best.safetensors"
CHECKPOINTS = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}
RUN_FORMAT = "evrobust-run"
RUN_FORMAT_VERSION = 1
MODEL_PREFIX = "model."

# Data properties a run depends on; the store path itself may move between an interruption and a resume.
DATA_IDENTITY_KEYS = ("dataset", "kind", "num_classes", "in_channels", "input_size", "frames", "split_sizes")


def data_section(info: Any, name: str, store: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json``'s ``data``: the data name as given, the store (absolute) and the shape of its samples
    (``info``: the store's :class:`~evrobust.datasets.DataInfo`)."""
    return {
        "name": name,
        "dataset": info.name,
        "store": str(Path(store).resolve()),
        "kind": info.kind,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "input_size": info.input_size,
        "frames": info.frames,
        "split_sizes": info.split_sizes,
        "classes": list(info.classes),
    }


def run_identity(document: dict[str, Any]) -> dict[str, Any]:
    """What must match for a run directory to be reused: options (without runtime ones), model, data."""
    data = document.get("data", {})
    return {
        "train": document.get("identity", {}),
        "model": document.get("model", {}),
        "data": {k: data.get(k) for k in DATA_IDENTITY_KEYS},
    }


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Human-readable ``key: old -> new`` lines between two JSON documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def prepare_run_dir(run_dir: Path, document: dict[str, Any], resume: bool) -> bool:
    """Check that ``run_dir`` may hold the run described by ``document``; nothing is written here.

    Returns:
        True when training should continue from ``checkpoint-last`` (``--resume`` and one exists).

    Raises:
        UserInputError: the directory holds a run with another configuration (never overwritten), or holds
            this run's checkpoints but ``--resume`` was not given, or ``run_dir`` is a file.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserInputError(f"--out {run_dir} is a file; give a directory for the run")
    config_path = run_dir / CONFIG_FILE
    has_last = (run_dir / LAST_CHECKPOINT).is_file()
    if config_path.is_file():
        old = read_config(run_dir)
        diff = _differences(run_identity(old), run_identity(document))
        if diff:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise UserInputError(
                f"run directory {run_dir} holds a run with a different configuration ({shown}); "
                "choose another --out, or repeat that run's options"
            )
        if has_last and not resume:
            raise UserInputError(
                f"run directory {run_dir} already holds this run's checkpoints; pass --resume to continue it "
                "or choose another --out"
            )
    elif has_last or (run_dir / METRICS_FILE).exists():
        raise UserInputError(
            f"run directory {run_dir} holds checkpoints but no {CONFIG_FILE}; choose another --out"
        )
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise UserInputError(
            f"--out {run_dir} is a non-empty directory that is not a run; choose another --out"
        )
    return resume and has_last


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to ``path`` atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a run directory, checked before any caller uses it.

    Checks, in order (each failure is one UserInputError line naming the file): the file exists (else "not a
    run directory"); it is a regular file, not a link or FIFO, within the ``run_config`` size cap; it is UTF-8
    JSON, nested at most 64 deep; ``format`` is ``evrobust-run``; ``model`` and ``data`` are objects; the
    model's ``T`` and ``width`` lie within the limits of ``evrobust train``; and the whole document matches
    :class:`evrobust.safeio.schemas.run.RunConfig` (types and ranges of every field a reader uses).
    """
    path = Path(run_dir) / CONFIG_FILE
    if not os.path.lexists(path):
        raise UserInputError(
            f"{run_dir} is not a run directory (no {CONFIG_FILE}); give the --out of `evrobust train`"
        )
    # read_json's three steps, one by one, so that each failure keeps the wording scripts know. A link, FIFO,
    # directory or oversized file is refused by read_bytes in its own words.
    data = read_bytes(path, "run_config")
    try:
        document = parse_json(data, str(path))
    except UserInputError as exc:
        raise UserInputError(f"{path} {_not_json(exc, str(path))}; the run directory is damaged") from None
    if not isinstance(document, dict) or document.get("format") != RUN_FORMAT:
        raise UserInputError(f"{path} is not an evrobust run configuration")
    for key in ("model", "data"):
        if not isinstance(document.get(key, {}), dict):
            raise UserInputError(f"{path}: entry {key!r} is not a JSON object; the run directory is damaged")
    # The model's size fields first, in the words `evrobust train` uses for the same limits (T <= 1024,
    # width <= 16): the schema's bounds below are looser sanity bounds.
    check_model_config_limits(document.get("model", {}), str(path))
    validate(document, "run_config", str(path))
    return document


def _why(exc: UserInputError, source: str) -> str:
    """What a safeio error says about ``source``, without the source and the advice after the first ``;``."""
    return str(exc).removeprefix(source).strip(" :").split(";")[0]


def _not_json(exc: UserInputError, source: str) -> str:
    """``is not valid JSON (<why>)`` from a :func:`parse_json` error about ``source``."""
    why = _why(exc, source)
    if why.startswith("is not valid JSON"):
        return why
    return f"is not valid JSON ({why.removeprefix('is ')})"


def metrics_path(run_dir: str | os.PathLike[str]) -> Path:
    """``<run>/metrics.jsonl``; UserInputError if something other than a regular file stands at that path.

    ``lstat``, not ``stat``: a symbolic link there is refused by name, never followed (a link to a file
    elsewhere would have its target read, truncated or appended to).
    """
    path = Path(run_dir) / METRICS_FILE
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise UserInputError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(
            f"{path} is not a regular file ({describe_mode(mode)}); evrobust keeps metrics in a regular file "
            "only, never through a link: the run directory is damaged"
        )
    return path


def _finite_or_none(value: Any) -> Any:
    """``value``, or None for a NaN or infinity (strict JSON has neither, and the reader refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record as a JSON line (flushed and fsynced), never through a link or into a FIFO.

    A non-finite number (a gradient norm that overflowed) is written as null with a warning, so that every
    line written is one :func:`read_metrics` reads back: a skipped line would look like a lost epoch.
    """
    clean = {key: _finite_or_none(value) for key, value in record.items()}
    changed = sorted(key for key in record if clean[key] is None and record[key] is not None)
    if changed:
        log.warning("epoch %s: non-finite %s recorded as null", record.get("epoch"), ", ".join(changed))
    line = (json.dumps(clean, allow_nan=False) + "\n").encode("utf-8")
    with open_append(metrics_path(run_dir), "metrics") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All epoch records of a run (empty list if none yet).

    The file must be a regular file within the ``metrics`` size cap (else UserInputError). Each line is parsed
    on its own and checked against :class:`evrobust.safeio.schemas.run.MetricsRecord`; a line that is not
    UTF-8, not JSON, too deep, or not a valid epoch record is skipped with a warning, the others are kept.
    """
    path = metrics_path(run_dir)
    if not os.path.lexists(path):
        return []
    # errors="replace": one damaged byte spoils its own line (skipped below), never the whole log.
    text = read_bytes(path, "metrics").decode("utf-8", errors="replace")
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        source = f"line {number} of {path}"
        try:
            record = parse_json(line, source)
        except UserInputError:
            # A torn last line (a kill between write and fsync on a file system without ordered appends) is
            # skipped: the epoch it described is redone from the checkpoint on --resume.
            log.warning("skipping unreadable line %d of %s", number, path)
            continue
        try:
            validate(record, "metrics", source)
        except UserInputError as exc:
            log.warning("skipping line %d of %s: not an epoch record (%s)", number, path, _why(exc, source))
            continue
        records.append(record)
    return records


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Drop records of epochs after ``epochs_done`` (written before an interruption hit the checkpoint)."""
    records = [r for r in read_metrics(run_dir) if r["epoch"] <= epochs_done]
    path = metrics_path(run_dir)
    if path.is_file():
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def git_commit() -> str | None:
    """The commit of the evrobust source tree, with ``+dirty`` for uncommitted changes; None outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def versions() -> dict[str, str | None]:
    """Versions of Python and of the packages that shape a run's numbers."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("evrobust", "torch", "numpy", "zarr", "safetensors", "spikingjelly", "norse"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def model_state_from(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` from a checkpoint's flat tensors (keys prefixed ``model.``)."""
    return {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}


MAX_PARAMETERS = 1 << 31  # 8 GB of float32 weights: far above VGG-11 (~130 M) and WRN-16-4 (~2.7 M)


def _check_model_size(model_config: dict[str, Any]) -> None:
    """Refuse a config whose model would not fit in memory, before allocating it.

    The model is first built on PyTorch's ``meta`` device (shapes only, no memory), so a damaged or hostile
    ``config.json`` asking for ``width=1000`` fails here as one line instead of exhausting memory.
    """
    # mean/std are validated with value checks that meta tensors cannot answer; they add no parameters.
    shapes_only = {**model_config, "mean": None, "std": None}
    try:
        with torch.device("meta"):
            probe = create_model(**shapes_only)
    except (NotImplementedError, RuntimeError):
        return  # a builder that cannot run on meta: the real build below reports its own errors
    count = sum(p.numel() for p in probe.parameters()) + sum(b.numel() for b in probe.buffers())
    if count > MAX_PARAMETERS:
        raise UserInputError(f"the model has {count} parameters, more than the {MAX_PARAMETERS} allowed")


def load_run(
    run_dir: str | os.PathLike[str],
    which: str = "best",
    device: str | torch.device = "cpu",
    neuron_backend: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its run directory.

    Args:
        run_dir: the ``--out`` of ``evrobust train``.
        which: ``best`` (highest validation accuracy) or ``last``.
        device: where to put the model.
        neuron_backend: run the IF neurons on another backend than the one trained with (weights are
            backend-independent).

    Returns:
        ``(model in eval mode, config dict)``; ``config["data"]`` has ``name``, ``dataset`` and ``store``.

    Raises:
        UserInputError: not a run directory, unknown ``which``, or the checkpoint is missing.
    """
    if which not in CHECKPOINTS:
        raise UserInputError(f"unknown checkpoint {which!r}; choose one of {', '.join(CHECKPOINTS)}")
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path = run_dir / CHECKPOINTS[which]
    if not path.is_file():
        raise UserInputError(f"run {run_dir} has no {CHECKPOINTS[which]} yet (has its first epoch finished?)")
    model_config = dict(config.get("model", {}))
    if neuron_backend is not None:
        model_config["neuron_backend"] = neuron_backend
    check_model_config_limits(model_config, str(run_dir / CONFIG_FILE))
    try:
        _check_model_size(model_config)
        model = create_model(**model_config)
        train_options = config.get("train") or {}
        if train_options.get("input_gain") is True:  # DLIF's per-step gain: its weights are in the checkpoint
            enable_input_gains(model, int(model_config.get("T", 8)))
    except UserInputError as exc:
        raise UserInputError(
            f"{run_dir / CONFIG_FILE} describes a model that cannot be built: {exc}"
        ) from None
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError, MemoryError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{run_dir / CONFIG_FILE} describes a model that cannot be built "
            f"({type(exc).__name__}: {message}); the run directory is damaged"
        ) from None
    tensors, _ = load_checkpoint(path)
    try:
        model.load_state_dict(model_state_from(tensors))
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
        first = str(exc).splitlines()[0][:200]
        raise UserInputError(
            f"{path} does not match the model in {CONFIG_FILE} ({first}); the run directory is damaged"
        ) from None
    return model.to(device).eval(), config
