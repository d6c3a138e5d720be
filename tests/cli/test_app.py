"""The CLI skeleton: every command is listed, `info` reports the environment, errors follow one contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.cli.errors import guard

runner = CliRunner()
COMMANDS = ("preprocess", "train", "attack", "analyze", "reproduce", "leaderboard", "report", "compare",
            "demo", "info")


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    for name in COMMANDS:
        assert re.search(rf"\b{name}\b", plain), f"{name} missing from --help"


def test_info_reports_versions_device_and_backends() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "2.13.0" in result.output
    assert "cpu" in result.output or "cuda" in result.output
    assert "native" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2


def _guarded_app(exc: BaseException) -> typer.Typer:
    sub = typer.Typer()

    @sub.command()
    def boom() -> None:
        raise exc

    @sub.command()
    def ok() -> None:
        pass

    sub.registered_commands[0].callback = guard(sub.registered_commands[0].callback)
    return sub


def test_user_error_is_one_line_and_exit_2() -> None:
    result = runner.invoke(_guarded_app(UserInputError("bad value for --lam:\n must be >= 0")), ["boom"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: bad value for --lam: must be >= 0"]
    assert "Traceback" not in result.output


def test_internal_error_is_exit_1_with_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVROBUST_LOG_DIR", str(tmp_path))
    result = runner.invoke(_guarded_app(RuntimeError("kaput")), ["boom"])
    assert result.exit_code == 1
    assert "internal error: RuntimeError: kaput" in result.output
    logs = list(tmp_path.glob("crash-*.log"))
    assert len(logs) == 1 and "RuntimeError: kaput" in logs[0].read_text()


def test_usage_errors_are_one_line_naming_the_choices() -> None:
    result = runner.invoke(app, ["train", "--defense", "magic"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "magic" in lines[0] and "sr_star" in lines[0]



@pytest.mark.parametrize("module", ["attack", "analyze"])
def test_cli_ensemble_choices_are_the_registry(module: str) -> None:
    """Every registered ensemble (``wide`` and ``assg`` included) can be chosen on the command line."""
    import importlib

    from evrobust.attacks import ENSEMBLES

    cli = importlib.import_module(f"evrobust.pipelines.cli.{module}")
    assert {e.value for e in cli.EnsembleName} == set(ENSEMBLES)
