"""One error contract for damaged inputs reaching ``train``: damaged stores, damaged checkpoints on
``--resume``, deeply nested JSON, files where directories are expected. Each ends in one ``error:`` line and
exit 2, and nothing of value is lost (the damaged file is left as it was)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from reliability_helpers import cli, one_error_line
from typer.testing import CliRunner

from evrobust.checkpoint import load_checkpoint, save_checkpoint
from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app

TRAIN = ["--model", "vgg_small", "--width", "0.25", "--T", "1", "--epochs", "2", "--batch-size", "32",
         "--limit-train", "64", "--limit-val", "32", "--device", "cpu", "--no-progress"]  # fmt: skip


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    logs = ("warning:", "info:")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(logs)]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return result.exit_code, errors[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.preprocess.embedded import build_digits

    path = tmp_path_factory.mktemp("store") / "digits.zarr"
    build_digits(path)
    return path


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _add_split_index(doc: dict[str, Any]) -> None:
    attrs = doc["attributes"]
    attrs["splits"][attrs["default_split"]]["train"].append(5000)


def _set_label(store: Path, value: int) -> None:
    import zarr

    labels = zarr.open_array(store=str(store), path="labels", mode="r+")
    labels[0] = value


def _first_train_chunk(store: Path) -> Path:
    from evrobust.datasets import split_indices

    return store / "frames" / f"c.{int(split_indices(store, 'train')[0])}.0.0.0"


STORE_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "split index out of range": (
        lambda s: _edit_json(s / "zarr.json", _add_split_index),
        "split indices outside [0, 1797)",
    ),
    "label 99": (lambda s: _set_label(s, 99), "labels outside [0, 10), e.g. 99 at index 0"),
    "label -5": (lambda s: _set_label(s, -5), "labels outside [0, 10), e.g. -5 at index 0"),
    "huge shape": (
        lambda s: _edit_json(s / "frames" / "zarr.json", lambda d: d["shape"].__setitem__(0, 10**12)),
        "frames has shape (1000000000000, 1, 8, 8)",
    ),
    "huge chunk": (
        lambda s: _edit_json(
            s / "frames" / "zarr.json",
            lambda d: d["chunk_grid"]["configuration"].__setitem__("chunk_shape", [1, 1, 8, 10**9]),
        ),
        "in chunks (1, 1, 8, 1000000000)",
    ),
    "short labels": (
        lambda s: _edit_json(s / "labels" / "zarr.json", lambda d: d.__setitem__("shape", [10])),
        "labels has shape (10,)",
    ),
    "truncated chunk": (
        lambda s: _first_train_chunk(s).write_bytes(_first_train_chunk(s).read_bytes()[:9]),
        "a sample chunk cannot be read",
    ),
    "garbage chunk": (
        lambda s: _first_train_chunk(s).write_bytes(b"\x8f\x01garbage, not zstd at all"),
        "a sample chunk cannot be read",
    ),
}


@pytest.mark.parametrize("case", list(STORE_DAMAGE))
def test_damaged_store_reaching_train_is_one_line(store: Path, tmp_path: Path, case: str) -> None:
    damaged = tmp_path / "digits.zarr"
    shutil.copytree(store, damaged)
    damage, needle = STORE_DAMAGE[case]
    damage(damaged)
    code, line = _invoke(["train", "--data", str(damaged), "--out", str(tmp_path / "run"), *TRAIN])
    assert code == 2 and needle in line, line
    assert not (tmp_path / "run" / "checkpoint-last.safetensors").exists()


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def half_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    args = ["train", "--data", str(store), "--out", str(run), *TRAIN, "--stop-after", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run


def _meta_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        edit(meta)
        save_checkpoint(path, tensors, meta)

    return apply


def _tensor_edit(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        edit(tensors)
        save_checkpoint(path, tensors, meta)

    return apply


def _first(tensors: dict[str, torch.Tensor], prefix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix))


def _nested_metadata(path: Path) -> None:
    from safetensors.torch import save_file

    tensors, _ = load_checkpoint(path)
    save_file(tensors, str(path), metadata={"evrobust": "[" * 100_000 + "]" * 100_000})


def _set_lr(meta: dict[str, Any], lr: Any) -> None:
    meta["optimizer"]["param_groups"][0]["lr"] = lr


CHECKPOINT_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "wrong shape": (
        _tensor_edit(lambda t: t.__setitem__(_first(t, "model.features"), torch.zeros(3))),
        "cannot be resumed from (RuntimeError: Error(s) in loading state_dict",
    ),
    "missing key": (
        _tensor_edit(lambda t: t.pop(_first(t, "model.features"))),
        "cannot be resumed from (RuntimeError",
    ),
    "rng state": (
        _tensor_edit(lambda t: t.__setitem__(_first(t, "rng."), torch.zeros(3, dtype=torch.uint8))),
        "cannot be resumed from",
    ),
    "optimizer state": (
        _tensor_edit(lambda t: t.__setitem__(_first(t, "optimizer."), torch.zeros(1))),
        "optimizer state momentum_buffer has shape (1,)",
    ),
    "lr inf": (_meta_edit(lambda m: _set_lr(m, float("inf"))), "learning rate inf is not a number >= 0"),
    "lr text": (_meta_edit(lambda m: _set_lr(m, "fast")), "learning rate 'fast'"),
    "T_max 0": (_meta_edit(lambda m: m["scheduler"].__setitem__("T_max", 0)), "T_max 0 is not --epochs 2"),
    "epoch text": (_meta_edit(lambda m: m.__setitem__("epoch", "two")), "epoch 'two' is not an integer in"),
    "epoch -1": (_meta_edit(lambda m: m.__setitem__("epoch", -1)), "epoch -1 is not an integer in [0, 2]"),
    "epoch 99": (_meta_edit(lambda m: m.__setitem__("epoch", 99)), "epoch 99 is not an integer in [0, 2]"),
    "nested metadata": (_nested_metadata, "has damaged evrobust metadata"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_on_resume_is_one_line(
    half_run: Path, tmp_path: Path, store: Path, case: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(half_run, run)
    damage, needle = CHECKPOINT_DAMAGE[case]
    damage(run / "checkpoint-last.safetensors")
    files = (run / "checkpoint-last.safetensors", run / "metrics.jsonl")
    before = [f.read_bytes() for f in files]
    code, line = _invoke(["train", "--data", str(store), "--out", str(run), *TRAIN, "--resume"])
    assert code == 2 and needle in line, line
    assert before == [f.read_bytes() for f in files]  # nothing lost, nothing rewritten


def test_resume_removes_stale_temporaries_and_skips_a_nested_metrics_line(
    half_run: Path, tmp_path: Path, store: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(half_run, run)
    stale = run / ".checkpoint-last.safetensors.4242.deadbeef.tmp"  # a killed checkpoint write
    stale.write_bytes(b"\0" * 1000)
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    result = CliRunner().invoke(app, ["train", "--data", str(store), "--out", str(run), *TRAIN, "--resume"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    from evrobust.pipelines.train.run_dir import read_metrics

    assert [m["epoch"] for m in read_metrics(run)] == [1, 2]


def test_explicit_resume_with_nothing_to_resume_is_an_error(store: Path, tmp_path: Path) -> None:
    code, line = _invoke(["train", "--data", str(store), "--out", str(tmp_path / "typo"), *TRAIN, "--resume"])
    assert code == 2 and "holds no run to resume" in line
    assert not (tmp_path / "typo" / "config.json").exists()


def test_file_where_a_directory_is_expected(store: Path, tmp_path: Path) -> None:
    file = tmp_path / "passwd"
    file.write_text("root:x:0:0\n")
    code, line = _invoke(["train", "--data", str(store), "--out", str(file / "x"), *TRAIN])
    assert code == 2 and "is a file, not a directory" in line, line
    args = ["train", "--data", "digits", "--data-dir", str(file), "--out", str(tmp_path / "r"), *TRAIN]
    code, line = _invoke(args)
    assert code == 2 and "cannot be used" in line, line
    assert file.read_text() == "root:x:0:0\n"


def test_directory_where_metrics_file_is_expected(half_run: Path, store: Path, tmp_path: Path) -> None:
    """metrics.jsonl replaced by a directory: resume and report stop with one line; nothing is deleted."""
    run = tmp_path / "run"
    shutil.copytree(half_run, run)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()
    (run / "metrics.jsonl" / "keep").write_text("x")
    code, line = _invoke(["train", "--data", str(store), "--out", str(run), *TRAIN, "--resume"])
    assert code == 2 and "metrics.jsonl is not a regular file" in line, line
    assert (run / "metrics.jsonl" / "keep").read_text() == "x"
    from evrobust.pipelines.train.run_dir import read_metrics

    with pytest.raises(UserInputError, match="not a regular file"):
        read_metrics(run)


def test_damaged_store_in_a_fresh_process_prints_exactly_one_line(store: Path, tmp_path: Path) -> None:
    # zarr's event loop reports every read it drops at exit ("Task was destroyed but it is pending!"):
    # about 2,300 lines after the error line before the fix; they now go to the log file.
    damaged = tmp_path / "digits.zarr"
    shutil.copytree(store, damaged)
    STORE_DAMAGE["garbage chunk"][0](damaged)
    proc = cli(["train", "--data", str(damaged), "--out", str(tmp_path / "run"), *TRAIN], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr[:3000]
    assert "a sample chunk cannot be read" in one_error_line(proc.stderr)
    logs = list((tmp_path / "logs").glob("error-*.log"))
    assert len(logs) <= 1  # created only if something was logged after the error line
    for log in logs:
        assert log.read_text().startswith("the command failed: ")
