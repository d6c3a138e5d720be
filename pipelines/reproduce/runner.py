"""Execute a reproduction spec: train its runs, attack and analyse them, collect ``results.json``.

Output layout under ``out`` (default ``runs/reproduce``)::

    runs/<run key>-<hash>/          one training run per distinct set of training options (shared by all
                                    pipelines written to the same ``out``)
    cache/attack-<hash>.json        every attack result, keyed by its options (run, mode, source, attacks,
                                    eps, ensemble, samples): a rerun skips what is already there
    cache/analysis-<hash>.json      the same for analyses
    <name>/results.json             the spec and every number its tables and figures need
    <name>/report.md (+ PNGs)       written by :func:`evrobust.pipelines.report.pipeline.write_report`

Order and resumption: the runs execute in the spec's order, and each attack or analysis runs as soon as
the runs it needs are trained, so the first rows of a table are complete while later runs still train.
``results.json`` is rewritten after every step (``"complete": false`` until the last one). ``stop_after=N``
stops after N units of work (a training epoch, an attack, an analysis); a run interrupted that way, or
killed at any moment, continues from its last epoch checkpoint when the same command is given again with
``resume=True`` (``--resume``); without it a partly trained run is refused with one line, so a changed spec
never silently continues someone else's run. Completed runs are always reused (``evrobust train --resume``
semantics: a completed run trains nothing); attacks and analyses whose cached result has the same options
are not rerun. A cached entry is keyed by the step's options and holds the content it was computed from: the
sha256 of the run's best checkpoint (and, black box, of the source run's) and the digest of the run's test
store (:func:`evrobust.preprocess.store_verify.store_digest`). A retrained checkpoint or a rebuilt store
makes the step run again, with one logged line saying what changed; a cache file that cannot be read or is
not a valid result (:mod:`evrobust.safeio`) is recomputed the same way.

Provenance: every model-describing number of a table row (accuracies, gradient norms) must come from the
same checkpoint of its run, evaluated on the same test samples. :func:`check_row_provenance` enforces it on
every ``results.json`` written (training-time metrics such as ``val_grad_l1`` describe the last epoch's
validation batch, not the evaluated checkpoint, and are refused in a row; ``seconds`` is a cost, not a
property of a checkpoint, and is exempt).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.common.results import RESULTS_FILE, RESULTS_FORMAT, load_results
from evrobust.pipelines.reproduce.experiments import build_spec
from evrobust.pipelines.reproduce.reuse import check_sources, copy_run, find_reusable_run
from evrobust.pipelines.reproduce.specs import AnalysisSpec, AttackSpec, PipelineSpec, RunSpec
from evrobust.pipelines.train.run_dir import BEST_CHECKPOINT, read_config, read_metrics, write_json_atomic
from evrobust.safeio import read_json, roundtrip, sha256_file

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/reproduce"

__all__ = ["DEFAULT_OUT", "RESULTS_FILE", "RESULTS_FORMAT", "ContentDigests", "execute", "load_results",
           "run_reproduction", "run_tradeoff"]


def _hash(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _checkpoint_stamp(run_dir: Path) -> float | None:
    path = run_dir / BEST_CHECKPOINT
    return path.stat().st_mtime if path.is_file() else None


_CONTENT_KEYS = {
    "checkpoint_sha256": "the checkpoint",
    "source_checkpoint_sha256": "the source run's checkpoint",
    "store_sha256": "the data store",
}
"""Fingerprint keys that identify content, not options -> what the recompute line says changed."""


class ContentDigests:
    """The content identities a cached step is checked against, each computed once per reproduction.

    ``checkpoint(run)``: sha256 of the run's best checkpoint (recomputed when the file's size, mtime or inode
    changed: a run trained further in this very reproduction gets its new digest); ``store(run)``: the
    digest of the store the run's test split is read from (a store does not change during a reproduction,
    and hashing a large one takes seconds, so it is hashed once per path).
    """

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir
        self._checkpoints: dict[tuple[str, int, int, int], str] = {}
        self._stores: dict[Path, str] = {}

    def checkpoint(self, run: Path) -> str | None:
        """Hex sha256 of ``run``'s best checkpoint; None when it has none yet."""
        path = run / BEST_CHECKPOINT
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino)
        if key not in self._checkpoints:
            self._checkpoints[key] = sha256_file(path, "checkpoint")  # a link is refused, never followed
        return self._checkpoints[key]

    def store(self, run: Path) -> str:
        """The digest of the test store of ``run`` (as ``evrobust attack`` / ``analyze`` resolve it)."""
        from evrobust.pipelines.attack.inputs import run_test_store

        return self.store_at(run_test_store(read_config(run), self.data_dir))

    def store_at(self, store: Path) -> str:
        """The digest of the store at ``store`` (hashed once per resolved path)."""
        from evrobust.preprocess.store_verify import store_digest

        store = store.resolve()
        if store not in self._stores:
            self._stores[store] = store_digest(store)
        return self._stores[store]


class MixedProvenanceError(RuntimeError):
    """A table row combines numbers from different checkpoints or sample sets (a spec-authoring bug)."""


def train_run(spec: RunSpec, root: Path, *, data_dir: str | None, device: str, resume: bool = True,
              max_epochs: int | None = None, runs_from: Sequence[Path] = (),
              digests: ContentDigests | None = None) -> tuple[Path, int]:
    """Train (or resume, or skip when complete, or copy from ``runs_from``) one run under ``root/runs``.

    Args:
        max_epochs: train at most this many epochs in this call (None = to the end).
        resume: continue a partly trained run; False refuses one (UserInputError).
        runs_from: directories holding completed runs; a run of exactly these options on the same store is
            copied in instead of trained, when ``root/runs`` has no directory for it yet (:mod:`.reuse`).
        digests: the reproduction's content digests (the stores ``runs_from`` compares are hashed once).

    Returns:
        ``(run directory, epochs trained in this call)``.
    """
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import train

    out = root / "runs" / spec.dirname
    if runs_from and not os.path.lexists(out):
        source = find_reusable_run(spec, runs_from, data_dir=data_dir, digests=digests)
        if source is not None:
            log.info("reusing %s: copying the completed run %s", spec.key, source)
            copy_run(source, out)
            return out, 0
    started = (out / "config.json").is_file()
    metrics = read_metrics(out) if started else []
    epochs = int(spec.train["epochs"])
    if len(metrics) >= epochs:
        log.info("reusing completed run %s", out)
        return out, 0
    if started and not resume:
        raise UserInputError(
            f"run {out} is partly trained ({len(metrics)} of {epochs} epochs); pass --resume to continue it"
        )
    config = TrainConfig(
        **spec.train,
        data_dir=data_dir,
        device=device,
        out=str(out),
        resume=started,
        progress=False,
        stop_after=max_epochs,
    )
    log.info("training %s -> %s", spec.key, out)
    train(config)
    return out, len(read_metrics(out)) - len(metrics)


def _short(value: Any) -> str:
    return f"{value[:12]}..." if isinstance(value, str) and len(value) > 12 else str(value)


def _why_stale(stored: dict[str, Any], fresh: dict[str, Any]) -> str:
    """What differs between a cached fingerprint and the current one, in words."""
    parts = [f"{what} changed (sha256 {_short(stored.get(key))} -> {_short(fresh.get(key))})"
             for key, what in _CONTENT_KEYS.items() if stored.get(key) != fresh.get(key)]
    others = sorted(k for k in set(stored) | set(fresh)
                    if k not in _CONTENT_KEYS and stored.get(k) != fresh.get(k))
    if others:
        parts.append(f"its options differ ({', '.join(others[:5])})")
    return "; ".join(parts) or "its fingerprint differs"


def _cached(path: Path, fingerprint: dict[str, Any], what: str, kind: str) -> dict[str, Any] | None:
    """The cached result at ``path`` if it was computed with ``fingerprint``, else None (with one log line).

    Read through :mod:`evrobust.safeio` as a ``kind`` file (its size cap; never through a link), then the
    result is validated: an analysis as an ``analysis`` document, an attack as a results file's attack entry.
    A cache that cannot be used is simply recomputed.
    """
    from evrobust.safeio.schemas import validate
    from evrobust.safeio.schemas.results import validate_attack_step

    if not os.path.lexists(path):
        return None
    try:
        document = read_json(path, kind, validate=False)
        if not isinstance(document, dict) or not isinstance(document.get("fingerprint"), dict):
            raise UserInputError(f"{path} is not a cache entry (no fingerprint)")
        stored = document["fingerprint"]
        fresh = roundtrip(fingerprint)
        if stored != fresh:
            log.warning("recomputing %s: %s since its cached result %s", what, _why_stale(stored, fresh),
                        path.name)
            return None
        if kind == "analysis":
            validate(document.get("result"), "analysis", str(path))
        else:
            validate_attack_step(document.get("result"), str(path))
    except UserInputError as exc:
        log.warning("recomputing %s: its cached result cannot be used (%s)", what, " ".join(str(exc).split()))
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
    with_fresh: bool = False,
    digests: ContentDigests | None = None,
) -> Any:
    """Run (or reuse) one attack; returns the compact result (accuracies, checks, settings), and with
    ``with_fresh`` also whether it was computed now (False: from the cache).

    The cache entry is named by the attack's options and reused only when the checkpoint(s) and the test
    store still have the content it was computed from (``digests``: shared by the steps of one reproduction).
    """
    from evrobust.pipelines.attack.pipeline import run_attack

    digests = digests if digests is not None else ContentDigests(data_dir)
    run = run_dirs[spec.run]
    source = run_dirs[spec.source] if spec.source else None
    options = {
        "run": str(run.resolve()),
        "source": None if source is None else str(source.resolve()),
        "mode": spec.mode,
        "attacks": list(spec.attacks),
        "eps": spec.eps,
        "ensemble": spec.ensemble,
        "limit": limit,
    }
    if spec.budget:  # only then: the cache keys of every attack without a budget stay what they were
        options["budget"] = dict(spec.budget)
    fingerprint = options | {
        "checkpoint_sha256": digests.checkpoint(run),
        "source_checkpoint_sha256": None if source is None else digests.checkpoint(source),
        "store_sha256": digests.store(run),
    }
    cache = root / "cache" / f"attack-{_hash(options)}.json"
    result = _cached(cache, fingerprint, f"attack {spec.key}", "attack_result")
    if result is not None:
        log.info("reusing attack %s", spec.key)
        return (result, False) if with_fresh else result
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
        **spec.budget,
    )
    # Per-sample flags are large and not needed by the tables: keep accuracies, members and checks.
    result = {k: v for k, v in full.items() if k != "flags"}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache, {"fingerprint": fingerprint, "result": result})
    return (result, True) if with_fresh else result


def analyse_run(
    spec: AnalysisSpec,
    run_dirs: dict[str, Path],
    root: Path,
    *,
    limit: int | None,
    data_dir: str | None,
    device: str,
    with_fresh: bool = False,
    digests: ContentDigests | None = None,
) -> Any:
    """Run (or reuse) one analysis; returns its JSON document (per-sample lists dropped), and with
    ``with_fresh`` also whether it was computed now.

    ``evrobust analyze`` itself always computes afresh; this cache is where an analysis is reused, and only
    when the checkpoint and the test store still have the content it was computed from (see
    :func:`attack_run`).
    """
    from evrobust.pipelines.analyze import run_analysis

    digests = digests if digests is not None else ContentDigests(data_dir)
    run = run_dirs[spec.run]
    options = {"run": str(run.resolve()), "kind": spec.kind, "limit": limit, "options": spec.options}
    fingerprint = options | {"checkpoint_sha256": digests.checkpoint(run), "store_sha256": digests.store(run)}
    cache = root / "cache" / f"analysis-{_hash(options)}.json"
    result = _cached(cache, fingerprint, f"analysis {spec.key}", "analysis")
    if result is not None:
        log.info("reusing analysis %s", spec.key)
        return (result, False) if with_fresh else result
    log.info("analysing %s (%s)", spec.key, spec.kind)
    result = _drop_per_sample(
        run_analysis(run, spec.kind, limit=limit, device=device, data_dir=data_dir, **spec.options)
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cache, {"fingerprint": fingerprint, "result": result})
    return (result, True) if with_fresh else result


def _drop_per_sample(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _drop_per_sample(v) for k, v in document.items() if k != "per_sample"}
    if isinstance(document, list):
        return [_drop_per_sample(v) for v in document]
    return document


def _run_summary(run: Path, epochs: int) -> dict[str, Any]:
    """What the tables need from a run's metrics: epochs done, mean epoch seconds, final val acc.

    The gradient norms logged during training (``val_grad_*``) are kept for reference only: tables take
    norms from a sparsity analysis of the evaluated checkpoint (see the module docstring).
    """
    metrics = read_metrics(run)
    summary: dict[str, Any] = {"dir": str(run), "epochs": len(metrics), "epochs_planned": epochs,
                               "complete": len(metrics) >= epochs}
    if not metrics:
        return summary
    last = metrics[-1]
    summary["seconds"] = sum(float(m.get("seconds", 0.0)) for m in metrics) / len(metrics)
    for key in ("val_acc", "val_grad_l1", "val_grad_l2", "val_grad_zero_frac", "train_acc"):
        if key in last:
            summary[key] = last[key]
    summary["best_val_acc"] = max((m.get("val_acc") or 0.0) for m in metrics)
    return summary


COST_METRICS = frozenset({"seconds"})
"""Run metrics a table may show beside checkpoint numbers: costs, not properties of a checkpoint."""


def cell_provenance(document: dict[str, Any], cell: dict[str, str]) -> tuple[Any, ...] | None:
    """``(run dir, checkpoint, (checkpoint stamp, sha256), samples)`` a cell's number was computed from.

    None for a cost cell or a cell whose result is not there yet. A training metric other than a cost
    describes the last epoch on validation samples: its provenance says so and never matches an evaluation.
    """
    source, ref, item = cell["source"], cell["ref"], cell["item"]
    if source == "metric":
        if item in COST_METRICS:
            return None
        run = document.get("runs", {}).get(ref)
        if run is None:
            return None
        return (str(Path(run["dir"]).resolve()), "metrics: last epoch", None, "validation batch")
    entry = document.get("attacks" if source == "attack" else "analyses", {}).get(ref)
    if entry is None:
        return None
    origin = document.get("provenance", {}).get(ref, {})
    checkpoint = entry.get("checkpoint", entry.get("which"))
    # The checkpoint file's mtime and (when recorded: files written before hold none) its content.
    identity = (origin.get("stamp"), origin.get("checkpoint_sha256"))
    return (str(Path(entry["run"]).resolve()), checkpoint, identity, entry.get("samples"))


def check_row_provenance(document: dict[str, Any]) -> None:
    """Refuse a table row whose numbers about one run come from different checkpoints or sample sets.

    Within a row, every cell about the same run must share (checkpoint, stamp, samples), and all cells of
    the row must share the number of test samples (a row compares models on the same images).

    Raises:
        MixedProvenanceError: naming the table, row and the differing sources.
    """
    for table in document.get("spec", {}).get("tables", []):
        for row in table["rows"]:
            by_run: dict[str, set[tuple[Any, ...]]] = {}
            samples: set[Any] = set()
            for cell in row["cells"].values():
                origin = cell_provenance(document, cell)
                if origin is None:
                    continue
                by_run.setdefault(origin[0], set()).add(origin[1:])
                samples.add(origin[3])
            mixed = {run: origins for run, origins in by_run.items() if len(origins) > 1}
            if mixed or len(samples) > 1:
                raise MixedProvenanceError(
                    f"{table['name']} row {row['labels']}: numbers from different checkpoints or samples "
                    f"{ {Path(r).name: sorted(map(str, o)) for r, o in by_run.items()} }"
                )


def _provenance(kind: str, run: Path, digests: ContentDigests) -> dict[str, Any]:
    """Which checkpoint file (by its content, and its mtime) an attack or analysis result belongs to."""
    return {"kind": kind, "run": str(run.resolve()), "stamp": _checkpoint_stamp(run),
            "checkpoint_sha256": digests.checkpoint(run)}


class _Budget:
    """Units of work left in this call (None = unlimited): a training epoch, an attack, an analysis."""

    def __init__(self, stop_after: int | None) -> None:
        self.left = stop_after

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0

    def spend(self, units: int) -> None:
        if self.left is not None:
            self.left -= units


def execute(
    spec: PipelineSpec,
    out: str | Path = DEFAULT_OUT,
    *,
    data_dir: str | None = None,
    device: str = "auto",
    report: bool = True,
    stop_after: int | None = None,
    resume: bool = False,
    runs_from: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Run every step of ``spec`` under ``out``; write ``<out>/<name>/results.json`` (and the report).

    ``runs_from``: directories whose completed runs of identical options are copied in instead of trained
    (``--runs-from``; :mod:`.reuse`).

    Steps run in the spec's run order; an attack or analysis runs as soon as its runs are trained, and
    ``results.json`` is rewritten after each step. See the module docstring for ``stop_after``/``resume``.

    Returns:
        The path of ``results.json``.

    Raises:
        UserInputError: a partly trained run without ``resume``.
        MixedProvenanceError: a table row mixing checkpoints (a spec bug; nothing is written).
    """
    if stop_after is not None and (isinstance(stop_after, bool) or stop_after < 1):
        raise UserInputError(f"--stop-after must be an integer >= 1 (got {stop_after!r})")
    sources = check_sources(runs_from)
    root = Path(out)
    target = root / spec.name / RESULTS_FILE
    budget = _Budget(stop_after)
    run_dirs: dict[str, Path] = {}
    trained: set[str] = set()
    attacks: dict[str, Any] = {}
    analyses: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    digests = ContentDigests(data_dir)

    def write(complete: bool) -> None:
        document = {
            "format": RESULTS_FORMAT,
            "version": 1,
            "complete": complete,
            "spec": spec.to_json(),
            "runs": {key: _run_summary(path, int(spec.run(key).train["epochs"]))
                     for key, path in run_dirs.items()},
            "attacks": attacks,
            "analyses": analyses,
            "provenance": provenance,
            "pending": {
                "runs": [r.key for r in spec.runs if r.key not in trained],
                "attacks": [a.key for a in spec.attacks if a.key not in attacks],
                "analyses": [a.key for a in spec.analyses if a.key not in analyses],
            },
        }
        check_row_provenance(document)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, document)

    def ready(run: str, source: str | None = None) -> bool:
        return run in trained and (source is None or source in trained)

    for run_spec in spec.runs:
        if budget.exhausted:
            break
        path, epochs = train_run(run_spec, root, data_dir=data_dir, device=device, resume=resume,
                                 max_epochs=budget.left, runs_from=sources, digests=digests)
        budget.spend(epochs)
        run_dirs[run_spec.key] = path
        if len(read_metrics(path)) < int(run_spec.train["epochs"]):
            break  # stopped inside this run's training
        trained.add(run_spec.key)
        for a in spec.attacks:
            if a.key in attacks or not ready(a.run, a.source) or budget.exhausted:
                continue
            attacks[a.key], fresh = attack_run(a, run_dirs, root, limit=spec.attack_limit,
                                               batch_size=spec.attack_batch, data_dir=data_dir,
                                               device=device, with_fresh=True, digests=digests)
            provenance[a.key] = _provenance("attack", run_dirs[a.run], digests)
            budget.spend(int(fresh))
            write(False)
        for an in spec.analyses:
            if an.key in analyses or not ready(an.run) or budget.exhausted:
                continue
            analyses[an.key], fresh = analyse_run(an, run_dirs, root, limit=spec.attack_limit,
                                                  data_dir=data_dir, device=device, with_fresh=True,
                                                  digests=digests)
            provenance[an.key] = _provenance("analysis", run_dirs[an.run], digests)
            budget.spend(int(fresh))
            write(False)
    complete = len(trained) == len(spec.runs) and len(attacks) == len(spec.attacks) and len(analyses) == len(
        spec.analyses)
    write(complete)
    log.info("wrote %s%s", target, "" if complete else " (partial: rerun with --resume to continue)")
    if report:
        from evrobust.pipelines.report.pipeline import write_report

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
    stop_after: int | None = None,
    resume: bool = False,
    only: str | None = None,
    runs_from: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Build the spec ``name`` at ``scale`` and execute it; returns ``<out>/<name>/results.json``.

    ``only`` narrows it to the runs whose key contains that text (:func:`.select.select_runs`); the results
    then go to ``<out>/<name>-<only>/``.

    Raises:
        UserInputError: unknown name or scale, cpu scale without real-image stores, an ``only`` matching
            no run, a partly trained run without ``resume`` (before anything runs).
    """
    spec = build_spec(name, scale, data, data_dir=data_dir, only=only)
    if scale == "paper":
        log.info("paper scale: %d runs of up to %d epochs each; meant for a GPU or a cluster",
                 len(spec.runs), max(r.train["epochs"] for r in spec.runs))
    return execute(spec, out, data_dir=data_dir, device=device, report=report, stop_after=stop_after,
                   resume=resume, runs_from=runs_from)


def run_tradeoff(scale: str = "smoke", out: str | Path = DEFAULT_OUT, **kwargs: Any) -> Path:
    """Run (or reuse) the ``tradeoff`` reproduction; returns its ``results.json``."""
    return run_reproduction("tradeoff", scale=scale, out=out, **kwargs)
