"""``evrobust attack``: white-box or black-box evaluation of a trained run under an attack suite.

For each test batch and each attack, the (surrogate-gradient ensemble) attack is run and per-sample robust
flags are recorded (:mod:`evrobust.analysis.evaluate`); accuracies come from the flags at the end. Masking
checks (:mod:`evrobust.analysis.masking`, DESIGN §6) run beside the suite on extra attacks: uniform noise at
eps, PGD10 at eps/2 and at a large eps (64/255, step eps/4). Outputs, in the run directory::

    attack-<mode>.json   per attack: robust accuracy, per-member and cumulative accuracy, samples, eps,
                         seconds, settings, the checks about it; all checks; per-sample flags; with the
                         ``reliable`` cascade also ``overestimate`` (paper vs reliable) and ``cascade``
                         (per sample: which stage and member broke it)
    attack-<mode>.md     markdown table in the layout of the paper's Table 1, failed checks beside the numbers

The ``reliable`` cascade (:func:`evrobust.attacks.cascade.reliable_cascade`) runs after the other attacks of
the batch and attacks only the samples that survive every one of them, so its accuracy is the per-sample
worst case over the paper protocol and the cascade together ("reliable"); ``overestimate`` records
``paper`` (the lowest accuracy among the paper-protocol attacks that ran), ``reliable`` and their difference.
Both entries and their markdown section come from :mod:`evrobust.pipelines.attack.reliable`.

Resumable per batch: ``attack-<mode>.partial.json`` is written atomically after every batch; a rerun with the
same options continues from it and ends with the same flags and accuracies as an uninterrupted run (only the
``seconds`` differ). Randomness is seeded per batch from ``--seed`` and the batch index.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evrobust.analysis.evaluate import AttackFlags, evaluate_batch
from evrobust.analysis.masking import (
    CheckResult,
    ZeroGradientStats,
    zero_gradient_stats,
)
from evrobust.atomic import write_text_atomic
from evrobust.attacks import (
    ATTACKS,
    ENSEMBLES,
    PGD,
    check_budget,
    check_compatible,
    create_attack,
    ensemble_specs,
    member_name,
)
from evrobust.attacks.base import Attack
from evrobust.attacks.cascade import Cascade
from evrobust.attacks.registry import parse_attack_names, suite_attacks
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.certificate import DEFAULT_MAX_DOUBLINGS, check_max_doublings, run_certificate
from evrobust.pipelines.attack.checks import LARGE_EPS, masking_checks, read_other_mode
from evrobust.pipelines.attack.indicators import compute_indicators, first_samples, plateau_recorder
from evrobust.pipelines.attack.inputs import (
    eps_text,
    iter_test_batches,
    load_evaluated_run,
    open_test_split,
    resolve_device,
    result_paths,
    run_test_store,
    test_set_identity,
)
from evrobust.pipelines.attack.reliable import reliable_summary, render_reliable
from evrobust.pipelines.common.options import parse_eps
from evrobust.preprocess.locks import acquire as acquire_lock
from evrobust.stats import ci95, format_interval

__all__ = ["LARGE_EPS", "MODES", "result_paths", "run_attack"]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("whitebox", "blackbox")
RESULT_FORMAT = "evrobust-attack"
RESULT_VERSION = 1

_DATA_SHAPE_KEYS = ("kind", "num_classes", "in_channels", "input_size", "frames")


@dataclass
class _Job:
    """One attack to run over the test set: ``key`` is unique (``pgd10`` or ``pgd10@64/255``)."""

    key: str
    name: str
    eps: float
    in_table: bool
    attack: Attack | Cascade | None


def _jobs(names: tuple[str, ...], eps: float, seed: int, mode: str, checks: bool,
          budget: dict[str, int | None] | None = None, specs: tuple[Any, ...] = ()) -> list[_Job]:
    """The table's attacks (with the ``--steps``/``--queries`` budget) and the masking checks' extras.

    ``specs`` is the ensemble of the table's attacks: a cascade drops the members that would rerun one of
    those attacks under one of those specs (:meth:`Cascade.without`).
    """
    jobs = [_Job(n, n, eps, True, create_attack(n, eps, seed, **(budget or {}))) for n in names]
    # A cascade runs after every other attack of the table: it attacks only their survivors.
    jobs.sort(key=lambda j: isinstance(j.attack, Cascade))
    for k, job in enumerate(jobs):
        if isinstance(job.attack, Cascade):
            cascade = job.attack
            for other in jobs[:k]:
                if isinstance(other.attack, Attack):
                    cascade = cascade.without(other.attack, specs)
            jobs[k] = replace(job, attack=cascade)
    if not checks:
        return jobs
    have = {j.key for j in jobs}
    if "noise" not in have:
        jobs.append(_Job("noise", "noise", eps, False, create_attack("noise", eps, seed)))
    if mode == "whitebox" and eps > 0:
        if "pgd10" not in have:
            jobs.append(_Job("pgd10", "pgd10", eps, False, create_attack("pgd10", eps, seed)))
        half = eps / 2
        half_attack = create_attack("pgd10", half, seed)
        jobs.append(_Job(f"pgd10@{eps_text(half)}", "pgd10", half, False, half_attack))
        if LARGE_EPS > eps:
            big = PGD(LARGE_EPS, alpha=LARGE_EPS / 4, steps=10, seed=seed)
            jobs.append(_Job(f"pgd10@{eps_text(LARGE_EPS)}", "pgd10", LARGE_EPS, False, big))
    return jobs


def _check_same_data(target: dict[str, Any], source: dict[str, Any]) -> None:
    t, s = target.get("data", {}), source.get("data", {})
    diffs = [f"{k} {s.get(k)!r} vs {t.get(k)!r}" for k in _DATA_SHAPE_KEYS if s.get(k) != t.get(k)]
    if diffs:
        raise UserInputError(
            "the source run's data differs from the target's (" + "; ".join(diffs) + "); "
            "use a source trained on the same dataset and input shape"
        )


def _batch_seed(seed: int, batch: int) -> int:
    # Distinct per (seed, batch), reproducible, and independent of how many batches ran before a resume.
    return (seed * 1_000_003 + batch) % (2**62)


def render_markdown(result: dict[str, Any]) -> str:
    """Markdown in the layout of the paper's Table 1 (accuracy in %), failed checks beside their numbers."""
    attacks = [a for a in result["attacks"] if a["in_table"]]
    failed: dict[str, list[CheckResult]] = {}
    for c in result["checks"]:
        if not c["passed"]:
            failed.setdefault(c["subject"], []).append(CheckResult(**c))
    mode_title = "White Box Attack" if result["mode"] == "whitebox" else "Black Box Attack"
    members = ", ".join(result["members"])
    lines = [
        f"# {mode_title}: robust accuracy (%) of `{result['run']}`",
        "",
        f"eps {result['eps_text']} (L-inf), ensemble `{result['ensemble']}` ({members}), "
        f"{result['samples']} test samples, seed {result['seed']}"
        + (f", examples crafted on `{result['source']}`" if result["source"] else "")
        + ". Each accuracy comes with its 95 % Clopper–Pearson interval in brackets.",
        "",
    ]
    header = ["Dataset", "Arch.", "Defense"] + [a["label"] for a in attacks]
    row = [result["dataset"], result["arch"], result["defense"]]
    for a in attacks:
        cell = format_interval(a["accuracy"], a.get("ci95"), digits=2)
        if a.get("converged") is False:
            cell = f"≤ {cell} (not converged)"
        flags = failed.get(a["name"], [])
        if flags:
            cell += " (" + ", ".join(f"check failed: {c.name}" for c in flags) + ")"
        row.append(cell)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |", ""]
    cascade = result.get("cascade")
    cascade_name = cascade["attack"] if cascade else None
    multi = [a for a in attacks if len(a["members"]) > 1 and a["name"] != cascade_name]
    if multi:
        lines += ["Per ensemble member (accuracy after the members up to this one; exact):", ""]
        # One table per member list: gradient attacks name their surrogate specs, gradient-free ones (noise)
        # their independent draws (draw0, draw1, ...).
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for a in multi:
            groups.setdefault(tuple(a["members"]), []).append(a)
        for names, group in groups.items():
            lines += ["| Attack | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
            for a in group:
                cells = [f"{100 * a['members'][m]['cumulative']:.2f}" for m in names]
                lines.append(f"| {a['label']} | " + " | ".join(cells) + " |")
            lines.append("")
    if cascade:
        lines += render_reliable(result, cascade)
    if result["checks"]:
        lines += ["Masking checks:", ""]
        for c in result["checks"]:
            mark = "pass" if c["passed"] else "FAIL"
            about = f" [{c['subject']}]" if c["subject"] else ""
            lines.append(f"- {mark} `{c['name']}`{about}: {c['detail']}")
        lines.append("")
    return "\n".join(lines)


def run_attack(run: str | os.PathLike[str], *, mode: str = "whitebox", **options: Any) -> dict[str, Any]:
    """Evaluate a trained run under an attack suite (see :func:`_run_attack` for every option).

    Holds the exclusive-writer lock of ``<run>/attack-<mode>`` while it works (lock file
    ``<run>/.attack-<mode>.lock``): a second attack of the same run and mode is refused with a one-line
    UserInputError naming the holder; a lock left by a killed attack is taken over and the rerun resumes
    from ``attack-<mode>.partial.json``.
    """
    if mode in MODES and Path(run).is_dir():
        with acquire_lock(Path(run) / f"attack-{mode}", "evrobust attack"):
            return _run_attack(run, mode=mode, **options)
    return _run_attack(run, mode=mode, **options)


def _run_attack(
    run: str | os.PathLike[str],
    *,
    mode: str = "whitebox",
    source: str | os.PathLike[str] | None = None,
    suite: str = "quick",
    attacks: str | None = None,
    eps: str | float = "8/255",
    ensemble: str = "paper",
    limit: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
    checks: bool = True,
    which: str = "best",
    data_dir: str | None = None,
    steps: int | None = None,
    queries: int | None = None,
    max_doublings: int | None = None,
) -> dict[str, Any]:
    """Evaluate a trained run under an attack suite; write ``attack-<mode>.json`` and ``.md``; return JSON.

    Args:
        run: run directory of the model under evaluation (``--out`` of ``evrobust train``).
        mode: ``whitebox`` (attack the run itself) or ``blackbox`` (craft on ``source``, score on ``run``).
        source: run directory of the source model (black-box only).
        suite: ``quick`` | ``paper`` | ``strong`` (:data:`evrobust.attacks.SUITES`); ignored with ``attacks``.
        attacks: comma-separated attack names instead of a suite (e.g. ``"clean,fgsm,pgd10"``).
        eps: L-inf radius in [0,1] units, ``"8/255"`` or a number.
        ensemble: gradient-spec member set, ``paper`` | ``widths`` | ``single``.
        limit: evaluate only the first ``limit`` test samples.
        batch_size: samples per batch (also the resume granularity).
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        seed: seed of the attacks' random draws (combined with the batch index).
        checks: run the masking checks (extra noise and PGD10 attacks).
        which: ``best`` or ``last`` checkpoint.
        data_dir: data directory for re-resolving the test store if its recorded path moved.
        steps: iterations of the attacks that take a budget (APGD-DLR, APGD-T, SA-PGD, and every gradient
            stage of a cascade); None = their defaults (100).
        queries: Square's and RayS's queries (also inside a cascade); None = 5000.
        max_doublings: doublings of the convergence certificate after a cascade
            (:mod:`evrobust.pipelines.attack.certificate`); None = 3; 0 = no certificate.
    """
    if mode not in MODES:
        raise UserInputError(f"unknown mode {mode!r}; valid choices: {', '.join(MODES)}")
    if ensemble not in ENSEMBLES:
        raise UserInputError(f"unknown ensemble {ensemble!r}; valid choices: {', '.join(ENSEMBLES)}")
    names = parse_attack_names(attacks) if attacks else suite_attacks(suite)
    check_budget(names, steps=steps, queries=queries)
    if max_doublings is not None:
        check_max_doublings(max_doublings)
    eps_value = parse_eps(eps)
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise UserInputError(f"--limit must be an integer >= 1, got {limit!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise UserInputError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    if mode == "blackbox" and source is None:
        raise UserInputError("--mode blackbox needs --source <run dir of the model that crafts the examples>")
    if mode == "whitebox" and source is not None:
        raise UserInputError("--source is only used with --mode blackbox; drop it or add --mode blackbox")
    dev = resolve_device(device)
    run = Path(run)
    model, config = load_evaluated_run(run, which, dev, "target")
    source_model: nn.Module | None = None
    if source is not None:
        source = Path(source)
        if source.resolve() == run.resolve():
            raise UserInputError(
                "--source is the same run as the target; black-box needs another trained model"
            )
        source_model, source_config = load_evaluated_run(source, which, dev, "source")
        _check_same_data(config, source_config)
    specs = ensemble_specs(ensemble)
    member_labels = [member_name(s) for s in specs]
    jobs = _jobs(names, eps_value, seed, mode, checks, {"steps": steps, "queries": queries}, specs)
    cascade_job = next((j for j in jobs if isinstance(j.attack, Cascade)), None)
    if cascade_job is None and max_doublings is not None:
        raise UserInputError("--max-doublings certifies a cascade; select --suite reliable or exhaustive")
    doublings = (DEFAULT_MAX_DOUBLINGS if max_doublings is None else max_doublings) if cascade_job else 0
    store = run_test_store(config, data_dir)
    dataset, n = open_test_split(store, limit)
    if n == 0:
        raise UserInputError(f"the test split of {store} is empty")

    fingerprint = {
        "run": str(run.resolve()),
        "source": None if source is None else str(Path(source).resolve()),
        "mode": mode,
        "which": which,
        "eps": eps_value,
        "ensemble": ensemble,
        "jobs": [[j.key, None if j.attack is None else j.attack.describe()] for j in jobs],
        "samples": n,
        "batch_size": batch_size,
        "seed": seed,
        "checks": checks,
        "max_doublings": doublings,
    }
    json_path, md_path, partial_path = result_paths(run, mode)
    state = _load_partial(partial_path, fingerprint)
    flags = {
        j.key: AttackFlags.from_json(state["flags"][j.key]) if j.key in state["flags"] else AttackFlags(j.key)
        for j in jobs
    }
    seconds: dict[str, float] = {j.key: float(state["seconds"].get(j.key, 0.0)) for j in jobs}
    zero = ZeroGradientStats(**state["zero"]) if state.get("zero") else ZeroGradientStats(0, 0.0, 0.0)
    done = int(state["batches_done"])
    plateau: dict[str, list[int]] = {k: list(v) for k, v in (state.get("plateau") or {}).items()}
    if done:
        logger.info("resuming %s from batch %d (%s)", partial_path.name, done, run)

    total_batches = math.ceil(n / batch_size)
    compatible_checked = False
    for b, x, y in iter_test_batches(dataset, n, batch_size, done):
        x, y = x.to(dev), y.to(dev)
        if source_model is not None and not compatible_checked:
            check_compatible(source_model, model, x)
            compatible_checked = True
        bseed = _batch_seed(seed, b)
        survivors = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for job in jobs:
            start = time.perf_counter()
            if isinstance(job.attack, Cascade):
                # Only what every attack before it left standing: the verdict is the per-sample worst case
                # over all of them either way, and the cascade's cost shrinks with the survivors.
                crafter = model if source_model is None else source_model
                with plateau_recorder(job.attack, plateau):
                    result = job.attack(crafter, x, y, judge=model, seed=bseed, alive=survivors)
            else:
                result = evaluate_batch(model, job.attack, x, y, specs=specs, source=source_model, seed=bseed)
                if job.in_table and job.eps == eps_value:
                    survivors &= result.correct
            flags[job.key].append_result(result)
            seconds[job.key] += time.perf_counter() - start
        if checks and mode == "whitebox":
            zero = zero.merge(zero_gradient_stats(model, x, y))
        done = b + 1
        state = {
            "fingerprint": fingerprint,
            "batches_done": done,
            "flags": {k: v.to_json() for k, v in flags.items()},
            "seconds": seconds,
            "zero": zero.__dict__,
            "plateau": plateau,
        }
        write_text_atomic(partial_path, json.dumps(state))
        status = ", ".join(f"{j.key} {100 * flags[j.key].accuracy():.1f}%" for j in jobs if j.in_table)
        logger.info("batch %d/%d: %s", done, total_batches, status)

    certificate = None
    if cascade_job is not None and doublings > 0:
        start = time.perf_counter()
        crafter = model if source_model is None else source_model

        def batches(first: int) -> Any:
            for b, xb, yb in iter_test_batches(dataset, n, batch_size, first):
                yield b, xb.to(dev), yb.to(dev)

        def save(progress: dict[str, Any]) -> None:
            state.update({"fingerprint": fingerprint, "certificate": progress,
                          "flags": {k: v.to_json() for k, v in flags.items()}})
            write_text_atomic(partial_path, json.dumps(state))

        assert isinstance(cascade_job.attack, Cascade)
        certificate = run_certificate(
            cascade_job.attack, flags[cascade_job.key], batches, batch_size, crafter, model,
            lambda b: _batch_seed(seed, b), doublings, state.get("certificate"), save,
        )
        seconds[cascade_job.key] += time.perf_counter() - start
    acc = {k: f.accuracy() for k, f in flags.items()}
    other = read_other_mode(run, mode, eps_value, n, ensemble) if checks else None
    check_results: list[CheckResult] = []
    if checks:
        check_results = masking_checks(
            mode, eps_value, acc, jobs, zero if mode == "whitebox" else None, other, flags
        )
    result = {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "run": str(run),
        "mode": mode,
        "source": None if source is None else str(source),
        "checkpoint": which,
        "dataset": config.get("data", {}).get("dataset", "?"),
        "arch": config.get("model", {}).get("name", "?"),
        "defense": (config.get("defense") or {}).get("name", "?"),
        "ensemble": ensemble,
        "members": member_labels,
        "eps": eps_value,
        "eps_text": eps_text(eps_value),
        "seed": seed,
        "samples": n,
        "test_set": test_set_identity(dataset, store, n),
        "attacks": [
            {
                "name": j.key,
                "label": _label(j),
                "in_table": j.in_table,
                "eps": j.eps,
                "accuracy": acc[j.key],
                **flag_interval(flags[j.key].correct == 1),
                "samples": flags[j.key].count,
                "seconds": seconds[j.key],
                "settings": None if j.attack is None else j.attack.describe(),
                "members": _member_summary(flags[j.key]),
                "checks": [c.to_json() for c in check_results if c.subject == j.key],
            }
            for j in jobs
        ],
        "checks": [c.to_json() for c in check_results],
        "zero_gradients": zero.__dict__ if mode == "whitebox" and checks else None,
        "flags": {k: f.to_json() for k, f in flags.items()},
    }
    result.update(reliable_summary(jobs, flags, acc))
    if "reliable" in result:
        result["reliable"].update(
            certificate or {"max_doublings": 0, "threshold": None, "doublings": [], "converged": None}
        )
    if cascade_job is not None:
        # the attack entry of the cascade names its convergence, so that every table can mark it
        entry = next(a for a in result["attacks"] if a["name"] == cascade_job.key)
        entry["converged"] = result["reliable"]["converged"] if "reliable" in result else None
        if mode == "whitebox" and "reliable" in result:
            assert isinstance(cascade_job.attack, Cascade)
            x_sub, y_sub = first_samples(
                (b, xb.to(dev), yb.to(dev)) for b, xb, yb in iter_test_batches(dataset, n, batch_size, 0)
            )
            result["reliable"].update(
                compute_indicators(cascade_job.attack, model, x_sub, y_sub, eps_value, plateau, seed)
            )
    write_text_atomic(json_path, json.dumps(result, indent=1))
    write_text_atomic(md_path, render_markdown(result))
    partial_path.unlink(missing_ok=True)
    for c in check_results:
        if not c.passed:
            logger.warning("masking check %s failed for %s: %s", c.name, c.subject or "the run", c.detail)
    logger.info("wrote %s and %s", json_path, md_path)
    return result


def _label(job: _Job) -> str:
    """Table label: ``PGD10``, or ``PGD10@4/255`` for a check attack at another eps."""
    label = ATTACKS[job.name].label
    return label if job.key == job.name else f"{label}@{eps_text(job.eps)}"


def flag_interval(robust: torch.Tensor) -> dict[str, Any]:
    """``{"n", "robust", "ci95"}`` of a ``[N]`` bool robust mask: the sample count, the robust count and the
    two-sided 95 % Clopper–Pearson interval of their ratio (``None`` when no sample was evaluated)."""
    n, k = int(robust.numel()), int(robust.sum())
    return {"n": n, "robust": k, "ci95": ci95(k, n)}


def _member_summary(flags: AttackFlags) -> dict[str, dict[str, Any]]:
    """Per member: own accuracy (None if it skipped samples) and cumulative accuracy up to it, each with its
    95 % interval over the ``n`` samples."""
    out: dict[str, dict[str, Any]] = {}
    own = flags.member_accuracy()
    alive = torch.ones(flags.count, dtype=torch.bool)
    for name, row in flags.members.items():
        alive &= row == 1
        out[name] = {
            "accuracy": own[name],
            "ci95": None if own[name] is None else flag_interval(row == 1)["ci95"],
            "cumulative": float(alive.float().mean()) if flags.count else 0.0,
            "cumulative_ci95": flag_interval(alive)["ci95"],
            "n": flags.count,
        }
    return out


def _load_partial(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    empty: dict[str, Any] = {"batches_done": 0, "flags": {}, "seconds": {}, "zero": None}
    if not path.is_file():
        return empty
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable partial results %s; starting over", path)
        return empty
    if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        logger.warning("partial results %s were made with other options; starting over", path)
        return empty
    return state
