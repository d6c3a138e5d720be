"""`evrobust analyze ...` through typer: printed summaries, written files, comparison figures, exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("analyze-cli")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=1, batch_size=32,
        lr=0.1, limit_train=256, device="cpu", out=str(root / "run0"), seed=0, progress=False,
    )
    first = train(config)
    # A copy is a second run directory (same weights): enough to exercise the comparison figures cheaply.
    second = Path(shutil.copytree(first, root / "run1"))
    return first, second


def test_sparsity_prints_norms_and_writes_json(runs: tuple[Path, Path]) -> None:
    run = runs[0]
    result = runner.invoke(main_app, ["analyze", "sparsity", "--run", str(run), "--limit", "8"])
    assert result.exit_code == 0, result.output
    document = json.loads((run / "analysis-sparsity.json").read_text())
    mean = document["targets"]["two_class"]["mean"]
    assert f"mean l0 {mean['l0']:.1f}" in result.output
    assert f"wrote {run.resolve() / 'analysis-sparsity.json'}" in result.output


def test_vulnerability_and_theorem_commands(runs: tuple[Path, Path]) -> None:
    run = str(runs[0])
    args = ["analyze", "vulnerability", "--run", run, "--limit", "8", "--eps", "0,2/255,16/255"]
    result = runner.invoke(main_app, [*args, "--attacks", "noise,fgsm"])
    assert result.exit_code == 0, result.output
    assert "2/255" in result.output and "fgsm" in result.output
    args = ["analyze", "theorem", "--run", run, "--limit", "4", "--eps", "8/255", "--mc-samples", "3"]
    result = runner.invoke(main_app, [*args, "--pgd-steps", "1", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "eps 8/255: median ratio" in result.output
    assert json.loads((runs[0] / "analysis-theorem.json").read_text())["plots"] == []


def test_distribution_and_heatmap_compare_several_runs(runs: tuple[Path, Path], tmp_path: Path) -> None:
    args = ["analyze", "distribution", "--run", str(runs[0]), "--run", str(runs[1]), "--limit", "6"]
    out = tmp_path / "dist.png"
    result = runner.invoke(main_app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (runs[1] / "analysis-distribution.json").is_file()
    args = ["analyze", "heatmap", "--run", str(runs[0]), "--run", str(runs[1]), "--count", "2"]
    result = runner.invoke(main_app, args)
    assert result.exit_code == 0, result.output
    assert (runs[0] / "analysis-heatmap-compare.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["vulnerability", "--eps", "0,8/255,2/255"], "strictly increasing"),
        (["sparsity", "--spec", "bogus"], "unknown gradient spec"),
        (["theorem", "--eps", "8"], "did you mean"),
    ],
)
def test_bad_input_exits_2_with_one_line(runs: tuple[Path, Path], args: list[str], words: str) -> None:
    command = ["analyze", args[0], "--run", str(runs[0]), "--limit", "2", *args[1:]]
    result = runner.invoke(main_app, command)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output


def test_missing_run_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(main_app, ["analyze", "sparsity", "--run", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_landscape_and_fidelity_commands(runs: tuple[Path, Path], tmp_path: Path) -> None:
    args = ["analyze", "landscape", "--run", str(runs[0]), "--run", str(runs[1]), "--limit", "3"]
    out = tmp_path / "landscape.png"
    options = ["--points", "4", "--random", "1", "--adv-steps", "1", "--out", str(out)]
    result = runner.invoke(main_app, [*args, *options])
    assert result.exit_code == 0, result.output
    document = json.loads((runs[0] / "analysis-landscape.json").read_text())
    assert len(document["radii"]) == 4 and "gradient: median rise radius" in result.output
    assert document["adversarial"]["note"] in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    args = ["analyze", "fidelity", "--run", str(runs[0]), "--limit", "2", "--steps", "1e-2"]
    args += ["--spec", "atan:2"]
    result = runner.invoke(main_app, [*args, "--no-plots"])
    assert result.exit_code == 0, result.output
    document = json.loads((runs[0] / "analysis-fidelity.json").read_text())
    assert list(document["specs"]) == ["atan:2"] and "atan:2 step 0.01" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["landscape", "--radii", "0.03,0.01"], "strictly increasing"),
        (["landscape", "--rise", "0"], "--rise must be a number > 0"),
        (["landscape", "--limit", "0"], "'--limit'"),
        (["fidelity", "--steps", "0"], "(0, 0.5]"),
        (["fidelity", "--steps", "1e-2,1e-3"], "strictly increasing"),
        (["fidelity", "--limit", "0"], "'--limit'"),
    ],
)
def test_masking_bad_input_exits_2_with_one_line_and_writes_nothing(
    runs: tuple[Path, Path], tmp_path: Path, args: list[str], words: str
) -> None:
    run = Path(shutil.copytree(runs[0], tmp_path / "run", ignore=shutil.ignore_patterns("analysis-*")))
    before = sorted(p.name for p in run.iterdir())
    limit = ["--limit", "2"] if "--limit" not in args else []
    command = ["analyze", args[0], "--run", str(run), *limit, *args[1:]]
    result = runner.invoke(main_app, command)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    assert sorted(p.name for p in run.iterdir()) == before
