"""Schemas of evrobust's small bookkeeping files.

* :class:`ReportManifest` (kind ``report_manifest``): ``<report dir>/.report-manifest.json``, the files one
  ``evrobust report`` wrote into its output directory. A later report removes only files a manifest lists
  (never a file it did not write), so every entry must be a plain file name inside that directory: no
  ``/`` or ``\\``, no ``.`` or ``..``, no control character. A manifest naming ``../x`` or ``/etc/passwd``
  is refused whole; the report then removes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from evrobust.safeio.schemas.common import Document

__all__ = ["MANIFEST_FORMAT", "MAX_MANIFEST_FILES", "ReportManifest"]

MANIFEST_FORMAT = "evrobust-report-manifest"
"""The ``format`` tag of a report manifest."""
MAX_MANIFEST_FILES = 10_000
"""Most files one manifest may list (a report of every figure of 100 datasets writes about 400)."""


def _not_dots(name: str) -> str:
    # "." and ".." name the directory itself and its parent (pydantic's regex engine has no look-ahead).
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not a file name inside the report directory")
    return name


PlainName = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$", strict=True),
    AfterValidator(_not_dots),
]
"""A file name inside the report directory: no separator, not ``.`` or ``..``, at most 255 characters."""


class ReportManifest(Document):
    """``.report-manifest.json``: what ``evrobust report`` wrote into its output directory."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    format: Literal["evrobust-report-manifest"]
    version: Annotated[int, Field(strict=True, ge=1, le=1000)]
    files: list[PlainName] = Field(max_length=MAX_MANIFEST_FILES)
