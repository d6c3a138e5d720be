"""A store's root attributes: the format constants, :func:`read_attrs` and the checks it applies.

Readers downstream index, reshape and allocate with these values, so a garbled or hostile ``zarr.json`` is
refused here, as one line, before anything uses it: the file is read through :mod:`evrobust.safeio`
(a regular file within the ``store_metadata`` cap, depth- and string-limited JSON), then every attribute a
reader relies on is type- and range-checked (:func:`attrs_problem`). The store layout and the write
protocol are in :mod:`.store`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError
from evrobust.safeio import UnsafeFileError, parse_json, read_bytes

FORMAT_NAME = "evrobust-store"
FORMAT_VERSION = 1
KINDS = ("events", "images")
COUNT_DTYPE = np.dtype("uint16")
COUNT_MAX = int(np.iinfo(COUNT_DTYPE).max)
IMAGE_DTYPE = np.dtype("uint8")


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes of the store at ``path`` (raises UserInputError if it is not a store)."""
    path = Path(path)
    meta = path / "zarr.json"
    if not os.path.lexists(meta):
        raise UserInputError(
            f"{path} is not an evrobust store (no zarr.json); build one with `evrobust preprocess`"
        )
    try:
        # A regular file within the store_metadata cap, parsed by the depth- and string-limited loader.
        doc = parse_json(read_bytes(meta, "store_metadata"), "the document")
    except UnsafeFileError:
        raise
    except UserInputError as exc:
        raise UserInputError(f"{path}/zarr.json is unreadable ({exc}); rebuild the store") from None
    attrs = doc.get("attributes", {}) if isinstance(doc, dict) else None
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT_NAME:
        raise UserInputError(
            f"{path} is a zarr group but not an evrobust store (attribute format != {FORMAT_NAME})"
        )
    problem = attrs_problem(attrs)
    if problem:
        raise UserInputError(f"{path}/zarr.json is damaged ({problem}); rebuild the store")
    return attrs


MAX_SAMPLE_ELEMENTS = 1 << 28  # one sample of 256 M values: far above any real frame stack
MAX_FRAMES = 1024  # T of an event store (CIFAR10-DVS uses 10)
MAX_SIDE = 1024  # output side of an event store after resizing (CIFAR10-DVS uses 48; the sensor is 128)
MAX_SCALE = 1e9  # a count scale above any count a uint16 store can hold times any count unit


def check_event_options(
    frames: Any, size: Any, sensor: Sequence[int] | None = None, scale: Any = None
) -> None:
    """Refuse event-store options outside the documented limits, before anything is sized by them.

    ``frames`` in [1, MAX_FRAMES], ``size`` (None or) in [1, MAX_SIDE], a sample ``frames x 2 x H x W`` of
    at most MAX_SAMPLE_ELEMENTS values (the limit :func:`read_attrs` applies), ``scale`` (None or) a finite
    number in (0, MAX_SCALE]. The writer refuses exactly what the reader would reject.

    Raises:
        UserInputError: naming the option and the limit.
    """
    if not _is_int(frames) or not 1 <= frames <= MAX_FRAMES:
        raise UserInputError(f"--frames must be an integer in [1, {MAX_FRAMES}], got {frames!r}")
    if size is not None and (not _is_int(size) or not 1 <= size <= MAX_SIDE):
        raise UserInputError(f"--size must be an integer in [1, {MAX_SIDE}] pixels, got {size!r}")
    if sensor is not None:
        h = size if size is not None else max(int(v) for v in sensor)
        elements = frames * 2 * h * h
        if elements > MAX_SAMPLE_ELEMENTS:
            raise UserInputError(
                f"--frames {frames} x 2 x {h} x {h} = {elements} values per sample is over the "
                f"{MAX_SAMPLE_ELEMENTS} a store may hold; lower --frames or --size"
            )
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or not 0 < scale <= MAX_SCALE
    ):
        raise UserInputError(f"--scale must be a finite number in (0, {MAX_SCALE:g}], got {scale!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v)


def attrs_problem(attrs: dict[str, Any]) -> str | None:
    """The first type/range problem of the root attributes present (None when they are well formed).

    Readers downstream index, reshape and allocate with these values, so a garbled or hostile zarr.json must
    stop here, as one UserInputError, instead of as a TypeError deep inside (or a huge allocation).
    """
    if "kind" in attrs and attrs["kind"] not in KINDS:
        return f"kind {attrs['kind']!r} is not one of {', '.join(KINDS)}"
    shape = attrs.get("sample_shape", [1])
    if not _int_list(shape) or not shape or min(shape) < 1 or math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        return f"sample_shape {str(shape)[:80]} is not a plausible list of positive sizes"
    if "dtype" in attrs and attrs["dtype"] not in (COUNT_DTYPE.name, IMAGE_DTYPE.name):
        return f"dtype {str(attrs['dtype'])[:40]!r} is not uint16 or uint8"
    classes = attrs.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of names"
    n_classes = attrs.get("num_classes", len(classes))
    if not _is_int(n_classes) or n_classes < 1 or n_classes != len(classes):
        return f"num_classes {str(n_classes)[:40]} does not match the {len(classes)} class names"
    if not isinstance(attrs.get("sources", []), list):
        return "sources is not a list"
    for key in ("splits", "planned_splits"):
        schemes = attrs.get(key, {})
        if not isinstance(schemes, dict) or not all(
            isinstance(parts, dict) and all(_int_list(idx) for idx in parts.values())
            for parts in schemes.values()
        ):
            return f"{key} is not a mapping of index lists"
    for key in ("default_split", "stats_split"):
        if key in attrs and not isinstance(attrs[key], str):
            return f"{key} is not a name"
    if "default_split" in attrs and isinstance(attrs.get("planned_splits"), dict):
        if attrs["default_split"] not in attrs["planned_splits"]:
            return f"default_split {attrs['default_split']!r} names no split scheme"
    if "format_version" in attrs and attrs["format_version"] != FORMAT_VERSION:
        version = str(attrs["format_version"])[:20]
        return f"format_version {version} is not {FORMAT_VERSION}, the one this evrobust reads"
    for key in ("mean", "std"):
        v = attrs.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, int | float) and math.isfinite(x) for x in v):
            return f"{key} is not a list of numbers"
    if any(x <= 0 for x in attrs.get("std", [])):
        return "std holds a value <= 0 (inputs are divided by it)"
    request = attrs.get("scale_request")
    if request is not None and (
        not isinstance(request, int | float)
        or isinstance(request, bool)
        or not math.isfinite(request)
        or request <= 0
    ):
        return f"scale_request {str(request)[:40]} is not a positive number"
    scale = attrs.get("scale", 1.0)
    if scale is not None and (
        not isinstance(scale, int | float)
        or isinstance(scale, bool)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        return f"scale {str(scale)[:40]} is not a positive number"
    for key, most in (("frames", MAX_FRAMES), ("resize", MAX_SIDE)):
        v = attrs.get(key)
        if v is not None and (not _is_int(v) or not 1 <= v <= most):
            return f"{key} {str(v)[:40]} is not an integer in [1, {most}]"
    return None
