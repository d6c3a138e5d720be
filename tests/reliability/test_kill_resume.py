"""SIGKILL `evrobust preprocess|train|attack` at a seeded random point, rerun the same command, and compare
with an uninterrupted run: the store byte for byte, the final weights exactly, the attack results exactly
(timings aside). The kills hit the real CLI in a subprocess (its process group: dask workers die too)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import cli, cli_kill_when, make_raw_dir, tree_digest

from evrobust.checkpoint import load_checkpoint
from evrobust.preprocess.locks import lock_path
from evrobust.preprocess.store_verify import verify_store

RNG = random.Random(20240722)  # one seeded stream: the kill points are reproducible run to run


def _done_count(store: Path) -> int:
    done = store / "done"
    return sum(1 for _ in done.glob("c.*")) if done.is_dir() else 0


def test_preprocess_killed_with_two_workers_resumes_byte_identical(real_data: Path, tmp_path: Path) -> None:
    raw = make_raw_dir(real_data, tmp_path / "raw", per_class=8)  # 80 real AEDAT 2.0 recordings (symlinks)
    args = ["preprocess", "cifar10dvs", "--raw", str(raw), "--workers", "2", "--no-progress"]
    ref = tmp_path / "ref.zarr"
    assert cli([*args, "--out", str(ref)], tmp_path).returncode == 0
    store = tmp_path / "store.zarr"
    kills = 0
    for _ in range(2):  # two kill/resume cycles at increasing random depths
        k = _done_count(store) + RNG.randint(5, 30)
        kills += cli_kill_when([*args, "--out", str(store)], tmp_path, lambda k=k: _done_count(store) >= k)
    assert kills >= 1, "the build finished before any kill point; raise the file count"
    assert lock_path(store).exists(), "the killed build should have left its (stale) lock behind"
    rerun = cli([*args, "--out", str(store)], tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not lock_path(store).exists()
    assert tree_digest(store) == tree_digest(ref)
    assert verify_store(store, raw_dir=raw) == []


TRAIN = [
    "train", "--data", "digits", "--model", "vgg_small", "--width", "0.5", "--T", "2", "--epochs", "3",
    "--batch-size", "32", "--limit-train", "384", "--limit-val", "64", "--device", "cpu", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tmp root, an uninterrupted 3-epoch run)."""
    root = tmp_path_factory.mktemp("kill-train")
    result = cli([*TRAIN, "--out", str(root / "straight")], root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root, root / "straight"


def _epochs(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def test_train_killed_after_a_checkpoint_resumes_to_identical_weights(trained: tuple[Path, Path]) -> None:
    root, straight = trained
    run = root / "killed"
    # Kill once epoch 1 (or 2) has been checkpointed: the kill lands in the next epoch (mid-epoch) or
    # right after the checkpoint, where the run must redo nothing more than the unfinished epoch.
    target = RNG.choice([1, 2])
    last = run / "checkpoint-last.safetensors"
    killed = cli_kill_when(
        [*TRAIN, "--out", str(run)], root, lambda: _epochs(run) >= target and last.is_file()
    )
    assert killed
    assert (run / "checkpoint-last.safetensors").is_file()
    resumed = cli([*TRAIN, "--out", str(run), "--resume"], root)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for which in ("last", "best"):
        a, meta_a = load_checkpoint(straight / f"checkpoint-{which}.safetensors")
        b, meta_b = load_checkpoint(run / f"checkpoint-{which}.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].equal(b[name]), f"{which}: {name} differs after kill + resume"
        assert meta_a["epoch"] == meta_b["epoch"]
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in
             (straight / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    again = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in
             (run / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert strip == again


def _strip_timing(doc: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    for a in copy["attacks"]:
        a.pop("seconds")
    copy.pop("run")
    return copy


def _batches_done(partial: Path) -> int:
    try:
        return int(json.loads(partial.read_text())["batches_done"])
    except (OSError, ValueError, KeyError):
        return 0


def test_attack_killed_after_k_batches_resumes_to_identical_results(trained: tuple[Path, Path]) -> None:
    root, straight = trained
    args = ["attack", "--attacks", "clean,fgsm,pgd10", "--ensemble", "single", "--limit", "96",
            "--batch-size", "8", "--device", "cpu", "--no-checks"]  # fmt: skip
    ref = cli([*args, "--run", str(straight)], root)
    assert ref.returncode == 0, ref.stderr[-2000:]
    reference = json.loads((straight / "attack-whitebox.json").read_text())
    (straight / "attack-whitebox.json").unlink()
    partial = straight / "attack-whitebox.partial.json"
    k = RNG.randint(2, 8)
    assert cli_kill_when([*args, "--run", str(straight)], root, lambda: _batches_done(partial) >= k)
    assert _batches_done(partial) >= k
    rerun = cli([*args, "--run", str(straight)], root)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stderr
    assert not partial.exists()
    again = json.loads((straight / "attack-whitebox.json").read_text())
    assert _strip_timing(again) == _strip_timing(reference)
