"""``evrobust preprocess ...`` through typer's CliRunner: success paths, exit codes and one-line errors."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app
from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

runner = CliRunner()


def invoke(*args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(main_app, ["preprocess", *args])


@pytest.fixture(scope="module")
def raw_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cliraw") / "raw"
    events = read_aedat2(real_data / "dvs" / "aedat2_dvs128" / "mnist_0_scale04_0001.aedat")
    window = events.shape[0] // 10
    for k, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        part = events[k * window : (k + 1) * window].copy()
        part["t"] -= part["t"][0]
        write_aedat2(root / c / f"cifar10_{c}_0.aedat", part)
    return root


def test_cifar10dvs_then_verify(raw_dir: Path, tmp_path: Path) -> None:
    r = invoke(
        "cifar10dvs",
        "--raw",
        str(raw_dir),
        "--frames",
        "3",
        "--size",
        "16",
        "--data-dir",
        str(tmp_path),
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    store = tmp_path / "cifar10dvs-T3-number-16.zarr"
    assert "wrote 10 of 10 samples" in r.output and store.is_dir()
    again = invoke("cifar10dvs", "--raw", str(raw_dir), "--frames", "3", "--size", "16", "--out", str(store))
    assert again.exit_code == 0 and "already complete" in again.output
    ok = invoke("verify", str(store), "--raw", str(raw_dir))
    assert ok.exit_code == 0 and "ok" in ok.output
    (store / "done" / "c.4").unlink()
    bad = invoke("verify", str(store))
    assert bad.exit_code == 1 and "problem: 1 samples not written (first index 4)" in bad.output


def test_bad_input_is_one_line_and_exit_2(raw_dir: Path, tmp_path: Path) -> None:
    r = invoke("cifar10dvs", "--raw", str(tmp_path / "missing"), "--out", str(tmp_path / "o.zarr"))
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (
        f"error: raw directory {tmp_path / 'missing'} does not exist; "
        "pass --raw DIR with one folder per class"
    )
    partial = tmp_path / "partial"
    shutil.copytree(raw_dir, partial)
    shutil.rmtree(partial / "frog")
    r = invoke("cifar10dvs", "--raw", str(partial), "--out", str(tmp_path / "o.zarr"))
    assert r.exit_code == 2 and "class folder(s) frog missing" in r.output
    r = invoke("cifar10dvs", "--raw", str(raw_dir), "--split-by", "space")
    assert r.exit_code == 2 and "space" in r.output  # typer lists the valid choices
    r = invoke("verify", str(tmp_path / "nowhere.zarr"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_corrupt_file_fail_then_skip(raw_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    (raw / "dog" / "cifar10_dog_0.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + b"\x01" * 13)
    out = tmp_path / "s.zarr"
    r = invoke(
        "cifar10dvs", "--raw", str(raw), "--frames", "2", "--size", "16", "--out", str(out), "--no-progress"
    )
    assert r.exit_code == 2
    # The app may log INFO lines on stderr too; the error itself is one line, the last.
    errors = [line for line in r.output.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and r.output.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: cannot read dog/cifar10_dog_0.aedat")
    assert errors[0].endswith("rerun with --on-error skip")
    r = invoke(
        "cifar10dvs",
        "--raw",
        str(raw),
        "--frames",
        "2",
        "--size",
        "16",
        "--out",
        str(out),
        "--no-progress",
        "--on-error",
        "skip",
    )
    assert r.exit_code == 0 and "1 skipped" in r.output
    assert invoke("verify", str(out)).exit_code == 0


def test_cifar10_and_digits(cifar10_layout: Callable[..., Path], tmp_path: Path) -> None:
    folder = cifar10_layout(tmp_path / "raw")
    r = invoke(
        "cifar10", "--raw", str(tmp_path / "raw"), "--data-dir", str(tmp_path / "d")
    )  # with a progress bar
    assert r.exit_code == 0, r.output
    assert invoke("verify", str(tmp_path / "d" / "cifar10.zarr"), "--raw", str(folder)).exit_code == 0
    r = invoke("cifar100", "--raw", str(tmp_path / "raw"), "--data-dir", str(tmp_path / "d"))
    assert r.exit_code == 2 and "meta" in r.output and "is missing" in r.output
    r = invoke("digits", "--data-dir", str(tmp_path / "d"))
    assert r.exit_code == 0 and "wrote 1797 of 1797 samples" in r.output


def test_cifar10dvs_emu_then_release_layout_reads_back(
    real_data: Path, cifar10_layout: Callable[..., Path], tmp_path: Path
) -> None:
    import zarr

    from evrobust.preprocess.emulator_recording import RecordingParams, emulate_recording, release_names
    from evrobust.preprocess.orientation import CIFAR10DVS_ORIENTATION
    from evrobust.preprocess.sources import read_cifar10
    from evrobust.preprocess.store import read_attrs

    folder = cifar10_layout(tmp_path / "raw")
    store, rel = tmp_path / "emu.zarr", tmp_path / "release"
    # 30 train images (batches 1-3 hold all 10 classes) + 10 test; one loop keeps the test fast
    args = ["--raw", str(folder), "--limit", "30", "--frames", "4", "--size", "16", "--set", "n_loops=1"]
    r = invoke("cifar10dvs-emu", *args, "--out", str(store), "--raw-out", str(rel), "--no-progress")
    assert r.exit_code == 0, r.output
    assert "wrote 40 of 40 samples" in r.output
    attrs = read_attrs(store)
    assert attrs["dataset"] == "cifar10dvs-emu" and attrs["extra"]["data"] == "emulated"
    assert "EMULATED" in attrs["extra"]["note"] and attrs["orientation"] == CIFAR10DVS_ORIENTATION
    split = attrs["splits"]["standard"]
    assert sorted(split["train"] + split["val"]) == list(range(30)) and split["test"] == list(range(30, 40))
    # the release layout: every class folder, the real release's names, files that read back exactly
    assert sorted(p.name for p in rel.iterdir() if p.is_dir()) == sorted(CLASSES)
    images = read_cifar10(folder)
    params = RecordingParams(n_loops=1)
    stored = [int(v) for v in zarr.open_array(store / "labels", mode="r")[:]]
    emu_names = release_names(stored, CLASSES)
    rows = attrs["extra"]["source_rows"]
    assert rows[:30] == list(range(30)) and rows[30] == images.counts["train"]  # test rows after train
    for k in (0, 29, 30, 39):  # seed = base (0) + the image's source row
        back = read_aedat2(rel / emu_names[k], orientation=CIFAR10DVS_ORIENTATION)
        assert back.tobytes() == emulate_recording(images.images[rows[k]], params, seed=rows[k]).tobytes()
    # the real-data command reads the layout with no special case, to the same frames
    real = tmp_path / "real.zarr"
    r = invoke("cifar10dvs", "--raw", str(rel), "--frames", "4", "--size", "16", "--out", str(real),
               "--no-progress")
    assert r.exit_code == 0, r.output
    emu_frames = zarr.open_array(store / "frames", mode="r")[:]
    real_frames = zarr.open_array(real / "frames", mode="r")[:]
    real_sources = read_attrs(real)["sources"]
    for k, name in enumerate(emu_names):
        np.testing.assert_array_equal(emu_frames[k], real_frames[real_sources.index(name)])
    again = invoke("cifar10dvs-emu", *args, "--out", str(store), "--raw-out", str(rel))
    assert again.exit_code == 0 and "already complete" in again.output


def test_cifar10dvs_emu_bad_input_is_one_line_exit_2_nothing_written(
    cifar10_layout: Callable[..., Path], tmp_path: Path
) -> None:
    folder = cifar10_layout(tmp_path / "raw", per_batch=2)
    store, rel = tmp_path / "emu.zarr", tmp_path / "release"
    cases = [
        (["--set", "threshold=0.2"], "error: unknown emulator setting(s) threshold; known: "),
        (["--set", "pos_thres"], "error: --set 'pos_thres': expected NAME=VALUE"),
        (["--set", "pos_thres=-1"], "error: emulator: pos_thres and neg_thres must be > 0"),
    ]
    for extra, start in cases:
        r = invoke("cifar10dvs-emu", "--raw", str(folder), "--out", str(store), "--raw-out", str(rel), *extra)
        assert r.exit_code == 2, r.output
        assert r.output.strip().splitlines()[-1].startswith(start), r.output
        assert not store.exists() and not rel.exists()
    occupied = tmp_path / "real-recordings"
    (occupied / "airplane").mkdir(parents=True)
    (occupied / "airplane" / "cifar10_airplane_0.aedat").write_bytes(b"real data")
    r = invoke("cifar10dvs-emu", "--raw", str(folder), "--out", str(store), "--raw-out", str(occupied))
    assert r.exit_code == 2 and "is not empty and was not written by cifar10dvs-emu" in r.output
    assert not store.exists() and sorted(p.name for p in occupied.rglob("*")) == sorted(
        ["airplane", "cifar10_airplane_0.aedat"]
    )
    r = invoke("cifar10dvs-emu", "--raw", str(tmp_path / "nowhere"), "--out", str(store))
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("error:")
    assert not store.exists()
