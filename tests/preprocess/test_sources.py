"""Raw readers: the CIFAR python-pickle layout (restricted unpickler), event-dir scanning, sklearn digits."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from evrobust.errors import UserInputError
from evrobust.preprocess.sources import (
    digits_to_uint8,
    load_cifar_pickle,
    read_cifar10,
    read_cifar100,
    read_digits,
    scan_event_dir,
)


def official_style_pickle(obj: dict, path: Path, python2_names: bool = False) -> None:
    """Write ``obj`` as a protocol-2 pickle like the official files (numpy arrays, bytes keys).

    With ``python2_names`` the numpy global is renamed to ``numpy.core.multiarray`` as in the official
    (Python 2 era) files; protocol 2 writes globals as text lines, so the rename keeps the pickle valid.
    """
    data = pickle.dumps(obj, protocol=2)
    if python2_names:
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


def make_cifar10_dir(
    data: Path, root: Path, per_batch: int = 40, python2_names: bool = True
) -> tuple[Path, dict]:
    """cifar-10-batches-py/ from the exact real subsets in ``data`` (rows 0..per_batch-1 of each batch)."""
    train = np.load(data / "cifar10" / "cifar10_train_subset_5170.npz")
    test = np.load(data / "cifar10" / "cifar10_test_first1017.npz")
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    shutil.copy(data / "cifar10" / "batches.meta", folder / "batches.meta")
    expect_x, expect_y = [], []
    for b in range(1, 6):
        rows = np.flatnonzero(train["batch"] == b)[:per_batch]
        assert np.array_equal(train["index_in_batch"][rows], np.arange(per_batch))
        x, y = train["data"][rows], train["labels"][rows]
        batch = {b"batch_label": f"training batch {b} of 5".encode(), b"labels": y.tolist(), b"data": x}
        official_style_pickle(batch, folder / f"data_batch_{b}", python2_names)
        expect_x.append(x)
        expect_y.append(y)
    x, y = test["data"][:per_batch], test["labels"][:per_batch]
    official_style_pickle({b"labels": y.tolist(), b"data": x}, folder / "test_batch", python2_names)
    expect = {"x": np.concatenate(expect_x + [x]), "y": np.concatenate(expect_y + [y])}
    return folder, expect


def test_cifar10_is_read_pixel_exact(real_data: Path, tmp_path: Path) -> None:
    folder, expect = make_cifar10_dir(real_data, tmp_path)
    for where in (folder, tmp_path):  # the folder itself or its parent
        images = read_cifar10(where)
        assert images.images.shape == (240, 3, 32, 32) and images.images.dtype == np.uint8
        np.testing.assert_array_equal(images.images.reshape(240, 3072), expect["x"])
        np.testing.assert_array_equal(images.labels, expect["y"])
        assert images.counts == {"train": 200, "test": 40}
        assert images.classes[:3] == ["airplane", "automobile", "bird"]
    # Row layout: first 1024 values are the red plane of the first test image (a cat).
    test = np.load(real_data / "cifar10" / "cifar10_test_first1017.npz")
    np.testing.assert_array_equal(images.images[200, 0].ravel(), test["data"][0, :1024])
    assert images.labels[200] == 3


def test_numpy2_pickles_are_read_too(real_data: Path, tmp_path: Path) -> None:
    _, expect = make_cifar10_dir(real_data, tmp_path, per_batch=3, python2_names=False)
    np.testing.assert_array_equal(read_cifar10(tmp_path).images.reshape(18, 3072), expect["x"])


def test_cifar100_fine_labels(real_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    shutil.copy(real_data / "cifar100" / "meta", folder / "meta")
    tr = np.load(real_data / "cifar100" / "cifar100_train_first486.npz")
    te = np.load(real_data / "cifar100" / "cifar100_test_first916.npz")
    for name, src, n in (("train", tr, 30), ("test", te, 20)):
        batch = {
            b"filenames": [f.encode() for f in src["filenames"][:n]],
            b"fine_labels": src["fine_labels"][:n].tolist(),
            b"coarse_labels": src["coarse_labels"][:n].tolist(),
            b"data": src["data"][:n],
        }
        official_style_pickle(batch, folder / name, python2_names=True)
    images = read_cifar100(tmp_path)
    assert images.images.shape == (50, 3, 32, 32) and len(images.classes) == 100
    np.testing.assert_array_equal(images.labels[:2], [19, 29])  # cattle, dinosaur (PROVENANCE)
    assert images.classes[19] == "cattle" and images.classes[29] == "dinosaur"
    np.testing.assert_array_equal(images.images[30:].reshape(20, 3072), te["data"][:20])


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - the classic pickle attack
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))
    with pytest.raises(UserInputError, match=r"global (posix|os)\.system is not allowed"):
        load_cifar_pickle(evil)
    (tmp_path / "junk").write_bytes(b"not a pickle")
    with pytest.raises(UserInputError, match="not a readable CIFAR pickle"):
        load_cifar_pickle(tmp_path / "junk")
    with pytest.raises(UserInputError, match="is missing"):
        load_cifar_pickle(tmp_path / "absent")


def test_real_meta_files_load(real_data: Path) -> None:
    meta = load_cifar_pickle(real_data / "cifar10" / "batches.meta")
    assert meta[b"num_vis"] == 3072 and meta[b"label_names"][-1] == b"truck"
    assert len(load_cifar_pickle(real_data / "cifar100" / "meta")[b"coarse_label_names"]) == 20


def test_wrong_shapes_are_reported(real_data: Path, tmp_path: Path) -> None:
    folder, _ = make_cifar10_dir(real_data, tmp_path, per_batch=2)
    official_style_pickle({b"labels": [1, 2], b"data": np.zeros((2, 100), np.uint8)}, folder / "data_batch_3")
    with pytest.raises(UserInputError, match=r"data_batch_3: data has shape \(2, 100\)"):
        read_cifar10(folder)


def test_scan_event_dir(tmp_path: Path) -> None:
    classes = ("a", "b")
    with pytest.raises(UserInputError, match="does not exist"):
        scan_event_dir(tmp_path / "nope", classes)
    (tmp_path / "a").mkdir()
    with pytest.raises(UserInputError, match=r"class folder\(s\) b missing"):
        scan_event_dir(tmp_path, classes)
    (tmp_path / "b").mkdir()
    with pytest.raises(UserInputError, match="holds no .aedat"):
        scan_event_dir(tmp_path, classes)
    for name in ("x_10.aedat", "x_2.aedat", "x_1.aedat", "notes.txt", ".hidden.aedat"):
        (tmp_path / "a" / name).write_bytes(b"")
    (tmp_path / "b" / "y.aedat4").write_bytes(b"")
    found = scan_event_dir(tmp_path, classes)
    # Plain string order within a class (as a sorted listing / spikingjelly): 1, 10, 2.
    assert [(s.path, s.label) for s in found] == [
        ("a/x_1.aedat", 0),
        ("a/x_10.aedat", 0),
        ("a/x_2.aedat", 0),
        ("b/y.aedat4", 1),
    ]


def test_digits() -> None:
    np.testing.assert_array_equal(
        digits_to_uint8(np.array([0.0, 1.0, 8.0, 15.0, 16.0])), [0, 15, 127, 239, 255]
    )
    digits = read_digits()
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.dtype == np.uint8
    from sklearn.datasets import load_digits

    ref = load_digits()
    np.testing.assert_array_equal(digits.images[:, 0], ref.images.astype(np.int64) * 255 // 16)
    np.testing.assert_array_equal(digits.labels, ref.target)
