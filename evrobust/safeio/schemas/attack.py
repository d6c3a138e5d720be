"""Schemas of the attack documents: ``attack-<mode>.json`` and its resume state.

* :class:`AttackResult` (kinds ``attack_result`` and ``compare_input``): what ``evrobust attack`` writes
  (:mod:`evrobust.pipelines.attack.pipeline`, ``reliable.py``, ``certificate.py``, ``indicators.py``) and
  what its readers index: the markdown table (``render_markdown``), the masking check against the other
  mode (``checks.read_other_mode``), ``evrobust compare`` and its worst-case merge
  (``pipelines/common/paired.py``), the report and the demo summary. ``evrobust compare`` also takes
  hand-made files "in this layout" (a user's own attack), so only ``format``, ``samples``, ``flags`` and
  each attack's ``name`` must be present; every other field is checked when it is there (type, range,
  length), and the readers look those up with a default.
* :class:`AttackPartial` (kind ``attack_partial``): ``attack-<mode>.partial.json``, written after every batch.
  Its batch count must agree with the flags it holds: a file that claims more batches than its flags cover
  would make a resumed run count samples that were never attacked.

A field a reader looks up with a non-None default (``.get("checks", [])``) may be absent but not null.
Accuracies are fractions in [0, 1] (the tables print %); a 95 % interval is ``[low, high]`` with
``0 <= low <= high <= 1``. Every number is strict (``true`` is not a count, ``"0.5"`` not a fraction) and
finite. Torch-free: nothing here imports the attack code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, model_validator

from evrobust.safeio.schemas.common import Document, Name

__all__ = ["MAX_SAMPLES", "AttackPartial", "AttackResult"]

MAX_SAMPLES = 10**7
"""Most samples an attack document may claim (the largest test split evrobust knows has 10,000)."""
MAX_ENTRIES = 10_000
"""Most attacks, checks, members or stages one list or mapping of a document may hold."""
MAX_DOUBLING = 64
"""Largest doubling index a certificate record may state (``--max-doublings`` stops at 8)."""
ACCURACY_TOLERANCE = 1e-6
"""How far a stored accuracy (a float32 mean) may lie from ``robust / n``."""

Text = Annotated[str, Field(max_length=4096)]
"""A sentence: a check's detail, an indicator's remedy, a path."""
Samples = Annotated[int, Field(ge=0, le=MAX_SAMPLES, strict=True)]
"""A sample count (or an index into the samples)."""
SomeSamples = Annotated[int, Field(ge=1, le=MAX_SAMPLES, strict=True)]
"""A sample count of at least one."""
Frac = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
"""A finite fraction in [0, 1] (an accuracy, a share); an integer 0 or 1 is accepted."""
SignedFrac = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1.0, le=1.0)]
"""A difference of two fractions."""
Number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e300, le=1e300)]
"""Any finite number."""
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
"""Wall-clock seconds (about 30 years at most)."""
Eps = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
"""An L-inf radius in [0, 1] input units."""
Seed = Annotated[int, Field(strict=True, ge=-(2**63), le=2**64 - 1)]
"""A random seed (any value a torch generator takes)."""


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"the interval's low end {value[0]!r} is above its high end {value[1]!r}")
    return value


Interval = Annotated[tuple[Frac, Frac], AfterValidator(_ordered)]
"""A 95 % Clopper–Pearson interval ``[low, high]`` of a fraction."""


def _flag_text(value: str) -> str:
    # str.strip is a single C pass: fast for a flag string of a million samples.
    if value.strip("01-"):
        raise ValueError("the flag string holds characters other than 1, 0 and -")
    return value


FlagText = Annotated[str, Field(max_length=MAX_SAMPLES), AfterValidator(_flag_text)]

EventCount = Annotated[int, Field(strict=True, ge=0, le=2**62)]
"""A number of events (changed, moved) or of bins (a shift)."""
"""One character per sample: ``1`` robust, ``0`` broken, ``-`` not attacked."""


def _need(ok: bool, message: str) -> None:
    """Raise the ``ValueError`` pydantic reports as ``field (document): Value error, <message>``."""
    if not ok:
        raise ValueError(message)


# ----------------------------------------------------------------------------------------- flags


class AttackFlagsDoc(Document):
    """``flags[<attack>]``: the per-sample flags of one attack and of each ensemble member."""

    name: Name | None = None
    correct: FlagText
    members: dict[Name, FlagText] = Field(default_factory=dict, max_length=MAX_ENTRIES)

    def check_length(self, where: str, samples: int) -> None:
        """Every flag string covers ``samples`` samples (one character each)."""
        _need(len(self.correct) == samples,
              f"{where}.correct covers {len(self.correct)} samples, not {samples}")
        for label, text in self.members.items():
            _need(len(text) == samples,
                  f"{where}.members[{label!r}] covers {len(text)} samples, not {samples}")


class PartialFlagsDoc(AttackFlagsDoc):
    """``flags[<attack>]`` of the resume state: the name is required (``AttackFlags.from_json`` reads it)."""

    name: Name


# ----------------------------------------------------------------------------------------- attacks


class CheckDoc(Document):
    """A masking check (``CheckResult.to_json``)."""

    name: Name
    passed: StrictBool
    detail: Text | None = None
    subject: Name | None = None


class MemberSummaryDoc(Document):
    """``attacks[i].members[<label>]``: own and cumulative accuracy of one ensemble member."""

    accuracy: Frac | None = None
    ci95: Interval | None = None
    cumulative: Frac | None = None
    cumulative_ci95: Interval | None = None
    n: Samples | None = None


class AttackEntryDoc(Document):
    """``attacks[i]``: one attack's accuracy, interval, settings and checks."""

    name: Name
    label: Name | None = None
    in_table: StrictBool | None = None
    eps: Eps | None = None
    accuracy: Frac | None = None
    n: Samples | None = None
    robust: Samples | None = None
    ci95: Interval | None = None
    samples: Samples | None = None
    seconds: Seconds | None = None
    settings: dict[Name, Any] | None = None
    # Absent is fine, null is not: readers iterate ``entry.get("members", {})`` and ``.get("checks", [])``.
    members: dict[Name, MemberSummaryDoc] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    checks: list[CheckDoc] = Field(default_factory=list, max_length=MAX_ENTRIES)
    converged: StrictBool | None = None
    # Event threats (``--threat events|retiming``): per sample, events changed (moved) and the largest shift
    # in bins; null where the sample was not attacked (wrong on the clean counts).
    events_changed: list[EventCount | None] | None = Field(default=None, max_length=MAX_SAMPLES)
    max_shift: list[EventCount | None] | None = Field(default=None, max_length=MAX_SAMPLES)
    max_shift_us: list[EventCount | None] | None = Field(default=None, max_length=MAX_SAMPLES)

    @model_validator(mode="after")
    def _counts(self) -> AttackEntryDoc:
        if self.robust is not None and self.n is not None:
            _need(self.robust <= self.n,
                  f"attack {self.name!r} is robust on {self.robust} of only {self.n} samples")
        return self


class TestSetDoc(Document):
    """``test_set``: which samples were evaluated (pairing two results needs the same ones)."""

    store: Text | None = None
    split: Name | None = None
    samples: Samples | None = None
    labels_sha256: Name | None = None


class ZeroGradientsDoc(Document):
    """``zero_gradients`` (``ZeroGradientStats``): all-zero input gradients over the measured samples."""

    samples: Samples
    sample_share: Frac
    element_share: Frac


# ----------------------------------------------------------------------------------------- reliable


class StageDoc(Document):
    """``cascade.stages[i]``: what one stage of the reliable cascade broke."""

    name: Name
    attack: dict[Name, Any] | None = None
    members: list[Name] = Field(max_length=MAX_ENTRIES)
    broken: Samples
    accuracy_after: Frac
    n: Samples | None = None
    ci95_after: Interval | None = None


class CascadeDoc(Document):
    """``cascade``: per sample which attack, stage or member broke it; per stage what it broke."""

    attack: Name  # the headline's key: compare reads only this (a hand-made file may hold nothing else)
    entering: Samples | None = None
    entering_accuracy: Frac | None = None
    stages: list[StageDoc] = Field(default_factory=list, max_length=MAX_ENTRIES)
    broken_by: list[Name | None] | None = Field(default=None, max_length=MAX_SAMPLES)
    counts: dict[Name, Samples] | None = Field(default=None, max_length=MAX_ENTRIES)


class BudgetDoc(Document):
    """``reliable.doublings[i].budget``: the doubled budget."""

    sapgd_steps: Annotated[int, Field(strict=True, ge=0, le=2**62)] | None = None
    square_queries_per_draw: Annotated[int, Field(strict=True, ge=0, le=2**62)] | None = None


class DoublingDoc(Document):
    """``reliable.doublings[i]``: one doubling of the convergence certificate."""

    doubling: Annotated[int, Field(strict=True, ge=1, le=MAX_DOUBLING)] | None = None
    factor: Annotated[int, Field(strict=True, ge=1, le=2**MAX_DOUBLING)]
    budget: BudgetDoc = Field(default_factory=BudgetDoc)  # render_certificate: d.get("budget", {}).get(...)
    broke: Samples
    accuracy_after: Frac
    ci95_after: Interval | None = None


class IndicatorDoc(Document):
    """``reliable.indicators[i]`` (``Indicator.to_json``): an attack-failure indicator."""

    name: Name
    stage: Name | None = None
    passed: StrictBool | None
    value: Number | None = None
    detail: Text
    remedy: Text


class FidelityDoc(Document):
    """``reliable.gradient_fidelity``: per-sample zero-gradient share and finite-difference disagreement."""

    samples: Samples
    zero_share: list[Number] | None = Field(default=None, max_length=MAX_SAMPLES)
    fd_disagreement: list[Number] | None = Field(default=None, max_length=MAX_SAMPLES)
    median_zero_share: Frac
    median_fd_disagreement: Number

    @model_validator(mode="after")
    def _lengths(self) -> FidelityDoc:
        for key in ("zero_share", "fd_disagreement"):
            values = getattr(self, key)
            if values is not None:
                _need(len(values) == self.samples,
                      f"gradient_fidelity.{key} has {len(values)} values for {self.samples} samples")
        return self


class ReliableDoc(Document):
    """``reliable``: the headline (the cascade's accuracy), its certificate and indicators."""

    attack: Name | None = None
    accuracy: Frac | None = None
    n: Samples | None = None
    robust: Samples | None = None
    ci95: Interval | None = None
    max_doublings: Annotated[int, Field(strict=True, ge=0, le=MAX_DOUBLING)] | None = None
    threshold: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_SAMPLES)] | None = None
    doublings: list[DoublingDoc] | None = Field(default=None, max_length=MAX_DOUBLING)
    converged: StrictBool | None = None
    indicators: list[IndicatorDoc] | None = Field(default=None, max_length=MAX_ENTRIES)
    gradient_fidelity: FidelityDoc | None = None

    @model_validator(mode="after")
    def _certificate(self) -> ReliableDoc:
        if self.doublings:  # render_certificate prints both beside the doublings
            _need(self.threshold is not None and self.max_doublings is not None,
                  "reliable.doublings is given without its threshold and max_doublings")
        if self.robust is not None and self.n is not None:
            _need(self.robust <= self.n, f"reliable is robust on {self.robust} of only {self.n} samples")
        return self


class OverestimateDoc(Document):
    """``overestimate``: the paper protocol's lowest accuracy vs the reliable one."""

    paper: Frac
    paper_attack: Name | None = None
    paper_ci95: Interval | None = None
    reliable: Frac
    reliable_ci95: Interval | None = None
    difference: SignedFrac
    difference_robust: Samples | None = None
    difference_ci95: Interval | None = None
    n: Samples | None = None


# ----------------------------------------------------------------------------------------- documents


class AttackResult(Document):
    """``attack-<mode>.json``, and a file given to ``evrobust compare`` (the same layout).

    Beyond the fields' types and ranges: every flag string covers ``samples`` samples; every count that
    states a sample total (``attacks[i].n`` and ``.samples``, members' ``n``, ``test_set.samples``,
    ``reliable.n``, ``overestimate.n``, ``cascade.broken_by``, stages' ``n``) states ``samples``; an attack's
    ``robust`` is the number of ``1`` in its flags and its ``accuracy`` is ``robust / n``; ``merged_keys``
    names flagged attacks only.
    """

    format: Literal["evrobust-attack"]
    version: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    run: Text | None = None
    mode: Literal["whitebox", "blackbox"] | None = None
    threat: Literal["frames", "events", "retiming"] | None = None
    source: Text | None = None
    checkpoint: Name | None = None
    dataset: Name | None = None
    arch: Name | None = None
    defense: Name | None = None
    ensemble: Name | None = None
    members: list[Name] | None = Field(default=None, max_length=MAX_ENTRIES)
    eps: Eps | None = None
    eps_text: Name | None = None
    seed: Seed | None = None
    samples: SomeSamples
    test_set: TestSetDoc | None = None
    attacks: list[AttackEntryDoc] = Field(default_factory=list, max_length=MAX_ENTRIES)
    checks: list[CheckDoc] = Field(default_factory=list, max_length=MAX_ENTRIES)
    zero_gradients: ZeroGradientsDoc | None = None
    flags: dict[Name, AttackFlagsDoc] = Field(min_length=1, max_length=MAX_ENTRIES)
    cascade: CascadeDoc | None = None
    reliable: ReliableDoc | None = None
    overestimate: OverestimateDoc | None = None
    merged_keys: list[Name] | None = Field(default=None, max_length=MAX_ENTRIES)

    @model_validator(mode="after")
    def _consistent(self) -> AttackResult:
        n = self.samples
        for key, entry in self.flags.items():
            entry.check_length(f"flags[{key!r}]", n)
        for entry in self.attacks:
            _check_entry(entry, n, self.flags.get(entry.name))
        if self.test_set is not None and self.test_set.samples is not None:
            _need(self.test_set.samples == n, f"test_set.samples is {self.test_set.samples}, not {n}")
        if self.cascade is not None:
            _check_cascade(self.cascade, n)
        for where, value in (("reliable.n", self.reliable and self.reliable.n),
                             ("overestimate.n", self.overestimate and self.overestimate.n)):
            _need(value is None or value == n, f"{where} is {value}, not the document's {n} samples")
        fidelity = self.reliable.gradient_fidelity if self.reliable else None
        if fidelity is not None:
            _need(fidelity.samples <= n, f"gradient_fidelity covers {fidelity.samples} of only {n} samples")
        if self.zero_gradients is not None:
            _need(self.zero_gradients.samples <= n,
                  f"zero_gradients covers {self.zero_gradients.samples} of only {n} samples")
        unknown = [k for k in self.merged_keys or () if k not in self.flags]
        _need(not unknown, f"merged_keys names {unknown[:3]} without flags")
        return self


def _check_entry(entry: AttackEntryDoc, n: int, flags: AttackFlagsDoc | None) -> None:
    """An attack entry agrees with the document's sample count and with its own flags."""
    name = entry.name
    for field, value in (("n", entry.n), ("samples", entry.samples)):
        _need(value is None or value == n, f"attack {name!r} states {field} = {value}, not {n}")
    for field, values in (("events_changed", entry.events_changed), ("max_shift", entry.max_shift),
                          ("max_shift_us", entry.max_shift_us)):
        _need(values is None or len(values) == n,
              f"attack {name!r} has {len(values or ())} {field} entries for {n} samples")
    for label, member in entry.members.items():
        _need(member.n is None or member.n == n,
              f"attack {name!r} member {label!r} states n = {member.n}, not {n}")
    if flags is not None and entry.robust is not None:
        robust = flags.correct.count("1")
        _need(entry.robust == robust, f"attack {name!r} states robust = {entry.robust}, its flags {robust}")
    if entry.accuracy is not None and entry.robust is not None:
        expected = entry.robust / n
        _need(math.isclose(entry.accuracy, expected, abs_tol=ACCURACY_TOLERANCE),
              f"attack {name!r} states accuracy {entry.accuracy!r}, robust / n = {expected!r}")


def _check_cascade(cascade: CascadeDoc, n: int) -> None:
    if cascade.entering is not None:
        _need(cascade.entering <= n, f"cascade.entering is {cascade.entering}, above {n} samples")
    if cascade.broken_by is not None:
        _need(len(cascade.broken_by) == n,
              f"cascade.broken_by has {len(cascade.broken_by)} entries for {n} samples")
    for stage in cascade.stages:
        _need(stage.n is None or stage.n == n, f"cascade stage {stage.name!r} states n = {stage.n}, not {n}")
        _need(stage.broken <= n, f"cascade stage {stage.name!r} broke {stage.broken} of only {n} samples")


# ----------------------------------------------------------------------------------------- resume state


class FingerprintDoc(Document):
    """``fingerprint``: the options (and content digests) the partial results were made with.

    The resume compares it whole with the current run's; the schema checks the two fields the batch
    bookkeeping rests on, and that ``jobs`` names the attacks whose flags the file must hold.
    """

    samples: SomeSamples
    batch_size: Annotated[int, Field(strict=True, ge=1, le=MAX_SAMPLES)]
    jobs: list[tuple[Name, dict[Name, Any] | None]] = Field(max_length=MAX_ENTRIES)


class CertificateProgressDoc(Document):
    """``certificate``: the convergence certificate's progress (``run_certificate``'s ``state``)."""

    doubling: Annotated[int, Field(strict=True, ge=1, le=MAX_DOUBLING)]
    batches_done: Samples
    doublings: list[DoublingDoc] = Field(max_length=MAX_DOUBLING)
    broke: Samples
    finished: StrictBool


def _moving_total(value: tuple[int, int]) -> tuple[int, int]:
    if value[0] > value[1]:
        raise ValueError(f"{value[0]} runs still moving of only {value[1]}")
    return value


RunCount = Annotated[int, Field(strict=True, ge=0, le=2**62)]
Plateau = Annotated[tuple[RunCount, RunCount], AfterValidator(_moving_total)]
"""``plateau[<stage>]``: ``[runs whose best loss still rose, runs that did not break their sample]``."""


class AttackPartial(Document):
    """``attack-<mode>.partial.json``: the flags of the batches done so far, and where to go on.

    ``batches_done`` batches of ``fingerprint.batch_size`` cover ``min(batches_done * batch_size, samples)``
    samples; every flag string must cover exactly that many, every job of the fingerprint must have flags
    once a batch is done, and the certificate's progress (which runs after the last batch) may exist only
    when every batch is done. A file that fails is ignored and the attack starts over.
    """

    fingerprint: FingerprintDoc
    batches_done: Samples
    flags: dict[Name, PartialFlagsDoc] = Field(max_length=MAX_ENTRIES)
    seconds: dict[Name, Seconds] = Field(max_length=MAX_ENTRIES)
    zero: ZeroGradientsDoc | None = None
    plateau: dict[Name, Plateau] | None = Field(default=None, max_length=MAX_ENTRIES)
    certificate: CertificateProgressDoc | None = None

    @model_validator(mode="after")
    def _covered(self) -> AttackPartial:
        n, size = self.fingerprint.samples, self.fingerprint.batch_size
        total = -(-n // size)
        done = self.batches_done
        _need(done <= total, f"batches_done is {done}, but {n} samples make only {total} batches of {size}")
        covered = min(done * size, n)
        for key, entry in self.flags.items():
            entry.check_length(f"flags[{key!r}]", covered)
        if done:
            missing = [key for key, _ in self.fingerprint.jobs if key not in self.flags]
            _need(not missing, f"{done} batches are done but the flags of {missing[:3]} are missing")
        if self.zero is not None:
            _need(self.zero.samples <= covered,
                  f"zero.samples is {self.zero.samples}, above the {covered} samples covered")
        if self.certificate is not None:
            _need(done == total, f"certificate progress after only {done} of {total} batches")
            _need(self.certificate.batches_done <= total,
                  f"certificate.batches_done is {self.certificate.batches_done}, above {total} batches")
            _need(self.certificate.broke <= n,
                  f"certificate.broke is {self.certificate.broke}, above {n} samples")
        return self
