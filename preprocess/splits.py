"""Index-set rules for train/val/test splits that need no torch (numpy's PCG64 generator).

A split scheme is ``{"train": [...], "val": [...], "test": [...]}`` of sample indices, sorted ascending. The
validation set is always carved out of the training part (checkpoints are chosen on it, never on the test
set).
The torch-compatible reference split of CIFAR10-DVS lives in :mod:`evrobust.datasets.splits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VAL_FRACTION = 0.1
VAL_SEED = 0


def _sorted(idx: Sequence[int] | np.ndarray) -> list[int]:
    return sorted(int(i) for i in idx)


def carve_validation(
    train: Sequence[int] | np.ndarray, fraction: float = VAL_FRACTION, seed: int = VAL_SEED
) -> tuple[list[int], list[int]]:
    """Split ``train`` into (train, val): val = ``floor(fraction * len)`` indices from a seeded permutation.

    The draw is ``np.random.default_rng(seed).permutation(sorted(train))[:n_val]``, so it depends only on the
    set of indices, the fraction and the seed.
    """
    base = np.asarray(_sorted(train), dtype=np.int64)
    n_val = int(len(base) * fraction)
    perm = np.random.default_rng(seed).permutation(base)
    return _sorted(perm[n_val:]), _sorted(perm[:n_val])


def scheme(
    train: Sequence[int] | np.ndarray, test: Sequence[int] | np.ndarray, **val: float
) -> dict[str, list[int]]:
    """A scheme from a train/test partition, with val carved out of ``train`` (see carve_validation)."""
    tr, va = carve_validation(train, **val)
    return {"train": tr, "val": va, "test": _sorted(test)}


def per_class_split(
    labels: Sequence[int] | np.ndarray, train_numerator: int = 9, denominator: int = 10
) -> dict[str, list[int]]:
    """Per class, the first ``floor(9/10 * n_c)`` samples (in store order) train, the rest test; val carved.

    With the CIFAR10-DVS store order (files sorted by name within each class) this is spikingjelly's
    ``split_to_train_test_set(0.9, ..., random_split=False)``: 900/100 per class on the full set.
    """
    labels = np.asarray(labels)
    train: list[int] = []
    test: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = len(idx) * train_numerator // denominator
        train.extend(idx[:k].tolist())
        test.extend(idx[k:].tolist())
    return scheme(train, test)


def holdout_split(n: int, test_fraction: float = 0.2, seed: int = 0) -> dict[str, list[int]]:
    """A seeded random hold-out (for datasets without an official split, e.g. digits).

    test = the first ``floor(test_fraction * n)`` entries of ``default_rng(seed).permutation(n)``; the rest
    train, with val carved out of it.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(n * test_fraction)
    return scheme(perm[n_test:], perm[:n_test])
