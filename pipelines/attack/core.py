"""The evaluation loop shared by ``evrobust attack`` and :func:`evrobust.evaluate`.

:func:`evaluate_jobs` runs a list of jobs (the table's attacks, a ``reliable`` cascade on their survivors, the
masking checks' extra attacks) batch by batch over any source of ``(index, x, y)`` batches, then the
convergence certificate and the attack-failure indicators, and assembles the result document that
``evrobust attack`` writes as ``attack-<mode>.json`` (schema ``attack_result``). What differs between the two
callers stays with them:

- ``evrobust attack`` (:mod:`evrobust.pipelines.attack.pipeline`) brings a run directory: its checkpoint
  and data store, the resume state of ``attack-<mode>.partial.json`` and a ``save`` callback that rewrites
  it after every batch, and the other mode's result for the transfer check;
- :func:`evrobust.evaluate` (:mod:`evrobust.pipelines.attack.evaluate`) brings a model and tensors in memory,
  no resume state and no file.

Both get the same per-sample flags for the same model, samples, batch size and seed: the random draws depend
only on the seed, the batch index and the sample's row (:func:`batch_seed`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.analysis.evaluate import AttackFlags, evaluate_batch
from evrobust.analysis.masking import CheckResult, ZeroGradientStats, zero_gradient_stats
from evrobust.attacks import ATTACKS, ENSEMBLES, PGD, check_budget, check_compatible, create_attack
from evrobust.attacks.base import Attack
from evrobust.attacks.cascade import Cascade, Stage
from evrobust.attacks.registry import parse_attack_names, suite_attacks
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.certificate import DEFAULT_MAX_DOUBLINGS, check_max_doublings, run_certificate
from evrobust.pipelines.attack.checks import LARGE_EPS, masking_checks
from evrobust.pipelines.attack.indicators import compute_indicators, first_samples, plateau_recorder
from evrobust.pipelines.attack.inputs import eps_text
from evrobust.pipelines.attack.reliable import reliable_summary
from evrobust.stats import ci95

__all__ = [
    "Batches",
    "EvaluationInputs",
    "RESULT_FORMAT",
    "RESULT_VERSION",
    "Job",
    "batch_seed",
    "certificate_doublings",
    "fit_to_model",
    "check_suite_options",
    "evaluate_jobs",
    "flag_interval",
    "make_jobs",
    "restrict_jobs",
]

logger = logging.getLogger(__name__)

RESULT_FORMAT = "evrobust-attack"
RESULT_VERSION = 1
_ZERO_FIELDS = ("samples", "sample_share", "element_share")

Batches = Callable[[int], Iterator[tuple[int, Tensor, Tensor]]]
"""``batches(first)`` yields ``(batch index, x [B, ...], y [B])`` for batches ``first, first + 1, ...``,
on the device the model runs on."""


@dataclass
class Job:
    """One attack to run over the test set: ``key`` is unique (``pgd10`` or ``pgd10@64/255``)."""

    key: str
    name: str
    eps: float
    in_table: bool
    attack: Attack | Cascade | None


def make_jobs(names: tuple[str, ...], eps: float, seed: int, mode: str, checks: bool,
              budget: dict[str, int | None] | None = None, specs: tuple[Any, ...] = ()) -> list[Job]:
    """The table's attacks (with the ``--steps``/``--queries`` budget) and the masking checks' extras.

    ``specs`` is the ensemble of the table's attacks: a cascade drops the members that would rerun one of
    those attacks under one of those specs (:meth:`Cascade.without`).
    """
    jobs = [Job(n, n, eps, True, create_attack(n, eps, seed, **(budget or {}))) for n in names]
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
        jobs.append(Job("noise", "noise", eps, False, create_attack("noise", eps, seed)))
    if mode == "whitebox" and eps > 0:
        if "pgd10" not in have:
            jobs.append(Job("pgd10", "pgd10", eps, False, create_attack("pgd10", eps, seed)))
        half = eps / 2
        half_attack = create_attack("pgd10", half, seed)
        jobs.append(Job(f"pgd10@{eps_text(half)}", "pgd10", half, False, half_attack))
        if LARGE_EPS > eps:
            big = PGD(LARGE_EPS, alpha=LARGE_EPS / 4, steps=10, seed=seed)
            jobs.append(Job(f"pgd10@{eps_text(LARGE_EPS)}", "pgd10", LARGE_EPS, False, big))
    return jobs


def restrict_jobs(
    jobs: list[Job], specs: tuple[Any, ...], unsupported: Callable[[Any], str | None]
) -> tuple[list[Job], tuple[Any, ...], list[str]]:
    """Drop the gradient specs a model cannot take (a foreign neuron without that surrogate mode).

    ``unsupported(spec)`` is ``None`` when ``spec`` applies to the model, else the reason. The ensemble
    ``specs`` keeps the members that apply, or the model's own gradient (``None``) when none does; each
    cascade stage likewise. Returns ``(jobs, specs, notes)``: one note per dropped member, in the words the
    outputs print ("member rate not applied: ...").
    """
    notes: list[str] = []

    def keep(members: tuple[Any, ...], where: str) -> tuple[Any, ...]:
        kept = []
        for spec in members:
            reason = None if spec is None else unsupported(spec)
            if reason is None:
                kept.append(spec)
            else:
                note = f"{where}member {spec} not applied: {reason}"
                if note not in notes:
                    notes.append(note)
        return tuple(kept) if kept else (None,)

    new_specs = keep(tuple(specs), "")
    out = []
    for job in jobs:
        if isinstance(job.attack, Cascade):
            stages = [
                Stage(s.name, s.attack, keep(s.specs, f"{s.name} ") if s.attack.uses_gradient else s.specs)
                for s in job.attack.stages
            ]
            job = replace(job, attack=Cascade(stages))
        out.append(job)
    return out, new_specs, notes


def check_suite_options(
    ensemble: str, suite: str, attacks: str | None, steps: int | None, queries: int | None,
    max_doublings: int | None,
) -> tuple[str, ...]:
    """The attack names of ``attacks`` (else of ``suite``), after the checks every caller shares: a known
    ensemble, budgets the attacks take, a valid ``max_doublings``. One UserInputError line otherwise."""
    if ensemble not in ENSEMBLES:
        raise UserInputError(f"unknown ensemble {ensemble!r}; valid choices: {', '.join(ENSEMBLES)}")
    names = parse_attack_names(attacks) if attacks else suite_attacks(suite)
    check_budget(names, steps=steps, queries=queries)
    if max_doublings is not None:
        check_max_doublings(max_doublings)
    return names


def certificate_doublings(jobs: list[Job], max_doublings: int | None, refusal: str) -> int:
    """The certificate's doublings for ``jobs``: ``max_doublings`` (default
    :data:`~evrobust.pipelines.attack.certificate.DEFAULT_MAX_DOUBLINGS`) with a cascade, 0 without one; a
    ``max_doublings`` given without a cascade is the one error line ``refusal`` (in the caller's words)."""
    if not any(isinstance(j.attack, Cascade) for j in jobs):
        if max_doublings is not None:
            raise UserInputError(refusal)
        return 0
    return DEFAULT_MAX_DOUBLINGS if max_doublings is None else max_doublings


def fit_to_model(
    adapted: Any, jobs: list[Job], specs: tuple[Any, ...]
) -> tuple[list[Job], tuple[Any, ...], dict[str, Any]]:
    """:func:`restrict_jobs` for an :class:`~evrobust.adapters.AdaptedModel`: ``(jobs, specs, fields)``, where
    ``fields`` are the result's ``notes`` (what the adapters cannot apply, then each dropped member; each also
    logged as a warning) and ``neurons`` (library -> neurons found)."""
    jobs, specs, dropped = restrict_jobs(jobs, specs, adapted.unsupported)
    notes = [*adapted.notes(), *dropped]
    for note in notes:
        logger.warning("%s", note)
    neurons = {library: len(found) for library, found in adapted.found.items()}
    return jobs, specs, {"notes": notes, "neurons": neurons}


def batch_seed(seed: int, batch: int) -> int:
    """The random seed of batch ``batch``: distinct per (seed, batch), reproducible, and independent of how
    many batches ran before a resume."""
    return (seed * 1_000_003 + batch) % (2**62)


def flag_interval(robust: torch.Tensor) -> dict[str, Any]:
    """``{"n", "robust", "ci95"}`` of a ``[N]`` bool robust mask: the sample count, the robust count and the
    two-sided 95 % Clopper–Pearson interval of their ratio (``None`` when no sample was evaluated)."""
    n, k = int(robust.numel()), int(robust.sum())
    return {"n": n, "robust": k, "ci95": ci95(k, n)}


@dataclass
class EvaluationInputs:
    """What :func:`evaluate_jobs` evaluates, and the fields of the result that describe it.

    Attributes:
        model: the model under evaluation (the judge), eval mode is set per call.
        batches: the test batches (see :data:`Batches`); ``n`` samples in batches of ``batch_size``.
        jobs: from :func:`make_jobs` (and :func:`restrict_jobs`).
        specs: the ensemble members of the table's attacks.
        meta: the result's descriptive fields, in order (``run``, ``mode``, ``source``, ``checkpoint``,
            ``dataset``, ``arch``, ``defense``, ``ensemble``, ``members``, ...); ``eps``, ``seed``,
            ``samples`` and ``test_set`` are added here.
        source_model: black-box: the model that crafts the examples.
        state: resume state (``batches_done``, ``flags``, ``seconds``, ``zero``, ``plateau``,
            ``stage_seconds``, ``certificate``); empty for a fresh run.
        save: called with the new state after every batch and certificate step (None: nothing is kept).
        other: the other mode's finished result, for the transfer check (None: no such check).
    """

    model: nn.Module
    batches: Batches
    n: int
    batch_size: int
    jobs: list[Job]
    specs: tuple[Any, ...]
    eps: float
    seed: int
    mode: str
    checks: bool
    doublings: int
    meta: dict[str, Any]
    test_set: dict[str, Any]
    source_model: nn.Module | None = None
    state: dict[str, Any] = field(default_factory=dict)
    save: Callable[[dict[str, Any]], None] | None = None
    other: Callable[[], dict[str, Any] | None] | None = None


def evaluate_jobs(inputs: EvaluationInputs) -> dict[str, Any]:
    """Run every job over every batch, then the certificate and indicators; the result document.

    Resumes from ``inputs.state`` (batches already done are skipped, their flags kept) and hands the new state
    to ``inputs.save`` after every batch. Returns the document of schema ``attack_result``: ``meta``'s
    fields, then ``eps``, ``seed``, ``samples``, ``test_set``, ``attacks``, ``checks``, ``zero_gradients``,
    ``flags`` and, with a cascade, ``reliable``, ``overestimate`` and ``cascade``.
    """
    model, jobs, specs, n = inputs.model, inputs.jobs, inputs.specs, inputs.n
    eps_value, seed, mode, checks = inputs.eps, inputs.seed, inputs.mode, inputs.checks
    source_model, batch_size = inputs.source_model, inputs.batch_size
    state = dict(inputs.state) if inputs.state else {"batches_done": 0, "flags": {}, "seconds": {}}
    cascade_job = next((j for j in jobs if isinstance(j.attack, Cascade)), None)
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

    total_batches = math.ceil(n / batch_size)
    compatible_checked = False
    for b, x, y in inputs.batches(done):
        if source_model is not None and not compatible_checked:
            check_compatible(source_model, model, x)
            compatible_checked = True
        bseed = batch_seed(seed, b)
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
            "batches_done": done,
            "flags": {k: v.to_json() for k, v in flags.items()},
            "seconds": seconds,
            "zero": zero.__dict__,
            "plateau": plateau,
            "stage_seconds": stage_seconds(),
        }
        if inputs.save is not None:
            inputs.save(state)
        status = ", ".join(f"{j.key} {100 * flags[j.key].accuracy():.1f}%" for j in jobs if j.in_table)
        logger.info("batch %d/%d: %s", done, total_batches, status)

    certificate = None
    cost: dict[str, Any] = {}
    if cascade_job is not None:
        cost = {"cascade": seconds[cascade_job.key], "stages": stage_seconds()}
    if cascade_job is not None and inputs.doublings > 0:
        start = time.perf_counter()
        crafter = model if source_model is None else source_model

        def save(progress: dict[str, Any]) -> None:
            state.update({"certificate": progress, "flags": {k: v.to_json() for k, v in flags.items()}})
            if inputs.save is not None:
                inputs.save(state)

        assert isinstance(cascade_job.attack, Cascade)
        certificate = run_certificate(
            cascade_job.attack, flags[cascade_job.key], inputs.batches, batch_size, crafter, model,
            lambda b: batch_seed(seed, b), inputs.doublings, state.get("certificate"), save,
        )
        cost["certificate"] = time.perf_counter() - start
        seconds[cascade_job.key] += cost["certificate"]
    acc = {k: f.accuracy() for k, f in flags.items()}
    other = inputs.other() if checks and inputs.other is not None else None
    check_results: list[CheckResult] = []
    if checks:
        check_results = masking_checks(
            mode, eps_value, acc, jobs, zero if mode == "whitebox" else None, other, flags
        )
    result = {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        **inputs.meta,
        "eps": eps_value,
        "eps_text": eps_text(eps_value),
        "seed": seed,
        "samples": n,
        "test_set": inputs.test_set,
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
            x_sub, y_sub = first_samples(inputs.batches(0))
            start = time.perf_counter()
            result["reliable"].update(
                compute_indicators(cascade_job.attack, model, x_sub, y_sub, eps_value, plateau, seed)
            )
            cost["indicators"] = time.perf_counter() - start
        if "reliable" in result:
            # Where the reliable evaluation's time went: the cascade (per stage, the certificate's reruns not
            # included), the certificate, the indicators. Seconds, wall clock; not part of any verdict.
            result["reliable"]["seconds"] = cost
    for c in check_results:
        if not c.passed:
            logger.warning("masking check %s failed for %s: %s", c.name, c.subject or "the run", c.detail)
    return result


def _label(job: Job) -> str:
    """Table label: ``PGD10``, or ``PGD10@4/255`` for a check attack at another eps."""
    label = ATTACKS[job.name].label
    return label if job.key == job.name else f"{label}@{eps_text(job.eps)}"


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
