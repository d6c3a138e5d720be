"""Schema of an exported NIR graph's metadata (the HDF5 attributes evrobust writes beside the nodes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel, StrictBool, StrictInt

from evrobust.safeio.schemas.common import Finite

MetadataValue = Annotated[str, Field(max_length=1 << 20)] | StrictBool | StrictInt | Finite | None
"""One metadata entry: a string (JSON-encoded for nested values such as the source model's config), a flag,
an integer or a finite number."""


class NirMetadata(RootModel[dict[Annotated[str, Field(max_length=256)], MetadataValue]]):
    """The graph's metadata: a flat mapping of at most a few hundred short keys to plain values."""
