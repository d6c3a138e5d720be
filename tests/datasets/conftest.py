"""Small real stores shared by the dataset tests (built once per session in a temp dir)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_cifar10_dir(data: Path, root: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    """An official-layout cifar-10-batches-py/ holding the first rows of every real batch (protocol 2).

    ``data`` is the real-data folder (the ``real_data`` fixture).
    """
    train = np.load(data / "cifar10" / "cifar10_train_subset_5170.npz")
    test = np.load(data / "cifar10" / "cifar10_test_first1017.npz")
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    shutil.copy(data / "cifar10" / "batches.meta", folder / "batches.meta")
    xs, ys = [], []
    for b in range(1, 6):
        rows = np.flatnonzero(train["batch"] == b)[:per_batch]
        x, y = train["data"][rows], train["labels"][rows]
        (folder / f"data_batch_{b}").write_bytes(
            pickle.dumps({b"labels": y.tolist(), b"data": x}, protocol=2)
        )
        xs.append(x)
        ys.append(y)
    x, y = test["data"][:per_batch], test["labels"][:per_batch]
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": y.tolist(), b"data": x}, protocol=2))
    return {"x": np.concatenate(xs + [x]).reshape(-1, 3, 32, 32), "y": np.concatenate(ys + [y])}


@pytest.fixture(scope="session")
def cifar10_store(
    real_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, np.ndarray]]:
    from evrobust.pipelines.preprocess import preprocess_cifar

    root = tmp_path_factory.mktemp("cifar")
    expect = write_cifar10_dir(real_data, root / "raw")
    out = root / "cifar10.zarr"
    preprocess_cifar("cifar10", root / "raw", out=out)
    return out, expect


@pytest.fixture(scope="session")
def dvs_store(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR10-DVS-layout store from windows of the real MNIST-DVS recording (2 files per class)."""
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs
    from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2

    root = tmp_path_factory.mktemp("dvs")
    events = read_aedat2(real_data / MNIST_DVS)
    window = events.shape[0] // 20
    for k in range(20):
        c = CIFAR10_CLASSES[k // 2]
        (root / "raw" / c).mkdir(parents=True, exist_ok=True)
        part = events[k * window : (k + 1) * window].copy()
        part["t"] -= part["t"][0]
        write_aedat2(root / "raw" / c / f"cifar10_{c}_{k % 2}.aedat", part)
    out = root / "dvs.zarr"
    preprocess_cifar10dvs(root / "raw", frames=4, size=32, out=out, mode="sync")
    return out


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.datasets import resolve_data

    return resolve_data("digits", tmp_path_factory.mktemp("digits"))
