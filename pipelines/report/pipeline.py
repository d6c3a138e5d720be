"""``evrobust report``: one markdown report (plus PNG plots) from run directories or reproduction outputs.

Inputs, any mix of:

- a reproduction directory (``<out>/<name>/`` holding ``results.json``) or a reproduction root (``<out>/``
  with several of them): each becomes a section with its tables in the paper's layout, our number first and
  the published one in parentheses, failed masking checks marked ``†`` beside the number they put in doubt
  and listed under the table, the claim the experiment checks, and its plots;
- a run directory (``config.json``): its attack results (``attack-<mode>.json``) and analyses
  (``analysis-<kind>.json``) with their masking checks and the analysis PNGs.

``report.md`` is written into the single input directory, or into the inputs' common parent directory
(``--out`` overrides). Plots: matplotlib with the Agg backend; the analysis PNGs are linked, not redrawn.

Every input is read through :mod:`evrobust.safeio` and validated by kind (``run_config``, ``attack_result``,
``analysis``, ``results``), so a damaged or hostile file is one line naming it and its field, before any of
it is used. The output directory is written under the lock every writer takes
(:func:`evrobust.preprocess.locks.exclusive`): a second report into it stops with one line naming the first.
The report records what it wrote in ``.report-manifest.json`` and removes only files an earlier manifest
lists (:mod:`evrobust.pipelines.report.outputs`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evrobust.errors import UserInputError
from evrobust.pipelines.common.paper import CLAIMS, published
from evrobust.pipelines.common.results import RESULTS_FILE, load_results
from evrobust.safeio import write_text_atomic

if TYPE_CHECKING:
    from evrobust.pipelines.report.outputs import OutputRecord
    from evrobust.pipelines.report.runs import RunData

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
CHECK_MARK = "†"


# ------------------------------------------------------------------------------------------ inputs


def _classify(path: Path) -> list[tuple[str, Path]]:
    """``[("repro" | "run" | "found", dir)]`` for one input path; UserInputError if it holds none of them.

    ``found`` marks a run discovered under a directory of runs (``runs/demo``): one without attack or analysis
    results (a black-box source model, say) is left out quietly instead of stopping the report.
    """
    if not path.exists():
        raise UserInputError(f"{path} does not exist; give run directories or `evrobust reproduce` outputs")
    if path.is_file() and path.name == RESULTS_FILE:
        return [("repro", path.parent)]
    if path.is_dir() and (path / RESULTS_FILE).is_file():
        return [("repro", path)]
    if path.is_dir() and (path / "config.json").is_file():
        return [("run", path)]
    if path.is_dir():
        found = sorted(p.parent for p in path.glob(f"*/{RESULTS_FILE}"))
        if found:
            return [("repro", p) for p in found]
        runs = sorted(p.parent for p in path.rglob("config.json")
                      if not any(part.startswith(".") for part in p.relative_to(path).parts))
        if runs:
            return [("found", p) for p in runs]
    raise UserInputError(
        f"{path} holds neither a run (config.json) nor reproduction results ({RESULTS_FILE}); "
        "give a run directory from `evrobust train` or an output of `evrobust reproduce`"
    )


def _run_artifacts(run: Path, loaded: dict[Path, RunData] | None = None) -> RunData:
    """The run's documents (read once per report: ``loaded`` keeps them by path), validated.

    Raises:
        UserInputError: a document is unreadable or invalid, or the run holds no attack or analysis result.
    """
    from evrobust.pipelines.report.runs import load_run

    data = loaded.get(run) if loaded is not None else None
    if data is None:
        # Before reading a byte: a run without results is named as such, whatever its config holds.
        if not _has_results(run):
            raise UserInputError(
                f"run {run} has no attack or analysis results to report; run `evrobust attack --run {run}` "
                "(and/or `evrobust analyze`) first"
            )
        data = load_run(run)
        if loaded is not None:
            loaded[run] = data
    return data


# ------------------------------------------------------------------------------------------ values


def _dig(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def _attack_entry(result: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if result is None:
        return None
    for entry in result.get("attacks") or []:
        if entry["name"] == name:
            return entry
    return None


def cell_value(results: dict[str, Any], cell: dict[str, str]) -> tuple[float | None, list[dict[str, Any]]]:
    """The value of one table cell (accuracies in %) and the failed masking checks about it."""
    source, ref, item = cell["source"], cell["ref"], cell["item"]
    if source == "attack":
        entry = _attack_entry(results["attacks"].get(ref), item)
        if entry is None or entry.get("accuracy") is None:
            return None, []
        failed = [c for c in entry.get("checks") or [] if not c.get("passed", True)]
        # Accuracies are float32 means (0.01 is stored as 0.0099999998): rounded to 6 decimals of a percent,
        # 1 % stays 1.0 and is not rendered as a sub-unit number ("1" instead of "1.0").
        return round(100.0 * float(entry["accuracy"]), 6), failed
    if source == "metric":
        value = (results["runs"].get(ref) or {}).get(item)
        return (None if value is None else float(value)), []
    if source == "analysis":
        value = _dig(results["analyses"].get(ref), item)
        return (None if value is None else float(value)), []
    raise ValueError(f"unknown cell source {source!r}")


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1 or value == 0:
        return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{value:.3g}"


# ------------------------------------------------------------------------------------------ tables


def render_table(results: dict[str, Any], table: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Markdown lines of one table (ours, paper in parentheses) and footnotes for failed checks."""
    label_headers, headers = list(table["label_headers"]), list(table["headers"])
    lines = [f"**{table['title']}**", "", "| " + " | ".join(label_headers + headers) + " |",
             "|" + "---|" * (len(label_headers) + len(headers))]
    notes: list[str] = []
    for row in table["rows"]:
        cells = []
        for header in headers:
            cell = row["cells"].get(header)
            if cell is None:
                cells.append("")
                continue
            value, failed = cell_value(results, cell)
            text = _fmt(value)
            paper_row = row.get("paper")
            paper = published(table["name"], None if paper_row is None else tuple(paper_row), header)
            if paper is not None:
                text += f" ({_fmt(paper)})"
            if failed:
                text += CHECK_MARK
                where = " / ".join(row["labels"]) + f", {header}"
                notes += [f"{CHECK_MARK} {where}: check `{c['name']}` failed — {c.get('detail', '')}"
                          for c in failed]
            cells.append(text)
        lines.append("| " + " | ".join(list(row["labels"]) + cells) + " |")
    return lines, notes


def _checks_summary(results: dict[str, Any]) -> list[str]:
    """One line per attack result: passed/failed masking checks (the failed ones named)."""
    lines = []
    for key, result in results["attacks"].items():
        checks = result.get("checks") or []
        if not checks:
            continue
        failed = [c for c in checks if not c["passed"]]
        status = "all passed" if not failed else "FAILED: " + "; ".join(
            f"`{c['name']}`" + (f" ({c['subject']})" if c.get("subject") else "")
            + f" — {c.get('detail', '')}"
            for c in failed)
        lines.append(f"- `{key}`: {len(checks)} checks, {status}")
    return lines


# ------------------------------------------------------------------------------------------ plots


def _table_rows(results: dict[str, Any], table: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in table["rows"]:
        values: dict[str, Any] = {"label": " ".join(row["labels"])}
        for header, cell in row["cells"].items():
            values[header] = cell_value(results, cell)[0]
        out.append(values)
    return out


# ------------------------------------------------------------------------------------------ sections


def _link(target: str | Path, base: Path) -> str:
    return os.path.relpath(Path(target).resolve(), base.resolve())


def _analysis_lines(key: str, a: dict[str, Any], base: Path) -> list[str]:
    kind = a.get("kind")
    lines = [f"- `{key}` ({kind}, {a.get('samples')} samples, clean accuracy "
             f"{_fmt(100 * a['clean_accuracy']) if a.get('clean_accuracy') is not None else '–'}%)"]
    if kind == "sparsity":
        mean = _dig(a, "targets.two_class.mean") or {}
        lines.append(f"  - two-class target: l0 {_fmt(mean.get('l0'))}, l1 {_fmt(mean.get('l1'))}, "
                     f"l2 {_fmt(mean.get('l2'))}, density {_fmt(mean.get('density'))}")
    elif kind == "vulnerability":
        eps_text = a.get("eps_text") or []
        for name, curve in (a.get("curves") or {}).items():
            pts = ", ".join(f"{e}: {_fmt(100 * v)}" for e, v in zip(eps_text, curve, strict=False))
            lines.append(f"  - {name}: {pts}")
    elif kind == "theorem":
        for r in a.get("results") or []:
            mean = r.get("mean") or {}
            lines.append(
                f"  - eps {r.get('eps_text')}: measured rho_adv/rho_rand {_fmt(mean.get('ratio'))}, "
                f"estimate 3*l1²/l2² {_fmt(mean.get('estimate'))}, upper 3*l0 {_fmt(mean.get('upper'))}; "
                f"inside [3, 3*l0] for {_fmt(None if r.get('in_bounds') is None else 100 * r['in_bounds'])}%"
                f" of {r.get('defined')} samples, below the estimate for "
                f"{_fmt(None if r.get('below_estimate') is None else 100 * r['below_estimate'])}%"
            )
    elif kind == "distribution":
        total = a.get("total") or 0
        zero = a.get("zero_count") or 0
        lines.append(f"  - {total} components, {_fmt(100 * zero / total if total else None)}% exactly zero, "
                     f"std {_fmt(a.get('std'))}, max |g| {_fmt(a.get('abs_max'))}")
    elif kind in ("landscape", "fidelity"):
        from evrobust.pipelines.report.masking import analysis_lines

        lines += analysis_lines(a)
    failed = [c for c in a.get("checks") or [] if not c.get("passed", True)]
    for c in failed:
        lines.append(f"  - {CHECK_MARK} check `{c['name']}` failed ({c.get('subject')}): {c.get('detail')}")
    for png in a.get("plots") or []:
        # os.path.isfile, not Path.is_file: a name the file system refuses (too long) is no file, not a crash.
        if os.path.isfile(png):
            lines.append(f"  - ![{kind}]({_link(png, base)})")
    return lines


def _lambda(label: str) -> float | None:
    """The lambda a sweep row's label ends with (``"0.05"``, ``"SR lambda 0.05"``); None if it does not."""
    parts = label.split()
    try:
        value = float(parts[-1]) if parts else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def repro_section(directory: Path, base: Path, record: OutputRecord | None = None) -> list[str]:
    """Markdown section of one reproduction output (plots written into ``directory``, each one recorded in
    ``record`` when given)."""
    results = load_results(directory)
    spec = results["spec"]
    name = spec["name"]
    lines = [f"## {spec['title']} — `{name}`, {spec['scale']} scale", ""]
    if name in CLAIMS:
        lines += [f"Paper's claim: {CLAIMS[name]}", ""]
    lines += [f"- {n}" for n in spec.get("notes") or []]
    lines.append("")
    tables = spec.get("tables") or []
    for table in tables:
        body, notes = render_table(results, table)
        lines += body + [""]
        if any(published(table["name"], tuple(r["paper"]), h) is not None
               for r in table["rows"] if r.get("paper") is not None for h in table["headers"]):
            lines += ["Ours first, the paper's published number in parentheses.", ""]
        lines += notes + ([""] if notes else [])
        if table["name"] == "table7":
            lines += _cost_ratios(results, table)
    if name in ("fig3", "fig6", "tradeoff") and tables:
        from evrobust.pipelines.report import plots

        rows = _table_rows(results, tables[0])
        # A row whose label does not end with a number (a hand-edited table) is left out of the figure.
        lam_rows = [r | {"lambda": lam} for r in rows
                    if (name in ("fig3", "fig6") or r["label"].startswith("SR lambda"))
                    and (lam := _lambda(r["label"])) is not None]
        if lam_rows:
            lam_rows.sort(key=lambda r: r["lambda"])
            png = plots.plot_lambda_sweep(lam_rows, directory / "lambda.png")
            if record is not None:
                record.add(png)
            lines += [f"![lambda sweep]({_link(png, base)})", ""]
        if name == "tradeoff":
            from evrobust.pipelines.report.tradeoff import summarize, tradeoff_points

            png = plots.plot_tradeoff(rows, directory / "tradeoff.png")
            if record is not None:
                record.add(png)
            lines += [f"![trade-off]({_link(png, base)})", ""]
            summary = summarize(tradeoff_points(results))
            lines += [
                f"Spearman rank correlations over {summary['points']:.0f} runs: gradient l1 vs PGD10 "
                f"{_fmt(summary['l1_vs_robust'])} (the sparsity thesis predicts < 0), gradient l1 vs clean "
                f"{_fmt(summary['l1_vs_clean'])} (the trade-off predicts > 0), clean vs PGD10 "
                f"{_fmt(summary['clean_vs_robust'])}.",
                "",
            ]
    if name == "masking":
        from evrobust.pipelines.report.masking import repro_lines

        lines += repro_lines(results, directory, lambda png: _link(png, base), record)
    if results["analyses"]:
        lines += ["Analyses:", ""]
        for key, a in results["analyses"].items():
            lines += _analysis_lines(key, a, base)
        lines.append("")
    checks = _checks_summary(results)
    if checks:
        lines += ["Masking checks (DESIGN §6):", ""] + checks + [""]
    return lines


def _cost_ratios(results: dict[str, Any], table: dict[str, Any]) -> list[str]:
    if not table["rows"]:
        return []
    row = table["rows"][0]
    ours = {h: cell_value(results, c)[0] for h, c in row["cells"].items()}
    base = ours.get("Vanilla")
    paper_base = published("table7", (), "Vanilla")
    if not base or not paper_base:
        return []
    parts = [f"{h} {v / base:.2f}x (paper {published('table7', (), h) / paper_base:.2f}x)"
             for h, v in ours.items() if v is not None and published("table7", (), h) is not None]
    return ["Cost relative to Vanilla: " + ", ".join(parts), ""]


def run_section(run: Path, base: Path, nested: bool = False, loaded: dict[Path, RunData] | None = None
                ) -> list[str]:
    """Markdown section of one run directory: attack tables with checks, analyses with plots.

    ``loaded``: runs already read by this report (by path), reused instead of reading them again.
    """
    data = _run_artifacts(run, loaded)
    config = data.config
    model = config.get("model") or {}
    defense = config.get("defense") or {}
    level = "###" if nested else "##"
    lines = [f"{level} Run `{run}`", "",
             f"{model.get('name', '?')} on {(config.get('data') or {}).get('dataset', '?')}, "
             f"defense {defense.get('name', '?')}", ""]
    for result in data.attack_list:
        lines += [f"**{result['mode']}** ({result['ensemble']} ensemble, eps {result['eps_text']}, "
                  f"{result['samples']} samples)", "",
                  "| attack | accuracy (%) | masking checks |", "|---|---|---|"]
        for entry in result["attacks"]:
            failed = [c["name"] for c in entry.get("checks") or [] if not c["passed"]]
            mark = CHECK_MARK if failed else ""
            lines.append(f"| {entry['label']} | {_fmt(100 * entry['accuracy'])}{mark} | "
                         f"{', '.join(failed) or 'ok'} |")
        lines.append("")
        over = result.get("overestimate")
        if isinstance(over, dict) and {"paper", "reliable", "difference"} <= set(over):
            lines += [f"Overestimate: the paper protocol's lowest accuracy {_fmt(100 * over['paper'])} %, "
                      "the "
                      f"reliable cascade {_fmt(100 * over['reliable'])} %: the paper protocol overestimates "
                      f"robust accuracy by {100 * over['difference']:+.1f} points.", ""]
        failed_all = [c for c in result.get("checks") or [] if not c["passed"]]
        lines += [f"- {CHECK_MARK} `{c['name']}` ({c.get('subject')}): {c.get('detail')}" for c in failed_all]
        lines.append("")
    for _threat, result in sorted(data.event_attacks.items()):
        from evrobust.pipelines.common.event_tables import render_event_markdown

        # the event result's own table, under the run's heading (its title names the threat)
        lines += [level + "#" + line[1:] if line.startswith("# ") else line
                  for line in render_event_markdown(result).splitlines()] + [""]
    for a in data.analysis_list:
        lines += _analysis_lines(f"analysis-{a.get('kind')}", a, base)
    lines.append("")
    return lines


def runs_overview(runs: Sequence[Path], directory: Path, record: OutputRecord | None = None,
                  loaded: dict[Path, RunData] | None = None) -> list[str]:
    """The report's head for runs: the summary table, the two leading figures, the other figures, skip notes.

    Every figure written is recorded in ``record`` (when given); ``loaded``: runs already read, by path.

    Raises:
        UserInputError: none of ``runs`` holds an attack result.
    """
    from evrobust.pipelines.report.comparisons import comparison_lines
    from evrobust.pipelines.report.figures import draw_figures
    from evrobust.pipelines.report.runs import load_runs, summary_rows, summary_table

    data = load_runs(runs, loaded)
    rows = summary_rows(data)
    if not rows:
        shown = ", ".join(str(r) for r in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise UserInputError(f"no attack results in {shown}; run `evrobust attack --run RUN` first")
    figures, notes = draw_figures(data, directory)
    for figure in figures:
        if record is not None:
            record.add(figure.path)
    lines = ["## Summary", ""] + summary_table(rows) + comparison_lines(data)
    lead = [f for f in figures if f.lead]
    rest = [f for f in figures if not f.lead]
    for figure in lead:
        lines += [f"![{figure.caption}]({_link(figure.path, directory)})", "",
                  f"*{figure.caption}.*" + (f" {figure.note}" if figure.note else ""), ""]
    if rest or notes:
        lines += ["## Plots", ""]
    for figure in rest:
        lines += [f"### {figure.caption}", "", f"![{figure.caption}]({_link(figure.path, directory)})", ""]
        lines += [figure.note, ""] if figure.note else []
    if notes:
        lines += ["Plots not drawn:", ""] + [f"- {note}" for note in notes] + [""]
    return lines


def write_report(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    preface: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` (and plots) for run directories and/or reproduction outputs; returns its path.

    Layout: for runs, a summary table and the two leading figures (accuracy vs eps, defense comparison), the
    other figures, then one section per run with its long per-attack tables; then one section per
    reproduction output. Figures are PNGs beside ``report.md``, linked relatively. ``preface``: paragraphs
    printed under the title (the demo's findings).

    The output directory is written under its lock (``exclusive(directory, "evrobust report")``), and what the
    report wrote there is recorded in its manifest; files an earlier report wrote and this one did not are
    removed, nothing else (:mod:`evrobust.pipelines.report.outputs`).

    Raises:
        UserInputError: no inputs, a path that holds neither a run nor reproduction results, a run given by
            name without any attack / analysis results, runs none of which holds an attack result, an input
            document that is unreadable or invalid, or another report writing into the same directory
            (:class:`~evrobust.preprocess.locks.LockedError`, naming it).
    """
    from evrobust.pipelines.report.outputs import OutputRecord
    from evrobust.preprocess.locks import exclusive

    if not inputs:
        raise UserInputError("give at least one run directory or reproduction output to report on")
    items: list[tuple[str, Path]] = []
    for p in inputs:
        items += _classify(Path(p))
    loaded: dict[Path, RunData] = {}
    for kind, path in items:
        if kind == "run":
            # a run given by name must hold results: raises the one-line error before anything is written
            _run_artifacts(path, loaded)
    found = [p for k, p in items if k == "found" and _has_results(p)]
    if any(k == "found" for k, _ in items) and not found and not any(k != "found" for k, _ in items):
        raise UserInputError(f"no attack results in the runs under {', '.join(str(p) for p in inputs)}; "
                             "run `evrobust attack --run RUN` first")
    runs = list(dict.fromkeys([p for k, p in items if k == "run"] + found))
    if out is None:
        dirs = [Path(p).resolve() for p in inputs]
        directory = dirs[0] if len(dirs) == 1 else Path(os.path.commonpath(dirs))
        if directory.is_file():
            directory = directory.parent
    else:
        directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive(directory, "evrobust report"):
        record = OutputRecord(directory)
        try:
            target = _write(items, runs, directory, preface, record, loaded)
        except BaseException:
            record.abandon()
            raise
        record.commit()
    log.info("wrote %s", target)
    return target


def _write(items: Sequence[tuple[str, Path]], runs: Sequence[Path], directory: Path, preface: Sequence[str],
           record: OutputRecord, loaded: dict[Path, RunData]) -> Path:
    """The body of :func:`write_report`, under the directory's lock: every file written goes to ``record``."""
    lines = ["# evrobust report", ""]
    for paragraph in preface:
        lines += [paragraph, ""]
    if runs:
        lines += runs_overview(runs, directory, record, loaded)
        lines += ["## Per-run results", ""]
        for run in runs:
            lines += run_section(run, directory, nested=True, loaded=loaded)
    for kind, path in items:
        if kind == "repro":
            lines += repro_section(path, directory, record)
    target = directory / REPORT_FILE
    write_text_atomic(target, "\n".join(lines) + "\n")
    record.add(target)
    return target


def _has_results(run: Path) -> bool:
    return any(not p.name.endswith(".partial.json") for p in run.glob("attack-*.json")) or any(
        run.glob("analysis-*.json"))
