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
import os
from pathlib import Path
from typing import Any

from torch import nn

from evrobust.attacks import (
    ensemble_specs,
    member_name,
)
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.checks import LARGE_EPS, read_other_mode
from evrobust.pipelines.attack.core import (
    EvaluationInputs,
    certificate_doublings,
    check_suite_options,
    evaluate_jobs,
    fit_to_model,
    make_jobs,
)
from evrobust.pipelines.attack.foreign import FOREIGN_KEY
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
from evrobust.pipelines.attack.reliable import render_reliable
from evrobust.pipelines.common.options import ATTACK_BOUNDS, MAX_LIMIT, check_attack_bounds, parse_eps
from evrobust.preprocess.locks import acquire as acquire_lock
from evrobust.safeio import check_write_target, remove_file, roundtrip, sha256_file
from evrobust.safeio.atomic import write_text_atomic
from evrobust.stats import format_interval

__all__ = ["LARGE_EPS", "MODES", "result_paths", "run_attack"]

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("whitebox", "blackbox")

_DATA_SHAPE_KEYS = ("kind", "num_classes", "in_channels", "input_size", "frames")
_CONTENT_KEYS = {
    "checkpoint_sha256": "the checkpoint",
    "source_checkpoint_sha256": "the source run's checkpoint",
    "store_sha256": "the data store",
}
"""Fingerprint keys that identify content, not options -> what the resume warning says changed."""


def _check_same_data(target: dict[str, Any], source: dict[str, Any]) -> None:
    t, s = target.get("data", {}), source.get("data", {})
    diffs = [f"{k} {s.get(k)!r} vs {t.get(k)!r}" for k in _DATA_SHAPE_KEYS if s.get(k) != t.get(k)]
    if diffs:
        raise UserInputError(
            "the source run's data differs from the target's (" + "; ".join(diffs) + "); "
            "use a source trained on the same dataset and input shape"
        )


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
    # What could not be applied to a model trained elsewhere (unknown neurons, surrogate members): said
    # before any number, so that no table is read without it.
    lines += [f"- {note}" for note in result.get("notes") or []]
    if result.get("notes"):
        lines.append("")
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
    if options.get("model") is not None:
        # A model trained elsewhere: built and checked before its run directory is made, so a refused
        # factory or weights file leaves nothing behind.
        options["foreign"] = _prepare_foreign(Path(run), mode, options)
        Path(run).mkdir(parents=True, exist_ok=True)
    if mode in MODES and Path(run).is_dir():
        with acquire_lock(Path(run) / f"attack-{mode}", "evrobust attack"):
            return _run_attack(run, mode=mode, **options)
    return _run_attack(run, mode=mode, **options)


def _refuse_foreign_without_model(run: Path) -> None:
    """One line when ``run`` evaluates a model built by a factory but no ``--model`` was given."""
    from evrobust.pipelines.train.run_dir import read_config

    if not os.path.lexists(run / "config.json"):
        return  # load_evaluated_run says what is missing, in its own words
    config = read_config(run)
    if FOREIGN_KEY in config:
        factory = (config.get(FOREIGN_KEY) or {}).get("factory", "?")
        raise UserInputError(f"{run} evaluates a model built by {factory}; give --model {factory} and "
                             "--weights again (evrobust never imports code named only in a file)")


def _prepare_foreign(run: Path, mode: str, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, config)`` of ``--model/--weights/--data`` (:mod:`evrobust.pipelines.attack.foreign`).

    Everything is checked before a file is written: white-box only; ``--weights`` and ``--data`` given; an
    existing ``run`` is a directory evaluating the same factory with the same weights (another one would mix
    two models in one result); the data resolves; the weights fit the model.
    """
    from evrobust.datasets import resolve_data
    from evrobust.pipelines.attack.foreign import build_foreign_model, foreign_config, parse_factory
    from evrobust.pipelines.train.run_dir import read_config

    factory = str(options["model"])
    parse_factory(factory)
    if mode != "whitebox" or options.get("source") is not None:
        raise UserInputError("--model evaluates white-box only; drop --mode blackbox and --source")
    weights, data = options.get("weights"), options.get("data")
    if weights is None or data is None:
        raise UserInputError("--model needs --weights FILE (safetensors, or a torch state_dict) and "
                             "--data NAME (a dataset name or an evrobust store) to evaluate it on")
    weights = Path(weights)
    if os.path.lexists(run) and not run.is_dir():
        raise UserInputError(f"--run {run} exists and is not a directory")
    # The model first (weights read and checked, then the factory's module imported and called): a refused
    # model costs neither a data store build nor a file.
    model = build_foreign_model(factory, weights, resolve_device(options.get("device", "auto")))
    existing = None
    digest = sha256_file(weights, "checkpoint")  # once: the identity recorded and compared
    if os.path.lexists(run / "config.json"):
        existing = read_config(run)
        recorded = existing.get(FOREIGN_KEY)
        if not isinstance(recorded, dict):
            raise UserInputError(f"{run} is a run of `evrobust train`; give --model a new --run directory")
        for key, value, what in (("factory", factory, "factory"), ("weights_sha256", digest, "weights")):
            if recorded.get(key) != value:
                raise UserInputError(f"{run} evaluates another {what} ({recorded.get(key)}); give a new "
                                     "--run directory for this model")
        recorded_data = (existing.get("data") or {}).get("name")
        if recorded_data != str(data):
            raise UserInputError(f"{run} evaluates this model on --data {recorded_data}; give a new --run "
                                 f"directory for --data {data}")
    store = resolve_data(str(data), options.get("data_dir"))
    config = existing or foreign_config(factory, weights, digest, store, str(data), options.get("defense"))
    return model, config


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
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    data: str | None = None,
    defense: str | None = None,
    foreign: tuple[nn.Module, dict[str, Any]] | None = None,
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
        model, weights, data, defense: a model trained elsewhere (``pkg.module:factory``), its weights file,
            the data name or store to evaluate it on, and a defense label for the tables
            (:mod:`evrobust.pipelines.attack.foreign`); ``run`` is then the directory to write into.
        foreign: set by :func:`run_attack`: the built model and the run's ``config.json``.
    """
    if mode not in MODES:
        raise UserInputError(f"unknown mode {mode!r}; valid choices: {', '.join(MODES)}")
    names = check_suite_options(ensemble, suite, attacks, steps, queries, max_doublings)
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
    fields: dict[str, Any] = {}
    adapted: Any = None
    if foreign is not None:
        from evrobust.adapters import adapt

        built, config = foreign
        adapted = adapt(built.to(dev))
        net: nn.Module = adapted
        if not (run / "config.json").exists():
            write_text_atomic(run / "config.json", json.dumps(config, indent=1))
    else:
        _refuse_foreign_without_model(run)
        net, config = load_evaluated_run(run, which, dev, "target")
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
    jobs = make_jobs(names, eps_value, seed, mode, checks, {"steps": steps, "queries": queries}, specs)
    if adapted is not None:
        jobs, specs, fields = fit_to_model(adapted, jobs, specs)
    member_labels = [member_name(s) for s in specs]
    doublings = certificate_doublings(
        jobs, max_doublings, "--max-doublings certifies a cascade; select --suite reliable or exhaustive"
    )
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
        "checkpoint_sha256": (config[FOREIGN_KEY]["weights_sha256"] if foreign is not None
                              else checkpoint_digest(run, which)),
        "source_checkpoint_sha256": None if source is None else checkpoint_digest(Path(source), which),
        "store_sha256": _store_digest(store),
    }
    state = _load_partial(partial_path, fingerprint)
    if state["batches_done"]:
        logger.info("resuming %s from batch %d (%s)", partial_path.name, state["batches_done"], run)

    def batches(first: int) -> Any:
        for b, xb, yb in iter_test_batches(dataset, n, batch_size, first):
            yield b, xb.to(dev), yb.to(dev)

    def save(progress: dict[str, Any]) -> None:
        write_text_atomic(partial_path, json.dumps({"fingerprint": fingerprint, **progress}))

    result = evaluate_jobs(EvaluationInputs(
        model=net, batches=batches, n=n, batch_size=batch_size, jobs=jobs, specs=specs, eps=eps_value,
        seed=seed, mode=mode, checks=checks, doublings=doublings, source_model=source_model,
        state=state, save=save,
        other=lambda: read_other_mode(run, mode, eps_value, n, ensemble),
        meta={
            "run": str(run),
            "mode": mode,
            "source": None if source is None else str(source),
            "checkpoint": which,
            "dataset": config.get("data", {}).get("dataset", "?"),
            "arch": config.get("model", {}).get("name", "?"),
            "defense": (config.get("defense") or {}).get("name", "?"),
            "ensemble": ensemble,
            "members": member_labels,
        },
        test_set=test_set_identity(dataset, store, n),
    ))
    result.update(fields)
    write_text_atomic(json_path, json.dumps(result, indent=1))
    write_text_atomic(md_path, render_markdown(result))
    remove_file(partial_path)
    logger.info("wrote %s and %s", json_path, md_path)
    return result


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
