"""``evrobust demo``: the main job end to end on the embedded data (no download).

For each embedded dataset (scikit-learn digits as images, and its emulated event version ``digits-dvs``) it
trains a small VGG SNN with each defense, attacks every run white-box (the paper's surrogate ensemble) and
black-box (examples crafted on an independently trained vanilla source model), measures the sparsity of each
model's input gradient (``evrobust analyze sparsity``), draws its vulnerability curve over a per-dataset
eps grid (``evrobust analyze vulnerability``: noise, FGSM and PGD-10) and its gradient histogram and
heatmaps, and writes a summary table (``summary.md``) and a full report (``report.md``: the summary table,
the accuracy-vs-eps and defense-comparison plots first, the other plots, then every attack table with its
masking checks).
:func:`findings` turns the measured numbers into the one or two sentences they support.
Runs that already exist with the same config are reused (``evrobust train --resume`` semantics); attacks and
analyses are rerun (a few seconds each).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.pipelines.analyze import run_analysis
from evrobust.pipelines.attack.pipeline import run_attack
from evrobust.pipelines.report.pipeline import write_report
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.pipelines.train.run_dir import read_metrics
from evrobust.safeio import write_text_atomic

log = logging.getLogger(__name__)

DEMO_DATA = ("digits", "digits-dvs")
DEMO_DEFENSES = ("vanilla", "sr", "at", "sr_star")
LAMBDA = 0.01
EPS_GRIDS: dict[str, str] = {
    # 8x8 digits have 17 grey levels (one level = 16/255): eps 8/255 is half a level and barely moves them,
    # so their grid reaches 64/255 (four levels). The emulated events break at a few /255.
    "digits": "0,8/255,16/255,32/255,48/255,64/255",
    "digits-dvs": "0,2/255,4/255,8/255,16/255,32/255",
}
"""Vulnerability-curve eps grid per demo dataset (any other dataset uses the analysis default grid)."""
CURVE_ATTACKS = ("noise", "fgsm", "pgd10", "apgd10")
"""Attacks of the vulnerability curves. PGD-10's fixed 2.55/255 step cannot reach past 25.5/255, so the large
eps of the digits grid also get APGD-CE-10, whose step scales with eps."""
BREAK_SHARE = 0.5
"""A model counts as broken at the first eps where PGD-10 leaves at most this share of its clean accuracy."""
HOLD_MARGIN = 0.05
"""A defense holds where it keeps at least this much more accuracy than vanilla (0.05 = 5 points)."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and attacks. The defaults take a few minutes on 2 CPU cores."""

    out: str = "runs/demo"
    data: tuple[str, ...] = DEMO_DATA
    defenses: tuple[str, ...] = DEMO_DEFENSES
    model: str = "vgg_small"
    width: float = 0.5
    T: int = 4
    epochs: int = 6
    # SR weight for this small model, picked by the measured sweep in docs/_drafts/results.md ("Demo lambda"):
    # the published lambdas (0.008/0.002/0.001) were tuned for VGG-11/WRN-16 on CIFAR; 0.05 cost ~25 points
    # of clean accuracy on digits.
    lam: float = LAMBDA
    limit: int = 200
    # Vulnerability curves, histograms and heatmaps: samples per eps point (each point is a noise, an FGSM, a
    # PGD-10 and an APGD-CE-10 evaluation); never more than ``limit``.
    curve_limit: int = 100
    eps_grids: dict[str, str] = field(default_factory=lambda: dict(EPS_GRIDS))
    attack_batch: int = 100
    data_dir: str | None = None
    device: str = "auto"
    extra_train: dict[str, Any] = field(default_factory=dict)


def _train(cfg: DemoConfig, data: str, defense: str, seed: int, out: Path) -> Path:
    config = TrainConfig(
        data=data,
        data_dir=cfg.data_dir,
        model=cfg.model,
        width=cfg.width,
        T=cfg.T if data == "digits" else None,
        defense=defense,
        lam=cfg.lam if defense in ("sr", "sr_star") else None,
        epochs=cfg.epochs,
        seed=seed,
        device=cfg.device,
        out=str(out),
        resume=out.exists(),
        progress=False,
        **cfg.extra_train,
    )
    return train(config)


def _accuracy(result: dict[str, Any], name: str) -> float | None:
    for attack in result["attacks"]:
        if attack["name"] == name:
            return float(attack["accuracy"])
    return None


def _interval(result: dict[str, Any], name: str) -> list[float] | None:
    for attack in result["attacks"]:
        if attack["name"] == name:
            return attack.get("ci95")
    return None


def run_demo(cfg: DemoConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Train, attack and summarise; return the summary path and its rows."""
    root = Path(cfg.out)
    rows: list[dict[str, Any]] = []
    for data in cfg.data:
        # The black-box source: another architecture seed, trained without any defense.
        source = _train(cfg, data, "vanilla", seed=1, out=root / data / "source-vanilla")
        for defense in cfg.defenses:
            log.info("demo: %s / %s", data, defense)
            run = _train(cfg, data, defense, seed=0, out=root / data / defense)
            common = {
                "suite": "quick",
                "ensemble": "paper",
                "limit": cfg.limit,
                "batch_size": cfg.attack_batch,
                "device": cfg.device,
                "data_dir": cfg.data_dir,
            }
            white = run_attack(run, mode="whitebox", **common)
            black = run_attack(run, mode="blackbox", source=source, **common)
            analysis = {"batch_size": cfg.attack_batch, "device": cfg.device, "data_dir": cfg.data_dir}
            sparsity = run_analysis(run, "sparsity", limit=cfg.limit, **analysis)
            few = min(cfg.curve_limit, cfg.limit)
            curve = run_analysis(run, "vulnerability", limit=few, eps_grid=cfg.eps_grids.get(data),
                                 attacks=CURVE_ATTACKS, **analysis)
            run_analysis(run, "distribution", limit=few, **analysis)
            run_analysis(run, "heatmap", limit=few, count=4, **analysis)
            grad = sparsity["targets"]["two_class"]["mean"]
            metrics = read_metrics(run)
            rows.append(
                {
                    "data": data,
                    "defense": defense,
                    "val": metrics[-1].get("val_acc") if metrics else None,
                    "clean": _accuracy(white, "clean"),
                    "fgsm": _accuracy(white, "fgsm"),
                    "pgd10": _accuracy(white, "pgd10"),
                    "bb_pgd10": _accuracy(black, "pgd10"),
                    "n": white["samples"],
                    "ci95": {"clean": _interval(white, "clean"), "fgsm": _interval(white, "fgsm"),
                             "pgd10": _interval(white, "pgd10"), "bb_pgd10": _interval(black, "pgd10")},
                    "grad_l1": grad["l1"],
                    "grad_density": grad["density"],
                    "failed_checks": [
                        c["name"] for c in white["checks"] + black["checks"] if not c["passed"]
                    ],
                    "run": str(run),
                    "curve_eps": curve["eps"],
                    "curve_eps_text": curve["eps_text"],
                    "curves": curve["curves"],
                }
            )
    path = root / "summary.md"
    write_text_atomic(path, render_summary(cfg, rows))
    report = write_report([r["run"] for r in rows], root, preface=findings(rows) + paired_findings(rows))
    log.info("report written to %s", report)
    return path, rows


def _pct(value: float | None, ci95: list[float] | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" + ("" if ci95 is None else f" [{100 * ci95[0]:.1f}, {100 * ci95[1]:.1f}]")


def paired_findings(rows: list[dict[str, Any]]) -> list[str]:
    """Per dataset, one sentence from the paired test (exact McNemar on the white-box per-sample flags,
    worst case over the suite's attacks): the most robust defense against vanilla and against the runner-up.
    A defense is called more robust only at p < 0.05. Rows need ``run`` (a run directory holding
    ``attack-whitebox.json``); datasets without a vanilla run or two defenses are left out."""
    from evrobust.pipelines.common.paired import (
        WORST_CASE,
        compare_attack_documents,
        load_attack_file,
        robust_flags,
    )

    sentences = []
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == data and r.get("run")]
        documents = {r["defense"]: load_attack_file(r["run"]) for r in mine}
        if "vanilla" not in documents or len(documents) < 2:
            continue
        worst = {d: robust_flags(doc, WORST_CASE) for d, doc in documents.items()}
        ranked = sorted((d for d in worst if d != "vanilla"), key=lambda d: -sum(worst[d]))
        best = ranked[0]
        others = ["vanilla"] + ([ranked[1]] if len(ranked) > 1 else [])
        heads = []
        for other in others:
            result = compare_attack_documents(documents[best], documents[other], best, other)
            heads.append((other, next(r for r in result["rows"] if r["headline"])))
        parts = [f"against {other} ({100 * h['b']['accuracy']:.1f} %): {h['verdict']}" for other, h in heads]
        kept = heads[0][1]["a"]
        eps = documents[best].get("eps_text", "?")
        sentences.append(
            f"On {data}, paired on the {len(worst[best])} attacked samples (white box, eps {eps}, worst case "
            f"over the suite's attacks), {best} keeps {100 * kept['accuracy']:.1f} % "
            f"[{100 * kept['ci95'][0]:.1f}, {100 * kept['ci95'][1]:.1f}]; " + "; ".join(parts) + "."
        )
    return sentences


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def render_summary(cfg: DemoConfig, rows: list[dict[str, Any]]) -> str:
    """Markdown summary: accuracy (%) clean and under attack at eps 8/255, per dataset and defense."""
    lines = [
        "# evrobust demo: robust accuracy (%) at eps 8/255",
        "",
        f"Model `{cfg.model}` (width {cfg.width}), {cfg.epochs} epochs, SR lambda {cfg.lam}; "
        f"first {cfg.limit} test samples; every accuracy with its 95 % Clopper–Pearson interval. White box: "
        "the paper's surrogate ensemble (triangle 1, sigmoid 4, "
        "atan 2, rate); a sample counts as robust only if it survives every member. Black box: PGD-10 "
        "examples crafted (with the same ensemble) on an independently trained vanilla source model.",
        "",
        "Gradient columns: mean l1 norm of grad_x f_y (two-class target, what SR penalises) and its density "
        "(share of input elements with a non-zero gradient) over the same samples.",
        "",
        "| data | defense | clean | FGSM | PGD-10 | black-box PGD-10 | grad l1 | grad density | "
        "failed masking checks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        checks = ", ".join(r["failed_checks"]) or "none"
        ci = r.get("ci95") or {}
        lines.append(
            f"| {r['data']} | {r['defense']} | {_pct(r['clean'], ci.get('clean'))} | "
            f"{_pct(r['fgsm'], ci.get('fgsm'))} | {_pct(r['pgd10'], ci.get('pgd10'))} | "
            f"{_pct(r['bb_pgd10'], ci.get('bb_pgd10'))} | {_num(r.get('grad_l1'))} | "
            f"{_num(r.get('grad_density'))} | {checks} |"
        )
    lines.append("")
    lines += [sentence + "\n" for sentence in findings(rows)]
    lines += [sentence + "\n" for sentence in paired_findings(rows)]
    return "\n".join(lines)


def _at(row: dict[str, Any], attack: str, index: int) -> float | None:
    curve = row.get("curves", {}).get(attack)
    return None if curve is None or index >= len(curve) else curve[index]


_ATTACK_NAMES = {"pgd10": "PGD-10", "apgd10": "APGD-CE-10", "fgsm": "FGSM", "noise": "uniform noise"}
_WORST = "worst"


def _worst_curve(row: dict[str, Any]) -> list[float | None]:
    """Per eps, the lowest accuracy over the row's gradient attacks (>= the per-sample worst case)."""
    curves = [c for name, c in row.get("curves", {}).items() if name != "noise"]
    worst: list[float | None] = []
    for values in zip(*curves, strict=True):
        present = [v for v in values if v is not None]
        worst.append(min(present) if present else None)
    return worst


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per dataset, computed from the vulnerability curves: where vanilla breaks, who holds.

    At each eps the strongest gradient attack of the curves is taken (the lowest accuracy over FGSM, PGD-10,
    APGD-CE-10, whichever were run; uniform noise is not an attack on the gradient). Vanilla "breaks" at the
    first eps > 0 where that leaves it at most :data:`BREAK_SHARE` of its accuracy at eps 0; there every
    other defense that keeps at least :data:`HOLD_MARGIN` more than vanilla "holds", and the best one is named
    with its accuracy. Datasets without a vanilla curve starting at eps 0 are left out. Rows carry
    ``curve_eps`` (fractions), ``curve_eps_text`` and ``curves`` (name -> accuracy fractions per eps), as
    :func:`run_demo` returns them.
    """
    gradient = [n for r in rows for n in r.get("curves", {}) if n != "noise"]
    labels = list(dict.fromkeys(_ATTACK_NAMES.get(n, n) for n in gradient))
    name = labels[0] if len(labels) == 1 else f"the strongest of {', '.join(labels[:-1])} and {labels[-1]}"
    rows = [r | {"curves": {_WORST: _worst_curve(r)}} for r in rows if r.get("curves", {}).keys() - {"noise"}]
    attack = _WORST
    sentences = []
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == data and r.get("curves", {}).get(attack)]
        vanilla = next((r for r in mine if r["defense"] == "vanilla"), None)
        if vanilla is None or not vanilla["curve_eps"] or vanilla["curve_eps"][0] != 0:
            continue
        eps_text = vanilla["curve_eps_text"]
        start = _at(vanilla, attack, 0) or 0.0
        broken = next((i for i, e in enumerate(vanilla["curve_eps"]) if e > 0 and start > 0
                       and (_at(vanilla, attack, i) or 0.0) <= BREAK_SHARE * start), None)
        if broken is None:
            last = len(eps_text) - 1
            sentences.append(
                f"On {data}, {name} never halves vanilla's accuracy on this grid ({_pct(start)}% at eps 0, "
                f"{_pct(_at(vanilla, attack, last))}% at {eps_text[last]}), so the grid cannot show a "
                "defense holding where vanilla breaks."
            )
            continue
        base = _at(vanilla, attack, broken) or 0.0
        head = (f"On {data}, {name} at eps {eps_text[broken]} drops vanilla from {_pct(start)}% to "
                f"{_pct(base)}%")
        others = [(r["defense"], _at(r, attack, broken)) for r in mine if r is not vanilla]
        others = [(d, v) for d, v in others if v is not None]
        if not others:
            sentences.append(head + ".")
            continue
        best, value = max(others, key=lambda item: item[1])
        holding = [d for d, v in others if v - base >= HOLD_MARGIN]
        if not holding:
            sentences.append(head + f"; no defense keeps {100 * HOLD_MARGIN:.0f} points more there (best: "
                             f"{best} {_pct(value)}%).")
        elif len(holding) == 1:
            sentences.append(head + f"; only {best} holds, with {_pct(value)}% ({100 * (value - base):+.1f} "
                             "points).")
        else:
            sentences.append(head + f"; {', '.join(holding)} hold at least {100 * HOLD_MARGIN:.0f} points "
                             f"above it, {best} best with {_pct(value)}% "
                             f"({100 * (value - base):+.1f} points).")
    return sentences
