"""The torch-free randperm and reference split equal torch's on the CPU generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evrobust.datasets.splits import reference_random_split as torch_reference_split
from evrobust.preprocess.randperm import reference_random_split, torch_randperm


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 97, 10000])
@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1])
def test_torch_randperm_equals_torch(n: int, seed: int) -> None:
    expected = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    got = torch_randperm(n, seed)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_hand_computed_small_case() -> None:
    # seed 42: the first two raw MT19937 outputs are 1608637542 and 3421126067 (init_genrand(42));
    # i=0: swap 0 with 0 + 1608637542 % 3 = 0 (no change); i=1: swap 1 with 1 + 3421126067 % 2 = 2.
    assert np.random.RandomState(42).randint(0, 2**32, size=2, dtype=np.uint32).tolist() == [
        1608637542,
        3421126067,
    ]
    assert torch_randperm(3, 42).tolist() == [0, 2, 1]


@pytest.mark.parametrize("n", [0, 7, 20, 10000])
def test_reference_split_equals_the_torch_based_rule(n: int) -> None:
    assert reference_random_split(n) == torch_reference_split(n)


def test_out_of_range_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        torch_randperm(-1, 0)
    with pytest.raises(ValueError):
        torch_randperm(5, 2**32)
