"""What every analysis document shares (:mod:`evrobust.safeio.schemas.analysis`): the bounds, the strict
field types, the array checker and :class:`AnalysisBase`.

Numbers are strict (``true`` is not a number, ``"0.5"`` not a fraction) and finite (a JSON ``NaN`` literal is
refused; ``null``, which the writer stores for a non-finite value, is accepted where the readers handle it).
Arrays must agree with the dimensions they claim. Why the bounds are what they are is said in
:mod:`evrobust.safeio.schemas.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictBool

from evrobust.safeio.schemas.common import Document, Name

MAX_SAMPLES = 10**7
"""Most test samples a document may claim (the largest test split evrobust knows has 10,000)."""
MAX_HEATMAP_SAMPLES = 64
"""Most samples a heatmap may hold (``evrobust analyze heatmap --count`` allows as many)."""
MAX_FRAMES = 1024
"""Most time steps of an event sample (``evrobust train`` and the stores allow 1,024)."""
MAX_SIDE = 4096
"""Longest side of a map in pixels (event sensors evrobust reads have at most 640 x 480)."""
MAX_BINS = 1_000_000
"""Most histogram bins (``evrobust analyze distribution --bins`` allows as many)."""
MAX_EPS_POINTS = 1024
"""Most points of an eps grid (a vulnerability curve, the theorem's eps list)."""
MAX_CURVES = 64
"""Most attacks (curves) of a vulnerability analysis (the registry has under 20)."""
MAX_ENTRIES = 10_000
"""Most checks, members or targets of one list or mapping."""
MAX_PLOTS = 16
"""Most PNG paths an analysis lists (one or two are written)."""
MAX_ABS = 1e300
"""Largest magnitude of any number (a float64 converts it without overflow)."""

KINDS: tuple[str, ...] = (
    "sparsity", "vulnerability", "theorem", "distribution", "heatmap", "landscape", "fidelity"
)
"""The kinds ``evrobust analyze`` writes (``pipelines/analyze.py``'s ``KINDS``; a test keeps them equal)."""

Text = Annotated[str, Field(max_length=4096, strict=True)]
"""A sentence (a check's detail)."""
PathText = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00]*$", strict=True)]
"""A path: at most 4,096 characters and no NUL byte."""
Short = Annotated[str, Field(max_length=128, strict=True)]
"""A label a figure or table prints: an attack name, an eps as text, a key of a summary."""
Key = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$", strict=True)]
"""A mapping key the readers print or look up (no control characters)."""
Number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
"""A finite number (an integer is accepted)."""
NonNegative = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_ABS)]
"""A finite number >= 0 (a norm, a tolerance, a standard deviation)."""
Frac = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
"""A finite fraction in [0, 1] (an accuracy, a share, a density)."""
Eps = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
"""An L-inf radius in [0, 1] input units."""
Samples = Annotated[int, Field(strict=True, ge=0, le=MAX_SAMPLES)]
"""A sample count or index."""
Components = Annotated[int, Field(strict=True, ge=0, le=1 << 62)]
"""A count of gradient components (samples x input dimension: beyond the sample bound)."""
Label = Annotated[int, Field(strict=True, ge=0, le=10**9)]
"""A class index."""
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
"""Wall-clock seconds."""
Seed = Annotated[int, Field(strict=True, ge=-(2**63), le=2**64 - 1)]
"""A random seed."""
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", strict=True)]
"""A hex sha256 digest (of the checkpoint analysed)."""



def need(ok: bool, message: str) -> None:
    """Raise the ``ValueError`` pydantic reports as ``field (document): Value error, <message>``."""
    if not ok:
        raise ValueError(message)


def _is_number(value: Any, allow_none: bool) -> bool:
    if value is None:
        return allow_none
    # type(...) in: bool is a subclass of int and is not a number here; the comparison refuses NaN, the
    # infinities and an integer too large for a float64 (which numpy would raise OverflowError on).
    return type(value) in (int, float) and -MAX_ABS <= value <= MAX_ABS


def nested_shape(value: Any, most: int) -> tuple[int, ...]:
    """The lengths along the first elements of a nested list (at most ``most`` levels deep)."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list) and len(shape) < most:
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    return tuple(shape)


def check_array(
    value: Any, ranks: tuple[int, ...], *, max_side: int = MAX_SIDE, last: int | None = None,
    allow_none: bool = True, what: str = "array",
) -> tuple[int, ...]:
    """The shape of a rectangular nested list of finite numbers; ValueError when it is not one.

    Args:
        value: the nested list (as parsed from JSON).
        ranks: the accepted numbers of dimensions (``(2, 3)``: a gray or an RGB map).
        max_side: the longest accepted side (every dimension, ``last`` aside).
        last: for the largest rank, the required size of the last dimension (3 for RGB).
        allow_none: accept ``null`` elements (the writer stores a non-finite value as null).
        what: names the array in the message.

    Walks the array level by level (no recursion, each element visited once): work and memory are linear in
    the size of the document, which the file's size cap bounds.
    """
    shape = nested_shape(value, max(ranks) + 1)
    need(min(shape, default=1) > 0, f"{what} has an empty dimension")
    need(len(shape) in ranks, f"{what} has {len(shape)} dimensions, not {' or '.join(map(str, ranks))}")
    for axis, size in enumerate(shape):
        if last is not None and len(shape) == max(ranks) and axis == len(shape) - 1:
            need(size == last, f"{what} has {size} values in its last dimension, not {last}")
        else:
            need(size <= max_side, f"{what} has {size} values in dimension {axis}, above {max_side}")
    level = [value]
    for axis, size in enumerate(shape):
        following: list[Any] = []
        for item in level:
            need(isinstance(item, list) and len(item) == size,
                  f"{what} is not rectangular: dimension {axis} is not {size} long everywhere")
            following.extend(item)
        level = following
    need(all(_is_number(item, allow_none) for item in level),
          f"{what} holds a value that is not a finite number" + (" or null" if allow_none else ""))
    return tuple(shape)


def _array(ranks: tuple[int, ...], what: str, last: int | None = None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        check_array(value, ranks, last=last, what=what)
        return value

    return check


InputMap = Annotated[Any, AfterValidator(_array((2, 3), "the input map", last=3))]
"""One input as drawn: ``[H][W]`` (gray, or frames summed) or ``[H][W][3]`` (RGB)."""
GradMap = Annotated[Any, AfterValidator(_array((2,), "the gradient map"))]
"""``|grad|`` of one sample summed over channels: ``[H][W]``."""
Frames = Annotated[Any, AfterValidator(_array((4,), "the event frames"))]
"""One event sample per polarity and step: ``[T][2][H][W]`` (checked further by :class:`HeatmapAnalysis`)."""


class StrictModel(Document):
    """Strict JSON types: the document handed back is the parsed JSON, so a value pydantic would coerce
    (``"0.5"`` to 0.5, ``1`` to ``true``) would reach the reader unconverted; it is refused instead."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class Check(StrictModel):
    """A masking check (``CheckResult.to_json``): the report prints the failed ones by name."""

    name: Name
    passed: StrictBool
    detail: Text | None = None
    subject: Name | None = None


class AnalysisBase(StrictModel):
    """The fields every analysis document has (:func:`evrobust.pipelines.analyze.run_analysis`)."""

    format: Literal["evrobust-analysis"] | None = None
    version: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    kind: Annotated[str, Field(max_length=64, pattern=r"^[a-z][a-z0-9_-]*$", strict=True)] | None = None
    run: PathText | None = None
    which: Name | None = None
    dataset: Name | None = None
    arch: Name | None = None
    defense: Name | None = None
    input_kind: Literal["images", "frames"] | None = None
    input_dim: Annotated[int, Field(strict=True, ge=0, le=1 << 40)] | None = None
    samples: Samples | None = None
    seed: Seed | None = None
    spec: Name | None = None
    clean_accuracy: Frac | None = None
    checkpoint_sha256: Sha256 | None = None
    checks: list[Check] | None = Field(default=None, max_length=MAX_ENTRIES)
    plots: list[PathText] | None = Field(default=None, max_length=MAX_PLOTS)
    seconds: Seconds | None = None

    def per_sample(self, where: str, values: list[Any]) -> None:
        """A per-sample list holds one value per analysed sample."""
        if self.samples is not None:
            need(len(values) == self.samples, f"{where} has {len(values)} values for {self.samples} samples")


class OtherAnalysis(AnalysisBase):
    """A kind this evrobust does not write (or a document without ``kind``): the common fields only."""

