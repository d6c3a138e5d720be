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

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictBool, Tag, model_validator

from evrobust.safeio.schemas.analysis_base import (
    KINDS,
    MAX_BINS,
    MAX_CURVES,
    MAX_ENTRIES,
    MAX_EPS_POINTS,
    MAX_FRAMES,
    MAX_HEATMAP_SAMPLES,
    MAX_SIDE,
    AnalysisBase,
    Components,
    Eps,
    Frac,
    Frames,
    GradMap,
    InputMap,
    Key,
    Label,
    NonNegative,
    Number,
    OtherAnalysis,
    Samples,
    Short,
    StrictModel,
    check_array,
    need,
    nested_shape,
)
from evrobust.safeio.schemas.analysis_masking import FidelityAnalysis, LandscapeAnalysis
from evrobust.safeio.schemas.common import Name

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


class SparsityMean(StrictModel):
    """``targets.<target>.mean``: the norms' means over the samples (report prints l0, l1, l2, density)."""

    l0: NonNegative | None = None
    l0_rel: NonNegative | None = None
    l1: NonNegative | None = None
    l2: NonNegative | None = None
    density: Frac | None = None
    density_rel: Frac | None = None
    zero_gradient_share: Frac | None = None


class SparsityTarget(StrictModel):
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
            need(all(a < b for a, b in zip(eps, eps[1:], strict=False)), "eps is not strictly increasing")
        if self.eps_text is not None:
            need(eps is not None and len(self.eps_text) == len(eps),
                  f"eps_text has {len(self.eps_text)} entries for {len(eps or [])} eps")
        if self.curves is not None:
            need(eps is not None, "curves are given without their eps")
            for name, curve in self.curves.items():
                need(len(curve) == len(eps or []),
                      f"curve {name!r} has {len(curve)} points for {len(eps or [])} eps")
        return self


# ----------------------------------------------------------------------------------------- theorem


class TheoremEntry(StrictModel):
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
                need(entry.defined <= self.samples,
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
        need((edges is None) == (counts is None), "edges and counts come together (a histogram needs both)")
        if edges is not None and counts is not None:
            need(len(edges) == len(counts) + 1, f"{len(edges)} edges for {len(counts)} counts")
            need(all(a <= b for a, b in zip(edges, edges[1:], strict=False)), "edges are not increasing")
            need(self.total is not None, "counts are given without their total")
        if self.bins is not None and counts is not None:
            need(self.bins == len(counts), f"bins is {self.bins} but there are {len(counts)} counts")
        if self.zero_count is not None and self.total is not None:
            need(self.zero_count <= self.total, f"zero_count {self.zero_count} is above total {self.total}")
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
        need(not present or len(present) == len(drawn),
              f"{', '.join(present)} without {', '.join(n for n in drawn if n not in present)}"
              " (the figure draws them together)")
        lengths = {name: len(getattr(self, name))
                   for name in (*drawn, "l0", "l1") if getattr(self, name) is not None}
        if self.count is not None:
            lengths = {"count": self.count, **lengths}
        need(len(set(lengths.values())) <= 1,
              "one entry per sample: " + ", ".join(f"{k} {v}" for k, v in lengths.items()) + " disagree")
        frames = (self.input_frames, self.grad_frames)
        need((frames[0] is None) == (frames[1] is None), "input_frames and grad_frames come together")
        if self.input_frames is not None and self.grad_frames is not None:
            # The field validators checked each one rectangular: its first elements give its shape.
            shapes = {nested_shape(f, 4) for f in (*self.input_frames, *self.grad_frames)}
            need(len(shapes) == 1, "the event frames do not all have one shape")
            steps, polarities = next(iter(shapes))[:2]
            need(steps <= MAX_FRAMES, f"the event frames have {steps} steps, above the limit {MAX_FRAMES}")
            need(polarities == 2, f"the event frames have {polarities} polarities, not 2")
            need(len(self.input_frames) == len(self.grad_frames),
                  "input_frames and grad_frames hold different numbers of samples")
            if self.count is not None:
                need(len(self.input_frames) <= self.count,
                      f"{len(self.input_frames)} framed samples of only {self.count}")
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
