"""evrobust.datasets: dataset specs, torch Datasets over zarr stores, split rules and batched augmentation.

Installed from the top-level ``datasets/`` folder under the ``evrobust.`` prefix. The public names below are
re-exported lazily (PEP 562): ``import evrobust.datasets.specs`` (the preprocessing path) must not pay for
torch, which the augmentation and Dataset modules import.
"""

from __future__ import annotations

import importlib
from typing import Any

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
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
