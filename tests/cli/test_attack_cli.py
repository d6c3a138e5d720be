"""`evrobust attack` through the typer app: a real run, the printed table, and the exit-2 error contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("attack-cli")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=1, batch_size=32,
        lr=0.1, limit_train=320, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def test_attack_prints_the_table_and_writes_results(run_dir: Path) -> None:
    args = ["attack", "--run", str(run_dir), "--attacks", "clean,fgsm", "--ensemble", "single"]
    args += ["--limit", "16", "--batch-size", "8", "--device", "cpu", "--eps", "4/255", "--no-checks"]
    result = runner.invoke(main_app, args)
    assert result.exit_code == 0, result.output
    assert "| Dataset | Arch. | Defense | Clean | FGSM |" in result.output
    document = json.loads((run_dir / "attack-whitebox.json").read_text())
    assert document["eps_text"] == "4/255" and document["samples"] == 16 and document["checks"] == []
    assert [a["name"] for a in document["attacks"]] == ["clean", "fgsm"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--attacks", "pgd7"], "unknown attack 'pgd7'"),
        (["--eps", "-1/255"], "eps"),
        (["--mode", "blackbox"], "needs --source"),
        (["--mode", "blackbox", "--source", "/nonexistent/run"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_dir: Path, extra: list[str], needle: str) -> None:
    result = runner.invoke(main_app, ["attack", "--run", str(run_dir), "--device", "cpu", *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0]


def test_missing_run_and_bad_choices_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(main_app, ["attack", "--run", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    for option, value in (("--ensemble", "all"), ("--suite", "huge"), ("--mode", "greybox")):
        result = runner.invoke(main_app, ["attack", "--run", str(tmp_path), option, value])
        plain = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
        assert result.exit_code == 2 and value in plain, result.output


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--threat", "events"], "holds static images"),
        (["--threat", "events", "--max-events", "-1"], "--max-events"),
        (["--threat", "retiming", "--max-shift", "-3"], "--max-shift"),
        (["--max-events", "5"], "--max-events apply to --threat events or retiming, not frames"),
        (["--threat", "events", "--mode", "blackbox"], "white-box"),
        (["--threat", "sideways"], "--threat"),
    ],
)
def test_event_threat_bad_input_is_one_line_and_exit_2(run_dir: Path, extra: list[str], needle: str) -> None:
    result = runner.invoke(main_app, ["attack", "--run", str(run_dir), "--device", "cpu", *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not (run_dir / "attack-events.json").exists() and not (run_dir / "attack-retiming.json").exists()
