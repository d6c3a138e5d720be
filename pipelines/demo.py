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
RELIABLE_DATA = ("digits-dvs",)
"""Datasets whose runs the demo also evaluates with the converged reliable suite (its cascade, convergence
certificate and attack-failure indicators): the event data, where eps 8/255 breaks the vanilla model."""
RELIABLE_LIMIT = 30
"""Test samples of the converged evaluation per run (its cost: docs/results.md, "Demo")."""
RELIABLE_BUDGET = {"queries": 1000}
"""The demo's query budget: Square 3 draws x 1,000 queries and RayS 1,000 (``evrobust attack`` defaults
to 5,000). The convergence certificate doubles it (Square x2, x4, x8) until a doubling breaks at most one
more sample, so a budget too small for a model shows as "not converged", never as a robust number."""
RELIABLE_FILE = "evaluate-reliable"
"""``<run>/evaluate-reliable.json`` and ``.md``: the demo's converged evaluation of a run, kept apart from
``attack-whitebox.json`` (the paper-protocol table on more samples) so that neither overwrites the other."""


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
    # The converged reliable evaluation of each run of ``reliable_data``: on the first ``reliable_limit`` test
    # samples, as many as keep `make demo` within about 6 minutes on 2 idle cores (docs/results.md, "Demo").
    reliable_data: tuple[str, ...] = RELIABLE_DATA
    reliable_limit: int = RELIABLE_LIMIT
    # Budgets of that evaluation (``steps``, ``queries``, ``max_doublings`` of ``evrobust attack``; those not
    # given take its defaults: 100 steps, 5000 queries, 3 doublings). Tests shrink them.
    reliable_budget: dict[str, int] = field(default_factory=lambda: dict(RELIABLE_BUDGET))
    # Processes that run those evaluations side by side (1: in this process, one after another).
    reliable_workers: int = 2
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


def converged_evaluation(cfg: DemoConfig, run: Path, data: str, defense: str) -> dict[str, Any]:
    """Evaluate ``run`` with the converged reliable suite on its first ``cfg.reliable_limit`` test samples.

    The paper protocol, the reliable cascade, the convergence certificate (up to 3 doublings) and the
    attack-failure indicators, white box at eps 8/255 with the paper ensemble, through
    :func:`evrobust.pipelines.attack.evaluate.evaluate` (the same loop as ``evrobust attack --suite
    reliable``). Writes ``<run>/evaluate-reliable.json`` (an ``attack_result`` document that ``evrobust
    compare`` reads) and ``.md``.

    Returns:
        ``{"n", "paper", "paper_ci95", "accuracy", "ci95", "converged", "doublings", "path"}``: accuracies as
        fractions of the ``n`` samples; ``paper`` is the lowest paper-protocol accuracy.
    """
    import torch

    from evrobust.pipelines.attack.evaluate import evaluate
    from evrobust.pipelines.attack.inputs import (
        iter_test_batches,
        load_evaluated_run,
        open_test_split,
        resolve_device,
        run_test_store,
    )

    model, config = load_evaluated_run(run, "best", resolve_device(cfg.device), "demo")
    dataset, n = open_test_split(run_test_store(config, cfg.data_dir), cfg.reliable_limit)
    batches = list(iter_test_batches(dataset, n, max(n, 1), 0))
    x = torch.cat([b[1] for b in batches])
    y = torch.cat([b[2] for b in batches])
    result = evaluate(model, x, y, suite="reliable", batch_size=cfg.attack_batch, dataset=data,
                      defense=defense, name=str(run), **cfg.reliable_budget)
    path = run / f"{RELIABLE_FILE}.json"
    result.to_json(path)
    write_text_atomic(run / f"{RELIABLE_FILE}.md", result.to_markdown())
    reliable = result.document["reliable"]
    over = result.document["overestimate"]
    return {
        "n": int(reliable["n"]),
        "paper": over["paper"],
        "paper_ci95": over["paper_ci95"],
        "accuracy": reliable["accuracy"],
        "ci95": reliable["ci95"],
        "converged": reliable.get("converged"),
        "doublings": len(reliable.get("doublings") or []),
        "path": str(path),
    }


def _one_thread() -> None:
    """Worker start-up: one torch thread per process, so that two workers share two cores without
    oversubscribing them (two-thread workers on two cores would make their OpenMP threads wait on each other,
    the slowdown measured in docs/results.md, "CIFAR-10 converged evidence")."""
    import torch

    torch.set_num_threads(1)


def _converged_job(cfg: DemoConfig, run: str, data: str, defense: str) -> dict[str, Any]:
    return converged_evaluation(cfg, Path(run), data, defense)


def converged_evaluations(cfg: DemoConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`converged_evaluation` of each row's run, in ``cfg.reliable_workers`` processes at once.

    The evaluations are independent and each is mostly sequential (Square's and RayS's queries come one
    iteration after another), so on a 2-core machine they are spread
    over two processes of one thread each. Each result is the same as in-process: the flags depend on the
    seed, the samples and the batch size, not on the thread count (tested).
    """
    jobs = [(str(r["run"]), r["data"], r["defense"]) for r in rows]
    workers = min(cfg.reliable_workers, len(jobs))
    if workers <= 1:
        return [_converged_job(cfg, *job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    log.info("demo: %d converged evaluations in %d processes", len(jobs), workers)
    # Longest first, so that the two workers end together: a run's cost is mostly its cascade, which
    # attacks the samples the quick suite's PGD-10 left robust, so that accuracy orders the costs.
    order = sorted(range(len(jobs)), key=lambda i: -float(rows[i].get("pgd10") or 0.0))
    # spawn, not fork: a forked child would inherit torch's thread pools and any lock held at fork time
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = {i: pool.submit(_converged_job, cfg, *jobs[i]) for i in order}
        return [futures[i].result() for i in range(len(jobs))]


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
                    "reliable": None,
                }
            )
    converged = [r for r in rows if r["data"] in cfg.reliable_data and cfg.reliable_limit > 0]
    for row, result in zip(converged, converged_evaluations(cfg, converged), strict=True):
        row["reliable"] = result
    path = root / "summary.md"
    write_text_atomic(path, render_summary(cfg, rows))
    preface = converged_findings(rows) + findings(rows) + paired_findings(rows)
    report = write_report([r["run"] for r in rows], root, preface=preface)
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
    from evrobust.pipelines.common.paired import load_attack_file

    def documents(mine: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["defense"]: load_attack_file(r["run"]) for r in mine if r.get("run")}

    def opening(data: str, n: int, eps: str, best: str, kept: str) -> str:
        return (f"On {data}, paired on the {n} attacked samples (white box, eps {eps}, worst case over the "
                f"suite's attacks), {best} keeps {kept}")

    return _paired_sentences(rows, documents, opening)


def converged_findings(rows: list[dict[str, Any]]) -> list[str]:
    """The demo's headline: per dataset evaluated to convergence (rows with a ``reliable`` entry, see
    :func:`converged_evaluation`), the most robust defense's converged reliable accuracy and the paired test
    (exact McNemar on the reliable verdict's per-sample flags) against vanilla and against the runner-up.
    A number the certificate did not converge reads "≤ X (not converged)": it is an upper bound."""
    from evrobust.pipelines.common.paired import load_attack_file

    def documents(mine: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["defense"]: load_attack_file(r["reliable"]["path"]) for r in mine if r.get("reliable")}

    def opening(data: str, n: int, eps: str, best: str, kept: str) -> str:
        return (f"On {data}, evaluated to convergence (the reliable suite and its certificate, white box, "
                f"eps {eps}, paired on the first {n} test samples), {best} keeps {kept}")

    return _paired_sentences(rows, documents, opening)


def _paired_sentences(rows: list[dict[str, Any]], documents_of: Any, opening: Any) -> list[str]:
    """Per dataset: ``opening(data, n, eps, best, kept)`` then the paired verdicts of the best defense (the
    most samples robust under the documents' headline verdict) against vanilla and the runner-up."""
    from evrobust.pipelines.common.paired import compare_attack_documents, headline_key, robust_flags

    sentences = []
    for data in dict.fromkeys(r["data"] for r in rows):
        documents = documents_of([r for r in rows if r["data"] == data])
        if "vanilla" not in documents or len(documents) < 2:
            continue
        robust = {d: robust_flags(doc, headline_key(doc)) for d, doc in documents.items()}
        ranked = sorted((d for d in robust if d != "vanilla"), key=lambda d: -sum(robust[d]))
        best = ranked[0]
        others = ["vanilla"] + ([ranked[1]] if len(ranked) > 1 else [])
        results = [compare_attack_documents(documents[best], documents[o], best, o) for o in others]
        heads = [next(r for r in result["rows"] if r["headline"]) for result in results]
        parts = [f"against {other} ({_bound(h['b'], result['b']['converged'])}): {h['verdict']}"
                 for other, h, result in zip(others, heads, results, strict=True)]
        kept = heads[0]["a"]
        interval = f"[{100 * kept['ci95'][0]:.1f}, {100 * kept['ci95'][1]:.1f}]"
        kept_text = f"{_bound(kept, results[0]['a']['converged'])} {interval}"
        eps = documents[best].get("eps_text", "?")
        head = opening(data, len(robust[best]), eps, best, kept_text)
        sentences.append(head + "; " + "; ".join(parts) + ".")
    return sentences


def _bound(side: dict[str, Any], converged: bool | None) -> str:
    """``"48.0 %"``, or ``"≤ 3.0 % (not converged)"`` where the certificate did not converge (the reliable
    number is then an upper bound)."""
    value = f"{100 * side['accuracy']:.1f} %"
    return value if converged is not False else f"≤ {value} (not converged)"


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
    lines += converged_table(rows)
    lines += [sentence + "\n" for sentence in converged_findings(rows)]
    lines += [sentence + "\n" for sentence in findings(rows)]
    lines += [sentence + "\n" for sentence in paired_findings(rows)]
    return "\n".join(lines)


def reliable_cell(reliable: dict[str, Any]) -> str:
    """``"56.7 [37.4, 74.5]"`` of a :func:`converged_evaluation` result, or ``"≤ ... (not converged)"``."""
    value = _pct(reliable["accuracy"], reliable["ci95"])
    return value if reliable["converged"] is not False else f"≤ {value} (not converged)"


def converged_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: per run with a converged evaluation, the paper protocol beside the reliable number
    after the certificate, both with intervals, on the same samples (nothing where no run has one)."""
    mine = [r for r in rows if r.get("reliable")]
    if not mine:
        return []
    lines = [
        "## Evaluated to convergence (white box, eps 8/255)",
        "",
        "The same runs under the reliable suite: the paper protocol (the lowest of FGSM, PGD-10/30/50 and "
        "APGD-CE 100 over the paper ensemble), then the reliable cascade on the samples it leaves standing "
        "(SA-PGD and APGD-T under ASSG, APGD-CE over the wide ensemble, Square, RayS), then the convergence "
        "certificate (the strongest stages again at doubled budgets until a doubling breaks at most "
        "max(1, 0.5 % of n) more samples; at most 3 doublings). \"≤ X (not converged)\" is an upper bound. "
        f"Each run's full result: `{RELIABLE_FILE}.json` / `.md` in its directory (`evrobust compare` "
        "reads them).",
        "",
        "| data | defense | samples | paper protocol | reliable, after the certificate | doublings | "
        "overestimate (points) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in mine:
        rel = r["reliable"]
        value = reliable_cell(rel)
        lines.append(
            f"| {r['data']} | {r['defense']} | {rel['n']} | {_pct(rel['paper'], rel['paper_ci95'])} | "
            f"{value} | {rel['doublings']} | {100 * (rel['paper'] - rel['accuracy']):+.1f} |"
        )
    lines.append("")
    return lines


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
    if not labels:
        return []  # no gradient-attack curve: nothing to say
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
