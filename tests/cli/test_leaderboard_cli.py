"""`evrobust leaderboard` through the typer app: bad input is one line on stderr, exit code 2, nothing
written; the command is registered lazily with its options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import COMMANDS, app

runner = CliRunner()


def _invoke(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    out = tmp_path / "out"
    result = runner.invoke(app, ["leaderboard", "--scale", "tiny", "--out", str(out), "--data-dir",
                                 str(tmp_path / "data"), "--device", "cpu", *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert not out.exists(), "nothing may be written before the input is validated"
    return result.exit_code, lines


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--only", "vanilla,bogus"], "unknown leaderboard entry bogus; choose from: vanilla, at, rat, sr"),
        (["--only", ""], "unknown leaderboard entry"),
        (["--limit", "0"], "--limit must be an integer >= 1 (got 0)"),
        (["--limit", "-3"], "--limit must be an integer >= 1 (got -3)"),
        (["--scale", "huge"], "huge"),
        (["--stop-after", "0"], "Invalid value for '--stop-after'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    code, lines = _invoke(tmp_path, *args)
    assert code == 2, lines
    assert len(lines) == 1 and needle in lines[0], lines


def test_add_without_results_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "run"
    empty.mkdir()
    code, lines = _invoke(tmp_path, "--add", str(empty))
    assert code == 2 and len(lines) == 1, lines
    assert f"--add {empty}: no attack-whitebox.json" in lines[0]
    code, lines = _invoke(tmp_path, "--add", str(tmp_path / "missing"))
    assert code == 2 and len(lines) == 1 and "not a run directory" in lines[0], lines


def test_add_without_a_reliable_verdict_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "quick"
    run.mkdir()
    # a valid attack document of the quick suite: flags but no reliable cascade
    document = {"format": "evrobust-attack", "samples": 2, "eps": 8 / 255,
                "attacks": [{"name": "clean"}, {"name": "pgd10"}],
                "flags": {"clean": {"name": "clean", "correct": "11", "members": {}},
                          "pgd10": {"name": "pgd10", "correct": "10", "members": {}}}}
    (run / "attack-whitebox.json").write_text(json.dumps(document))
    code, lines = _invoke(tmp_path, "--add", str(run))
    assert code == 2 and len(lines) == 1, lines
    assert "holds no reliable-suite verdict" in lines[0]


def test_registered_lazily_with_its_help_line() -> None:
    assert COMMANDS["leaderboard"].module == "evrobust.pipelines.cli.leaderboard"
    result = runner.invoke(app, ["leaderboard", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--scale", "--only", "--add", "--limit", "--resume", "--stop-after"):
        assert option in result.output
