"""``torch.randperm`` on the CPU generator, reproduced with numpy, so the preprocessing path needs no torch.

The reference CIFAR10-DVS split is ``torch.utils.data.random_split`` with
``torch.Generator().manual_seed(42)``, which takes ``torch.randperm(n, generator=g)``. On the CPU, for
``n < 2**32 / 20``, torch fills ``0 .. n-1`` and runs a Fisher-Yates pass: for ``i = 0 .. n-2`` it swaps
entry ``i`` with entry ``i + r_i mod (n - i)``, where ``r_i`` is the generator's next raw 32-bit output. The
generator is a standard MT19937 seeded by ``init_genrand(seed)``, which is what numpy's legacy
``RandomState(seed)`` seeds too, and ``RandomState.randint(0, 2**32, dtype=uint32)`` returns those raw 32-bit
outputs unchanged (the full range needs no rejection). ``tests/preprocess/test_randperm.py`` checks equality
with ``torch.randperm`` itself.

:func:`reference_random_split` is the torch-free twin of
:func:`evrobust.datasets.splits.reference_random_split` (same index sets).
"""

from __future__ import annotations

import numpy as np

from evrobust.preprocess.splits import scheme

__all__ = ["REFERENCE_SEED", "reference_random_split", "torch_randperm"]

REFERENCE_SEED = 42
_MAX_N = 2**32 // 20  # torch switches to a different algorithm at and above this size


def torch_randperm(n: int, seed: int) -> np.ndarray:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()``, without torch.

    Args:
        n: permutation length, ``0 <= n < 2**32 / 20`` (torch's small-n algorithm).
        seed: the generator seed, ``0 <= seed < 2**32``.

    Returns:
        ``[n]`` int64 permutation of ``0 .. n-1``.
    """
    if not 0 <= n < _MAX_N:
        raise ValueError(f"n must lie in [0, {_MAX_N}), got {n}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must lie in [0, 2**32), got {seed}")
    raw = np.random.RandomState(seed).randint(0, 2**32, size=max(n - 1, 0), dtype=np.uint32).tolist()
    # A plain loop over Python ints: ~5 ms for the full 10,000 files, cheaper than compiling a kernel.
    perm = list(range(n))
    for i, r in enumerate(raw):
        z = i + r % (n - i)
        perm[i], perm[z] = perm[z], perm[i]
    return np.asarray(perm, dtype=np.int64)


def reference_random_split(n: int, seed: int = REFERENCE_SEED) -> dict[str, list[int]]:
    """The reference 90/10 random split: the first ``9n // 10`` of :func:`torch_randperm` are the train part.

    Val is carved out of the train part (:func:`evrobust.preprocess.splits.scheme`).
    """
    perm = torch_randperm(n, seed).tolist()
    n_train = 9 * n // 10
    return scheme(perm[:n_train], perm[n_train:])
