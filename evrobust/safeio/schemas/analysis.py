"""Schema of ``<run>/analysis-<kind>.json`` (kind ``analysis``), written by ``evrobust analyze``.

:class:`Analysis` dispatches on the document's ``kind`` to one model per kind that
:mod:`evrobust.pipelines.analyze` writes (:class:`SparsityAnalysis`, :class:`VulnerabilityAnalysis`,
:class:`TheoremAnalysis`, :class:`DistributionAnalysis`, :class:`HeatmapAnalysis`, and the masking study's
:class:`LandscapeAnalysis` and :class:`FidelityAnalysis`); any other kind (one a newer evrobust may write) is
checked for the common fields only (:class:`OtherAnalysis`).

What the readers index, and so what is checked (every field optional unless said otherwise, because hand-made
and older documents omit fields the readers look up with a default):

* ``evrobust report`` (``pipelines/report``): the header line of every analysis (``samples``,
  ``clean_accuracy`` as a %, failed ``checks``, linked ``plots``), the per-kind lines (sparsity means, each
  vulnerability curve beside ``eps_text``, the theorem summaries, the distribution totals) and the figures
  drawn from many runs: accuracy vs eps (``eps``, ``curves``), gradient histograms (``edges``, ``counts``,
  ``total``), heatmaps (``indices``, ``labels``, ``input_maps``, ``grad_maps``) and event-frame heatmaps
  (``input_frames``, ``grad_frames``);
* ``evrobust reproduce``'s tables (a dotted path into the document, e.g. ``targets.two_class.mean.l1``) and
  the demo's findings (the vulnerability curves).

The bounds keep every consumer's work proportional to what ``evrobust analyze`` can write: the heatmap figure
draws one column per sample and the frame figure one per time step, so a document of a few KB claiming
thousands of samples or steps kept ``report`` busy for minutes; here at most :data:`MAX_HEATMAP_SAMPLES`
samples and :data:`MAX_FRAMES` steps are accepted (and :mod:`evrobust.pipelines.report.plots` draws at most
16 columns of either). Arrays must agree with the dimensions they claim: a curve has one point per ``eps``, a
histogram ``bins`` counts and ``bins + 1`` edges, a per-sample list ``samples`` values, a map is rectangular.
Numbers are strict (``true`` is not a number, ``"0.5"`` not a fraction) and finite (a JSON ``NaN`` literal is
refused; ``null``, which the writer stores for a non-finite value, is accepted where the readers handle it).
Strings are short (:data:`~evrobust.safeio.schemas.common.Name`, 512 characters, for anything a figure or a
table prints).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, StrictBool, Tag, model_validator

from evrobust.safeio.schemas.common import Document, Name

__all__ = [
    "KINDS",
    "MAX_BINS",
    "MAX_EPS_POINTS",
    "MAX_FRAMES",
    "MAX_HEATMAP_SAMPLES",
    "MAX_SIDE",
    "Analysis",
    "AnyAnalysis",
    "DistributionAnalysis",
    "FidelityAnalysis",
    "HeatmapAnalysis",
    "LandscapeAnalysis",
    "OtherAnalysis",
    "SparsityAnalysis",
    "TheoremAnalysis",
    "VulnerabilityAnalysis",
    "check_array",
    "model_for",
]

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


def _need(ok: bool, message: str) -> None:
    """Raise the ``ValueError`` pydantic reports as ``field (document): Value error, <message>``."""
    if not ok:
        raise ValueError(message)


def _is_number(value: Any, allow_none: bool) -> bool:
    if value is None:
        return allow_none
    # type(...) in: bool is a subclass of int and is not a number here; the comparison refuses NaN, the
    # infinities and an integer too large for a float64 (which numpy would raise OverflowError on).
    return type(value) in (int, float) and -MAX_ABS <= value <= MAX_ABS


def _shape(value: Any, most: int) -> tuple[int, ...]:
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
    shape = _shape(value, max(ranks) + 1)
    _need(min(shape, default=1) > 0, f"{what} has an empty dimension")
    _need(len(shape) in ranks, f"{what} has {len(shape)} dimensions, not {' or '.join(map(str, ranks))}")
    for axis, size in enumerate(shape):
        if last is not None and len(shape) == max(ranks) and axis == len(shape) - 1:
            _need(size == last, f"{what} has {size} values in its last dimension, not {last}")
        else:
            _need(size <= max_side, f"{what} has {size} values in dimension {axis}, above {max_side}")
    level = [value]
    for axis, size in enumerate(shape):
        following: list[Any] = []
        for item in level:
            _need(isinstance(item, list) and len(item) == size,
                  f"{what} is not rectangular: dimension {axis} is not {size} long everywhere")
            following.extend(item)
        level = following
    _need(all(_is_number(item, allow_none) for item in level),
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


class _Strict(Document):
    """Strict JSON types: the document handed back is the parsed JSON, so a value pydantic would coerce
    (``"0.5"`` to 0.5, ``1`` to ``true``) would reach the reader unconverted; it is refused instead."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class Check(_Strict):
    """A masking check (``CheckResult.to_json``): the report prints the failed ones by name."""

    name: Name
    passed: StrictBool
    detail: Text | None = None
    subject: Name | None = None


class AnalysisBase(_Strict):
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
            _need(len(values) == self.samples, f"{where} has {len(values)} values for {self.samples} samples")


class OtherAnalysis(AnalysisBase):
    """A kind this evrobust does not write (or a document without ``kind``): the common fields only."""


# ----------------------------------------------------------------------------------------- sparsity


class SparsityMean(_Strict):
    """``targets.<target>.mean``: the norms' means over the samples (report prints l0, l1, l2, density)."""

    l0: NonNegative | None = None
    l0_rel: NonNegative | None = None
    l1: NonNegative | None = None
    l2: NonNegative | None = None
    density: Frac | None = None
    density_rel: Frac | None = None
    zero_gradient_share: Frac | None = None


class SparsityTarget(_Strict):
    """``targets.<target>``: means and per-sample norms of one gradient target."""

    mean: SparsityMean | None = None
    per_sample: dict[Key, list[NonNegative | None]] | None = Field(default=None, max_length=32)


class SparsityAnalysis(AnalysisBase):
    """``analysis-sparsity.json``: l0 / l1 / l2 of grad_x f_y per target."""

    kind: Literal["sparsity"]
    tol: NonNegative | None = None
    rel_tol: NonNegative | None = None
    targets: dict[Key, SparsityTarget] | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _lengths(self) -> SparsityAnalysis:
        for target, body in (self.targets or {}).items():
            for key, values in (body.per_sample or {}).items():
                self.per_sample(f"targets.{target}.per_sample.{key}", values)
        return self


# ----------------------------------------------------------------------------------------- vulnerability


class VulnerabilityAnalysis(AnalysisBase):
    """``analysis-vulnerability.json``: accuracy per attack along an eps grid (paper Fig. 1)."""

    kind: Literal["vulnerability"]
    eps: list[Eps] | None = Field(default=None, min_length=1, max_length=MAX_EPS_POINTS)
    eps_text: list[Short] | None = Field(default=None, max_length=MAX_EPS_POINTS)
    ensemble: Name | None = None
    members: list[Name] | None = Field(default=None, max_length=MAX_ENTRIES)
    attacks: list[Key] | None = Field(default=None, max_length=MAX_CURVES)
    curves: dict[Key, list[Frac]] | None = Field(default=None, max_length=MAX_CURVES)

    @model_validator(mode="after")
    def _grid(self) -> VulnerabilityAnalysis:
        eps = self.eps
        if eps is not None:
            _need(all(a < b for a, b in zip(eps, eps[1:], strict=False)), "eps is not strictly increasing")
        if self.eps_text is not None:
            _need(eps is not None and len(self.eps_text) == len(eps),
                  f"eps_text has {len(self.eps_text)} entries for {len(eps or [])} eps")
        if self.curves is not None:
            _need(eps is not None, "curves are given without their eps")
            for name, curve in self.curves.items():
                _need(len(curve) == len(eps or []),
                      f"curve {name!r} has {len(curve)} points for {len(eps or [])} eps")
        return self


# ----------------------------------------------------------------------------------------- theorem


class TheoremEntry(_Strict):
    """``results[i]``: the Theorem 1 check at one eps (``summarize_theorem``)."""

    eps: Eps | None = None
    eps_text: Short | None = None
    defined: Samples | None = None
    in_bounds: Frac | None = None
    below_estimate: Frac | None = None
    mean: dict[Key, Number | None] | None = Field(default=None, max_length=32)
    median: dict[Key, Number | None] | None = Field(default=None, max_length=32)
    per_sample: dict[Key, list[Number | None]] | None = Field(default=None, max_length=32)


class TheoremAnalysis(AnalysisBase):
    """``analysis-theorem.json``: measured rho_adv / rho_rand beside 3 l1^2 / l2^2, per eps."""

    kind: Literal["theorem"]
    target: Name | None = None
    mc_samples: Annotated[int, Field(strict=True, ge=2, le=100_000)] | None = None
    pgd_steps: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = None
    clip: StrictBool | None = None
    tol: NonNegative | None = None
    results: list[TheoremEntry] | None = Field(default=None, max_length=MAX_EPS_POINTS)

    @model_validator(mode="after")
    def _lengths(self) -> TheoremAnalysis:
        for i, entry in enumerate(self.results or []):
            if entry.defined is not None and self.samples is not None:
                _need(entry.defined <= self.samples,
                      f"results.{i}.defined is {entry.defined}, above {self.samples} samples")
            for key, values in (entry.per_sample or {}).items():
                self.per_sample(f"results.{i}.per_sample.{key}", values)
        return self


# ----------------------------------------------------------------------------------------- distribution


class DistributionAnalysis(AnalysisBase):
    """``analysis-distribution.json``: a histogram of the gradient's components (paper Fig. 4)."""

    kind: Literal["distribution"]
    target: Name | None = None
    bins: Annotated[int, Field(strict=True, ge=1, le=MAX_BINS)] | None = None
    edges: list[Number] | None = Field(default=None, min_length=2, max_length=MAX_BINS + 1)
    counts: list[Components] | None = Field(default=None, min_length=1, max_length=MAX_BINS)
    zero_count: Components | None = None
    total: Components | None = None
    abs_max: NonNegative | None = None
    std: NonNegative | None = None

    @model_validator(mode="after")
    def _histogram(self) -> DistributionAnalysis:
        edges, counts = self.edges, self.counts
        _need((edges is None) == (counts is None), "edges and counts come together (a histogram needs both)")
        if edges is not None and counts is not None:
            _need(len(edges) == len(counts) + 1, f"{len(edges)} edges for {len(counts)} counts")
            _need(all(a <= b for a, b in zip(edges, edges[1:], strict=False)), "edges are not increasing")
            _need(self.total is not None, "counts are given without their total")
        if self.bins is not None and counts is not None:
            _need(self.bins == len(counts), f"bins is {self.bins} but there are {len(counts)} counts")
        if self.zero_count is not None and self.total is not None:
            _need(self.zero_count <= self.total, f"zero_count {self.zero_count} is above total {self.total}")
        return self


# ----------------------------------------------------------------------------------------- heatmap


class HeatmapAnalysis(AnalysisBase):
    """``analysis-heatmap.json``: inputs and ``|grad|`` maps of the first samples (paper Fig. 5).

    ``indices``, ``labels``, ``l0``, ``l1``, ``input_maps`` and ``grad_maps`` hold one entry per sample (and
    ``count`` says how many); the maps are drawn together, so they come together. ``input_frames`` /
    ``grad_frames`` hold ``[T][2][H][W]`` event frames of the first sample(s), of one shape.
    """

    kind: Literal["heatmap"]
    target: Name | None = None
    count: Annotated[int, Field(strict=True, ge=0, le=MAX_HEATMAP_SAMPLES)] | None = None
    indices: list[Samples] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    labels: list[Label] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    l0: list[NonNegative | None] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    l1: list[NonNegative | None] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    input_maps: list[InputMap] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    grad_maps: list[GradMap] | None = Field(default=None, max_length=MAX_HEATMAP_SAMPLES)
    input_frames: list[Frames] | None = Field(default=None, min_length=1, max_length=MAX_HEATMAP_SAMPLES)
    grad_frames: list[Frames] | None = Field(default=None, min_length=1, max_length=MAX_HEATMAP_SAMPLES)

    @model_validator(mode="after")
    def _samples(self) -> HeatmapAnalysis:
        drawn = ("indices", "labels", "input_maps", "grad_maps")
        present = [name for name in drawn if getattr(self, name) is not None]
        _need(not present or len(present) == len(drawn),
              f"{', '.join(present)} without {', '.join(n for n in drawn if n not in present)}"
              " (the figure draws them together)")
        lengths = {name: len(getattr(self, name))
                   for name in (*drawn, "l0", "l1") if getattr(self, name) is not None}
        if self.count is not None:
            lengths = {"count": self.count, **lengths}
        _need(len(set(lengths.values())) <= 1,
              "one entry per sample: " + ", ".join(f"{k} {v}" for k, v in lengths.items()) + " disagree")
        frames = (self.input_frames, self.grad_frames)
        _need((frames[0] is None) == (frames[1] is None), "input_frames and grad_frames come together")
        if self.input_frames is not None and self.grad_frames is not None:
            # The field validators checked each one rectangular: its first elements give its shape.
            shapes = {_shape(f, 4) for f in (*self.input_frames, *self.grad_frames)}
            _need(len(shapes) == 1, "the event frames do not all have one shape")
            steps, polarities = next(iter(shapes))[:2]
            _need(steps <= MAX_FRAMES, f"the event frames have {steps} steps, above the limit {MAX_FRAMES}")
            _need(polarities == 2, f"the event frames have {polarities} polarities, not 2")
            _need(len(self.input_frames) == len(self.grad_frames),
                  "input_frames and grad_frames hold different numbers of samples")
            if self.count is not None:
                _need(len(self.input_frames) <= self.count,
                      f"{len(self.input_frames)} framed samples of only {self.count}")
        return self


# ----------------------------------------------------------------------------------------- masking study

MAX_RADII = 256
"""Most radii of a landscape or steps of a fidelity analysis (``evrobust analyze`` allows as many)."""
MAX_DIRECTIONS = 32
"""Most directions of a landscape or fidelity analysis (gradient, up to 16 random, adversarial)."""
Radius = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0.0, le=1.0)]
"""A radius or a finite-difference step in (0, 1] input units."""
Cosine = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1.0, le=1.0)]
"""A cosine similarity."""
Disagreement = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=2.0)]
"""``|a - b| / max(|a|, |b|)``: 0 equal, 1 one of the two zero, 2 equal size and opposite signs."""


def _increasing(values: list[float] | None, what: str) -> None:
    if values is not None:
        ordered = all(a < b for a, b in zip(values, values[1:], strict=False))
        _need(ordered, f"{what} is not strictly increasing")


def _table(value: Any, rows: int | None, columns: int, what: str) -> None:
    """``value`` is a ``[rows][columns]`` list of finite numbers or nulls (rows unchecked when None)."""
    shape = check_array(value, (2,), max_side=MAX_SAMPLES, what=what)
    _need(shape[1] == columns, f"{what} has {shape[1]} columns, not {columns}")
    if rows is not None:
        _need(shape[0] == rows, f"{what} has {shape[0]} rows for {rows} samples")


class Quartiles(_Strict):
    """``q1``, ``median``, ``q3`` over samples: one value per radius each."""

    q1: list[Number | None] = Field(max_length=MAX_RADII)
    median: list[Number | None] = Field(max_length=MAX_RADII)
    q3: list[Number | None] = Field(max_length=MAX_RADII)


class RiseSummary(_Strict):
    """``directions.<name>.rise``: the median first radius of a loss rise (None: half never rise) and the
    share of samples that rise within the grid."""

    median_radius: Radius | None = None
    share: Frac | None = None


class LandscapeDirection(_Strict):
    """``directions.<name>``: the loss and margin curves along one direction."""

    ce: Quartiles
    margin: Quartiles
    clipped: list[Frac] | None = Field(default=None, max_length=MAX_RADII)
    rise: RiseSummary | None = None
    per_sample: dict[Key, Any] | None = Field(default=None, max_length=8)


class LandscapeClean(_Strict):
    """``clean``: the loss and margin at the samples themselves."""

    median_ce: Number | None = None
    median_margin: Number | None = None
    per_sample: dict[Key, list[Number | None]] | None = Field(default=None, max_length=8)


class LandscapeAdversarial(_Strict):
    """``adversarial``: how the adversarial direction was found (PGD run by the analysis), what it broke."""

    source: Name | None = None
    attack: Name | None = None
    steps: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = None
    spec: Name | None = None
    attack_file: Name | None = None
    note: Text | None = None
    broken: Frac | None = None
    per_sample: dict[Key, list[Number | None]] | None = Field(default=None, max_length=8)


def _radius_or_none(value: Any) -> bool:
    return value is None or (_is_number(value, False) and 0 < value <= 1)


class LandscapeAnalysis(AnalysisBase):
    """``analysis-landscape.json``: the loss around each sample along a few directions, over radii.

    Every curve has one value per radius; per-sample curves are ``[samples][radii]``, per-sample values one
    per sample.
    """

    kind: Literal["landscape"]
    eps: Radius | None = None
    eps_text: Short | None = None
    radii: list[Radius] = Field(min_length=1, max_length=MAX_RADII)
    rise: NonNegative | None = None
    sr_h: Radius | None = None
    random_directions: Annotated[int, Field(strict=True, ge=0, le=MAX_DIRECTIONS)] | None = None
    clean: LandscapeClean | None = None
    directions: dict[Key, LandscapeDirection] = Field(max_length=MAX_DIRECTIONS)
    adversarial: LandscapeAdversarial | None = None

    @model_validator(mode="after")
    def _curves(self) -> LandscapeAnalysis:
        _increasing(self.radii, "radii")
        r = len(self.radii)
        for name, body in self.directions.items():
            for part, quart in (("ce", body.ce), ("margin", body.margin)):
                for q in ("q1", "median", "q3"):
                    got = len(getattr(quart, q))
                    _need(got == r, f"directions.{name}.{part}.{q} has {got} values for {r} radii")
            if body.clipped is not None:
                _need(len(body.clipped) == r, f"directions.{name}.clipped has {len(body.clipped)} values")
            for key, value in (body.per_sample or {}).items():
                where = f"directions.{name}.per_sample.{key}"
                if key == "rise_radius":
                    _need(isinstance(value, list) and all(map(_radius_or_none, value)),
                          f"{where} holds a value that is not a radius in (0, 1] or null")
                    self.per_sample(where, value)
                else:
                    _table(value, self.samples, r, where)
        for part in (self.clean, self.adversarial):
            for key, value in ((part.per_sample or {}) if part is not None else {}).items():
                self.per_sample(f"per_sample.{key}", value)
        return self


class FidelityEntry(_Strict):
    """``specs.<spec>.results[i]``: surrogate vs finite difference at one step."""

    step: Radius
    cosine: Cosine | None = None
    ratio: NonNegative | None = None
    median_disagreement: Disagreement | None = None
    zero_fd_share: Frac | None = None
    flat_changes_share: Frac | None = None
    per_sample: dict[Key, Any] | None = Field(default=None, max_length=8)


class FidelitySpec(_Strict):
    """``specs.<spec>``: one entry per step."""

    results: list[FidelityEntry] = Field(max_length=MAX_RADII)


class FidelityHeadline(_Strict):
    """``headline``: the model's own spec (else the first) at the step nearest SR's h."""

    spec: Name | None = None
    step: Radius | None = None
    cosine: Cosine | None = None
    ratio: NonNegative | None = None
    median_disagreement: Disagreement | None = None
    zero_fd_share: Frac | None = None
    flat_changes_share: Frac | None = None


class FidelityAnalysis(AnalysisBase):
    """``analysis-fidelity.json``: surrogate directional derivatives vs central finite differences.

    Each spec has one entry per step, in the order of ``steps``; per-sample tables are
    ``[samples][directions]``.
    """

    kind: Literal["fidelity"]
    eps: Radius | None = None
    eps_text: Short | None = None
    steps: list[Radius] = Field(min_length=1, max_length=MAX_RADII)
    sr_h: Radius | None = None
    random_directions: Annotated[int, Field(strict=True, ge=0, le=MAX_DIRECTIONS)] | None = None
    directions: list[Key] = Field(min_length=1, max_length=MAX_DIRECTIONS)
    ensemble: Name | None = None
    specs: dict[Key, FidelitySpec] = Field(min_length=1, max_length=MAX_ENTRIES)
    headline: FidelityHeadline | None = None

    @model_validator(mode="after")
    def _entries(self) -> FidelityAnalysis:
        _increasing(self.steps, "steps")
        d = len(self.directions)
        for name, body in self.specs.items():
            got = [entry.step for entry in body.results]
            _need(got == self.steps, f"specs.{name} has steps {got[:8]}, not those of 'steps'")
            for i, entry in enumerate(body.results):
                for key, value in (entry.per_sample or {}).items():
                    _table(value, self.samples, d, f"specs.{name}.results.{i}.per_sample.{key}")
        return self


# ----------------------------------------------------------------------------------------- dispatch


_BY_KIND: dict[str, type[AnalysisBase]] = {
    "sparsity": SparsityAnalysis,
    "vulnerability": VulnerabilityAnalysis,
    "theorem": TheoremAnalysis,
    "distribution": DistributionAnalysis,
    "heatmap": HeatmapAnalysis,
    "landscape": LandscapeAnalysis,
    "fidelity": FidelityAnalysis,
}


def _tag(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) and kind in _BY_KIND else "other"


def model_for(document: Any) -> type[AnalysisBase]:
    """The model of ``document``'s kind (:class:`OtherAnalysis` for an unknown or missing kind)."""
    return _BY_KIND.get(_tag(document), OtherAnalysis)


AnyAnalysis = Annotated[
    Annotated[SparsityAnalysis, Tag("sparsity")]
    | Annotated[VulnerabilityAnalysis, Tag("vulnerability")]
    | Annotated[TheoremAnalysis, Tag("theorem")]
    | Annotated[DistributionAnalysis, Tag("distribution")]
    | Annotated[HeatmapAnalysis, Tag("heatmap")]
    | Annotated[LandscapeAnalysis, Tag("landscape")]
    | Annotated[FidelityAnalysis, Tag("fidelity")]
    | Annotated[OtherAnalysis, Tag("other")],
    Discriminator(_tag),
]
"""An analysis document inside another one (a reproduction's ``analyses``): the error's field path starts
with the kind it was checked as."""


class Analysis(AnalysisBase):
    """``analysis-<kind>.json`` (kind ``analysis``): validated as the model of its ``kind``.

    :func:`evrobust.safeio.schemas.validate` calls ``model_validate``; it is routed to the kind's model, so
    that a failure names the field as it stands in the file (``field input_maps.3: ...``).
    """

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> AnalysisBase:  # type: ignore[override]
        return model_for(obj).model_validate(obj, **kwargs)
