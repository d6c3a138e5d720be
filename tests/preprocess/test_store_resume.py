"""Resumable writing: an interrupted build, rerun, ends byte-identical to an uninterrupted one; bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from evrobust.errors import UserInputError
from evrobust.pipelines.preprocess import preprocess_cifar10dvs
from evrobust.preprocess import store, store_verify
from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2
from evrobust.preprocess.convert import SampleResult
from evrobust.preprocess.sources import scan_event_dir

MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def raw_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes x 2 files, each a distinct window of the real MNIST-DVS recording."""
    root = tmp_path_factory.mktemp("raw10") / "raw"
    events = read_aedat2(real_data / MNIST_DVS)
    window = events.shape[0] // 20
    for k in range(20):
        c = CLASSES[k // 2]
        (root / c).mkdir(parents=True, exist_ok=True)
        part = events[k * window : (k + 1) * window].copy()
        part["t"] -= part["t"][0]
        write_aedat2(root / c / f"cifar10_{c}_{k % 2}.aedat", part)
    return root


@pytest.fixture(scope="module")
def reference(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    preprocess_cifar10dvs(raw_dir, frames=5, size=48, out=out, mode="sync")
    return out


class Interrupt(Exception):
    pass


def stop_after(k: int):  # noqa: ANN201 - a tiny test hook
    seen = []

    def hook(result: SampleResult) -> None:
        seen.append(result.index)
        if len(seen) == k:
            raise Interrupt

    return hook


def test_interrupted_run_resumes_to_identical_bytes(raw_dir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed.zarr"
    with pytest.raises(Interrupt):
        preprocess_cifar10dvs(
            raw_dir, frames=5, size=48, out=out, mode="sync", on_result=stop_after(7), files_per_task=1
        )
    assert int((store.done_flags(out) == store.WRITTEN).sum()) == 7
    assert store.read_attrs(out)["complete"] is False
    # A second interruption, then the finishing run.
    with pytest.raises(Interrupt):
        preprocess_cifar10dvs(
            raw_dir, frames=5, size=48, out=out, mode="sync", on_result=stop_after(5), files_per_task=1
        )
    assert int((store.done_flags(out) == store.WRITTEN).sum()) == 12
    report = preprocess_cifar10dvs(raw_dir, frames=5, size=48, out=out, mode="sync")
    assert report.resumed and report.n_done_now == 8
    assert files_of(out) == files_of(reference)


def test_threads_give_the_same_bytes(raw_dir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "threads.zarr"
    with pytest.raises(Interrupt):
        preprocess_cifar10dvs(
            raw_dir, frames=5, size=48, out=out, workers=2, mode="threads", on_result=stop_after(3)
        )
    preprocess_cifar10dvs(raw_dir, frames=5, size=48, out=out, workers=2, mode="threads")
    assert files_of(out) == files_of(reference)


def test_reference_store_content(raw_dir: Path, reference: Path) -> None:
    attrs = store.read_attrs(reference)
    assert attrs["sample_shape"] == [5, 2, 48, 48] and attrs["count_unit"] == 9
    assert len(attrs["splits"]["random"]["test"]) == 2  # 20 - 9 * 20 // 10
    per_class = attrs["splits"]["per-class"]
    assert per_class["test"] == list(range(1, 20, 2))  # the second (last 10%) file of every class
    assert sorted(per_class["train"] + per_class["val"]) == list(range(0, 20, 2))
    assert store_verify.verify_store(reference, raw_dir=raw_dir) == []


def test_corrupt_file_fails_or_is_skipped(raw_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    bad = raw / "cat" / "cifar10_cat_1.aedat"
    bad.write_bytes(bad.read_bytes()[:-3])  # payload no longer a multiple of 8 bytes
    with pytest.raises(
        UserInputError, match=r"cannot read cat/cifar10_cat_1.aedat: .*multiple of 8.*--on-error skip"
    ):
        preprocess_cifar10dvs(raw, frames=5, size=48, out=tmp_path / "fail.zarr", mode="sync")
    out = tmp_path / "skip.zarr"
    report = preprocess_cifar10dvs(raw, frames=5, size=48, out=out, mode="sync", on_error="skip")
    index = scan_event_dir(raw, CLASSES).index(
        next(s for s in scan_event_dir(raw, CLASSES) if s.path.endswith("cat_1.aedat"))
    )
    assert list(report.skipped) == [index]
    attrs = store.read_attrs(out)
    assert attrs["skipped"][0]["source"] == "cat/cifar10_cat_1.aedat"
    assert "multiple of 8" in attrs["skipped"][0]["reason"]
    for parts in attrs["splits"].values():
        assert all(index not in idx for idx in parts.values())
    assert store_verify.verify_store(out) == []
    np.testing.assert_array_equal(store.done_flags(out)[index], store.SKIPPED)
