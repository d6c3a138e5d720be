"""The demo end to end on a tiny configuration: train, attack, analyse sparsity, summary and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evrobust.pipelines.demo import LAMBDA, DemoConfig, run_demo


def test_demo_trains_attacks_analyses_and_reports(tmp_path: Path) -> None:
    cfg = DemoConfig(
        out=str(tmp_path / "demo"), data=("digits",), defenses=("vanilla", "sr"), width=0.25, T=2, epochs=1,
        limit=8, attack_batch=8, data_dir=str(tmp_path / "data"), device="cpu",
        extra_train={"limit_train": 128, "limit_val": 32, "batch_size": 32},
    )
    summary, rows = run_demo(cfg)
    assert [(r["data"], r["defense"]) for r in rows] == [("digits", "vanilla"), ("digits", "sr")]
    for r in rows:
        run = Path(r["run"])
        white = json.loads((run / "attack-whitebox.json").read_text())
        assert r["pgd10"] == next(a["accuracy"] for a in white["attacks"] if a["name"] == "pgd10")
        sparsity = json.loads((run / "analysis-sparsity.json").read_text())
        assert sparsity["samples"] == 8
        mean = sparsity["targets"]["two_class"]["mean"]
        assert r["grad_l1"] == pytest.approx(mean["l1"])
        assert r["grad_density"] == pytest.approx(mean["density"])
        if r["defense"] == "sr":
            assert json.loads((run / "config.json").read_text())["train"]["lam"] == LAMBDA
    text = summary.read_text()
    assert f"SR lambda {LAMBDA}" in text and "| grad l1 | grad density |" in text
    report = (tmp_path / "demo" / "report.md").read_text()
    assert report.count("## Run ") == 2 and "whitebox" in report and "blackbox" in report
