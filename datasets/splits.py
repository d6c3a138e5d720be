"""Split rules that need torch: the reference random split of CIFAR10-DVS, as the published code draws it.

The reference code splits spikingjelly's ``CIFAR10DVS`` folder dataset with
``torch.utils.data.random_split(dataset, [9000, 1000], generator=torch.Generator().manual_seed(42))``; that
function takes ``torch.randperm(10000, generator=g)`` and cuts it into consecutive pieces. The store orders
samples as spikingjelly's folder dataset does (classes in order, files sorted by name), so
:func:`reference_random_split` reproduces the published index sets exactly on the full set. On a smaller raw
dir the same rule is scaled: ``n_train = 9 * n // 10``.

The TEBN split (:func:`tebn_split`, numpy-only, defined in :mod:`evrobust.preprocess.splits` and re-exported
here) is the other published CIFAR10-DVS convention: per class, the recordings
numbered 0-99 (``cifar10_<class>_<i>.aedat``) are the test set and 100-999 the training set, as spikingjelly's
``CIFAR10DVSTEBNSplit`` links them (from Duan et al., NeurIPS 2022). It differs from the ``per-class`` scheme
(the first 9/10 of each class's files *sorted by name* train): sorted as strings (``_0, _1, _10, _100, ...``),
the last tenth of a full class is recordings 909, 91, 910-919, ..., 99, 990-999 (numbers beginning with 9;
only 91-99 of them below 100), so the two test sets share 9 recordings per class. spikingjelly notes that
accuracies on the TEBN split run much higher than on a random split.

The numpy-only rules (per-class, hold-out, validation carving) are in :mod:`evrobust.preprocess.splits`.
"""

from __future__ import annotations

import torch

from evrobust.preprocess.splits import (
    TEBN_TEST,
    TEBN_TRAIN,
    carve_validation,
    holdout_split,
    per_class_split,
    recording_number,
    scheme,
    tebn_split,
)

__all__ = [
    "carve_validation",
    "holdout_split",
    "per_class_split",
    "reference_random_split",
    "recording_number",
    "scheme",
    "TEBN_TEST",
    "TEBN_TRAIN",
    "tebn_split",
    "torch_random_split",
]

REFERENCE_SEED = 42


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

