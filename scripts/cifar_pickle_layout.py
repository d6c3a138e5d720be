"""Write the official CIFAR python-pickle layout from the exact-subset ``.npz`` files of ``shared/data``.

``evrobust preprocess cifar10`` / ``cifar100`` read the layout the CIFAR authors distribute
(``cifar-10-batches-py/{batches.meta,data_batch_1..5,test_batch}``, ``cifar-100-python/{meta,train,test}``).
The real images available offline are exact subsets of those files, stored as ``.npz`` (see
``shared/data/PROVENANCE.md``): every whole image row of a cut-short copy, in the original order. This script
turns them back into that layout so the ordinary preprocessing command builds a store from them:

* CIFAR-10: the train rows go back into the batch they came from (``data_batch_<batch>``, rows in their
  original order), the test rows into ``test_batch``; ``batches.meta`` is copied unchanged.
* CIFAR-100: ``train`` and ``test`` with ``fine_labels``, ``coarse_labels`` and ``filenames``; ``meta`` is
  copied unchanged.

Each batch is a protocol-2 pickle of a dict with bytes keys, ``b"data"`` a uint8 ``[N, 3072]`` array
(1024 red, 1024 green, 1024 blue values per row) and ``b"labels"`` / ``b"fine_labels"`` a list of ints,
as in the official files, so the restricted unpickler of ``evrobust.preprocess.sources`` reads them.

Write the layout OUTSIDE the repository (``data/`` is git-ignored), then build the stores::

    .venv/bin/python scripts/cifar_pickle_layout.py --shared ../shared/data --out data/raw
    .venv/bin/evrobust preprocess cifar10 --raw data/raw/cifar-10-batches-py --out data/cifar10-subset.zarr
    .venv/bin/evrobust preprocess cifar100 --raw data/raw/cifar-100-python --out data/cifar100-subset.zarr

The resulting stores hold 5,170 train + 1,017 test (CIFAR-10) and 486 train + 916 test (CIFAR-100) images;
validation is carved out of the train rows by the store's split rule (10 %).
"""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

import numpy as np


def _dump(path: Path, document: dict[bytes, object]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(document, f, protocol=2)
    tmp.replace(path)


def write_cifar10(shared: Path, out: Path) -> Path:
    """``out/cifar-10-batches-py`` from ``shared/cifar10``; returns the folder."""
    root = out / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "cifar10" / "batches.meta", root / "batches.meta")
    train = np.load(shared / "cifar10" / "cifar10_train_subset_5170.npz", allow_pickle=False)
    for b in range(1, 6):
        rows = np.flatnonzero(train["batch"] == b)
        # the rows in their original order within the batch
        rows = rows[np.argsort(train["index_in_batch"][rows], kind="stable")]
        _dump(root / f"data_batch_{b}", {
            b"batch_label": f"training batch {b} of 5 (exact subset)".encode(),
            b"labels": [int(v) for v in train["labels"][rows]],
            b"data": np.ascontiguousarray(train["data"][rows], dtype=np.uint8),
        })
    test = np.load(shared / "cifar10" / "cifar10_test_first1017.npz", allow_pickle=False)
    order = np.argsort(test["index"], kind="stable")
    _dump(root / "test_batch", {
        b"batch_label": b"testing batch 1 of 1 (exact subset)",
        b"labels": [int(v) for v in test["labels"][order]],
        b"data": np.ascontiguousarray(test["data"][order], dtype=np.uint8),
    })
    return root


def write_cifar100(shared: Path, out: Path) -> Path:
    """``out/cifar-100-python`` from ``shared/cifar100``; returns the folder."""
    root = out / "cifar-100-python"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "cifar100" / "meta", root / "meta")
    for part, name in (("train", "cifar100_train_first486.npz"), ("test", "cifar100_test_first916.npz")):
        z = np.load(shared / "cifar100" / name, allow_pickle=False)
        order = np.argsort(z["index"], kind="stable")
        _dump(root / part, {
            b"batch_label": f"{part} (exact subset)".encode(),
            b"fine_labels": [int(v) for v in z["fine_labels"][order]],
            b"coarse_labels": [int(v) for v in z["coarse_labels"][order]],
            b"filenames": [str(v).encode() for v in z["filenames"][order]],
            b"data": np.ascontiguousarray(z["data"][order], dtype=np.uint8),
        })
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="shared/data folder")
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="where the layout is written")
    args = parser.parse_args()
    print(write_cifar10(args.shared, args.out))
    print(write_cifar100(args.shared, args.out))


if __name__ == "__main__":
    main()
