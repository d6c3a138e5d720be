"""The run-level part of ``evrobust report``: one summary table and the figures that many runs support.

:func:`load_runs` reads run directories (``config.json`` + ``attack-<mode>.json`` + ``analysis-<kind>.json``
+ ``metrics.jsonl``); :func:`summary_rows` / :func:`summary_table` turn them into one row per run (clean,
worst white-box, worst black-box accuracy, the reliable cascade and the paper protocol's overestimate when
the attack JSON holds them, gradient l1, failed masking checks); :func:`draw_figures` writes every figure the
runs hold data for, beside ``report.md``, and returns a note for each one it skipped and why.

Accuracies in the JSON documents are fractions in [0, 1]; tables and figures show %.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.reproduce.tables import published
from evrobust.pipelines.runs import read_metrics

log = logging.getLogger(__name__)

PLOT_PREFIX = "plot-"
"""Every figure the report draws from runs is ``<report dir>/plot-<name>.png``; stale ones are removed."""

DEFENSE_ORDER = ("vanilla", "at", "rat", "sr", "sr_star")
ATTACK_ORDER = ("noise", "fgsm", "pgd10", "apgd10", "reliable")
RELIABLE = "reliable"
_MARKERS = ("o", "s", "^", "D", "v", "P")


class SkipPlot(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A figure whose data the runs do not hold; the message is the note printed in the report."""


@dataclass
class RunData:
    """What one run directory holds for the report (documents as read from disk)."""

    path: Path
    config: dict[str, Any]
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> attack-<mode>.json
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> analysis-<kind>.json
    metrics: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""

    @property
    def dataset(self) -> str:
        return str((self.config.get("data") or {}).get("dataset", "?"))

    @property
    def defense(self) -> str:
        return str((self.config.get("defense") or {}).get("name", "?"))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`UserInputError` (one line) if unreadable or not an object."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise UserInputError(f"{path} is not a JSON object")
    return document


def _need(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise UserInputError(f"{path} has an unexpected layout: {what}; rerun the command that wrote it")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_checks(checks: Any, path: Path, where: str) -> None:
    _need(isinstance(checks, list), path, f"{where} 'checks' is not a list")
    for c in checks:
        _need(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("passed"), bool),
              path, f"a masking check in {where} lacks a string 'name' or a boolean 'passed'")


def check_config_layout(config: dict[str, Any], path: Path) -> None:
    """Fields of config.json the report reads: ``model``, ``data``, ``defense`` are objects or absent."""
    for key in ("model", "data", "defense"):
        _need(config.get(key) is None or isinstance(config[key], dict), path, f"'{key}' is not an object")


def check_attack_layout(document: dict[str, Any], path: Path) -> None:
    """The fields of an ``attack-<mode>.json`` the report reads, with their types (UserInputError otherwise).

    A document of the wrong shape (hand-edited, or from another tool) is one error line naming the file, never
    a traceback halfway through the report.
    """
    for key in ("mode", "ensemble", "eps_text"):
        _need(isinstance(document.get(key), str), path, f"'{key}' is missing or not a string")
    _need(isinstance(document.get("samples"), int) and not isinstance(document["samples"], bool), path,
          "'samples' is missing or not an integer")
    attacks = document.get("attacks")
    _need(isinstance(attacks, list), path, "'attacks' is missing or not a list")
    for entry in attacks:
        _need(isinstance(entry, dict), path, "an entry of 'attacks' is not an object")
        name = entry.get("name")
        _need(isinstance(name, str) and isinstance(entry.get("label"), str), path,
              "an attack lacks a string 'name' or 'label'")
        _need(_is_number(entry.get("accuracy")), path, f"attack {name!r} has no numeric 'accuracy'")
        members = entry.get("members", {})
        _need(isinstance(members, dict) and all(isinstance(v, dict) for v in members.values()), path,
              f"attack {name!r} has malformed 'members'")
        _check_checks(entry.get("checks", []), path, f"attack {name!r}")
    _check_checks(document.get("checks", []), path, "the document")
    over = document.get("overestimate")
    _need(over is None or isinstance(over, dict) and all(_is_number(v) for v in over.values()), path,
          "'overestimate' is not an object of numbers")


def load_run(run: Path) -> RunData:
    """Read one run directory (its finished attack and analysis results and its metrics)."""
    data = RunData(path=run, config=read_json(run / "config.json"))
    check_config_layout(data.config, run / "config.json")
    for p in sorted(run.glob("attack-*.json")):
        if not p.name.endswith(".partial.json"):
            document = read_json(p)
            check_attack_layout(document, p)
            data.attacks[str(document.get("mode") or p.stem.removeprefix("attack-"))] = document
    for p in sorted(run.glob("analysis-*.json")):
        document = read_json(p)
        data.analyses[str(document.get("kind") or p.stem.removeprefix("analysis-"))] = document
    data.metrics = read_metrics(run)
    return data


def load_runs(runs: Sequence[Path]) -> list[RunData]:
    """Read runs and give each a short unique label (``dataset/defense``, the directory name on a clash)."""
    loaded = [load_run(r) for r in runs]
    base = [f"{r.dataset}/{r.defense}" for r in loaded]
    for r, label in zip(loaded, base, strict=True):
        r.label = label if base.count(label) == 1 else f"{label} ({r.path.name})"
    return sorted(loaded, key=_order)


def _order(run: RunData) -> tuple[str, int, str]:
    rank = DEFENSE_ORDER.index(run.defense) if run.defense in DEFENSE_ORDER else len(DEFENSE_ORDER)
    return run.dataset, rank, run.label


# ------------------------------------------------------------------------------------------ numbers


def _entries(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [] if result is None else [e for e in result.get("attacks", []) if isinstance(e, dict)]


def _accuracy(result: dict[str, Any] | None, name: str) -> float | None:
    for entry in _entries(result):
        if entry.get("name") == name and entry.get("accuracy") is not None:
            return float(entry["accuracy"])
    return None


def _worst(result: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """Lowest accuracy over the table's attacks (clean and the reliable cascade excluded) and its label."""
    best: tuple[float | None, str | None] = (None, None)
    for entry in _entries(result):
        if entry.get("name") in ("clean", RELIABLE) or not entry.get("in_table", True):
            continue
        if entry.get("accuracy") is None:
            continue
        if best[0] is None or float(entry["accuracy"]) < best[0]:
            best = (float(entry["accuracy"]), str(entry.get("label", entry.get("name"))))
    return best


def overestimate(run: RunData) -> dict[str, float] | None:
    """The agreed ``overestimate`` key of the run's attack JSON (white box first), or None."""
    for mode in ("whitebox", *[m for m in run.attacks if m != "whitebox"]):
        value = (run.attacks.get(mode) or {}).get("overestimate")
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items() if isinstance(v, int | float)}
    return None


def reliable_accuracy(run: RunData) -> float | None:
    """Accuracy under the reliable cascade: its attack entry, else ``overestimate.reliable``."""
    for result in run.attacks.values():
        value = _accuracy(result, RELIABLE)
        if value is not None:
            return value
    over = overestimate(run)
    return None if over is None else over.get("reliable")


def grad_l1(run: RunData) -> float | None:
    """Mean l1 norm of grad_x f_y (two-class target) from the sparsity analysis, else the last epoch's."""
    mean = (((run.analyses.get("sparsity") or {}).get("targets") or {}).get("two_class") or {}).get("mean")
    if isinstance(mean, dict) and mean.get("l1") is not None:
        return float(mean["l1"])
    for record in reversed(run.metrics):
        if record.get("val_grad_l1") is not None:
            return float(record["val_grad_l1"])
    return None


def summary_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """One row per run with attack results: accuracies as fractions, None where the run lacks them."""
    rows = []
    for run in runs:
        if not run.attacks:
            continue
        white = run.attacks.get("whitebox")
        clean = _accuracy(white, "clean")
        if clean is None:
            clean = next(
                (v for v in (_accuracy(r, "clean") for r in run.attacks.values()) if v is not None), None
            )
        white_acc, white_name = _worst(white)
        black_acc, black_name = _worst(run.attacks.get("blackbox"))
        failed = sorted(
            {
                str(c.get("name"))
                for r in run.attacks.values()
                for c in r.get("checks", [])
                if isinstance(c, dict) and not c.get("passed", True)
            }
        )
        over = overestimate(run)
        rows.append(
            {
                "label": run.label,
                "data": run.dataset,
                "defense": run.defense,
                "clean": clean,
                "white": white_acc,
                "white_attack": white_name,
                "black": black_acc,
                "black_attack": black_name,
                "reliable": reliable_accuracy(run),
                "overestimate": None if over is None else over.get("difference"),
                "paper_protocol": None if over is None else over.get("paper"),
                "grad_l1": grad_l1(run),
                "failed_checks": failed,
                "eps": sorted({str(r.get("eps_text")) for r in run.attacks.values() if r.get("eps_text")}),
            }
        )
    return rows


def pct(value: float | None) -> str:
    """A fraction as a % with one decimal, ``–`` for missing."""
    return "–" if value is None else f"{100 * value:.1f}"


def summary_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the summary table; reliable / overestimate columns only when some run has them."""
    reliable = any(r["reliable"] is not None or r["overestimate"] is not None for r in rows)
    eps = sorted({e for r in rows for e in r["eps"]})
    headers = ["data", "defense", "clean", "white-box (worst attack)", "black-box (worst attack)"]
    if reliable:
        headers += ["reliable", "overestimate (points)"]
    headers += ["grad l1", "failed masking checks"]
    lines = [
        f"Accuracy (%) at eps {', '.join(eps) or '?'} (L-inf). White box / black box: the lowest accuracy "
        "over the suite's attacks, the attack named in brackets."
        + (
            " Reliable: the reliable attack cascade; overestimate: how many points the paper protocol's "
            "lowest accuracy lies above it."
            if reliable
            else ""
        )
        + " Grad l1: mean l1 norm of grad_x f_y (two-class target).",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]

    def named(value: float | None, name: str | None) -> str:
        return pct(value) + (f" ({name})" if value is not None and name else "")

    for r in rows:
        cells = [
            r["data"],
            r["defense"],
            pct(r["clean"]),
            named(r["white"], r["white_attack"]),
            named(r["black"], r["black_attack"]),
        ]
        if reliable:
            over = r["overestimate"]
            cells += [pct(r["reliable"]), "–" if over is None else f"{100 * over:+.1f}"]
        cells += [
            "–" if r["grad_l1"] is None else f"{r['grad_l1']:.3g}",
            ", ".join(r["failed_checks"]) or "none",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


# ------------------------------------------------------------------------------------------ paper points


_PAPER_DEFENSE = {"vanilla": "Vanilla", "at": "AT", "sr": "SR", "sr_star": "SR*"}
_TABLE3_ROW = {"vanilla": ("×", "×"), "at": ("×", "✓"), "sr": ("✓", "×"), "sr_star": ("✓", "✓")}
_CIFAR = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
PAPER_EPS = 8 / 255


def paper_point(dataset: str, defense: str, attack: str) -> tuple[float, str] | None:
    """The paper's accuracy (%) at eps 8/255 for a (dataset, defense, attack) panel, with its source label.

    CIFAR10-DVS: Table 2 (white-box FGSM and PGD-50, VGG-11). CIFAR-10/100: Table 4 (uniform noise) and
    Table 3 (FGSM, PGD-30; WRN-16). The PGD points come from longer PGD runs than our PGD-10 curve, so they
    sit at or below it when the numbers agree.
    """
    if dataset == "cifar10dvs" and defense in _PAPER_DEFENSE:
        header = {"fgsm": "W FGSM", "pgd10": "W PGD50"}.get(attack)
        value = None if header is None else published("table2", (_PAPER_DEFENSE[defense],), header)
        return (
            None
            if value is None
            else (value, f"paper {header.removeprefix('W ')}, {_PAPER_DEFENSE[defense]}")
        )
    if dataset in _CIFAR and defense in _PAPER_DEFENSE:
        if attack == "noise":
            value = published("table4", (_CIFAR[dataset],), _PAPER_DEFENSE[defense])
            return None if value is None else (value, f"paper noise, {_PAPER_DEFENSE[defense]}")
        header = {"fgsm": "FGSM", "pgd10": "PGD30"}.get(attack)
        if header is not None:
            value = published("table3", (_CIFAR[dataset], *_TABLE3_ROW[defense]), header)
            return None if value is None else (value, f"paper {header}, {_PAPER_DEFENSE[defense]}")
    return None


# ------------------------------------------------------------------------------------------ figures


def _datasets(runs: Sequence[RunData]) -> list[str]:
    return list(dict.fromkeys(r.dataset for r in runs))


def fig_eps_curves(runs: Sequence[RunData], path: Path) -> Path:
    """Accuracy vs eps: rows = datasets, columns = attacks; one line per defense (vulnerability analysis)."""
    from evrobust.pipelines.plots import ATTACK_TITLES, plot_eps_curves

    with_curves = [r for r in runs if isinstance((r.analyses.get("vulnerability") or {}).get("curves"), dict)]
    if not with_curves:
        raise SkipPlot(
            "accuracy vs eps: no run holds `analysis-vulnerability.json` "
            "(`evrobust analyze vulnerability --run RUN --eps 0,4/255,8/255,16/255,32/255`)"
        )
    attacks = [
        a for a in ATTACK_ORDER if any(a in r.analyses["vulnerability"]["curves"] for r in with_curves)
    ]
    attacks += [a for r in with_curves for a in r.analyses["vulnerability"]["curves"] if a not in attacks]
    attacks = list(dict.fromkeys(attacks))
    if RELIABLE not in attacks and any(reliable_accuracy(r) is not None for r in with_curves):
        attacks.append(RELIABLE)
    panels = []
    for row, dataset in enumerate(_datasets(with_curves)):
        for col, attack in enumerate(attacks):
            lines, points = [], []
            for run in (r for r in with_curves if r.dataset == dataset):
                vul = run.analyses["vulnerability"]
                curve = vul["curves"].get(attack)
                if curve is not None:
                    lines.append(
                        {"label": run.defense, "defense": run.defense, "eps": vul["eps"], "accuracy": curve}
                    )
                elif attack == RELIABLE and reliable_accuracy(run) is not None:
                    eps = float((run.attacks.get("whitebox") or {}).get("eps", PAPER_EPS))
                    lines.append(
                        {
                            "label": run.defense,
                            "defense": run.defense,
                            "eps": [eps],
                            "accuracy": [reliable_accuracy(run)],
                        }
                    )
                paper = paper_point(dataset, run.defense, attack)
                if paper is not None:
                    points.append(
                        {"label": paper[1], "eps": PAPER_EPS, "accuracy": paper[0], "defense": run.defense}
                    )
            if lines:
                panels.append(
                    {
                        "title": f"{dataset}: {ATTACK_TITLES.get(attack, attack)}",
                        "row": row,
                        "col": col,
                        "lines": lines,
                        "points": points,
                    }
                )
    return plot_eps_curves(panels, path)


def fig_defense_comparison(runs: Sequence[RunData], path: Path) -> Path:
    """Clean / white-box / black-box / reliable accuracy per defense, one panel per dataset."""
    from evrobust.pipelines.plots import plot_defense_comparison

    rows = summary_rows(runs)
    groups = []
    for dataset in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == dataset]
        eps = sorted({e for r in mine for e in r["eps"]})
        groups.append(
            {
                "title": dataset,
                "subtitle": f"eps {', '.join(eps)}; worst attack per mode",
                "defenses": [
                    r["defense"] if r["label"] == f"{dataset}/{r['defense']}" else r["label"] for r in mine
                ],
                "bars": {
                    "clean": [r["clean"] for r in mine],
                    "white-box": [r["white"] for r in mine],
                    "black-box": [r["black"] for r in mine],
                    "reliable": [r["reliable"] for r in mine],
                },
            }
        )
    if not any(v is not None for g in groups for series in g["bars"].values() for v in series):
        raise SkipPlot("defense comparison: no run holds a clean or attacked accuracy")
    return plot_defense_comparison(groups, path)


def _member_attack(runs: Sequence[RunData]) -> str | None:
    """The attack whose per-member results are drawn: PGD-10 if present, else the first multi-member one."""
    names: list[str] = []
    for run in runs:
        for entry in _entries(run.attacks.get("whitebox")):
            if entry.get("name") not in ("clean", RELIABLE) and len(entry.get("members") or {}) > 1:
                names.append(str(entry["name"]))
    if not names:
        return None
    return "pgd10" if "pgd10" in names else names[0]


def fig_ensemble_members(runs: Sequence[RunData], path: Path) -> Path:
    """Share of samples each surrogate of the white-box ensemble misclassifies alone, per defense."""
    from evrobust.pipelines.plots import plot_ensemble_members

    attack = _member_attack(runs)
    if attack is None:
        raise SkipPlot(
            "ensemble members: no white-box result of an attack with more than one ensemble member "
            "(`evrobust attack --run RUN --mode whitebox --ensemble paper`)"
        )
    groups = []
    for dataset in _datasets(runs):
        entries = [
            (run, e)
            for run in runs
            if run.dataset == dataset
            for e in _entries(run.attacks.get("whitebox"))
            if e.get("name") == attack and len(e.get("members") or {}) > 1
        ]
        if not entries:
            continue
        members = list(dict.fromkeys(m for _, e in entries for m in e["members"]))
        broken = {
            m: [
                None
                if (e["members"].get(m) or {}).get("accuracy") is None
                else 1.0 - float(e["members"][m]["accuracy"])
                for _, e in entries
            ]
            for m in members
        }
        label = next((str(e.get("label", attack)) for _, e in entries), attack)
        groups.append(
            {
                "title": f"{dataset}: {label} per surrogate (misclassified alone)",
                "defenses": [run.defense for run, _ in entries],
                "members": members,
                "broken": broken,
                "ensemble": [1.0 - float(e["accuracy"]) for _, e in entries],
            }
        )
    return plot_ensemble_members(groups, path)


def fig_histograms(runs: Sequence[RunData], dataset: str, path: Path) -> Path:
    """Gradient-component histograms of every run of ``dataset`` that has a distribution analysis."""
    from evrobust.pipelines.plots import defense_color, plot_distribution

    mine = [r for r in runs if r.dataset == dataset and "distribution" in r.analyses]
    if not mine:
        raise SkipPlot(
            f"gradient histogram ({dataset}): no `analysis-distribution.json` "
            "(`evrobust analyze distribution --run RUN`)"
        )
    return plot_distribution(
        [r.analyses["distribution"] for r in mine],
        path,
        labels=[r.defense for r in mine],
        colors=[defense_color(r.defense) for r in mine],
        title=f"{dataset}: distribution of grad_x f_y (Fig. 4)",
    )


def _heatmap_runs(runs: Sequence[RunData], dataset: str) -> tuple[list[RunData], list[RunData]]:
    mine = [r for r in runs if r.dataset == dataset and "heatmap" in r.analyses]
    if not mine:
        return [], []
    indices = mine[0].analyses["heatmap"].get("indices")
    same = [r for r in mine if r.analyses["heatmap"].get("indices") == indices]
    return same, [r for r in mine if r not in same]


def fig_heatmaps(runs: Sequence[RunData], dataset: str, path: Path) -> Path:
    """Inputs and |grad| heatmaps of every run of ``dataset`` with a heatmap analysis of the same samples."""
    from evrobust.pipelines.plots import plot_heatmaps

    same, other = _heatmap_runs(runs, dataset)
    if not same:
        raise SkipPlot(
            f"gradient heatmaps ({dataset}): no `analysis-heatmap.json` "
            "(`evrobust analyze heatmap --run RUN`)"
        )
    if other:
        log.warning("heatmaps of %s left out: other samples than %s", [r.label for r in other], same[0].label)
    return plot_heatmaps([r.analyses["heatmap"] for r in same], path, labels=[r.defense for r in same])


def fig_frames(runs: Sequence[RunData], dataset: str, path: Path) -> Path:
    """Per-polarity, per-step heatmaps of one event sample for every run of ``dataset`` that kept them."""
    from evrobust.pipelines.plots import plot_frame_heatmaps

    same, _ = _heatmap_runs(runs, dataset)
    framed = [
        r for r in same if "input_frames" in r.analyses["heatmap"] and "grad_frames" in r.analyses["heatmap"]
    ]
    if not framed:
        raise SkipPlot(
            f"event-frame heatmaps ({dataset}): the heatmap analyses hold no per-polarity frames "
            "(event data analysed by this version of `evrobust analyze heatmap` do)"
        )
    return plot_frame_heatmaps(
        [r.analyses["heatmap"] for r in framed], path, labels=[r.defense for r in framed]
    )


def fig_scatter(runs: Sequence[RunData], path: Path) -> Path:
    """Clean vs worst white-box accuracy per run, coloured by gradient l1, one marker per dataset."""
    from evrobust.pipelines.plots import plot_accuracy_scatter

    datasets = _datasets(runs)
    points = []
    for row, run in zip(summary_rows(runs), [r for r in runs if r.attacks], strict=True):
        if row["clean"] is None or row["white"] is None or row["grad_l1"] is None:
            continue
        points.append(
            {
                "label": row["label"],
                "clean": 100 * row["clean"],
                "robust": 100 * row["white"],
                "l1": row["grad_l1"],
                "marker": _MARKERS[datasets.index(run.dataset) % len(_MARKERS)],
            }
        )
    if len(points) < 2:
        raise SkipPlot(
            "clean vs robust scatter: fewer than two runs with clean and white-box accuracy and a "
            "gradient l1 (`evrobust analyze sparsity --run RUN`)"
        )
    return plot_accuracy_scatter(points, path, robust_label="worst white-box accuracy (%)")


def fig_training(runs: Sequence[RunData], path: Path) -> Path:
    """Loss and validation accuracy per epoch (``metrics.jsonl``) of every run that has them."""
    from evrobust.pipelines.plots import plot_training_curves

    styles = ("-", "--", ":", "-.")
    datasets = _datasets(runs)
    curves = [
        {
            "label": r.label,
            "defense": r.defense,
            "records": r.metrics,
            "linestyle": styles[datasets.index(r.dataset) % len(styles)],
            "marker": _MARKERS[datasets.index(r.dataset) % len(_MARKERS)],
        }
        for r in runs
        if r.metrics
    ]
    if not curves:
        raise SkipPlot("training curves: no run holds `metrics.jsonl`")
    return plot_training_curves(curves, path)


def _pgd_reach_note(runs: Sequence[RunData]) -> str:
    """A caption note when a PGD curve goes past the eps its fixed step can reach in its steps."""
    from evrobust.attacks.registry import PGD_STEP

    reach = {"pgd10": 10 * PGD_STEP}
    for run in runs:
        vul = run.analyses.get("vulnerability") or {}
        for name, limit in reach.items():
            if name in (vul.get("curves") or {}) and max(vul.get("eps") or [0.0]) > limit:
                return (f"PGD-10 takes the paper's fixed {255 * PGD_STEP:.2f}/255 steps, so past "
                        f"{255 * limit:.1f}/255 it cannot reach the edge of the eps-ball and reads too high "
                        "there; FGSM and APGD scale their steps with eps.")
    return ""


@dataclass
class ReportFigure:
    """One drawn report figure: its file, the alt text / caption, whether it leads the report, a caveat."""

    path: Path
    caption: str
    lead: bool = False
    note: str = ""


def draw_figures(runs: Sequence[RunData], directory: Path) -> tuple[list[ReportFigure], list[str]]:
    """Draw every figure the runs support into ``directory``; return them (lead figures first) and skip notes.

    A figure whose data are missing is skipped with a note; one whose data are malformed too (logged), so a
    bad document costs one picture, never the report. ``plot-*.png`` files of an earlier report that were not
    drawn again are removed, so the report links exactly the files that exist.
    """
    plans: list[tuple[str, str, bool, Callable[[Path], Path]]] = [
        (
            "accuracy-vs-eps",
            "Accuracy vs eps per defense (paper's points hollow where published)",
            True,
            lambda p: fig_eps_curves(runs, p),
        ),
        (
            "defense-comparison",
            "Clean, white-box, black-box and reliable accuracy per defense",
            True,
            lambda p: fig_defense_comparison(runs, p),
        ),
        (
            "ensemble-members",
            "Which surrogate of the white-box ensemble breaks which share",
            False,
            lambda p: fig_ensemble_members(runs, p),
        ),
        (
            "accuracy-scatter",
            "Clean vs robust accuracy, coloured by input-gradient l1",
            False,
            lambda p: fig_scatter(runs, p),
        ),
    ]
    for dataset in _datasets(runs):
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)
        plans += [
            (
                f"gradient-histogram-{slug}",
                f"{dataset}: gradient-component histogram (Fig. 4)",
                False,
                lambda p, d=dataset: fig_histograms(runs, d, p),
            ),
            (
                f"gradient-heatmaps-{slug}",
                f"{dataset}: inputs and |grad| heatmaps (Fig. 5)",
                False,
                lambda p, d=dataset: fig_heatmaps(runs, d, p),
            ),
        ]
        if any(
            (r.analyses.get("heatmap") or {}).get("input_kind") == "frames"
            for r in runs
            if r.dataset == dataset
        ):
            plans.append(
                (
                    f"gradient-frames-{slug}",
                    f"{dataset}: event polarities over time and |grad| (Fig. 5)",
                    False,
                    lambda p, d=dataset: fig_frames(runs, d, p),
                )
            )
    plans.append(
        (
            "training-curves",
            "Training loss and validation accuracy per epoch",
            False,
            lambda p: fig_training(runs, p),
        )
    )
    figures: list[ReportFigure] = []
    notes: list[str] = []
    for name, caption, lead, draw in plans:
        path = directory / f"{PLOT_PREFIX}{name}.png"
        try:
            note = _pgd_reach_note(runs) if name == "accuracy-vs-eps" else ""
            figures.append(ReportFigure(draw(path), caption, lead, note))
        except SkipPlot as skip:
            notes.append(str(skip))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            log.warning("figure %s not drawn: %s: %s", name, type(exc).__name__, exc)
            notes.append(
                f"{caption}: not drawn, the results it needs are malformed ({type(exc).__name__}: {exc})"
            )
    drawn = {f.path.name for f in figures}
    for stale in directory.glob(f"{PLOT_PREFIX}*.png"):
        if stale.name not in drawn:
            stale.unlink(missing_ok=True)
    figures.sort(key=lambda f: not f.lead)
    return figures, notes
