"""``--runs-from``: a completed run of identical options on the same store is copied, never retrained; any
difference (an option, the store's content, an unfinished run, a link) keeps it out."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evrobust.pipelines.train.pipeline as train_pipeline
from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.reproduce import build_spec
from evrobust.pipelines.reproduce.reuse import REUSED_FROM_FILE, check_sources, find_reusable_run
from evrobust.pipelines.reproduce.runner import train_run
from evrobust.pipelines.reproduce.specs import RunSpec
from evrobust.pipelines.train.run_dir import read_metrics
from evrobust.safeio import sha256_file, write_bytes_atomic

FILES = ("config.json", "metrics.jsonl", "checkpoint-last.safetensors", "checkpoint-best.safetensors")
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSpec, Path, str]:
    """``(spec, its completed run trained under <source>/runs, data dir)``: table3's tiny vanilla run."""
    root = tmp_path_factory.mktemp("reuse")
    data_dir = str(root / "data")
    spec = next(r for r in build_spec("table3", "tiny").runs if r.train["defense"] == "vanilla")
    run, epochs = train_run(spec, root / "source", data_dir=data_dir, device="cpu")
    assert epochs == int(spec.train["epochs"]) and len(read_metrics(run)) == epochs
    return spec, run, data_dir


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a reused run must not be trained")

    monkeypatch.setattr(train_pipeline, "train", forbidden)


def test_finds_the_run_in_an_output_root_and_as_a_run_directory(trained: tuple[RunSpec, Path, str]) -> None:
    spec, run, data_dir = trained
    assert find_reusable_run(spec, [run.parent.parent], data_dir=data_dir) == run  # <root>/runs/<dirname>
    assert find_reusable_run(spec, [run], data_dir=data_dir) == run  # the run directory itself
    assert find_reusable_run(spec, [run.parent], data_dir=data_dir) == run  # a folder of runs


def test_the_run_is_copied_byte_for_byte_and_never_trained(trained: tuple[RunSpec, Path, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    spec, run, data_dir = trained
    _forbid_training(monkeypatch)
    out, epochs = train_run(spec, tmp_path / "out", data_dir=data_dir, device="cpu",
                            runs_from=[run.parent.parent])
    assert epochs == 0 and out == tmp_path / "out" / "runs" / spec.dirname
    for name in FILES:
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    note = json.loads((out / REUSED_FROM_FILE).read_text())
    assert note == {"source": str(run.resolve()),
                    "best_checkpoint_sha256": sha256_file(run / "checkpoint-best.safetensors", "checkpoint")}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no staging directory is left"
    # the copy is now the run of <out>: a second call reuses it as a completed run, without copying again
    (out / REUSED_FROM_FILE).unlink()
    assert train_run(spec, tmp_path / "out", data_dir=data_dir, device="cpu", runs_from=[run]) == (out, 0)
    assert not (out / REUSED_FROM_FILE).exists()


@pytest.mark.parametrize("change", [{"seed": 1}, {"epochs": 2}, {"lr": 0.05}, {"defense": "at"}])
def test_a_run_of_other_options_is_not_reused(trained: tuple[RunSpec, Path, str], change: dict[str, object]
                                              ) -> None:
    spec, run, data_dir = trained
    other = dataclasses.replace(spec, train={**spec.train, **change})
    assert find_reusable_run(other, [run.parent.parent], data_dir=data_dir) is None


def test_a_run_on_a_store_of_other_content_is_not_reused(trained: tuple[RunSpec, Path, str], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    spec, run, data_dir = trained
    config = json.loads((run / "config.json").read_text())
    store = Path(config["data"]["store"])
    changed = tmp_path / store.name
    shutil.copytree(store, changed)
    chunk = max((p for p in changed.rglob("*") if p.is_file() and p.name != "zarr.json"),
                key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 1
    chunk.write_bytes(bytes(data))
    candidate = tmp_path / "candidate"
    shutil.copytree(run, candidate)
    config["data"]["store"] = str(changed)
    (candidate / "config.json").write_text(json.dumps(config))
    assert find_reusable_run(spec, [candidate], data_dir=data_dir) is None
    assert "trained on a different store" in caplog.text


def test_an_unfinished_or_incomplete_run_is_not_reused(trained: tuple[RunSpec, Path, str], tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    spec, run, data_dir = trained
    short = tmp_path / "short"
    shutil.copytree(run, short)
    lines = (short / "metrics.jsonl").read_text().splitlines(keepends=True)
    (short / "metrics.jsonl").write_text("".join(lines[:-1]))
    assert find_reusable_run(spec, [short], data_dir=data_dir) is None
    assert "is not complete" in caplog.text
    no_best = tmp_path / "no-best"
    shutil.copytree(run, no_best)
    (no_best / "checkpoint-best.safetensors").unlink()
    assert find_reusable_run(spec, [no_best], data_dir=data_dir) is None
    assert "missing checkpoint-best.safetensors" in caplog.text


def test_a_linked_checkpoint_is_refused_and_nothing_is_written(trained: tuple[RunSpec, Path, str],
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spec, run, data_dir = trained
    _forbid_training(monkeypatch)
    linked = tmp_path / "linked"
    shutil.copytree(run, linked)
    (linked / "checkpoint-best.safetensors").unlink()
    os.symlink(run / "checkpoint-best.safetensors", linked / "checkpoint-best.safetensors")
    with pytest.raises(UserInputError, match="link"):
        train_run(spec, tmp_path / "out", data_dir=data_dir, device="cpu", runs_from=[linked])
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


def test_a_missing_source_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such directory"):
        check_sources([tmp_path / "nowhere"])
    for command in (["reproduce", "table3"], ["leaderboard"]):
        result = runner.invoke(app, [*command, "--scale", "tiny", "--out", str(tmp_path / "out"),
                                     "--runs-from", str(tmp_path / "nowhere")])
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [f"error: --runs-from {tmp_path / 'nowhere'}: no such "
                                                      "directory"], result.output
    assert not (tmp_path / "out").exists()


def test_a_copy_cut_short_leaves_neither_the_run_nor_its_staging(trained: tuple[RunSpec, Path, str],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import evrobust.pipelines.reproduce.reuse as reuse

    spec, run, data_dir = trained
    _forbid_training(monkeypatch)
    written: list[str] = []

    def disk_full(path: Path, data: bytes) -> Path:
        written.append(Path(path).name)
        if len(written) == 3:  # config and metrics are in, the first checkpoint is not
            raise UserInputError(f"cannot write {path} (No space left on device)")
        return write_bytes_atomic(path, data)

    monkeypatch.setattr(reuse, "write_bytes_atomic", disk_full)
    with pytest.raises(UserInputError, match="No space left"):
        train_run(spec, tmp_path / "out", data_dir=data_dir, device="cpu", runs_from=[run])
    assert written[:2] == ["config.json", "metrics.jsonl"]
    assert list((tmp_path / "out" / "runs").iterdir()) == [], "no run directory and no staging directory"
