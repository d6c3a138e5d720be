"""What every evaluation pipeline (attack, analyze) needs before it computes: a device, a trained run and the
first ``n`` samples of its test split, in batches; the content identity of a run's checkpoint; an optional
JSON document read or warned about (:func:`read_json_or_warn`); plus the ``8/255`` spelling of an eps."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.safeio import read_json, sha256_file

__all__ = [
    "checkpoint_digest",
    "eps_text",
    "load_evaluated_run",
    "read_json_or_warn",
    "resolve_device",
    "result_paths",
    "iter_test_batches",
    "open_test_split",
    "run_test_store",
    "test_set_identity",
]

logger = logging.getLogger(__name__)


def eps_text(eps: float) -> str:
    """``8/255`` when eps is a whole number of 255ths, else the decimal."""
    scaled = eps * 255
    return f"{round(scaled)}/255" if math.isclose(scaled, round(scaled), abs_tol=1e-6) else f"{eps:.6g}"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cpu``, ``cuda``, ``cuda:N`` checked against this machine."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserInputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserInputError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


def load_evaluated_run(
    run: Path, which: str, device: torch.device, role: str
) -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode) and config of a run directory; ``role`` names it in the error message."""
    from evrobust.pipelines.train.run_dir import load_run

    if not run.is_dir():
        raise UserInputError(f"{role} run {run} does not exist; give the --out directory of `evrobust train`")
    return load_run(run, which=which, device=device)


def checkpoint_digest(run: Path, which: str) -> str:
    """Hex sha256 of the ``which`` (best/last) checkpoint file of a run: its weights' content identity."""
    from evrobust.pipelines.train.run_dir import CHECKPOINTS

    return sha256_file(run / CHECKPOINTS[which], "checkpoint")


def read_json_or_warn(path: Path, kind: str, what: str, consequence: str) -> Any | None:
    """The JSON document ``path`` of ``kind``, validated against its schema; None when it cannot be used.

    For documents a command can do without (the partial results it would resume from, the other mode's
    result it would compare with): nothing at ``path`` is None without a word; a file that is unreadable,
    not JSON, not a valid ``kind`` document, a link or a FIFO (:func:`evrobust.safeio.read_json`) is None
    with one warning naming the file, the fault and ``consequence`` (e.g. ``"starting over"``).
    """
    if not os.path.lexists(path):
        return None
    try:
        return read_json(path, kind)
    except UserInputError as exc:
        logger.warning("ignoring %s: %s; %s", what, " ".join(str(exc).split()), consequence)
        return None


def run_test_store(config: dict[str, Any], data_dir: str | None) -> Path:
    """The test store of a run: its recorded path, else the data name resolved again."""
    from evrobust.datasets import resolve_data

    data = config.get("data", {})
    store = data.get("store")
    if store and Path(store).exists():
        return Path(store)
    name = data.get("name") or data.get("dataset")
    if not name:
        raise UserInputError("the run's config.json names no data store; was it written by `evrobust train`?")
    return resolve_data(str(name), data_dir)


def open_test_split(store: Path, limit: int | None) -> tuple[Any, int]:
    """``(dataset, n)``: the test split and how many of its first samples to evaluate."""
    from evrobust.datasets import open_split

    dataset = open_split(store, "test")
    return dataset, len(dataset) if limit is None else min(limit, len(dataset))


def iter_test_batches(
    dataset: Any, n: int, batch_size: int, first: int
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """``(batch index, x [B, ...] float32, y [B] int64)`` for batches ``first, first+1, ...`` of the first
    ``n`` test samples."""
    for start in range(first * batch_size, n, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, n))]
        x = torch.stack([torch.as_tensor(a) for a, _ in items]).float()
        y = torch.as_tensor([int(b) for _, b in items], dtype=torch.long)
        yield start // batch_size, x, y


def test_set_identity(dataset: Any, store: Path, n: int) -> dict[str, Any]:
    """What identifies the evaluated samples, so that two results can be paired only on the same ones.

    ``labels_sha256`` hashes the labels of the first ``n`` test samples in order (int64, little-endian): two
    evaluations of the same store and split agree on it, and results on another split, another subset or
    another order do not (a pairing of flags by position would then be meaningless).

    Returns:
        ``{"store", "split", "samples", "labels_sha256"}``.
    """
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = getattr(dataset, "y", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(n)]
    values = torch.as_tensor(labels[:n]).to(torch.int64).cpu().numpy().astype("<i8")
    return {
        "store": str(store),
        "split": "test",
        "samples": int(n),
        "labels_sha256": hashlib.sha256(values.tobytes()).hexdigest(),
    }


def result_paths(run: str | os.PathLike[str], mode: str) -> tuple[Path, Path, Path]:
    """``(json, markdown, partial)`` result paths of ``mode`` in run directory ``run``."""
    run = Path(run)
    return run / f"attack-{mode}.json", run / f"attack-{mode}.md", run / f"attack-{mode}.partial.json"
