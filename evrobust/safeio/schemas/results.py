"""Schema of a reproduction's ``<out>/<name>/results.json`` (kind ``results``): :class:`ReproduceResults`.

Written by :func:`evrobust.pipelines.reproduce.runner.execute` after every step; read by ``evrobust report``
(:func:`evrobust.pipelines.common.results.load_results`), which renders each table of ``spec.tables`` in the
paper's layout. What the report indexes, and so what is checked:

* ``spec``: ``name``, ``title``, ``scale`` and ``notes`` are printed; each table's ``name``, ``title``,
  ``label_headers``, ``headers`` and ``rows`` (``labels``, ``cells``, ``paper``) lay it out. Each cell names
  where its number comes from: ``source`` ``attack`` (the accuracy of attack ``item`` in ``attacks[ref]``),
  ``metric`` (field ``item`` of ``runs[ref]``) or ``analysis`` (the dotted path ``item`` in
  ``analyses[ref]``).
* ``attacks``: each result's ``attacks`` (``name``, ``accuracy``, ``checks``) and ``checks`` (``name``,
  ``passed``, ``subject``, ``detail``); ``runs``: the per-run summaries (numbers); ``analyses``: analysis
  documents (:mod:`evrobust.safeio.schemas.analysis`, per-sample lists dropped).

Beyond types and ranges, :class:`ReproduceResults` checks what the tables rest on: every cell that finds a
value finds a number (a path into an analysis that ends at an object or a string would stop the report); the
``tradeoff`` table's rows hold a setting and a value (two labels). A cell whose result is not there yet is
allowed: a results file is rewritten after every step, and the report prints ``–`` for it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from evrobust.safeio.schemas.analysis import AnyAnalysis
from evrobust.safeio.schemas.analysis_base import (
    Check,
    Frac,
    NonNegative,
    Number,
    PathText,
    Samples,
    Sha256,
    Text,
)
from evrobust.safeio.schemas.common import Document, Name

__all__ = ["MAX_ROWS", "ReproduceResults", "validate_attack_step"]

MAX_ENTRIES = 10_000
"""Most runs, attacks, analyses (a paper-scale spec has under 100) or entries of one mapping or list."""
MAX_TABLES = 64
"""Most tables of one spec (the paper's largest spec has one)."""
MAX_ROWS = 4096
"""Most rows of one table (the trade-off study has about 30)."""
MAX_COLUMNS = 64
"""Most label or value columns of one table (Table 1 has 12)."""
MAX_PATH_DEPTH = 16
"""Most parts of a cell's dotted path into an analysis (``targets.two_class.mean.l1`` has 4)."""

Label = Annotated[str, Field(max_length=128, strict=True)]
"""A header, a row label or a paper row key (printed in a table cell)."""
Key = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$", strict=True)]
"""A run, attack or analysis key (``<run key>:<kind>``): printed and looked up."""
Item = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$", strict=True)]
"""A cell's item: an attack name, a metric name or a dotted path."""


class _Strict(Document):
    """Strict JSON types (the document handed back is the parsed JSON: a coerced value would reach the
    reader unconverted)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class CellSpec(_Strict):
    """``rows[i].cells[<header>]``: where one number of the table comes from."""

    source: Literal["attack", "metric", "analysis"]
    ref: Key
    item: Item

    @model_validator(mode="after")
    def _path(self) -> CellSpec:
        if self.source == "analysis" and self.item.count(".") >= MAX_PATH_DEPTH:
            raise ValueError(f"the path {self.item[:80]!r} has more than {MAX_PATH_DEPTH} parts")
        return self


class RowSpec(_Strict):
    """``tables[i].rows[j]``: its labels, its cells by header, the paper row it is compared with."""

    labels: list[Label] = Field(max_length=MAX_COLUMNS)
    cells: dict[Label, CellSpec] = Field(max_length=MAX_COLUMNS)
    paper: list[Label] | None = Field(default=None, max_length=MAX_COLUMNS)


class TableSpec(_Strict):
    """``spec.tables[i]``: one table in the paper's layout."""

    name: Name
    title: Text
    label_headers: list[Label] = Field(max_length=MAX_COLUMNS)
    headers: list[Label] = Field(max_length=MAX_COLUMNS)
    rows: list[RowSpec] = Field(max_length=MAX_ROWS)
    unit: Label | None = None


class PipelineSpecDoc(_Strict):
    """``spec``: the experiment as built by ``evrobust reproduce`` (``PipelineSpec.to_json``)."""

    name: Name
    title: Text
    scale: Name
    runs: dict[Key, Any] | None = Field(default=None, max_length=MAX_ENTRIES)
    attacks: list[Any] | None = Field(default=None, max_length=MAX_ENTRIES)
    analyses: list[Any] | None = Field(default=None, max_length=MAX_ENTRIES)
    tables: list[TableSpec] | None = Field(default=None, max_length=MAX_TABLES)
    figures: list[Name] | None = Field(default=None, max_length=MAX_ENTRIES)
    attack_limit: Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)] | None = None
    notes: list[Text] | None = Field(default=None, max_length=MAX_ENTRIES)


class RunSummary(_Strict):
    """``runs[<key>]``: what the tables take from a run's metrics (``_run_summary``).

    A metric cell may name any field of it; :class:`ReproduceResults` checks that the one named is a number.
    """

    dir: PathText | None = None
    epochs: Samples | None = None
    epochs_planned: Samples | None = None
    complete: StrictBool | None = None
    seconds: NonNegative | None = None
    val_acc: Number | None = None
    best_val_acc: Number | None = None
    train_acc: Number | None = None
    val_grad_l1: Number | None = None
    val_grad_l2: Number | None = None
    val_grad_zero_frac: Number | None = None


class AttackEntry(_Strict):
    """``attacks[<key>].attacks[i]``: an attack's accuracy and masking checks (the attack JSON's entry)."""

    name: Name
    label: Name | None = None
    accuracy: Frac | None = None
    checks: list[Check] | None = Field(default=None, max_length=MAX_ENTRIES)


class AttackStep(_Strict):
    """``attacks[<key>]``: an attack result without its per-sample flags (``attack_run``)."""

    format: Literal["evrobust-attack"] | None = None
    run: PathText | None = None
    mode: Name | None = None
    checkpoint: Name | None = None
    which: Name | None = None
    samples: Samples | None = None
    eps_text: Name | None = None
    attacks: list[AttackEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    checks: list[Check] | None = Field(default=None, max_length=MAX_ENTRIES)


class Provenance(_Strict):
    """``provenance[<key>]``: the checkpoint a result was computed from (checked when the file is written)."""

    kind: Name | None = None
    run: PathText | None = None
    stamp: Number | None = None
    checkpoint_sha256: Sha256 | None = None


class Pending(_Strict):
    """``pending``: the steps not done yet (a partial results file)."""

    runs: list[Key] | None = Field(default=None, max_length=MAX_ENTRIES)
    attacks: list[Key] | None = Field(default=None, max_length=MAX_ENTRIES)
    analyses: list[Key] | None = Field(default=None, max_length=MAX_ENTRIES)


def _value(document: Any, parts: list[str]) -> Any:
    """The value at a dotted path of a validated document (models, dicts), as ``report``'s ``_dig`` finds it:
    None where the path leaves the document."""
    for part in parts:
        if isinstance(document, BaseModel):
            if part in type(document).model_fields:
                document = getattr(document, part)
            elif document.model_extra is not None and part in document.model_extra:
                document = document.model_extra[part]
            else:
                return None
        elif isinstance(document, dict) and part in document:
            document = document[part]
        else:
            return None
    return document


def _is_number(value: Any) -> bool:
    return value is None or type(value) in (int, float) and -1e300 <= value <= 1e300


class ReproduceResults(_Strict):
    """``results.json`` of ``evrobust reproduce`` (see the module docstring)."""

    format: Literal["evrobust-reproduction"]
    version: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    complete: StrictBool | None = None
    spec: PipelineSpecDoc
    runs: dict[Key, RunSummary] = Field(max_length=MAX_ENTRIES)
    attacks: dict[Key, AttackStep] = Field(max_length=MAX_ENTRIES)
    analyses: dict[Key, AnyAnalysis] = Field(max_length=MAX_ENTRIES)
    provenance: dict[Key, Provenance] | None = Field(default=None, max_length=MAX_ENTRIES)
    pending: Pending | None = None

    @model_validator(mode="after")
    def _cells(self) -> ReproduceResults:
        tables = self.spec.tables or []
        for table in tables:
            for j, row in enumerate(table.rows):
                for header, cell in row.cells.items():
                    if cell.source == "metric":
                        value = _value(self.runs.get(cell.ref), [cell.item])
                    elif cell.source == "analysis":
                        value = _value(self.analyses.get(cell.ref), cell.item.split("."))
                    else:
                        continue  # an attack cell reads a typed accuracy (AttackEntry)
                    if not _is_number(value):
                        # Short: the error line keeps 160 characters of this message.
                        raise ValueError(f"table {table.name[:40]!r} row {j} cell {header[:40]!r} reads "
                                         f"{cell.item[:40]!r}: a {type(value).__name__}, not a number")
        if self.spec.name == "tradeoff" and tables:
            table = next((t for t in tables if t.name == "tradeoff"), None)
            if table is None:
                raise ValueError("the tradeoff results hold no table named 'tradeoff'")
            for j, row in enumerate(table.rows):
                if len(row.labels) != 2:
                    raise ValueError(f"tradeoff row {j} has {len(row.labels)} labels, not 2 (setting, value)")
        return self


def validate_attack_step(result: Any, source: str) -> None:
    """Check one cached attack result (``cache/attack-<hash>.json``'s ``result``) as ``attacks[<key>]`` is.

    Raises:
        UserInputError: one line naming ``source`` and the field.
    """
    from pydantic import ValidationError

    from evrobust.errors import UserInputError
    from evrobust.safeio.schemas import describe_error

    try:
        AttackStep.model_validate(result)
    except ValidationError as exc:
        raise UserInputError(f"{source}: {describe_error(exc)}; it is not a cached attack result") from None
