"""Torch datasets over stores: values, shapes, splits, statistics, lazy vs in-memory agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from evrobust.datasets import (
    InMemoryDataset,
    StoreDataset,
    load_split,
    open_split,
    split_indices,
    store_info,
)
from evrobust.errors import UserInputError
from evrobust.preprocess.store import read_attrs


def test_cifar10_images_are_pixels_over_255(cifar10_store: tuple[Path, dict]) -> None:
    path, expect = cifar10_store
    info = store_info(path)
    assert (info.kind, info.num_classes, info.in_channels, info.input_size, info.frames) == (
        "images",
        10,
        3,
        32,
        None,
    )
    assert info.split_sizes == {"train": 90, "val": 10, "test": 20}
    test = open_split(path, "test")
    assert isinstance(test, InMemoryDataset) and len(test) == 20
    for i in range(20):
        x, y = test[i]
        assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
        torch.testing.assert_close(x, torch.from_numpy(expect["x"][100 + i]).float() / 255, rtol=0, atol=0)
        assert int(y) == int(expect["y"][100 + i])
    # The per-channel mean/std of the train split, from the raw pixels.
    train = expect["x"][split_indices(path, "train")].astype(np.float64) / 255
    np.testing.assert_allclose(info.mean, train.mean(axis=(0, 2, 3)), atol=1e-7)
    np.testing.assert_allclose(info.std, train.std(axis=(0, 2, 3)), atol=1e-7)


def test_splits_partition_the_store(cifar10_store: tuple[Path, dict]) -> None:
    path, _ = cifar10_store
    train, val, test = (set(split_indices(path, s).tolist()) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val == set(range(100)) and test == set(range(100, 120))
    assert set(split_indices(path, "train+val").tolist()) == train | val
    with pytest.raises(UserInputError, match="unknown split 'dev'; choose one of train, val, test, train"):
        split_indices(path, "dev")
    with pytest.raises(UserInputError, match="unknown split scheme 'per-class'"):
        split_indices(path, "train", "per-class")


def test_frames_are_clipped_counts_over_scale(dvs_store: Path) -> None:
    attrs = read_attrs(dvs_store)
    scale = attrs["scale"]
    stored = zarr.open_array(store=str(dvs_store), path="frames", mode="r")
    lazy = open_split(dvs_store, "train", in_memory=False)
    eager = open_split(dvs_store, "train", in_memory=True)
    assert isinstance(lazy, StoreDataset) and isinstance(eager, InMemoryDataset)
    idx = split_indices(dvs_store, "train")
    assert len(lazy) == len(eager) == len(idx)
    saturated = 0
    for i in range(len(lazy)):
        x, y = lazy[i]
        x2, y2 = eager[i]
        assert x.shape == (4, 2, 32, 32) and x.dtype == torch.float32
        ref = np.clip(stored[idx[i]].astype(np.float64) / scale, 0, 1)
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6, atol=0)
        assert torch.equal(x, x2) and int(y) == int(y2) == int(idx[i]) // 2
        saturated += int((x == 1).sum())
    assert saturated > 0  # p99 scale: the busiest ~1% of active pixels saturate
    info = store_info(dvs_store)
    assert (info.kind, info.in_channels, info.frames, info.input_size) == ("frames", 2, 4, 32)
    assert info.scale == scale


def test_per_class_scheme_and_dataloader(dvs_store: Path) -> None:
    test = open_split(dvs_store, "test", scheme="per-class")
    assert len(test) == 10 and [int(test[i][1]) for i in range(10)] == list(range(10))
    lazy = open_split(dvs_store, "train", in_memory=False)
    lazy[0]  # opens the array handle, which must not travel to the worker process
    loader = DataLoader(lazy, batch_size=4, shuffle=False, num_workers=1)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 4, 2, 32, 32) and yb.dtype == torch.int64
    assert torch.equal(xb[1], lazy[1][0])


def test_load_split_whole_tensors(digits_store: Path) -> None:
    x, y = load_split(digits_store, "val")
    assert x.shape == (143, 1, 8, 8) and y.shape == (143,) and x.dtype == torch.float32
    from sklearn.datasets import load_digits

    ref = load_digits()
    idx = split_indices(digits_store, "val")
    expect = torch.from_numpy((ref.images[idx].astype(np.int64) * 255 // 16).astype(np.float32) / 255)
    torch.testing.assert_close(x[:, 0], expect, rtol=0, atol=0)
    assert torch.equal(y, torch.from_numpy(ref.target[idx]))


def test_incomplete_store_is_refused(tmp_path: Path) -> None:
    from evrobust.preprocess.store import create_store

    create_store(
        tmp_path / "s.zarr",
        dataset="x",
        kind="images",
        sample_shape=(1, 2, 2),
        labels=np.array([0]),
        classes=["a"],
        splits={"s": {"train": [0], "val": [], "test": []}},
        default_split="s",
        split_rule="",
        sources=[],
    )
    with pytest.raises(UserInputError, match="is incomplete .* rerun the same `evrobust preprocess` command"):
        open_split(tmp_path / "s.zarr", "train")


def test_cifar100_store(real_data: Path, tmp_path: Path) -> None:
    import pickle
    import shutil

    from evrobust.pipelines.preprocess import preprocess_cifar

    data = real_data / "cifar100"
    folder = tmp_path / "raw" / "cifar-100-python"
    folder.mkdir(parents=True)
    shutil.copy(data / "meta", folder / "meta")
    parts = {}
    for name, file, n in (
        ("train", "cifar100_train_first486.npz", 40),
        ("test", "cifar100_test_first916.npz", 10),
    ):
        src = np.load(data / file)
        parts[name] = src
        batch = {b"fine_labels": src["fine_labels"][:n].tolist(), b"data": src["data"][:n]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    report = preprocess_cifar("cifar100", tmp_path / "raw", out=tmp_path / "c100.zarr")
    assert report.n_samples == 50
    info = store_info(tmp_path / "c100.zarr")
    assert info.num_classes == 100 and info.classes[19] == "cattle"
    x, y = load_split(tmp_path / "c100.zarr", "test")
    expect = torch.from_numpy(parts["test"]["data"][:10].reshape(10, 3, 32, 32)).float() / 255
    torch.testing.assert_close(x, expect, rtol=0, atol=0)
    assert y.tolist() == parts["test"]["fine_labels"][:10].tolist()
