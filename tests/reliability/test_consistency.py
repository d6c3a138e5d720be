"""`verify` and the readers agree on what a valid store is; `verify` reports not-a-store as a user error
and groups repeated findings; deeply nested JSON anywhere is one error line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.cli.errors import guard


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.preprocess.embedded import build_digits

    path = tmp_path_factory.mktemp("store") / "digits.zarr"
    build_digits(path)
    return path


def _one_line(result: Any) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_verify_exits_2_for_every_not_a_store_input(tmp_path: Path) -> None:
    import zarr

    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w", zarr_format=3)  # a zarr group, not ours
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_bytes(b"\xff\xfe not json")
    for name, needle in (
        ("missing", "does not exist"),
        ("file", "is a file"),
        ("empty", "is not an evrobust store"),
        ("group.zarr", "is not an evrobust store"),
        ("junk.zarr", "is not an evrobust store"),
    ):
        result = CliRunner().invoke(app, ["preprocess", "verify", str(tmp_path / name)])
        assert result.exit_code == 2, (name, result.output)
        assert needle in _one_line(result), name


def test_verify_groups_repeated_findings(store: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.store_verify import verify_store

    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    for i in range(30):
        (bad / "frames" / f"c.{i}.0.0.0").write_bytes(b"garbage")
    problems = verify_store(bad)
    assert len(problems) == 1, problems
    assert problems[0].startswith("30 x unreadable chunk, first: sample 0: chunk unreadable")
    result = CliRunner().invoke(app, ["preprocess", "verify", str(bad)])
    assert result.exit_code == 1
    shown = [ln for ln in result.stderr.splitlines() if ln.startswith("problem:")]
    assert shown == [f"problem: {problems[0]}"]


def _attrs(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        doc = json.loads((path / "zarr.json").read_text())
        edit(doc["attributes"])
        (path / "zarr.json").write_text(json.dumps(doc))

    return apply


def _default(a: dict[str, Any]) -> dict[str, list[int]]:
    return a["splits"][a["default_split"]]


DISAGREEMENTS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # case: (damage, what verify says, what the readers say)
    "empty train split": (
        _attrs(lambda a: _default(a).__setitem__("train", [])),
        "holdout/train is empty",
        "empty train or val split",
    ),
    "std 0": (_attrs(lambda a: a.__setitem__("std", [0.0])), "std holds a value <= 0", "std holds a value"),
    "overlapping splits": (
        _attrs(lambda a: _default(a)["val"].append(_default(a)["train"][0])),
        "overlaps another split",
        "overlap or repeat indices",
    ),
    "format_version 999": (
        _attrs(lambda a: a.__setitem__("format_version", 999)),
        "format_version 999 is not 1",
        "format_version 999 is not 1",
    ),
}


@pytest.mark.parametrize("case", list(DISAGREEMENTS))
def test_verify_and_readers_agree(store: Path, tmp_path: Path, case: str) -> None:
    from evrobust.preprocess.store_verify import verify_store

    damaged = tmp_path / "d.zarr"
    shutil.copytree(store, damaged)
    damage, verify_says, readers_say = DISAGREEMENTS[case]
    damage(damaged)
    assert any(verify_says in p for p in verify_store(damaged, deep=False)), verify_store(damaged, deep=False)
    train = ["train", "--data", str(damaged), "--out", str(tmp_path / "run"), "--model", "vgg_small",
             "--width", "0.25", "--T", "1", "--epochs", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, train)
    assert result.exit_code == 2 and readers_say in _one_line(result), result.stderr
    assert verify_store(store, deep=False) == []  # the pristine store passes both


def test_deeply_nested_json_anywhere_is_one_line() -> None:
    # Python's json gives up on input nested ~thousands deep with RecursionError: the CLI's guard turns
    # that into the user-error line for every reader (attack partial/results, report inputs, ...).
    def nested() -> None:
        json.loads("[" * 100_000 + "]" * 100_000)

    sub = typer.Typer()
    sub.command()(guard(nested))
    sub.command("ok")(lambda: None)
    result = CliRunner().invoke(sub, ["nested"])
    assert result.exit_code == 2
    assert "an input file is nested too deeply to read" in _one_line(result)


def test_nested_json_in_a_run_config_and_store_attrs(tmp_path: Path) -> None:
    from evrobust.pipelines.train.run_dir import read_config, read_metrics
    from evrobust.preprocess.store import read_attrs

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "config.json").write_text(deep)
    with pytest.raises(UserInputError, match="is not valid JSON"):
        read_config(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n" + deep + "\n")
    assert read_metrics(tmp_path) == [{"epoch": 1}]
    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "zarr.json").write_text(deep)
    with pytest.raises(UserInputError, match="zarr.json is unreadable"):
        read_attrs(tmp_path / "s.zarr")


@pytest.mark.parametrize("address", ["nonsense://x", "tcp://host:notaport", "::::"])
def test_malformed_scheduler_address_is_one_line(tmp_path: Path, address: str) -> None:
    from evrobust.preprocess.parallel import run_tasks

    with pytest.raises(UserInputError, match="check --scheduler"):
        run_tasks(print, [(1,)], workers=2, mode="processes", scheduler=address)


def test_malformed_scheduler_address_leaves_no_store(real_data: Path, tmp_path: Path) -> None:
    from reliability_helpers import cli, make_raw_dir

    raw = make_raw_dir(real_data, tmp_path / "raw", 1)
    out = tmp_path / "s.zarr"
    args = ["preprocess", "cifar10dvs", "--raw", str(raw), "--scheduler", "tcp://host:notaport",
            "--frames", "4", "--no-progress", "--out", str(out)]  # fmt: skip
    proc = cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "check --scheduler" in proc.stderr
    assert not out.exists()  # refused before the store was created


def test_dask_info_logs_stay_off_stderr_with_two_workers(real_data: Path, tmp_path: Path) -> None:
    from reliability_helpers import cli, make_raw_dir

    raw = make_raw_dir(real_data, tmp_path / "raw", 1)
    args = ["preprocess", "cifar10dvs", "--raw", str(raw), "--workers", "2", "--frames", "4", "--size", "32",
            "--no-progress", "--out", str(tmp_path / "s.zarr")]  # fmt: skip
    proc = cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dask_info = ("Scheduler at", "Start worker", "State start", "Registering Worker plugin", "dashboard at")
    for needle in dask_info:
        assert needle not in proc.stderr, proc.stderr[-3000:]
    assert "finalized" in proc.stderr  # evrobust's own INFO lines still show
