"""``evrobust leaderboard``: train every entry, evaluate each under one protocol, write the ranked table.

Output layout under ``out`` (default ``runs/reproduce``, shared with ``evrobust reproduce``, so runs already
trained there are reused and the other way round)::

    runs/<key>-<hash>/                 one run per entry (``train_run``: the reproduction's runs)
    cache/leaderboard-<hash>.json      each entry's evaluation with its per-sample flags (:mod:`.evaluate`)
    <name>/leaderboard.md              the ranked table, footnotes, paired tests, entry cards
    <name>/leaderboard.json            the same as data (schema ``leaderboard``)
    <name>/leaderboard-robust.png      robust accuracy with interval whiskers
    <name>/leaderboard-pareto.png      clean vs robust accuracy, whiskers, Pareto front

``<name>`` is ``leaderboard-<data>-<scale>`` (``-n<limit>`` with ``--limit``, ``-<entries>`` with ``--only``).

Order and resumption (as ``evrobust reproduce``): entries train and are evaluated in the order of
:data:`~evrobust.pipelines.leaderboard.spec.ENTRIES`; ``stop_after=N`` stops after N units of work (a training
epoch, an evaluation); killed or stopped, the same command with ``resume=True`` continues from the last epoch
checkpoint, and every finished evaluation is reused from its cache. The table files are written only when
every entry is evaluated, so a stopped build leaves no partial table: they are a function of the runs and
their cached evaluations, and a resumed build writes the same bytes as an uninterrupted one from the same
runs.

Input is checked before anything is trained or written: the scale, the entry names, ``limit``, and every
``--add`` run (its results exist, hold a reliable-suite verdict, and were evaluated on the table's test
samples).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.leaderboard.entries import (
    attack_command,
    entry_document,
    load_external,
    train_command,
    verdict_flags,
)
from evrobust.pipelines.leaderboard.render import render_markdown
from evrobust.pipelines.leaderboard.spec import LeaderboardSpec, build_leaderboard_spec
from evrobust.pipelines.leaderboard.table import assemble, check_same_samples
from evrobust.safeio import check_write_target, write_text_atomic

__all__ = ["DEFAULT_OUT", "OUTPUT_FILES", "build_leaderboard", "execute_leaderboard"]

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/reproduce"
OUTPUT_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard-robust.png", "leaderboard-pareto.png")


def _load_externals(add: list[str]) -> list[tuple[str, Path, dict[str, Any], dict[str, Any] | None]]:
    """``(key, run, attack document, config)`` of each ``--add`` (results present, a reliable verdict)."""
    out = []
    for path in add:
        run, document, config = load_external(path)
        out.append((f"add:{run.name}", run, document, config))
    keys = [k for k, *_ in out]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UserInputError(f"--add names two runs called {', '.join(k[4:] for k in twice)}; give each run "
                             "once (or rename one directory)")
    return out


def _external_train(run: Path, config: dict[str, Any] | None) -> str | None:
    from evrobust.pipelines.attack.foreign import FOREIGN_KEY

    if not config or FOREIGN_KEY in config or not isinstance(config.get("train"), dict):
        return None
    return train_command(config["train"], str(run))


def _protocol(spec: LeaderboardSpec, test_set: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec.name, "scale": spec.scale, "data": spec.data, "architecture": spec.model_label,
            **spec.evaluation.to_json(), "test_set": {k: test_set[k] for k in ("split", "samples",
                                                                               "labels_sha256")}}


def execute_leaderboard(
    spec: LeaderboardSpec,
    out: str | Path = DEFAULT_OUT,
    *,
    add: list[str] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    stop_after: int | None = None,
    resume: bool = False,
    plots: bool = True,
    runs_from: list[str] | None = None,
) -> Path | None:
    """Train and evaluate every entry of ``spec`` under ``out``; write the table when all are evaluated.

    ``runs_from``: directories whose completed runs of identical options are copied in instead of trained
    (``--runs-from``; :mod:`evrobust.pipelines.reproduce.reuse`).

    Returns:
        The path of ``leaderboard.json``, or None when ``stop_after`` stopped the build first.

    Raises:
        UserInputError: a bad ``--add`` or ``stop_after``, a partly trained run without ``resume``, an entry
            evaluated on other samples than the table's (all before the table files are written).
    """
    from evrobust.pipelines.leaderboard.evaluate import evaluate_run, test_set_of
    from evrobust.pipelines.reproduce.reuse import check_sources
    from evrobust.pipelines.reproduce.runner import ContentDigests, train_run
    from evrobust.pipelines.train.run_dir import read_config, read_metrics

    if stop_after is not None and (isinstance(stop_after, bool) or stop_after < 1):
        raise UserInputError(f"--stop-after must be an integer >= 1 (got {stop_after!r})")
    sources = check_sources(list(runs_from or []))
    root = Path(out)
    target = root / spec.name
    for name in OUTPUT_FILES:
        check_write_target(target / name)  # a link or FIFO where a result goes: refused before any work
    externals = _load_externals(list(add or []))
    test_set = test_set_of(spec.data, spec.evaluation.limit, data_dir)
    for _, run, document, _ in externals:
        check_same_samples(test_set, document, f"--add {run}")
    left = stop_after
    digests = ContentDigests(data_dir)
    entries: list[dict[str, Any]] = []
    flags: dict[str, list[bool]] = {}
    pending: list[str] = []
    for entry in spec.entries:
        run_spec = spec.runs[entry.key]
        if left is not None and left <= 0:
            pending.append(entry.key)
            continue
        run, epochs = train_run(run_spec, root, data_dir=data_dir, device=device, resume=resume,
                                max_epochs=left, runs_from=sources, digests=digests)
        left = None if left is None else left - epochs
        if len(read_metrics(run)) < int(run_spec.train["epochs"]) or (left is not None and left <= 0):
            pending.append(entry.key)
            continue
        document, fresh = evaluate_run(run, spec.evaluation, root, data_dir=data_dir, device=device,
                                       digests=digests)
        left = None if left is None else left - int(fresh)
        check_same_samples(test_set, document, f"entry {entry.key} ({run})")
        label = str(root / "runs" / run_spec.dirname)
        entries.append(entry_document(
            key=entry.key, name=entry.name, paper=entry.paper, run=run, run_label=label,
            config=read_config(run), document=document, train=train_command(run_spec.train, label),
            attack=attack_command(label, spec.evaluation, document), external=False,
        ))
        flags[entry.key] = verdict_flags(document)
    if pending:
        log.info("stopped with %d of %d entries evaluated (%s pending); rerun with --resume to continue",
                 len(entries), len(spec.entries), ", ".join(pending))
        return None
    for key, run, document, config in externals:
        entries.append(entry_document(
            key=key, name=run.name, paper=None, run=run, run_label=str(run), config=config,
            document=document, train=_external_train(run, config),
            attack=attack_command(str(run), None, document), external=True,
        ))
        flags[key] = verdict_flags(document)
    table = assemble(_protocol(spec, test_set), entries, flags)
    return _write(table, target, plots)


def _write(table: dict[str, Any], target: Path, plots: bool) -> Path:
    """Write the JSON, the markdown and (with ``plots``) the figures; the JSON is checked against its schema
    first, so a table that would not read back is never written."""
    from evrobust.safeio.schemas import validate

    validate(table, "leaderboard", str(target / "leaderboard.json"))
    target.mkdir(parents=True, exist_ok=True)
    json_path = target / "leaderboard.json"
    text = json.dumps(table, indent=1, ensure_ascii=False) + "\n"
    markdown = render_markdown(table)
    if plots:
        from evrobust.pipelines.leaderboard.figures import plot_clean_vs_robust, plot_robust

        plot_robust(table, target / "leaderboard-robust.png")
        plot_clean_vs_robust(table, target / "leaderboard-pareto.png")
        markdown += ("\n![robust accuracy](leaderboard-robust.png)\n\n"
                     "![clean vs robust accuracy](leaderboard-pareto.png)\n")
    write_text_atomic(target / "leaderboard.md", markdown)
    write_text_atomic(json_path, text)
    log.info("wrote %s and %s", json_path, target / "leaderboard.md")
    return json_path


def build_leaderboard(
    data: str | None = None,
    scale: str = "smoke",
    *,
    out: str | Path = DEFAULT_OUT,
    limit: int | None = None,
    only: str | None = None,
    add: list[str] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    stop_after: int | None = None,
    resume: bool = False,
    plots: bool = True,
    runs_from: list[str] | None = None,
) -> Path | None:
    """Build the spec and execute it (see the module docstring); returns ``leaderboard.json``'s path, or None
    when ``stop_after`` stopped the build.

    Raises:
        UserInputError: unknown scale or entry, ``limit < 1``, a bad ``--add`` (no results, no reliable
            verdict, other test samples), a partly trained run without ``resume``.
    """
    spec = build_leaderboard_spec(data, scale, limit=limit, only=only, data_dir=data_dir)
    return execute_leaderboard(spec, out, add=add, data_dir=data_dir, device=device, stop_after=stop_after,
                               resume=resume, plots=plots, runs_from=runs_from)
