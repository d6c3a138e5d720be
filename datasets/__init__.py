"""evrobust.datasets: dataset specs, torch Datasets over zarr stores, split rules and batched augmentation.

Installed from the top-level ``datasets/`` folder under the ``evrobust.`` prefix. The public names below are
re-exported lazily (PEP 562): ``import evrobust.datasets.specs`` (the preprocessing path) must not pay for
torch, which the augmentation and Dataset modules import.
"""

from __future__ import annotations

from evrobust.preprocess.lazy_exports import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "augment": ("augment_frames", "augment_images"),
    "resolve": ("resolve_data",),
    "specs": ("SPECS", "DatasetSpec", "data_dir", "default_store_path", "get_spec", "store_name"),
    "stores": (
        "DataInfo",
        "InMemoryDataset",
        "StoreDataset",
        "load_split",
        "open_split",
        "split_indices",
        "store_info",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
