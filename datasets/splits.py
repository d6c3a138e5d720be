"""Split rules that need torch: the reference random split of CIFAR10-DVS, as the published code draws it.

The reference code splits spikingjelly's ``CIFAR10DVS`` folder dataset with
``torch.utils.data.random_split(dataset, [9000, 1000], generator=torch.Generator().manual_seed(42))``; that
function takes ``torch.randperm(10000, generator=g)`` and cuts it into consecutive pieces. The store orders
samples as spikingjelly's folder dataset does (classes in order, files sorted by name), so
:func:`reference_random_split` reproduces the published index sets exactly on the full set. On a smaller raw
dir the same rule is scaled: ``n_train = 9 * n // 10``.

The TEBN split (:func:`tebn_split`) is the other published CIFAR10-DVS convention: per class, the recordings
numbered 0-99 (``cifar10_<class>_<i>.aedat``) are the test set and 100-999 the training set, as spikingjelly's
``CIFAR10DVSTEBNSplit`` links them (from Duan et al., NeurIPS 2022). It differs from the ``per-class`` scheme
(the first 9/10 of each class's files *sorted by name* train): sorted as strings (``_0, _1, _10, _100, ...``),
the last tenth of a full class is recordings 909, 91, 910-919, ..., 99, 990-999 (numbers beginning with 9;
only 91-99 of them below 100), so the two test sets share 9 recordings per class. spikingjelly notes that
accuracies on the TEBN split run much higher than on a random split.

The numpy-only rules (per-class, hold-out, validation carving) are in :mod:`evrobust.preprocess.splits`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

import torch

from evrobust.errors import UserInputError
from evrobust.preprocess.splits import carve_validation, holdout_split, per_class_split, scheme

__all__ = [
    "carve_validation",
    "holdout_split",
    "per_class_split",
    "reference_random_split",
    "recording_number",
    "scheme",
    "tebn_split",
    "torch_random_split",
]

REFERENCE_SEED = 42
TEBN_TEST = range(0, 100)
"""Recording numbers of each class that the TEBN split tests on; 100..999 train."""
TEBN_TRAIN = range(100, 1000)
_NUMBER = re.compile(r"_(\d+)$")


def torch_random_split(n: int, lengths: list[int], seed: int) -> list[list[int]]:
    """The index lists of ``random_split(range(n), lengths, torch.Generator().manual_seed(seed))``."""
    if sum(lengths) != n:
        raise ValueError(f"lengths {lengths} do not sum to {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out, start = [], 0
    for length in lengths:
        out.append(perm[start : start + length])
        start += length
    return out


def reference_random_split(n: int, seed: int = REFERENCE_SEED) -> dict[str, list[int]]:
    """The reference 90/10 random split (9000/1000 on the full set); val is carved out of its train part."""
    n_train = 9 * n // 10
    train, test = torch_random_split(n, [n_train, n - n_train], seed)
    return scheme(train, test)


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
    """The TEBN split of CIFAR10-DVS (module docstring): per class, recording numbers 0-99 test, 100-999
    train; val is carved out of the train part as in every scheme.

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
