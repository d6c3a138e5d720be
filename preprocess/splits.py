"""Index-set rules for train/val/test splits that need no torch (numpy's PCG64 generator).

A split scheme is ``{"train": [...], "val": [...], "test": [...]}`` of sample indices, sorted ascending. The
validation set is always carved out of the training part (checkpoints are chosen on it, never on the test
set).
The torch-compatible reference split of CIFAR10-DVS lives in :mod:`evrobust.datasets.splits`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from evrobust.errors import UserInputError

VAL_FRACTION = 0.1
VAL_SEED = 0
TEBN_TEST = range(0, 100)
"""Recording numbers of each CIFAR10-DVS class that the TEBN split tests on; 100..999 train."""
TEBN_TRAIN = range(100, 1000)
_NUMBER = re.compile(r"_(\d+)$")


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


def recording_number(name: str) -> int | None:
    """The recording number of an event file name: ``cifar10_airplane_17.aedat`` -> 17.

    ``name`` may be a store source (``airplane/cifar10_airplane_17.aedat`` or
    ``airplane.zip::airplane/cifar10_airplane_17.aedat``); the number is the digits after the last ``_`` of
    the file's stem. None when the stem does not end in ``_<digits>``.
    """
    stem = PurePosixPath(name.split("::")[-1]).stem
    match = _NUMBER.search(stem)
    return None if match is None else int(match.group(1))


def tebn_split(names: Sequence[str], labels: Sequence[int]) -> dict[str, list[int]]:
    """The TEBN split of CIFAR10-DVS (see :mod:`evrobust.datasets.splits`): per class, recording numbers
    0-99 test, 100-999 train; val is carved out of the train part as in every scheme.

    Args:
        names: the store's source files in store order (one per sample).
        labels: their class indices.

    Raises:
        UserInputError: a file name without a recording number, a number outside 0-999, or a number twice
            in one class (the rule would be ambiguous).
    """
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names for {len(labels)} labels")
    train: list[int] = []
    test: list[int] = []
    seen: set[tuple[int, int]] = set()
    for index, (name, label) in enumerate(zip(names, labels, strict=True)):
        number = recording_number(name)
        if number is None or number not in TEBN_TRAIN and number not in TEBN_TEST:
            raise UserInputError(
                f"{name}: the TEBN split needs files named <anything>_<0..999>.aedat (recording numbers)"
            )
        if (int(label), number) in seen:
            raise UserInputError(f"{name}: recording number {number} appears twice in class {label}")
        seen.add((int(label), number))
        (test if number in TEBN_TEST else train).append(index)
    return scheme(train, test)
