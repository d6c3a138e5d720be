"""Reports: paper-layout tables with the published numbers beside ours, masking-check marks, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evrobust.errors import UserInputError
from evrobust.pipelines.report.pipeline import CHECK_MARK, render_table, write_report
from evrobust.pipelines.reproduce import build_spec
from evrobust.pipelines.reproduce.runner import RESULTS_FILE, RESULTS_FORMAT


def _attack(names: list[str], acc: dict[str, float], failed: dict[str, str] | None = None) -> dict[str, Any]:
    failed = failed or {}
    return {
        "mode": "whitebox", "ensemble": "paper", "eps_text": "8/255", "samples": 200, "members": [],
        "attacks": [
            {"name": n, "label": n.upper(), "in_table": True, "accuracy": acc[n],
             "checks": [{"name": failed[n], "passed": False, "detail": "worse than noise", "subject": n}]
             if n in failed else []}
            for n in names
        ],
        "checks": [{"name": c, "passed": False, "detail": "worse than noise", "subject": n}
                   for n, c in failed.items()],
    }


def _results(name: str, attacks: dict[str, dict[str, Any]], runs: dict[str, dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    spec = build_spec(name, "smoke")
    return {"format": RESULTS_FORMAT, "version": 1, "spec": json.loads(json.dumps(spec.to_json())),
            "runs": runs or {}, "attacks": attacks, "analyses": {}}


def test_table4_cells_hold_ours_then_the_paper_and_mark_failed_checks() -> None:
    spec = build_spec("table4", "smoke")
    accs = {"vanilla": 0.6, "sr": 0.755, "sr_star": 0.8125}
    attacks = {}
    for a in spec.attacks:
        defense = a.run.split("-", 2)[2]
        failed = {"pgd10": "adv_le_noise"} if defense == "sr" else None
        attacks[a.key] = _attack(["clean", "noise", "pgd10"], {"clean": 0.9, "noise": accs[defense],
                                                               "pgd10": 0.1}, failed)
    results = _results("table4", attacks)
    lines, notes = render_table(results, results["spec"]["tables"][0])
    row = lines[-1]
    # Ours (%) first, the paper's Table 4 number in parentheses; the PGD10 columns have no paper number.
    assert row == (f"| digits (~CIFAR-10) | 60.0 (67.5) | 75.5 (86.3) | 81.2 (81.9) | 10.0 | "
                   f"10.0{CHECK_MARK} | 10.0 |")
    assert notes == [
        f"{CHECK_MARK} digits (~CIFAR-10), SR PGD10: check `adv_le_noise` failed — worse than noise"
    ]


def test_a_float32_accuracy_of_one_percent_renders_like_every_other_accuracy() -> None:
    """float32(0.01) = 0.0099999998: the cell must read 1.0 (one decimal, like 0.8 and 12.2), not "1"."""
    spec = build_spec("table4", "smoke")
    attacks = {a.key: _attack(["clean", "noise", "pgd10"],
                              {"clean": 0.5, "noise": 0.009999999776482582, "pgd10": 0.008})
               for a in spec.attacks}
    results = _results("table4", attacks)
    lines, _ = render_table(results, results["spec"]["tables"][0])
    assert lines[-1] == "| digits (~CIFAR-10) | 1.0 (67.5) | 1.0 (86.3) | 1.0 (81.9) | 0.8 | 0.8 | 0.8 |"


def test_cost_table_reports_ratios_to_vanilla(tmp_path: Path) -> None:
    spec = build_spec("table7", "smoke")
    seconds = {"vanilla": 2.0, "at": 10.0, "rat": 4.0, "sr": 6.0, "sr_star": 16.0}
    runs = {r.key: {"dir": "x", "epochs": 2, "seconds": seconds[r.train["defense"]]} for r in spec.runs}
    directory = tmp_path / "table7"
    directory.mkdir()
    (directory / RESULTS_FILE).write_text(json.dumps(_results("table7", {}, runs)))
    text = write_report([directory]).read_text()
    assert "| 2.0 (65.0) | 10.0 (459.0) | 4.0 (134.0) | 6.0 (193.0) | 16.0 (583.0) |" in text
    # 459/65 = 7.06, 583/65 = 8.97
    assert "PGD5-AT 5.00x (paper 7.06x)" in text and "SR* 8.00x (paper 8.97x)" in text


def test_lambda_sweep_report_draws_the_figure(tmp_path: Path) -> None:
    spec = build_spec("fig3", "smoke")
    attacks = {a.key: _attack(["clean", "pgd10"], {"clean": 0.9 - i / 20, "pgd10": 0.1 + i / 20})
               for i, a in enumerate(spec.attacks)}
    runs = {r.key: {"dir": "x", "epochs": 6} for r in spec.runs}
    # The norm columns come from each run's sparsity analysis (the evaluated checkpoint), not its metrics.
    analyses = {f"{r.key}:sparsity": {"targets": {"two_class": {"mean": {"l1": 2.0 / (i + 1),
                                                                         "l2": 0.3 / (i + 1)}}}}
                for i, r in enumerate(spec.runs)}
    root = tmp_path / "out"
    (root / "fig3").mkdir(parents=True)
    document = _results("fig3", attacks, runs) | {"analyses": analyses}
    (root / "fig3" / RESULTS_FILE).write_text(json.dumps(document))
    path = write_report([root])  # a reproduction root: every <name>/results.json under it
    assert path == root / "report.md"
    text = path.read_text()
    assert "| 0.05 | 70.0 | 30.0 | 0.4 | 0.06 |" in text
    png = root / "fig3" / "lambda.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![lambda sweep](fig3/lambda.png)" in text


def test_bad_inputs_raise_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        write_report([tmp_path / "missing"])
    with pytest.raises(UserInputError, match="holds neither a run"):
        write_report([tmp_path])
    with pytest.raises(UserInputError, match="at least one"):
        write_report([])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / RESULTS_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserInputError, match="not a reproduction result"):
        write_report([bad])
