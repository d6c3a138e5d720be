"""evrobust.datasets: dataset specs, torch Datasets over zarr stores, split rules and batched augmentation.

Installed from the top-level ``datasets/`` folder under the ``evrobust.`` prefix.
"""

from evrobust.datasets.augment import augment_frames, augment_images
from evrobust.datasets.resolve import resolve_data
from evrobust.datasets.specs import SPECS, DatasetSpec, data_dir, default_store_path, get_spec, store_name
from evrobust.datasets.stores import (
    DataInfo,
    InMemoryDataset,
    StoreDataset,
    load_split,
    open_split,
    split_indices,
    store_info,
)

__all__ = [
    "SPECS",
    "DataInfo",
    "DatasetSpec",
    "InMemoryDataset",
    "StoreDataset",
    "augment_frames",
    "augment_images",
    "data_dir",
    "default_store_path",
    "get_spec",
    "load_split",
    "open_split",
    "resolve_data",
    "split_indices",
    "store_info",
    "store_name",
]
