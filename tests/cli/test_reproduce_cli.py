"""`evrobust reproduce` through the typer app: a tiny run end to end, reuse, and the exit-2 error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app

runner = CliRunner()


def test_reproduce_fig5_tiny_writes_results_and_report(tmp_path: Path) -> None:
    args = ["reproduce", "fig5", "--scale", "tiny", "--out", str(tmp_path / "out"),
            "--data-dir", str(tmp_path / "data"), "--device", "cpu"]
    result = runner.invoke(main_app, args)
    assert result.exit_code == 0, result.output
    results = tmp_path / "out" / "fig5" / "results.json"
    assert f"results written to {results}" in result.output
    document = json.loads(results.read_text())
    assert {a["kind"] for a in document["analyses"].values()} == {"heatmap"}
    report = (tmp_path / "out" / "fig5" / "report.md").read_text()
    assert "Figure 5" in report and "analysis-heatmap.png" in report
    # A second invocation trains nothing: the run directories keep their single metrics line per epoch.
    again = runner.invoke(main_app, args)
    assert again.exit_code == 0, again.output
    for run in document["runs"].values():
        assert len((Path(run["dir"]) / "metrics.jsonl").read_text().splitlines()) == run["epochs"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["table5"], "unknown reproduction 'table5'; choose one of: table1, table2"),
        (["table1", "--scale", "huge"], "huge"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    result = runner.invoke(main_app, ["reproduce", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not any(tmp_path.iterdir()), "nothing may be written before the input is validated"


def test_reproduce_masking_stops_after_one_unit_and_says_how_to_resume(tmp_path: Path) -> None:
    args = ["reproduce", "masking", "--scale", "tiny", "--out", str(tmp_path / "out"), "--data-dir",
            str(tmp_path / "data"), "--device", "cpu", "--stop-after", "1", "--no-report"]
    result = runner.invoke(main_app, args)
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "masking" / "results.json").read_text())
    assert document["complete"] is False and len(document["runs"]) == 1
    assert "digits-wrn_small-sr-h0.001" in document["pending"]["runs"]
