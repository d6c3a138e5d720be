"""Schemas of the masking study's analyses (``evrobust analyze landscape`` and ``fidelity``,
docs/masking-study.md): :class:`LandscapeAnalysis` and :class:`FidelityAnalysis`, which
:class:`evrobust.safeio.schemas.analysis.Analysis` dispatches to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from evrobust.safeio.schemas.analysis_base import (
    MAX_ENTRIES,
    MAX_SAMPLES,
    AnalysisBase,
    Frac,
    Key,
    NonNegative,
    Number,
    Short,
    StrictModel,
    Text,
    _is_number,
    check_array,
    need,
)
from evrobust.safeio.schemas.common import Name

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
        need(ordered, f"{what} is not strictly increasing")


def _table(value: Any, rows: int | None, columns: int, what: str) -> None:
    """``value`` is a ``[rows][columns]`` list of finite numbers or nulls (rows unchecked when None)."""
    shape = check_array(value, (2,), max_side=MAX_SAMPLES, what=what)
    need(shape[1] == columns, f"{what} has {shape[1]} columns, not {columns}")
    if rows is not None:
        need(shape[0] == rows, f"{what} has {shape[0]} rows for {rows} samples")


class Quartiles(StrictModel):
    """``q1``, ``median``, ``q3`` over samples: one value per radius each."""

    q1: list[Number | None] = Field(max_length=MAX_RADII)
    median: list[Number | None] = Field(max_length=MAX_RADII)
    q3: list[Number | None] = Field(max_length=MAX_RADII)


class RiseSummary(StrictModel):
    """``directions.<name>.rise``: the median first radius of a loss rise (None: half never rise) and the
    share of samples that rise within the grid."""

    median_radius: Radius | None = None
    share: Frac | None = None


class LandscapeDirection(StrictModel):
    """``directions.<name>``: the loss and margin curves along one direction."""

    ce: Quartiles
    margin: Quartiles
    clipped: list[Frac] | None = Field(default=None, max_length=MAX_RADII)
    rise: RiseSummary | None = None
    per_sample: dict[Key, Any] | None = Field(default=None, max_length=8)


class LandscapeClean(StrictModel):
    """``clean``: the loss and margin at the samples themselves."""

    median_ce: Number | None = None
    median_margin: Number | None = None
    per_sample: dict[Key, list[Number | None]] | None = Field(default=None, max_length=8)


class LandscapeAdversarial(StrictModel):
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
                    need(got == r, f"directions.{name}.{part}.{q} has {got} values for {r} radii")
            if body.clipped is not None:
                need(len(body.clipped) == r, f"directions.{name}.clipped has {len(body.clipped)} values")
            for key, value in (body.per_sample or {}).items():
                where = f"directions.{name}.per_sample.{key}"
                if key == "rise_radius":
                    need(isinstance(value, list) and all(map(_radius_or_none, value)),
                          f"{where} holds a value that is not a radius in (0, 1] or null")
                    self.per_sample(where, value)
                else:
                    _table(value, self.samples, r, where)
        for part in (self.clean, self.adversarial):
            for key, value in ((part.per_sample or {}) if part is not None else {}).items():
                self.per_sample(f"per_sample.{key}", value)
        return self


class FidelityEntry(StrictModel):
    """``specs.<spec>.results[i]``: surrogate vs finite difference at one step."""

    step: Radius
    cosine: Cosine | None = None
    ratio: NonNegative | None = None
    median_disagreement: Disagreement | None = None
    zero_fd_share: Frac | None = None
    flat_changes_share: Frac | None = None
    per_sample: dict[Key, Any] | None = Field(default=None, max_length=8)


class FidelitySpec(StrictModel):
    """``specs.<spec>``: one entry per step."""

    results: list[FidelityEntry] = Field(max_length=MAX_RADII)


class FidelityHeadline(StrictModel):
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
            need(got == self.steps, f"specs.{name} has steps {got[:8]}, not those of 'steps'")
            for i, entry in enumerate(body.results):
                for key, value in (entry.per_sample or {}).items():
                    _table(value, self.samples, d, f"specs.{name}.results.{i}.per_sample.{key}")
        return self


