"""The fault table of issue 24: a symlink, a FIFO and a directory in place of every file each command reads or
writes. For every (command, file, kind) the command must not block, must exit 2 with one ``error:`` line,
and must write nothing outside its own files (the planted link's target, a "victim" file, is unchanged).

Commands run in-process (typer's CliRunner) in a thread with a deadline, so a read that blocks on a FIFO
fails the test instead of hanging the suite. The counts of the table are in docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

runner = CliRunner()
KINDS = ("symlink", "fifo", "directory")
DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trained run with white-box attack results and a sparsity analysis, and its store."""
    root = tmp_path_factory.mktemp("faults")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", width=0.5, T=2, epochs=2, stop_after=1,
        batch_size=32, lr=0.1, limit_train=128, limit_val=32, device="cpu", out=str(root / "run"), seed=0,
        progress=False,
    )  # fmt: skip
    run = train(config)
    attack = ["attack", "--run", str(run), "--attacks", "clean,fgsm", "--ensemble", "single", "--limit", "8",
              "--batch-size", "8", "--device", "cpu", "--no-checks"]  # fmt: skip
    assert runner.invoke(main_app, attack).exit_code == 0
    result = runner.invoke(main_app, _analyze(run, root))
    assert result.exit_code == 0, result.output
    return {"run": run, "store": root / "data" / "digits.zarr", "data": root / "data"}


@dataclass(frozen=True)
class Case:
    """One command and one file it reads or writes (relative to the copied run, or ``out/...``)."""

    command: str
    file: str
    argv: Callable[[Path, Path], list[str]]  # (run copy, scratch dir) -> arguments


def _attack(run: Path, tmp: Path) -> list[str]:
    return ["attack", "--run", str(run), "--attacks", "clean,fgsm", "--ensemble", "single", "--limit", "8",
            "--batch-size", "8", "--device", "cpu", "--no-checks"]  # fmt: skip


def _train(run: Path, tmp: Path) -> list[str]:
    return ["train", "--data", "digits", "--data-dir", str(tmp / "data"), "--model", "vgg_small", "--width",
            "0.5", "--T", "2", "--epochs", "2", "--batch-size", "32", "--limit-train", "128", "--limit-val",
            "32", "--device", "cpu", "--out", str(run), "--resume"]  # fmt: skip


def _analyze(run: Path, tmp: Path) -> list[str]:
    return ["analyze", "sparsity", "--run", str(run), "--limit", "4", "--batch-size", "4", "--device", "cpu",
            "--no-plots"]  # fmt: skip


def _export(run: Path, tmp: Path) -> list[str]:
    return ["export", "--run", str(run), "--out", str(tmp / "out" / "model.nir")]


def _report(run: Path, tmp: Path) -> list[str]:
    return ["report", str(run), "--out", str(tmp / "out")]


def _compare(run: Path, tmp: Path) -> list[str]:
    return ["compare", str(run / "attack-whitebox.json"), str(tmp / "other.json")]


CASES = [
    # train --resume: what it reads, appends and replaces, and its lock beside the run
    Case("train", "config.json", _train),
    Case("train", "metrics.jsonl", _train),
    Case("train", "checkpoint-last.safetensors", _train),
    Case("train", "../.run.lock", _train),
    # attack: the run it loads, the results it writes, the partial file, its lock
    Case("attack", "config.json", _attack),
    Case("attack", "checkpoint-best.safetensors", _attack),
    Case("attack", "attack-whitebox.json", _attack),
    Case("attack", "attack-whitebox.md", _attack),
    Case("attack", "attack-whitebox.partial.json", _attack),
    Case("attack", ".attack-whitebox.lock", _attack),
    # analyze: the run it loads and the result it writes
    Case("analyze", "config.json", _analyze),
    Case("analyze", "checkpoint-best.safetensors", _analyze),
    Case("analyze", "analysis-sparsity.json", _analyze),
    # export: the run it loads, the attack result it summarises, the file it writes
    Case("export", "config.json", _export),
    Case("export", "checkpoint-best.safetensors", _export),
    Case("export", "attack-whitebox.json", _export),
    Case("export", "out/model.nir", _export),
    # report: the run's documents and its own outputs
    Case("report", "config.json", _report),
    Case("report", "metrics.jsonl", _report),
    Case("report", "attack-whitebox.json", _report),
    Case("report", "analysis-sparsity.json", _report),
    Case("report", "out/report.md", _report),
    # compare: both inputs
    Case("compare", "attack-whitebox.json", _compare),
]


def _plant(kind: str, path: Path, victim: Path) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


def _invoke(args: list[str]) -> Any:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=runner.invoke(main_app, args)), daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"{args[0]} blocked"
    return box["result"]


def _one_error_line(result: Any) -> str:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    return errors[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.command}-{c.file}")
def test_a_hostile_file_is_refused_in_one_line(
    base: dict[str, Path], tmp_path: Path, case: Case, kind: str
) -> None:
    work = tmp_path / "w"
    run = work / "run"
    shutil.copytree(base["run"], run)
    shutil.copytree(base["data"], tmp_path / "data")
    (tmp_path / "out").mkdir()
    shutil.copy(base["run"] / "attack-whitebox.json", tmp_path / "other.json")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / case.file if case.file.startswith("out/") else run / case.file
    _plant(kind, target, victim)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _invoke(case.argv(run, tmp_path))
    assert result.exit_code == 2, (result.exit_code, result.stderr[-2000:])
    line = _one_error_line(result)
    assert target.name in line, line  # the line names the file at fault
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new beside the run
