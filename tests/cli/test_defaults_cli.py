"""Defaults that chain preprocess -> train -> attack, through the typer app in a temporary working directory.

The working directory holds (a) nothing, then (b) one store and one run, then (c) two stores and several runs;
each command without its path options picks the documented default and says so on the first line of its
output, or stops with the documented one-line error (exit 2, nothing written).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app
from evrobust.pipelines.defaults import START_HINT, newest_store

runner = CliRunner()
TINY = ["--model", "wrn_small", "--width", "0.5", "--epochs", "1", "--limit-train", "64", "--limit-val", "32"]
QUICK_ATTACK = [
    "--attacks",
    "clean,fgsm",
    "--ensemble",
    "single",
    "--limit",
    "8",
    "--no-checks",
    "--device",
    "cpu",
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: data/ and runs/ are the relative defaults."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVROBUST_DATA", raising=False)
    monkeypatch.setenv("EVROBUST_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path


def invoke(*args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(app, list(args))


def one_error(result) -> str:  # noqa: ANN001 - typer's Result
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def defaults_of(result) -> dict[str, str]:  # noqa: ANN001 - typer's Result
    """The first stdout line ``defaults: --opt value (note) ...`` as ``{--opt: value}``; notes kept apart."""
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("defaults: "), first
    tokens = shlex.split(re.sub(r" \([^)]*\)", "", first.removeprefix("defaults: ")))
    out: dict[str, str] = {}
    for i, token in enumerate(tokens):
        if token.startswith("--"):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            out[token] = "" if nxt.startswith("--") or not nxt else nxt
    return out


def test_nothing_there_names_the_commands_to_run(workdir: Path) -> None:
    assert (
        one_error(invoke("train"))
        == f"error: no preprocessed store in data/ to train on; {START_HINT}; or pass --data"
    )
    line = one_error(invoke("attack"))
    assert line.startswith("error: no trained run in runs/ to attack; train one with `evrobust train ")
    assert one_error(invoke("attack", "--mode", "blackbox")) == line
    (workdir / "file").write_text("")
    line = one_error(invoke("train", "--data-dir", "file"))
    assert line == "error: the data directory file is a file, not a directory; give --data-dir a directory"
    (workdir / "runs").write_text("")
    assert (
        one_error(invoke("attack"))
        == "error: the runs directory runs is a file, not a directory; give --run a directory"
    )
    assert sorted(p.name for p in workdir.iterdir()) == ["file", "runs"]  # nothing written


def test_the_chain_picks_the_newest_store_and_run_and_a_vanilla_source(workdir: Path) -> None:
    assert invoke("preprocess", "digits").exit_code == 0
    store = Path("data") / "digits.zarr"

    # (b) one store: train uses it and prints every default, resolved for the data.
    first = invoke("train", *TINY, "--device", "cpu")
    shown = defaults_of(first)
    assert first.stdout.splitlines()[0].startswith(f"defaults: --data {store} (the store in data/) ")
    run0 = Path("runs") / "digits-wrn_small-vanilla-s0"
    assert shown["--out"] == str(run0) and shown["--defense"] == "vanilla" and shown["--seed"] == "0"
    config = json.loads((run0 / "config.json").read_text())
    train = config["train"]
    assert shown["--data"] == train["data"] == str(store)
    for flag, key in (("--T", "T"), ("--batch-size", "batch_size"), ("--lam", "lam"), ("--lr", "lr")):
        assert float(shown[flag]) == float(train[key]), flag
    assert shown["--at-method"] == train["at_method"] and ("--no-augment" in shown) == (not train["augment"])

    # attack without --run takes the only run; black-box has no source yet: the error is the command to run.
    attack = invoke("attack", *QUICK_ATTACK)
    assert attack.stdout.splitlines()[0].startswith(
        f"defaults: --run {run0} (the run in runs/) --mode whitebox"
    )
    line = one_error(invoke("attack", "--mode", "blackbox", *QUICK_ATTACK))
    command = (
        f"evrobust train --data {store} --model wrn_small --width 0.5 --T 8 --limit-train 64 --limit-val 32 "
        "--defense vanilla --epochs 1 --seed 1"
    )
    assert f"train one with `{command}` and rerun, or pass --source RUN" in line
    assert not (run0 / "attack-blackbox.json").exists()

    # Running exactly that command makes the source the black-box default picks.
    made = invoke(*shlex.split(command)[1:], "--device", "cpu")
    run1 = Path("runs") / "digits-wrn_small-vanilla-s1"
    assert defaults_of(made)["--out"] == str(run1)
    blackbox = invoke("attack", "--mode", "blackbox", *QUICK_ATTACK)
    first_line = blackbox.stdout.splitlines()[0]
    assert first_line.startswith(
        f"defaults: --run {run1} (newest of 2 runs in runs/) --source {run0} (vanilla"
    )
    assert json.loads((run1 / "attack-blackbox.json").read_text())["source"] == str(run0)

    # (c) two stores: the most recently built one is chosen, and the choice follows the build times.
    copy = Path("data") / "digits-copy.zarr"
    shutil.copytree(store, copy)
    later = (store / "zarr.json").stat().st_mtime + 10
    os.utime(copy / "zarr.json", (later, later))
    assert newest_store(Path("data")) == (copy, 2)
    two = invoke("train", *TINY, "--seed", "2", "--device", "cpu")
    assert two.stdout.splitlines()[0].startswith(f"defaults: --data {copy} (newest of 2 stores in data/) ")
    os.utime(store / "zarr.json", (later + 10, later + 10))
    assert newest_store(Path("data")) == (store, 2)


def test_a_source_run_on_other_data_is_refused_before_anything_is_written(workdir: Path) -> None:
    assert invoke("preprocess", "digits").exit_code == 0
    assert invoke("train", *TINY, "--device", "cpu").exit_code == 0
    target = Path("runs") / "digits-wrn_small-vanilla-s0"
    other = Path("runs") / "other"
    shutil.copytree(target, other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["input_size"] = 16  # as if trained on another store (same weights, so the model loads)
    (other / "config.json").write_text(json.dumps(config))
    before = sorted(p.name for p in target.iterdir())
    result = invoke(
        "attack", "--run", str(target), "--mode", "blackbox", "--source", str(other), *QUICK_ATTACK
    )
    line = one_error(result)
    assert "the source run's data differs from the target's (input_size 16 vs 8)" in line
    assert sorted(p.name for p in target.iterdir()) == before
