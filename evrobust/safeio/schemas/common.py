"""Field types shared by the schemas: finite numbers, bounded counts and strings, fractions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_COUNT = 10**9
"""Largest count (samples, steps, queries, epochs, bytes of a digest input) any document may state."""

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e300, le=1e300)]
"""A finite float (NaN and infinities refused)."""
Fraction = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1.0)]
"""A finite float in [0, 1]."""
Percent = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=100.0)]
"""A finite float in [0, 100]."""
Count = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]
"""A non-negative integer (strict: ``true`` and ``1.0`` are not counts)."""
Name = Annotated[str, Field(max_length=512)]
"""A short string: a name, a path, a date."""


class Document(BaseModel):
    """Base of every schema: unknown fields are kept and ignored; the fields listed are checked."""

    model_config = ConfigDict(extra="allow", frozen=True)
