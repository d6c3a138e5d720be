"""Silent corruption: nothing non-finite is ever saved, a lost chunk is found, DAVIS files are never read as
DVS128 by any path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import CLASSES, MNIST_DVS

from evrobust.checkpoint import load_checkpoint
from evrobust.errors import UserInputError
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.run_dir import read_metrics

DAVIS240 = "dvs/aedat2_davis/IMU_rotDisk.aedat"  # under the real_data fixture's folder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.datasets import resolve_data

    path = tmp_path_factory.mktemp("data")
    resolve_data("digits", str(path))
    return path


def _small(data_dir: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        data="digits", data_dir=str(data_dir), model="vgg_small", width=0.5, T=2, epochs=2, batch_size=64,
        limit_train=128, limit_val=64, out=str(out), device="cpu", progress=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_non_finite_weights_are_never_saved(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NaN in a BatchNorm running variance leaves the training loss finite (training mode uses batch
    # statistics), so the loss guard cannot see it; before the fix the epoch was saved as "last" and "best".
    import evrobust.pipelines.train.pipeline as train_module

    run = train_module.train(_small(digits_dir, tmp_path / "run", stop_after=1))
    good = (run / "checkpoint-last.safetensors").read_bytes()
    best = (run / "checkpoint-best.safetensors").read_bytes()
    original = train_module.after_optimizer_step

    def poisoned(model: torch.nn.Module, *args: object, **kwargs: object) -> None:
        original(model, *args, **kwargs)
        dict(model.named_buffers())["features.0.1.running_var"].fill_(float("nan"))

    monkeypatch.setattr(train_module, "after_optimizer_step", poisoned)
    with pytest.raises(
        train_module.NonFiniteLossError,
        match=r"after epoch 2, \d+ model/optimizer tensors are not finite \(first: model\.features\.0\.1\."
        r"running_var\); nothing of this epoch was saved; the last good checkpoint is .*\(epoch 1\)",
    ):
        train_module.train(_small(digits_dir, run, resume=True))
    assert (run / "checkpoint-last.safetensors").read_bytes() == good
    assert (run / "checkpoint-best.safetensors").read_bytes() == best
    assert len(read_metrics(run)) == 1
    for name in ("checkpoint-last.safetensors", "checkpoint-best.safetensors"):
        tensors, _ = load_checkpoint(run / name)
        assert all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def test_non_finite_tensors_lists_only_the_bad_ones() -> None:
    from evrobust.pipelines.train.checkpoints import non_finite_tensors

    tensors = {
        "a": torch.zeros(3),
        "b": torch.tensor([1.0, float("inf")]),
        "c": torch.tensor([float("nan")], dtype=torch.float64),
        "d": torch.tensor([255], dtype=torch.uint8),  # RNG state bytes: never "non-finite"
    }
    assert non_finite_tensors(tensors) == ["b", "c"]


# ----------------------------------------------------------------------------- lost chunks
def test_a_deleted_chunk_of_a_done_sample_is_found(tmp_path: Path) -> None:
    from evrobust.datasets import open_split, split_indices
    from evrobust.preprocess.embedded import build_digits
    from evrobust.preprocess.store_verify import verify_store

    store = tmp_path / "digits.zarr"
    build_digits(store)
    assert verify_store(store) == []
    victim = int(split_indices(store, "test")[3])
    chunk = store / "frames" / f"c.{victim}.0.0.0"  # [1, 8, 8] images: three trailing zeros
    assert chunk.is_file()
    chunk.unlink()
    for deep in (True, False):  # a stat-level check: found even without decoding every chunk
        problems = verify_store(store, deep=deep)
        needle = f"1 samples flagged done have no frames chunk file (first index {victim})"
        assert any(needle in p for p in problems), problems
    lost = f"1 samples flagged done have no chunk file .first index {victim}"
    with pytest.raises(UserInputError, match=lost):
        open_split(store, "test")
    with pytest.raises(UserInputError, match="no chunk file"):
        open_split(store, "test", in_memory=False)
    assert len(open_split(store, "train")) > 0  # the other splits are intact and still open


# ----------------------------------------------------------------------------- DAVIS
def test_davis_file_in_a_class_folder_is_refused_on_every_path(real_data: Path, tmp_path: Path) -> None:
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs
    from evrobust.preprocess.aedat2 import read_aedat2
    from evrobust.preprocess.convert import FrameParams, decode_event_bytes
    from evrobust.preprocess.events import EventFileError

    davis = real_data / DAVIS240
    params = FrameParams(10, "number", 48, (128, 128), "spikingjelly")
    with pytest.raises(EventFileError, match=r"is a DAVIS recording .AEChip eu\.seebetter\..*DAVIS240C"):
        read_aedat2(davis, layout="dvs128")
    with pytest.raises(EventFileError, match="is a DAVIS recording"):
        decode_event_bytes(davis.read_bytes(), davis.name, params, davis)
    raw = tmp_path / "raw"
    for c, name in enumerate(CLASSES):
        (raw / name).mkdir(parents=True)
        src = davis if c == 3 else real_data / MNIST_DVS
        shutil.copyfile(src, raw / name / f"{name}_0.aedat")  # a copy: links to sources are refused
    with pytest.raises(UserInputError, match="cat/cat_0.aedat.*DAVIS recording"):
        preprocess_cifar10dvs(raw, frames=4, size=32, out=tmp_path / "s.zarr")
    report = preprocess_cifar10dvs(raw, frames=4, size=32, out=tmp_path / "skip.zarr", on_error="skip")
    assert list(report.skipped) == [3]


def test_a_file_name_with_double_colon_in_a_class_folder_is_a_file(real_data: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.sources import read_source_bytes, scan_event_dir, split_zip_source

    raw = tmp_path / "raw"
    for name in CLASSES:
        (raw / name).mkdir(parents=True)
        shutil.copyfile(real_data / MNIST_DVS, raw / name / "take::1.aedat")
    sources = scan_event_dir(raw, CLASSES)
    assert sources[0].path == "airplane/take::1.aedat"
    assert split_zip_source(sources[0].path) is None
    assert split_zip_source("airplane.zip::airplane/a.aedat") == ("airplane.zip", "airplane/a.aedat")
    assert read_source_bytes(raw, sources[0].path) == (real_data / MNIST_DVS).read_bytes()
    assert os.path.exists(raw / sources[0].path)
    assert np.array_equal(np.array([s.label for s in sources]), np.arange(10))
