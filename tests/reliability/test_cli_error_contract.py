"""One error contract over every CLI command: bad arguments give exactly one `error:` line on stderr, exit
code 2 and no traceback; an internal error gives exit 1 and a pointer to the crash log. The command tree is
walked, so commands added later are covered by the usage-error half automatically."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The app's callback points the root logger at the runner's (then closed) stderr; undo that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _leaf_commands() -> list[list[str]]:
    """Every runnable command path of the app (``["preprocess", "cifar10"]``, ``["train"]``, ...)."""
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(getattr(cmd, "commands", None), dict):  # a group (typer may wrap click's classes)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append(path)

    walk(root, [])
    return out


def _assert_one_line_exit_2(args: list[str], result: click.testing.Result) -> str:
    assert result.exit_code == 2, (args, result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, (args, result.stderr)
    assert errors[0] == lines[-1]  # the error line ends the output (log lines may precede it)
    return errors[0]


LEAVES = _leaf_commands()


def test_the_walk_finds_every_known_command() -> None:
    names = {" ".join(p) for p in LEAVES}
    expected = ["train", "attack", "demo", "info", "preprocess cifar10dvs", "preprocess cifar10",
                "preprocess cifar100", "preprocess digits", "preprocess digits-dvs", "preprocess verify"]
    assert set(expected) <= names, names  # fmt: skip


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_unknown_option_is_one_line_exit_2(path: list[str]) -> None:
    args = [*path, "--definitely-not-an-option", "1"]
    line = _assert_one_line_exit_2(args, runner.invoke(app, args))
    assert "--definitely-not-an-option" in line or "not built yet" in line


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments, a word the error line must contain) for semantic mistakes a user makes."""
    (tmp / "file").write_text("x")
    cifar = tmp / "cifar-10-batches-py"
    cifar.mkdir()
    (cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}, protocol=2))
    (cifar / "data_batch_1").write_bytes(b"\x80\x02cos\nsystem\n(Vecho pwned\ntR.")
    run = tmp / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": "something-else"}))
    badrun = tmp / "badrun"
    badrun.mkdir()
    (badrun / "config.json").write_text("{not json")
    store = tmp / "bad.zarr"
    store.mkdir()
    (store / "zarr.json").write_bytes(b"\xff\xfe garbage")
    return [
        (["preprocess", "cifar10dvs", "--raw", str(tmp / "missing")], "does not exist"),
        (["preprocess", "cifar10dvs", "--raw", str(tmp), "--frames", "0"], "frames"),
        (["preprocess", "cifar10dvs", "--raw", str(tmp), "--split-by", "space"], "space"),
        (["preprocess", "cifar10dvs", "--raw", str(tmp), "--out", str(tmp / "o.zarr")], "missing"),
        (["preprocess", "cifar10", "--raw", str(tmp / "missing")], "does not exist"),
        (["preprocess", "cifar10", "--raw", str(tmp), "--out", str(tmp / "c.zarr")], "not allowed"),
        (["preprocess", "cifar100", "--raw", str(tmp / "file")], "file"),
        (["preprocess", "digits", "--out", str(tmp / "file")], "file"),
        (["preprocess", "digits-dvs", "--out", str(tmp / "run")], "not an evrobust store"),
        (["preprocess", "verify", str(tmp / "nothing.zarr")], "does not exist"),
        (["train", "--data", "no-such-data", "--out", str(tmp / "r1")], "no-such-data"),
        (["train", "--data", str(store), "--out", str(tmp / "r2")], "zarr.json"),
        (["train", "--data", "digits", "--model", "resnet9000"], "resnet9000"),
        (["train", "--data", "digits", "--epochs", "0"], "epochs"),
        (["train", "--data", "digits", "--defense", "magic"], "magic"),
        (["train", "--data", "digits", "--out", str(run)], "run"),
        (["attack", "--run", str(tmp / "missing")], "does not exist"),
        (["attack", "--run", str(run)], "not an evrobust run"),
        (["attack", "--run", str(badrun)], "not valid JSON"),
        (["attack", "--run", str(run), "--eps", "eight"], "eight"),
        (["attack", "--run", str(run), "--mode", "blackbox"], "source"),
        (["attack", "--run", str(run), "--suite", "everything"], "everything"),
        (["attack", "--run", str(run), "--batch-size", "0"], "batch-size"),
        (["demo", "--frobnicate"], "frobnicate"),
        (["info", "extra-argument"], "extra"),
    ]


def test_bad_arguments_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVROBUST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EVROBUST_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    failures = []
    cases = _bad_cases(tmp_path)
    for args, word in cases:
        result = runner.invoke(app, args)
        try:
            line = _assert_one_line_exit_2(args, result)
            assert word.lower() in line.lower(), (word, line)
        except AssertionError as exc:
            failures.append(f"{' '.join(args)}: {exc}")
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "logs").exists(), "a user error wrote a crash log"
    print(f"\nCLI bad-argument cases: semantic {len(cases)}, usage {len(LEAVES)}")


def test_internal_error_is_exit_1_with_a_log_pointer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evrobust.pipelines.preprocess as pp

    def broken(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(pp, "verify_store", broken)
    monkeypatch.setenv("EVROBUST_LOG_DIR", str(tmp_path / "logs"))
    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "zarr.json").write_text('{"attributes": {"format": "evrobust-store"}}')
    result = runner.invoke(app, ["preprocess", "verify", str(tmp_path / "s.zarr")])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("internal error: RuntimeError: simulated bug")
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0] and "Traceback" in logs[0].read_text()
