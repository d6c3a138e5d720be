"""resolve_data (embedded build on first use, clear errors) and the split rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evrobust.datasets import default_store_path, resolve_data, store_name
from evrobust.datasets.splits import per_class_split, reference_random_split, torch_random_split
from evrobust.errors import UserInputError
from evrobust.preprocess.splits import carve_validation, holdout_split


def test_reference_split_is_torch_random_split() -> None:
    train, test = torch_random_split(10000, [9000, 1000], 42)
    subsets = torch.utils.data.random_split(
        range(10000), [9000, 1000], generator=torch.Generator().manual_seed(42)
    )
    assert train == list(subsets[0].indices) and test == list(subsets[1].indices)
    ref = reference_random_split(10000)
    assert sorted(ref["test"]) == sorted(test)
    assert len(ref["train"]) == 8100 and len(ref["val"]) == 900
    assert sorted(ref["train"] + ref["val"]) == sorted(train)
    small = reference_random_split(20)
    assert (len(small["train"]) + len(small["val"]), len(small["test"])) == (18, 2)


def test_per_class_split_is_900_100_on_the_full_layout() -> None:
    labels = np.repeat(np.arange(10), 1000)
    s = per_class_split(labels)
    assert len(s["test"]) == 1000 and len(s["train"]) + len(s["val"]) == 9000
    for c in range(10):
        # the last 100 files (in name order) of each class are the test set
        assert [i for i in s["test"] if labels[i] == c] == list(range(c * 1000 + 900, c * 1000 + 1000))


def test_carving_and_holdout_are_seeded() -> None:
    tr, va = carve_validation(range(100))
    assert len(va) == 10 and sorted(tr + va) == list(range(100))
    assert carve_validation(range(100)) == (tr, va) and carve_validation(range(100), seed=1) != (tr, va)
    perm = np.random.default_rng(0).permutation(100)
    assert sorted(carve_validation(range(100))[1]) == sorted(perm[:10].tolist())
    h = holdout_split(1797)
    assert (len(h["train"]), len(h["val"]), len(h["test"])) == (1295, 143, 359)


def test_store_names() -> None:
    assert store_name("cifar10dvs") == "cifar10dvs.zarr"
    assert store_name("cifar10dvs", 10, "number", 48) == "cifar10dvs.zarr"
    assert store_name("cifar10dvs", 16, "time", 64) == "cifar10dvs-T16-time-64.zarr"
    assert default_store_path("cifar10", "/d") == Path("/d/cifar10.zarr")


def test_resolve_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        UserInputError, match=r"build it with `evrobust preprocess cifar10 --data-dir"
    ):
        resolve_data("cifar10", tmp_path)
    with pytest.raises(UserInputError, match="neither a known dataset .* nor an existing store path"):
        resolve_data(str(tmp_path / "nothing.zarr"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserInputError, match="not an evrobust store"):
        resolve_data(str(tmp_path / "plain"))
    monkeypatch.setenv("EVROBUST_DATA", str(tmp_path / "env"))
    with pytest.raises(UserInputError, match=r"cifar10dvs store .*env/cifar10dvs.zarr does not exist"):
        resolve_data("cifar10dvs")


def test_embedded_digits_resolve_from_env(digits_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The session fixture built it under its data dir; resolving again (by env) finds it without rebuilding.
    monkeypatch.setenv("EVROBUST_DATA", str(digits_store.parent))
    before = (digits_store / "zarr.json").stat().st_mtime_ns
    assert resolve_data("digits") == digits_store
    assert resolve_data(str(digits_store)) == digits_store
    assert (digits_store / "zarr.json").stat().st_mtime_ns == before


def test_concurrent_first_use_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import evrobust.preprocess.embedded as embedded
    from evrobust.preprocess import store, store_stats

    calls = []

    def fake_build(name: str, path: Path) -> None:
        calls.append(name)
        time.sleep(0.3)  # long enough for the other caller to arrive while this one builds
        store.create_store(
            path,
            dataset=name,
            kind="images",
            sample_shape=(1, 2, 2),
            labels=np.array([0, 1]),
            classes=[str(i) for i in range(10)],
            splits={"holdout": {"train": [0], "val": [], "test": [1]}},
            default_split="holdout",
            split_rule="",
            sources=[],
        )
        store.write_block(path, 0, np.full((2, 1, 2, 2), 7, np.uint8))
        store_stats.finalize_store(path)

    monkeypatch.setattr(embedded, "build_embedded", fake_build)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_data("digits", tmp_path))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["digits"] and results == [tmp_path / "digits.zarr"] * 2
