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
``seconds`` differ). Randomness is seeded per batch from ``--seed`` and the batch index. The partial file's
fingerprint holds the options and the content of what is attacked: the sha256 of the checkpoint file (and
of the source run's, black-box) and the digest of the data store the test split is read from. A rerun
against a changed checkpoint or store, a partial file from other options, or one whose batch count
disagrees with its flags (schema ``attack_partial``) starts over with one warning saying why.

Budgets are bounded (:data:`evrobust.pipelines.common.options.ATTACK_BOUNDS`): a value beyond them is one
error line before the run is locked or read.
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
    checkpoint_digest,
    eps_text,
    iter_test_batches,
    load_evaluated_run,
    open_test_split,
    read_json_or_warn,
    resolve_device,
    result_paths,
    run_test_store,
    test_set_identity,
)
from evrobust.pipelines.attack.reliable import reliable_summary, render_reliable
from evrobust.pipelines.common.options import ATTACK_BOUNDS, MAX_LIMIT, check_attack_bounds, parse_eps
from evrobust.preprocess.locks import acquire as acquire_lock
from evrobust.safeio import check_write_target, remove_file, roundtrip
from evrobust.safeio.atomic import write_text_atomic
from evrobust.stats import ci95, format_interval

__all__ = ["LARGE_EPS", "MODES", "result_paths", "run_attack"]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("whitebox", "blackbox")
RESULT_FORMAT = "evrobust-attack"
RESULT_VERSION = 1

_DATA_SHAPE_KEYS = ("kind", "num_classes", "in_channels", "input_size", "frames")
_CONTENT_KEYS = {
    "checkpoint_sha256": "the checkpoint",
    "source_checkpoint_sha256": "the source run's checkpoint",
    "store_sha256": "the data store",
}
"""Fingerprint keys that identify content, not options -> what the resume warning says changed."""
_ZERO_FIELDS = ("samples", "sample_share", "element_share")


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
    """Markdown in the layout of the paper's Table 1 (accuracy in %), failed checks beside their numbers.

    Takes any document the ``attack_result`` schema admits: a field that a hand-made file may leave out
    prints as ``?`` (a name) or ``–`` (a number) instead of failing.
    """
    attacks = [a for a in result.get("attacks", []) if a.get("in_table", True)]
    checks = result.get("checks", [])
    failed: dict[str, list[str]] = {}
    for c in checks:
        if not c["passed"]:
            failed.setdefault(c.get("subject") or "", []).append(c["name"])
    titles = {"whitebox": "White Box Attack", "blackbox": "Black Box Attack"}
    mode_title = titles.get(result.get("mode") or "", "Attack")
    members = ", ".join(result.get("members") or [])
    eps = result.get("eps_text") or (eps_text(result["eps"]) if result.get("eps") is not None else "?")
    source = result.get("source")
    lines = [
        f"# {mode_title}: robust accuracy (%) of `{result.get('run', '?')}`",
        "",
        f"eps {eps} (L-inf), ensemble `{result.get('ensemble', '?')}` ({members}), "
        f"{result['samples']} test samples, seed {result.get('seed', '?')}"
        + (f", examples crafted on `{source}`" if source else "")
        + ". Each accuracy comes with its 95 % Clopper–Pearson interval in brackets.",
        "",
    ]
    header = ["Dataset", "Arch.", "Defense"] + [a.get("label") or a["name"] for a in attacks]
    row = [str(result.get(key) or "?") for key in ("dataset", "arch", "defense")]
    for a in attacks:
        accuracy = a.get("accuracy")
        cell = "–" if accuracy is None else format_interval(accuracy, a.get("ci95"), digits=2)
        if a.get("converged") is False:
            cell = f"≤ {cell} (not converged)"
        names = failed.get(a["name"], [])
        if names:
            cell += " (" + ", ".join(f"check failed: {name}" for name in names) + ")"
        row.append(cell)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |", ""]
    cascade = result.get("cascade")
    cascade_name = cascade["attack"] if cascade else None
    multi = [a for a in attacks if len(a.get("members", {})) > 1 and a["name"] != cascade_name]
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
                values = [a["members"][m].get("cumulative") for m in names]
                cells = ["–" if v is None else f"{100 * v:.2f}" for v in values]
                lines.append(f"| {a.get('label') or a['name']} | " + " | ".join(cells) + " |")
            lines.append("")
    if cascade and cascade.get("entering") is not None:  # a hand-made file may name only the cascade
        view = {**result, "defense": result.get("defense") or "?"}
        lines += render_reliable(view, {"stages": [], **cascade})
    if checks:
        lines += ["Masking checks:", ""]
        for c in checks:
            mark = "pass" if c["passed"] else "FAIL"
            about = f" [{c['subject']}]" if c.get("subject") else ""
            lines.append(f"- {mark} `{c['name']}`{about}: {c.get('detail') or ''}")
        lines.append("")
    return "\n".join(lines)


def run_attack(run: str | os.PathLike[str], *, mode: str = "whitebox", **options: Any) -> dict[str, Any]:
    """Evaluate a trained run under an attack suite (see :func:`_run_attack` for every option).

    Holds the exclusive-writer lock of ``<run>/attack-<mode>`` while it works (lock file
    ``<run>/.attack-<mode>.lock``): a second attack of the same run and mode is refused with a one-line
    UserInputError naming the holder; a lock left by a killed attack is taken over and the rerun resumes
    from ``attack-<mode>.partial.json``.

    The budgets (``steps``, ``queries``, ``max_doublings``, ``limit``, ``batch_size``, ``seed``) are checked
    against :data:`~evrobust.pipelines.common.options.ATTACK_BOUNDS` first: a value beyond them is a one-line
    UserInputError before the lock is taken or any file is read or written.
    """
    check_attack_bounds(**{key: options[key] for key in ATTACK_BOUNDS if key in options})
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
    if mode == "blackbox" and source is None:
        raise UserInputError("--mode blackbox needs --source <run dir of the model that crafts the examples>")
    if mode == "whitebox" and source is not None:
        raise UserInputError("--source is only used with --mode blackbox; drop it or add --mode blackbox")
    dev = resolve_device(device)
    run = Path(run)
    json_path, md_path, partial_path = result_paths(run, mode)
    for path in (json_path, md_path, partial_path):
        check_write_target(path)  # a link or FIFO where the results go: refused before any work, not after
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
    if n > MAX_LIMIT:
        raise UserInputError(f"the test split of {store} holds {n:,} samples, more than an attack result can "
                             f"record ({MAX_LIMIT:,}); attack a part of it with --limit")

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
        # Content, not options: a resume against other weights or another store would mix two evaluations.
        "checkpoint_sha256": checkpoint_digest(run, which),
        "source_checkpoint_sha256": None if source is None else checkpoint_digest(Path(source), which),
        "store_sha256": _store_digest(store),
    }
    state = _load_partial(partial_path, fingerprint)
    flags = {
        j.key: AttackFlags.from_json(state["flags"][j.key]) if j.key in state["flags"] else AttackFlags(j.key)
        for j in jobs
    }
    seconds: dict[str, float] = {j.key: float(state["seconds"].get(j.key, 0.0)) for j in jobs}
    saved_zero = state.get("zero")  # its known fields only: the schema lets unknown ones through
    zero = ZeroGradientStats(*(saved_zero[k] for k in _ZERO_FIELDS) if saved_zero else (0, 0.0, 0.0))
    done = int(state["batches_done"])
    plateau: dict[str, list[int]] = {k: list(v) for k, v in (state.get("plateau") or {}).items()}
    # Seconds per cascade stage, carried over a resume (the cascade object counts only this process's calls).
    earlier_stages = {str(k): float(v) for k, v in (state.get("stage_seconds") or {}).items()}

    def stage_seconds() -> dict[str, float]:
        if cascade_job is None or not isinstance(cascade_job.attack, Cascade):
            return {}
        spent = cascade_job.attack.stage_seconds
        return {k: earlier_stages.get(k, 0.0) + spent.get(k, 0.0) for k in {*earlier_stages, *spent}}

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
            "stage_seconds": stage_seconds(),
        }
        write_text_atomic(partial_path, json.dumps(state))
        status = ", ".join(f"{j.key} {100 * flags[j.key].accuracy():.1f}%" for j in jobs if j.in_table)
        logger.info("batch %d/%d: %s", done, total_batches, status)

    certificate = None
    cost: dict[str, Any] = {}
    if cascade_job is not None:
        cost = {"cascade": seconds[cascade_job.key], "stages": stage_seconds()}
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
        cost["certificate"] = time.perf_counter() - start
        seconds[cascade_job.key] += cost["certificate"]
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
            start = time.perf_counter()
            result["reliable"].update(
                compute_indicators(cascade_job.attack, model, x_sub, y_sub, eps_value, plateau, seed)
            )
            cost["indicators"] = time.perf_counter() - start
        if "reliable" in result:
            # Where the reliable evaluation's time went: the cascade (per stage, the certificate's reruns not
            # included), the certificate, the indicators. Seconds, wall clock; not part of any verdict.
            result["reliable"]["seconds"] = cost
    write_text_atomic(json_path, json.dumps(result, indent=1))
    write_text_atomic(md_path, render_markdown(result))
    remove_file(partial_path)
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


def _store_digest(store: Path) -> str:
    """The content identity of the data store the test split is read from (imported here: zarr is slow)."""
    from evrobust.preprocess.store_verify import store_digest

    return store_digest(store)


def _load_partial(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The resume state in ``path`` if it was made by this very attack, else an empty one.

    The file is read as an ``attack_partial`` document (:func:`read_json_or_warn`): unreadable, not JSON, a
    link, or a batch count its flags do not cover is one warning and a fresh start. A valid file whose
    fingerprint differs from ``fingerprint`` is one warning naming what changed (the checkpoint, the source's
    checkpoint, the data store, or the options) and a fresh start too.
    """
    empty: dict[str, Any] = {"batches_done": 0, "flags": {}, "seconds": {}, "zero": None}
    state = read_json_or_warn(path, "attack_partial", "the partial results", "starting over")
    if state is None:
        return empty
    stored, current = state["fingerprint"], roundtrip(fingerprint)
    if stored != current:
        # a key the stored fingerprint lacks (a file from before digests were kept) is not called a change
        changed = [what for key, what in _CONTENT_KEYS.items()
                   if stored.get(key, current[key]) != current[key]]
        reason = " and ".join(changed) + " changed" if changed else "other options were given"
        logger.warning("%s since the partial results %s were written; starting over", reason, path)
        return empty
    # The schema checked the flags against the file's own fingerprint. It equals this run's, so every job's
    # flags must cover exactly the samples of the batches done: checked again here, where a gap would make
    # the tables count samples that were never attacked.
    done = state["batches_done"]
    covered = min(done * fingerprint["batch_size"], fingerprint["samples"])
    flags = state["flags"]
    if done and any(len(flags.get(key, {}).get("correct", "")) != covered for key, _ in fingerprint["jobs"]):
        logger.warning("the partial results %s do not cover their %d batches; starting over", path, done)
        return empty
    return state
