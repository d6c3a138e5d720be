"""Schemas of the small documents the preprocessing side reads: a lock's holder record and the raw folder's
verified cache."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel

from evrobust.safeio.schemas.common import Count, Document, Name


class LockHolder(Document):
    """``.<target>.lock``: who holds a writer's lock (every field optional: an empty file is a fresh lock)."""

    pid: Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)] | None = None
    host: Name | None = None
    started: Name | None = None
    purpose: Name | None = None
    target: Annotated[str, Field(max_length=8192)] | None = None


class VerifiedEntry(Document):
    """One raw file's verification key: size and modification time when its MD5 matched the published one."""

    size: Count
    mtime_ns: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]
    md5: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class VerifiedCache(RootModel[dict[Annotated[str, Field(max_length=255)], VerifiedEntry]]):
    """``<raw folder>/.verified.json``: raw file name -> :class:`VerifiedEntry`."""
