"""Checkpoint helpers of ``evrobust train``: write one safely, check one before resuming from it.

:class:`~evrobust.pipelines.train.pipeline.Trainer` builds its checkpoints (model, optimizer, scheduler and
RNG states) and restores them; the file format itself (safetensors + JSON metadata, atomic, no pickle) is
:mod:`evrobust.checkpoint`. This module holds what sits between the two: :func:`remove_stale_temporaries`
(leftovers of killed writes), :func:`non_finite_tensors` (no NaN weights are saved), :func:`save_or_explain`
(a full disk is one error line) and :func:`check_checkpoint_meta` / :func:`check_optimizer_state` (a
damaged or foreign checkpoint is one error line, never a traceback halfway through a resume).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.checkpoint import save_checkpoint
from evrobust.errors import UserInputError
from evrobust.safeio import remove_file

log = logging.getLogger(__name__)


# The name evrobust.safeio.atomic gives a temporary file: ``.<target>.<pid>.<8 hex digits>.tmp``.
TEMPORARY_NAME = re.compile(r"^\..+\.[0-9]+\.[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete temporary files of killed atomic writes in ``run_dir`` (``.<name>.<pid>.<hex>.tmp``).

    Called while holding the run's writer lock, so no live writer owns them. Only regular files whose name is
    exactly the atomic writer's pattern are removed (a user's ``.notes.tmp`` stays); a link or anything else
    standing under such a name, or one that cannot be deleted, is left alone with a warning (a leftover never
    stops a training). Returns what was removed.
    """
    removed = []
    if run_dir.is_dir():
        for tmp in run_dir.glob(".*.tmp"):
            if not TEMPORARY_NAME.match(tmp.name):
                continue
            try:
                # remove_file lstat's the name and refuses a link or non-regular file: only the atomic
                # writer's own leftovers are deleted, never a link (or its target) planted under that name.
                if remove_file(tmp):
                    removed.append(tmp)
            except UserInputError as exc:  # a link or FIFO under that name, or no permission to delete it
                log.warning("left %s in place: %s", tmp, exc)
    if removed:
        log.info("removed %d temporary files of an interrupted write in %s", len(removed), run_dir)
    return removed


def non_finite_tensors(tensors: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (empty when all are finite)."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_or_explain(path: Path, tensors: dict[str, Tensor], metadata: dict[str, Any]) -> None:
    """:func:`save_checkpoint`, with a full disk or a permission error as one UserInputError line.

    The write is atomic, so the previous checkpoint of that name is intact and ``--resume`` continues from it.
    """
    try:
        save_checkpoint(path, tensors, metadata)
    except OSError as exc:
        raise UserInputError(
            f"cannot write checkpoint {path} ({exc.strerror or exc}); the previous checkpoint is intact; "
            "free some space or fix the permissions, then rerun with --resume"
        ) from None


def check_checkpoint_meta(path: Path, meta: dict[str, Any], epochs: int) -> None:
    """Type- and range-check what :meth:`~evrobust.pipelines.train.pipeline.Trainer._restore_state` reads from
    the metadata, before any use; ``epochs`` is the run's ``--epochs``."""

    def bad(what: str) -> UserInputError:
        return UserInputError(
            f"checkpoint {path}: {what}; it is damaged or belongs to another run (restore a good copy, "
            "or move it away to start the run afresh)"
        )

    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= epochs:
        raise bad(f"epoch {repr(epoch)[:40]} is not an integer in [0, {epochs}] (--epochs)")
    for key in ("global_step", "best_epoch", "world_size"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"{key} {repr(v)[:40]} is not a non-negative integer")
    acc = meta.get("best_val_acc")
    if isinstance(acc, bool) or not isinstance(acc, int | float) or not math.isfinite(acc):
        raise bad(f"best_val_acc {repr(acc)[:40]} is not a number")
    scheduler = meta.get("scheduler")
    if not isinstance(scheduler, dict):
        raise bad("the scheduler state is missing")
    t_max = scheduler.get("T_max")
    if isinstance(t_max, bool) or not isinstance(t_max, int) or t_max != epochs:
        raise bad(f"scheduler T_max {repr(t_max)[:40]} is not --epochs {epochs}")
    lrs = scheduler.get("base_lrs")
    if not isinstance(lrs, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in lrs
    ):
        raise bad("the scheduler's base learning rates are not positive numbers")


def check_optimizer_state(
    path: Path, optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter]
) -> None:
    """UserInputError when a loaded optimizer state does not fit ``parameters``, or its lr is not >= 0."""
    for param in parameters:
        for key, value in optimizer.state.get(param, {}).items():
            if isinstance(value, Tensor) and value.dim() and value.shape != param.shape:
                raise UserInputError(
                    f"checkpoint {path}: optimizer state {key} has shape {tuple(value.shape)} for a "
                    f"parameter of shape {tuple(param.shape)}; it is damaged or belongs to another run"
                )
    for group in optimizer.param_groups:
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr < 0:
            raise UserInputError(
                f"checkpoint {path}: the optimizer's learning rate {repr(lr)[:40]} is not a number "
                ">= 0; it is damaged (restore a good copy, or move it away to start the run afresh)"
            )


__all__ = [
    "check_checkpoint_meta",
    "check_optimizer_state",
    "non_finite_tensors",
    "remove_stale_temporaries",
    "save_or_explain",
]
