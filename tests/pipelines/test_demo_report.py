"""The demo's report and findings: plots at a test scale, sentences computed from the measured numbers."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.demo import DemoConfig, converged_evaluations, converged_findings, findings, run_demo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _row(data: str, defense: str, pgd: list[float]) -> dict[str, Any]:
    eps = [0.0, 8 / 255, 16 / 255, 32 / 255][: len(pgd)]
    return {
        "data": data,
        "defense": defense,
        "curve_eps": eps,
        "curve_eps_text": ["0", "8/255", "16/255", "32/255"][: len(pgd)],
        "curves": {"pgd10": pgd},
    }


def test_findings_name_where_vanilla_breaks_and_who_holds() -> None:
    rows = [
        # digits: vanilla 90 -> 80 -> 40 (<= 45, half of 90) at 16/255; there sr 60 (+20), sr_star 42 (+2).
        _row("digits", "vanilla", [0.9, 0.8, 0.4, 0.1]),
        _row("digits", "sr", [0.85, 0.8, 0.6, 0.3]),
        _row("digits", "sr_star", [0.8, 0.75, 0.42, 0.2]),
        # digits-dvs: vanilla never falls to half of 90 %.
        _row("digits-dvs", "vanilla", [0.9, 0.85, 0.8]),
        _row("digits-dvs", "sr", [0.9, 0.88, 0.86]),
        # other: vanilla breaks at 8/255 (0.3 <= 0.35) and nobody keeps 5 points more (at 0.33 is +3).
        _row("other", "vanilla", [0.7, 0.3]),
        _row("other", "at", [0.7, 0.33]),
        # both hold on "two": vanilla 80 -> 20; sr 50 (+30), sr_star 70 (+50).
        _row("two", "vanilla", [0.8, 0.2]),
        _row("two", "sr", [0.8, 0.5]),
        _row("two", "sr_star", [0.75, 0.7]),
    ]
    assert findings(rows) == [
        "On digits, PGD-10 at eps 16/255 drops vanilla from 90.0% to 40.0%; only sr holds, with 60.0% "
        "(+20.0 points).",
        "On digits-dvs, PGD-10 never halves vanilla's accuracy on this grid (90.0% at eps 0, "
        "80.0% at 16/255), so the grid cannot show a defense holding where vanilla breaks.",
        "On other, PGD-10 at eps 8/255 drops vanilla from 70.0% to 30.0%; no defense keeps 5 points "
        "more there (best: at 33.0%).",
        "On two, PGD-10 at eps 8/255 drops vanilla from 80.0% to 20.0%; sr, sr_star hold at least 5 "
        "points above it, sr_star best with 70.0% (+50.0 points).",
    ]
    assert findings([_row("digits", "sr", [0.9, 0.1])]) == []  # no vanilla curve: nothing to compare with


def test_findings_take_the_strongest_gradient_attack_per_eps_and_ignore_noise() -> None:
    eps, text = [0.0, 8 / 255, 16 / 255], ["0", "8/255", "16/255"]
    rows = [
        # vanilla: FGSM 50 % (> half of 90 %) and PGD-10 60 % at 8/255, but the noise curve (10 %) would break
        # it there if it counted; at 16/255 FGSM 50 %, PGD-10 30 %: the worst, 30 % <= 45 %, breaks it.
        {
            "data": "digits",
            "defense": "vanilla",
            "curve_eps": eps,
            "curve_eps_text": text,
            "curves": {"noise": [0.9, 0.1, 0.1], "fgsm": [0.9, 0.5, 0.5], "pgd10": [0.9, 0.6, 0.3]},
        },
        # sr at 16/255: min(FGSM 70 %, PGD-10 55 %) = 55 %, +25 points.
        {
            "data": "digits",
            "defense": "sr",
            "curve_eps": eps,
            "curve_eps_text": text,
            "curves": {"noise": [0.85, 0.8, 0.8], "fgsm": [0.85, 0.75, 0.7], "pgd10": [0.85, 0.8, 0.55]},
        },
    ]
    assert findings(rows) == [
        "On digits, the strongest of FGSM and PGD-10 at eps 16/255 drops vanilla from 90.0% to 30.0%; only "
        "sr holds, with 55.0% (+25.0 points)."
    ]


def test_demo_at_test_scale_ends_with_a_report_with_plots(tmp_path: Path) -> None:
    cfg = DemoConfig(
        out=str(tmp_path / "demo"),
        data=("digits-dvs",),  # event frames: every plot kind, the per-polarity heatmaps included
        defenses=("vanilla", "sr"),
        width=0.25,
        T=2,
        epochs=1,
        limit=8,
        curve_limit=8,
        attack_batch=8,
        data_dir=str(tmp_path / "data"),
        device="cpu",
        eps_grids={"digits-dvs": "0,4/255,16/255"},
        extra_train={"limit_train": 96, "limit_val": 16, "batch_size": 32},
        reliable_limit=6,
        reliable_budget={"steps": 4, "queries": 40, "max_doublings": 1},
        reliable_workers=2,
    )
    summary, rows = run_demo(cfg)
    root = tmp_path / "demo"
    # The converged evaluation of each digits-dvs run: its own file; the reliable verdict an AND over every
    # table attack (never robust where the paper protocol broke the sample); numbers as the file holds them.
    for r in rows:
        doc = json.loads((Path(r["run"]) / "evaluate-reliable.json").read_text())
        assert doc["samples"] == r["reliable"]["n"] == 6 and doc["dataset"] == "digits-dvs"
        assert r["reliable"]["accuracy"] == doc["reliable"]["accuracy"]
        assert r["reliable"]["paper"] == doc["overestimate"]["paper"] >= doc["reliable"]["accuracy"]
        assert r["reliable"]["converged"] == doc["reliable"]["converged"]
        table = [a["name"] for a in doc["attacks"] if a.get("in_table", True) and a["eps"] == doc["eps"]]
        assert "pgd50" in table and "reliable" in table
        for key in table:
            if key != "reliable":
                broken = [c == "0" for c in doc["flags"][key]["correct"]]
                assert not any(b and c == "1" for b, c in zip(broken, doc["flags"]["reliable"]["correct"],
                                                               strict=True)), key
        assert (Path(r["run"]) / "evaluate-reliable.md").is_file()
        assert (Path(r["run"]) / "attack-whitebox.json").is_file()  # the paper-protocol table is kept
    # Two worker processes of one thread give the same flags as one evaluation after another in this process.
    def flags_of(row: dict[str, Any]) -> dict[str, Any]:
        return json.loads((Path(row["run"]) / "evaluate-reliable.json").read_text())["flags"]

    flags = {r["defense"]: flags_of(r) for r in rows}
    again = converged_evaluations(dataclasses.replace(cfg, reliable_workers=1), rows)
    assert again == [r["reliable"] for r in rows]
    for r in rows:
        assert flags_of(r) == flags[r["defense"]]
    summary_text = summary.read_text()
    assert "## Evaluated to convergence (white box, eps 8/255)" in summary_text
    (headline,) = converged_findings(rows)
    assert headline.startswith("On digits-dvs, evaluated to convergence")
    assert headline in summary_text and headline in (root / "report.md").read_text()
    report = root / "report.md"
    text = report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    plots = [link for link in links if link.startswith("plot-")]
    assert len(plots) >= 3
    for link in links:  # every link resolves, relative to report.md
        target = root / link
        assert target.is_file() and target.read_bytes()[:8] == PNG_SIGNATURE, link
    assert sorted(p.name for p in root.glob("plot-*.png")) == sorted(plots)
    for name in (
        "plot-accuracy-vs-eps.png",
        "plot-defense-comparison.png",
        "plot-gradient-frames-digits-dvs.png",
    ):
        assert name in plots
    # The report opens with the findings, then the summary table and the two leading plots, tables after.
    first_plot = text.index("](plot-")
    assert text.index("| data | defense | clean |") < first_plot < text.index("## Per-run results")
    assert text[first_plot:].startswith("](plot-accuracy-vs-eps.png)")
    for sentence in findings(rows):
        assert sentence in text and sentence in summary.read_text()
    assert [r["curve_eps_text"] for r in rows] == [["0", "4/255", "16/255"]] * 2


def test_demo_command_prints_a_table_the_findings_and_the_report_path(
    tmp_path: Path, monkeypatch: Any
) -> None:
    rows = [
        dict(
            _row("digits", d, [0.9, 0.3]),
            clean=0.9,
            fgsm=0.5,
            pgd10=0.3 + i / 10,
            bb_pgd10=0.6,
            grad_l1=2.0 - i,
            failed_checks=[],
        )
        for i, d in enumerate(("vanilla", "sr"))
    ]
    summary = tmp_path / "summary.md"

    def fake_run_demo(cfg: DemoConfig) -> tuple[Path, list[dict[str, Any]]]:
        assert cfg.out == str(tmp_path) and cfg.epochs == 2
        return summary, rows

    monkeypatch.setattr("evrobust.pipelines.demo.run_demo", fake_run_demo)
    result = CliRunner().invoke(main_app, ["demo", "--out", str(tmp_path), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "evrobust demo: accuracy (%) at eps 8/255" in out
    assert re.search(
        r"digits\s*│\s*sr\s*│\s*90\.0\s*│\s*50\.0\s*│\s*40\.0\s*│\s*60\.0\s*│\s*1\s*│\s*none", out
    )
    # vanilla 90 -> 30 at 8/255; sr also 30 there: no defense holds (a computed sentence, not a canned one).
    assert "On digits, PGD-10 at eps 8/255 drops vanilla from 90.0% to 30.0%; no defense keeps 5" in out
    assert out.rstrip().splitlines()[-1] == f"report written to {tmp_path / 'report.md'}"


def test_paired_findings_call_a_lead_only_when_the_paired_test_says_so(tmp_path: Path) -> None:
    from evrobust.pipelines.demo import paired_findings

    def write(defense: str, pgd: str) -> dict[str, Any]:
        run = tmp_path / defense
        run.mkdir()
        doc = {"format": "evrobust-attack", "samples": len(pgd), "eps": 0.03, "eps_text": "8/255",
               "attacks": [{"name": "pgd10", "in_table": True, "eps": 0.03}],
               "flags": {"pgd10": {"name": "pgd10", "correct": pgd, "members": {}}}}
        (run / "attack-whitebox.json").write_text(json.dumps(doc))
        return {"data": "digits-dvs", "defense": defense, "run": str(run)}

    rows = [write("vanilla", "1" * 5 + "0" * 45), write("sr", "1" * 30 + "0" * 20),
            write("at", "1" * 27 + "0" * 23)]
    (sentence,) = paired_findings(rows)
    assert sentence.startswith("On digits-dvs, paired on the 50 attacked samples (white box, eps 8/255")
    assert "sr keeps 60.0 % [45.2, 73.6]" in sentence
    # 25 samples only sr survives against vanilla: established; 3 against at: not
    assert "against vanilla (10.0 %): sr is more robust than vanilla (p < 0.001)" in sentence
    assert "against at (54.0 %): not established (p = 0.25)" in sentence


def _reliable_doc(run: Path, robust: str, paper: str, converged: bool) -> dict[str, Any]:
    """A converged-evaluation document as :func:`converged_evaluation` writes it (the fields read here)."""
    n = len(robust)
    doc = {"format": "evrobust-attack", "samples": n, "eps": 0.03, "eps_text": "8/255",
           "attacks": [{"name": "apgd100", "in_table": True, "eps": 0.03},
                       {"name": "reliable", "in_table": True, "eps": 0.03}],
           "cascade": {"attack": "reliable"},
           "reliable": {"accuracy": robust.count("1") / n, "n": n, "converged": converged},
           "flags": {"apgd100": {"name": "apgd100", "correct": paper, "members": {}},
                     "reliable": {"name": "reliable", "correct": robust, "members": {}}}}
    run.mkdir()
    path = run / "evaluate-reliable.json"
    path.write_text(json.dumps(doc))
    return {"path": str(path)}


def test_converged_findings_headline_the_reliable_verdict_and_mark_upper_bounds(tmp_path: Path) -> None:
    from evrobust.pipelines.demo import converged_findings

    # 40 samples. vanilla: 2 robust; sr_star: 18 (converged); at: 4, not converged (an upper bound).
    rows = [
        {"data": "digits-dvs", "defense": "vanilla",
         "reliable": _reliable_doc(tmp_path / "v", "11" + "0" * 38, "1" * 20 + "0" * 20, True)},
        {"data": "digits-dvs", "defense": "sr_star",
         "reliable": _reliable_doc(tmp_path / "s", "1" * 18 + "0" * 22, "1" * 30 + "0" * 10, True)},
        {"data": "digits-dvs", "defense": "at",
         "reliable": _reliable_doc(tmp_path / "a", "0" * 14 + "1111" + "0" * 22, "1" * 25 + "0" * 15, False)},
        {"data": "digits", "defense": "vanilla"},  # no converged evaluation: no sentence for digits
    ]
    (sentence,) = converged_findings(rows)
    assert sentence.startswith(
        "On digits-dvs, evaluated to convergence (the reliable suite and its certificate, white box, "
        "eps 8/255, paired on the first 40 test samples), sr_star keeps 45.0 % [29.3, 61.5]"
    )
    # The paired test is on the reliable flags, not on the paper protocol's (apgd100): against vanilla
    # sr_star alone survives 16 samples (exact McNemar p = 2 * 0.5**16), against at 14 (at's 4 are all
    # among sr_star's 18).
    assert "against vanilla (5.0 %): sr_star is more robust than vanilla (p < 0.001)" in sentence
    assert "against at (≤ 10.0 % (not converged)): sr_star is more robust than at (p < 0.001)" in sentence


def test_converged_table_shows_paper_and_reliable_with_intervals() -> None:
    from evrobust.pipelines.demo import converged_table

    rows = [{"data": "digits-dvs", "defense": "at",
             "reliable": {"n": 40, "paper": 0.5, "paper_ci95": [0.338, 0.662], "accuracy": 0.1,
                          "ci95": [0.028, 0.237], "converged": False, "doublings": 3, "path": "x"}},
            {"data": "digits", "defense": "at"}]
    lines = converged_table(rows)
    assert lines[0] == "## Evaluated to convergence (white box, eps 8/255)"
    assert lines[-2] == ("| digits-dvs | at | 40 | 50.0 [33.8, 66.2] | ≤ 10.0 [2.8, 23.7] (not converged) "
                         "| 3 | +40.0 |")
    assert converged_table([{"data": "digits", "defense": "at"}]) == []


def test_demo_reliable_limit_default_matches_the_pipeline() -> None:
    from evrobust.pipelines.cli.demo import RELIABLE
    from evrobust.pipelines.demo import RELIABLE_LIMIT

    assert RELIABLE == RELIABLE_LIMIT == DemoConfig().reliable_limit


def test_demo_command_passes_the_converged_sample_count(tmp_path: Path, monkeypatch: Any) -> None:
    seen: list[int] = []

    def fake_run_demo(cfg: DemoConfig) -> tuple[Path, list[dict[str, Any]]]:
        seen.append(cfg.reliable_limit)
        return tmp_path / "summary.md", []

    monkeypatch.setattr("evrobust.pipelines.demo.run_demo", fake_run_demo)
    for args, expected in (([], 30), (["--reliable-limit", "0"], 0), (["--reliable-limit", "50"], 50)):
        result = CliRunner().invoke(main_app, ["demo", "--out", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
        assert seen[-1] == expected
    result = CliRunner().invoke(main_app, ["demo", "--out", str(tmp_path), "--reliable-limit", "-1"])
    assert result.exit_code == 2
