"""Estimated training cost of a reproduction before it starts: epochs left x seconds per epoch, the seconds
measured by a short timed warm-up of each kind of run.

A *kind* is a run's training options without those that do not change the cost of an epoch (seed, lambda,
epochs): the WRN-16 SR runs of a lambda sweep share one warm-up. The warm-up trains ``batches`` batches of
the kind (one epoch of ``limit_train = batches x batch size`` samples, validation on one batch) in a
temporary directory, takes that epoch's seconds and scales them to the run's training split. Attacks and
analyses are not included (the estimate says so); a run already complete costs nothing, a partly trained
one costs its remaining epochs.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.pipelines.reproduce.specs import PipelineSpec
from evrobust.pipelines.train.run_dir import read_metrics

log = logging.getLogger(__name__)

COST_FREE_OPTIONS = ("seed", "lam", "epochs")
"""Training options that do not change what one epoch costs."""


@dataclass
class CostEstimate:
    """Per run: epochs left and the seconds per epoch the warm-up measured for its kind.

    Attributes:
        runs: run key -> ``{"epochs_left", "seconds_per_epoch", "kind"}``.
        warmup_seconds: wall time the warm-ups took.
    """

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    warmup_seconds: float = 0.0

    @property
    def total_seconds(self) -> float:
        return sum(r["epochs_left"] * r["seconds_per_epoch"] for r in self.runs.values())

    @property
    def epochs_left(self) -> int:
        return sum(r["epochs_left"] for r in self.runs.values())

    def lines(self) -> list[str]:
        """Human-readable summary: one line per run with epochs left, then the total."""
        out = [f"estimated training cost (warm-up took {self.warmup_seconds:.0f} s; attacks and analyses "
               "not included):"]
        for key, r in self.runs.items():
            if r["epochs_left"]:
                out.append(f"  {key}: {r['epochs_left']} epochs x {r['seconds_per_epoch']:.1f} s = "
                           f"{_hours(r['epochs_left'] * r['seconds_per_epoch'])}")
        out.append(f"  total: {self.epochs_left} epochs, about {_hours(self.total_seconds)}")
        return out


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def kind_of(train: dict[str, Any]) -> str:
    """The cost kind of a run's training options (see the module docstring)."""
    return json.dumps({k: v for k, v in train.items() if k not in COST_FREE_OPTIONS}, sort_keys=True,
                      default=str)


def _epochs_done(root: Path, dirname: str) -> int:
    run = root / "runs" / dirname
    return len(read_metrics(run)) if (run / "config.json").is_file() else 0


def _warmup(train: dict[str, Any], batches: int, data_dir: str | None, device: str) -> float:
    """Seconds per epoch of a run with these options, from ``batches`` timed training batches."""
    from evrobust.datasets import resolve_data, store_info
    from evrobust.pipelines.train.config import DEFAULT_BATCH, PAPER_BATCH, TrainConfig
    from evrobust.pipelines.train.pipeline import train as run_training

    info = store_info(resolve_data(train["data"], data_dir))
    batch = train.get("batch_size") or PAPER_BATCH.get(info.name, DEFAULT_BATCH)
    n_train = info.split_sizes["train"]
    if train.get("limit_train"):
        n_train = min(n_train, int(train["limit_train"]))
    probe = min(n_train, batches * batch)
    options = {k: v for k, v in train.items() if k not in ("limit_train", "limit_val", "epochs")}
    with tempfile.TemporaryDirectory(prefix="evrobust-warmup-") as tmp:
        run = Path(tmp) / "run"
        run_training(TrainConfig(**options, epochs=1, limit_train=probe, limit_val=min(batch, 64),
                                 data_dir=data_dir, device=device, out=str(run), progress=False))
        seconds = float(read_metrics(run)[-1]["seconds"])
    return seconds * n_train / probe


def estimate_cost(spec: PipelineSpec, out: str | Path, *, data_dir: str | None = None, device: str = "auto",
                  batches: int = 3) -> CostEstimate:
    """Time ``batches`` training batches of every kind of run still to train; scale to the epochs left.

    Args:
        spec: the reproduction.
        out: its output root (runs already trained there count only their remaining epochs).
        batches: timed batches per kind (the first includes one-off set-up, which errs on the high side).
    """
    import time

    root = Path(out)
    estimate = CostEstimate()
    per_kind: dict[str, float] = {}
    start = time.perf_counter()
    for run in spec.runs:
        left = max(0, int(run.train["epochs"]) - _epochs_done(root, run.dirname))
        kind = kind_of(run.train)
        if left and kind not in per_kind:
            log.info("warm-up of %s (%d batches)", run.key, batches)
            per_kind[kind] = _warmup(run.train, batches, data_dir, device)
        estimate.runs[run.key] = {"epochs_left": left, "seconds_per_epoch": per_kind.get(kind, 0.0),
                                  "kind": kind}
    estimate.warmup_seconds = time.perf_counter() - start
    if not math.isfinite(estimate.total_seconds):  # pragma: no cover - a clock that went backwards
        raise RuntimeError("non-finite cost estimate")
    return estimate
