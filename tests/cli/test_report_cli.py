"""`evrobust report` through the typer app: a run directory with attack results, and the exit-2 contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.attack.pipeline import run_attack
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-cli")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", width=0.25, T=2, epochs=1,
        batch_size=32, limit_train=128, limit_val=32, device="cpu", out=str(root / "run"), progress=False,
    )
    return train(config)


def test_report_on_a_run_lists_attacks_and_failed_checks(run_dir: Path) -> None:
    result = run_attack(run_dir, attacks="clean,fgsm", ensemble="single", limit=8, batch_size=8, device="cpu")
    outcome = runner.invoke(main_app, ["report", str(run_dir)])
    assert outcome.exit_code == 0, outcome.output
    assert f"report written to {run_dir / 'report.md'}" in outcome.output
    report = (run_dir / "report.md").read_text()
    for entry in result["attacks"]:
        assert f"| {entry['label']} | {100 * entry['accuracy']:.1f}" in report
    for check in result["checks"]:
        if not check["passed"]:
            assert f"`{check['name']}`" in report


def test_run_without_results_is_one_line_exit_2(tmp_path_factory: pytest.TempPathFactory) -> None:
    bare = tmp_path_factory.mktemp("bare")
    (bare / "config.json").write_text("{}")
    result = runner.invoke(main_app, ["report", str(bare)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no attack or analysis results" in lines[0]
    assert "evrobust attack" in lines[0]


def test_path_that_is_neither_run_nor_results_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(main_app, ["report", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds neither a run" in lines[0]
