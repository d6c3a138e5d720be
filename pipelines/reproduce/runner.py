"""Execute a reproduction spec: train its runs, attack and analyse them, collect ``results.json``.

Output layout under ``out`` (default ``runs/reproduce``)::

    runs/<run key>-<hash>/          one training run per distinct set of training options (shared by all
                                    pipelines written to the same ``out``)
    cache/attack-<hash>.json        every attack result, keyed by its options (run, mode, source, attacks,
                                    eps, ensemble, samples): a rerun skips what is already there
    cache/analysis-<hash>.json      the same for analyses
    <name>/results.json             the spec and every number its tables and figures need
    <name>/report.md (+ PNGs)       written by :func:`evrobust.pipelines.report.write_report`

Reuse: a run whose ``config.json`` matches is resumed (``evrobust train --resume`` semantics: a completed run
trains nothing); attacks and analyses whose cached result has the same options are not rerun. A cached
result made from an older checkpoint of the same run directory is invalidated by the checkpoint's mtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.reproduce.specs import AnalysisSpec, AttackSpec, PipelineSpec, RunSpec, build_spec
from evrobust.pipelines.runs import BEST_CHECKPOINT, read_metrics, write_json_atomic

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
RESULTS_FORMAT = "evrobust-reproduction"
DEFAULT_OUT = "runs/reproduce"


def _hash(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _checkpoint_stamp(run_dir: Path) -> float | None:
    path = run_dir / BEST_CHECKPOINT
    return path.stat().st_mtime if path.is_file() else None


def train_run(spec: RunSpec, root: Path, *, data_dir: str | None, device: str) -> Path:
    """Train (or resume, or skip when complete) one run under ``root/runs``; returns its directory."""
    from evrobust.pipelines.train import train
    from evrobust.pipelines.train_config import TrainConfig

    out = root / "runs" / spec.dirname
    config = TrainConfig(
        **spec.train,
        data_dir=data_dir,
        device=device,
        out=str(out),
        resume=(out / "config.json").is_file(),
        progress=False,
    )
    metrics = read_metrics(out) if (out / "config.json").is_file() else []
    if len(metrics) >= config.epochs:
        log.info("reusing completed run %s", out)
        return out
    log.info("training %s -> %s", spec.key, out)
    return train(config)


def _cached(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if document.get("fingerprint") != json.loads(json.dumps(fingerprint, default=str)):
        return None
    return document["result"]


def attack_run(
    spec: AttackSpec,
    run_dirs: dict[str, Path],
    root: Path,
    *,
    limit: int | None,
    batch_size: int,
    data_dir: str | None,
    device: str,
) -> dict[str, Any]:
    """Run (or reuse) one attack; returns the compact result (accuracies, checks, settings)."""
    from evrobust.pipelines.attack import run_attack

    run = run_dirs[spec.run]
    source = run_dirs[spec.source] if spec.source else None
    fingerprint = {
        "run": str(run.resolve()),
        "stamp": _checkpoint_stamp(run),
        "source": None if source is None else [str(source.resolve()), _checkpoint_stamp(source)],
        "mode": spec.mode,
        "attacks": list(spec.attacks),
        "eps": spec.eps,
        "ensemble": spec.ensemble,
        "limit": limit,
    }
    cache = root / "cache" / f"attack-{_hash(fingerprint)}.json"
    result = _cached(cache, fingerprint)
    if result is not None:
        log.info("reusing attack %s", spec.key)
        return result
    log.info("attacking %s", spec.key)
    full = run_attack(
        run,
        mode=spec.mode,
        source=source,
        attacks=",".join(spec.attacks),
        eps=spec.eps,
        ensemble=spec.ensemble,
        limit=limit,
        batch_size=batch_size,
        device=device,
        data_dir=data_dir,
    )
    # Per-sample flags are large and not needed by the tables: keep accuracies, members and checks.
    result = {k: v for k, v in full.items() if k != "flags"}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache, {"fingerprint": fingerprint, "result": result})
    return result


def analyse_run(
    spec: AnalysisSpec,
    run_dirs: dict[str, Path],
    root: Path,
    *,
    limit: int | None,
    data_dir: str | None,
    device: str,
) -> dict[str, Any]:
    """Run (or reuse) one analysis; returns its JSON document (per-sample lists dropped)."""
    from evrobust.pipelines.analyze import run_analysis

    run = run_dirs[spec.run]
    fingerprint = {"run": str(run.resolve()), "stamp": _checkpoint_stamp(run), "kind": spec.kind,
                   "limit": limit, "options": spec.options}
    cache = root / "cache" / f"analysis-{_hash(fingerprint)}.json"
    result = _cached(cache, fingerprint)
    if result is not None:
        log.info("reusing analysis %s", spec.key)
        return result
    log.info("analysing %s (%s)", spec.key, spec.kind)
    result = _drop_per_sample(
        run_analysis(run, spec.kind, limit=limit, device=device, data_dir=data_dir, **spec.options)
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache, {"fingerprint": fingerprint, "result": result})
    return result


def _drop_per_sample(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _drop_per_sample(v) for k, v in document.items() if k != "per_sample"}
    if isinstance(document, list):
        return [_drop_per_sample(v) for v in document]
    return document


def _run_summary(run: Path) -> dict[str, Any]:
    """What the tables need from a run's metrics: final val acc, mean epoch seconds, gradient norms."""
    metrics = read_metrics(run)
    if not metrics:
        return {"dir": str(run), "epochs": 0}
    last = metrics[-1]
    summary: dict[str, Any] = {"dir": str(run), "epochs": len(metrics)}
    summary["seconds"] = sum(float(m.get("seconds", 0.0)) for m in metrics) / len(metrics)
    for key in ("val_acc", "val_grad_l1", "val_grad_l2", "val_grad_zero_frac", "train_acc"):
        if key in last:
            summary[key] = last[key]
    summary["best_val_acc"] = max((m.get("val_acc") or 0.0) for m in metrics)
    return summary


def execute(
    spec: PipelineSpec,
    out: str | Path = DEFAULT_OUT,
    *,
    data_dir: str | None = None,
    device: str = "auto",
    report: bool = True,
) -> Path:
    """Run every step of ``spec`` under ``out``; write ``<out>/<name>/results.json`` (and the report).

    Returns:
        The path of ``results.json``.
    """
    root = Path(out)
    run_dirs = {r.key: train_run(r, root, data_dir=data_dir, device=device) for r in spec.runs}
    attacks = {
        a.key: attack_run(a, run_dirs, root, limit=spec.attack_limit, batch_size=spec.attack_batch,
                          data_dir=data_dir, device=device)
        for a in spec.attacks
    }
    analyses = {
        a.key: analyse_run(a, run_dirs, root, limit=spec.attack_limit, data_dir=data_dir, device=device)
        for a in spec.analyses
    }
    document = {
        "format": RESULTS_FORMAT,
        "version": 1,
        "spec": spec.to_json(),
        "runs": {key: _run_summary(path) for key, path in run_dirs.items()},
        "attacks": attacks,
        "analyses": analyses,
    }
    target = root / spec.name / RESULTS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target, document)
    log.info("wrote %s", target)
    if report:
        from evrobust.pipelines.report import write_report

        write_report([target.parent])
    return target


def run_reproduction(
    name: str,
    *,
    scale: str = "smoke",
    data: str | None = None,
    out: str | Path = DEFAULT_OUT,
    data_dir: str | None = None,
    device: str = "auto",
    report: bool = True,
) -> Path:
    """Build the spec ``name`` at ``scale`` and execute it; returns ``<out>/<name>/results.json``.

    Raises:
        UserInputError: unknown name or scale (before anything runs).
    """
    spec = build_spec(name, scale, data)
    if scale == "paper":
        log.info("paper scale: %d runs of up to %d epochs each; meant for a GPU or a cluster",
                 len(spec.runs), max(r.train["epochs"] for r in spec.runs))
    return execute(spec, out, data_dir=data_dir, device=device, report=report)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserInputError(f"{path} does not exist; run `evrobust reproduce NAME --out ...` first")
    document = json.loads(path.read_text())
    if document.get("format") != RESULTS_FORMAT:
        raise UserInputError(f"{path} is not a reproduction result (format {document.get('format')!r})")
    return document
