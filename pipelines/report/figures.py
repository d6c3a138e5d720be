"""The figures of ``evrobust report`` that many runs support: what each one shows, and what it needs.

:func:`draw_figures` takes the runs :func:`~evrobust.pipelines.report.runs.load_runs` read and writes every
figure they hold data for, beside ``report.md``, returning a note for each one it skipped and why. Each
``fig_*`` function picks the numbers for one figure out of the runs' documents (plus the paper's published
points, :func:`paper_point`) and hands them to :mod:`evrobust.pipelines.report.plots`.

The two modules differ in what they know: :mod:`evrobust.pipelines.report.plots` only draws (matplotlib, plain
JSON-like data in, one PNG out; it knows nothing of runs or the report), while this module knows the run
directories' documents and the report: which figures exist, which data they need, the skip notes, the
captions and the ``plot-*.png`` file names.

Accuracies in the JSON documents are fractions in [0, 1]; figures show %.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evrobust.errors import UserInputError
from evrobust.pipelines.common.paper import DEFENSE_NAMES, PAPER_NAMES, TABLE3_ABLATION, published
from evrobust.pipelines.report.runs import (
    RELIABLE,
    RunData,
    attack_entries,
    reliable_accuracy,
    summary_rows,
)

log = logging.getLogger(__name__)

PLOT_PREFIX = "plot-"
"""Every figure the report draws from runs is ``<report dir>/plot-<name>.png``. A figure an earlier report
drew and this one does not is removed by the report's manifest (:mod:`evrobust.pipelines.report.outputs`),
never by its name: a ``plot-*.png`` the report did not write is left alone."""

ATTACK_ORDER = ("noise", "fgsm", "pgd10", "apgd10", "reliable")
_MARKERS = ("o", "s", "^", "D", "v", "P")


class SkipPlot(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A figure whose data the runs do not hold; the message is the note printed in the report."""


# ------------------------------------------------------------------------------------------ paper points


PAPER_EPS = 8 / 255


def paper_point(dataset: str, defense: str, attack: str) -> tuple[float, str] | None:
    """The paper's accuracy (%) at eps 8/255 for a (dataset, defense, attack) panel, with its source label.

    CIFAR10-DVS: Table 2 (white-box FGSM and PGD-50, VGG-11). CIFAR-10/100: Table 4 (uniform noise) and
    Table 3 (FGSM, PGD-30; WRN-16). The PGD points come from longer PGD runs than our PGD-10 curve, so they
    sit at or below it when the numbers agree.
    """
    # The paper's tables 2-4 have rows for these four defenses only (Table 3's ablation).
    if defense not in TABLE3_ABLATION:
        return None
    name = DEFENSE_NAMES[defense]
    if dataset == "cifar10dvs":
        header = {"fgsm": "W FGSM", "pgd10": "W PGD50"}.get(attack)
        value = None if header is None else published("table2", (name,), header)
        return None if value is None else (value, f"paper {header.removeprefix('W ')}, {name}")
    if dataset in ("cifar10", "cifar100"):
        if attack == "noise":
            value = published("table4", (PAPER_NAMES[dataset],), name)
            return None if value is None else (value, f"paper noise, {name}")
        header = {"fgsm": "FGSM", "pgd10": "PGD30"}.get(attack)
        if header is not None:
            value = published("table3", (PAPER_NAMES[dataset], *TABLE3_ABLATION[defense]), header)
            return None if value is None else (value, f"paper {header}, {name}")
    return None


# ------------------------------------------------------------------------------------------ figures


def _datasets(runs: Sequence[RunData]) -> list[str]:
    return list(dict.fromkeys(r.dataset for r in runs))


def fig_eps_curves(runs: Sequence[RunData], path: Path) -> Path:
    """Accuracy vs eps: rows = datasets, columns = attacks; one line per defense (vulnerability analysis)."""
    from evrobust.pipelines.report.plots import ATTACK_TITLES, plot_eps_curves

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
    from evrobust.pipelines.report.plots import plot_defense_comparison

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
        for entry in attack_entries(run.attacks.get("whitebox")):
            if entry.get("name") not in ("clean", RELIABLE) and len(entry.get("members") or {}) > 1:
                names.append(str(entry["name"]))
    if not names:
        return None
    return "pgd10" if "pgd10" in names else names[0]


def fig_ensemble_members(runs: Sequence[RunData], path: Path) -> Path:
    """Share of samples each surrogate of the white-box ensemble misclassifies alone, per defense."""
    from evrobust.pipelines.report.plots import plot_ensemble_members

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
            for e in attack_entries(run.attacks.get("whitebox"))
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
    from evrobust.pipelines.report.analysis_plots import plot_distribution
    from evrobust.pipelines.report.plot_style import defense_color

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
    from evrobust.pipelines.report.analysis_plots import plot_heatmaps

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
    from evrobust.pipelines.report.analysis_plots import plot_frame_heatmaps

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


def fig_landscape(runs: Sequence[RunData], dataset: str, path: Path) -> Path:
    """Loss vs radius of every run of ``dataset`` with a landscape analysis, one colour per defense."""
    from evrobust.pipelines.report.masking_plots import plot_landscape_compare

    mine = [r for r in runs if r.dataset == dataset and "landscape" in r.analyses]
    if not mine:
        raise SkipPlot(
            f"loss landscape ({dataset}): no `analysis-landscape.json` "
            "(`evrobust analyze landscape --run RUN`)"
        )
    return plot_landscape_compare([r.analyses["landscape"] for r in mine], path,
                                  labels=[r.defense for r in mine],
                                  title=f"{dataset}: cross-entropy around the test samples by defense")


def fig_scatter(runs: Sequence[RunData], path: Path) -> Path:
    """Clean vs worst white-box accuracy per run, coloured by gradient l1, one marker per dataset."""
    from evrobust.pipelines.report.plots import plot_accuracy_scatter

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
    from evrobust.pipelines.report.plots import plot_training_curves

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
    bad document costs one picture, never the report. A figure that cannot be written (a link standing at its
    path, a full disk) stops the report with one line. Files of an earlier report are not touched here: the
    caller removes those its manifest lists (:class:`evrobust.pipelines.report.outputs.OutputRecord`).
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
        if any("landscape" in r.analyses for r in runs if r.dataset == dataset):
            plans.append(
                (
                    f"loss-landscape-{slug}",
                    f"{dataset}: loss vs radius along gradient, random and adversarial directions",
                    False,
                    lambda p, d=dataset: fig_landscape(runs, d, p),
                )
            )
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
    if any(r.event_attacks for r in runs):
        from evrobust.pipelines.report.event_plots import fig_event_budget, fig_event_example

        plans += [
            ("event-budget", "Robust accuracy against the event budget (events changed or moved per sample)",
             False, lambda p: fig_event_budget(runs, p)),
            ("event-example", "Where an event attack added (red) or deleted (blue) events, on one sample",
             False, lambda p: fig_event_example(runs, p)),
        ]
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
        except UserInputError:
            raise  # the output cannot be written (a ValueError too, but not a malformed result)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            log.warning("figure %s not drawn: %s: %s", name, type(exc).__name__, exc)
            notes.append(
                f"{caption}: not drawn, the results it needs are malformed ({type(exc).__name__}: {exc})"
            )
    figures.sort(key=lambda f: not f.lead)
    return figures, notes
