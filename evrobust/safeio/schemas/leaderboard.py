"""Schema of ``leaderboard.json`` (kind ``leaderboard``), written by ``evrobust leaderboard``
(:mod:`evrobust.pipelines.leaderboard.table`).

What a reader of the table relies on: the protocol's test set (pairing another result with the table), each
entry's RobustBench-style fields (accuracies in percent, intervals ``[low, high]`` within [0, 100]) and its
card, the paired tests (p-values in [0, 1]) and the rank groups (every group member is an entry). Unknown
fields are kept and ignored, like every schema of :mod:`evrobust.safeio.schemas`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, model_validator

from evrobust.safeio.schemas.common import Count, Document, Fraction, Name, Percent

__all__ = ["Leaderboard"]

MAX_ENTRIES = 10_000
Text = Annotated[str, Field(max_length=8192)]
Interval = Annotated[list[Percent], Field(min_length=2, max_length=2)]


class TestSetDoc(Document):
    """``protocol.test_set``: the samples every entry was evaluated on."""

    split: Name
    samples: Annotated[int, Field(ge=1, le=10**7, strict=True)]
    labels_sha256: Name


class ProtocolDoc(Document):
    """``protocol``: the one evaluation of the table."""

    suite: Literal["reliable"]
    eps: Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1.0)]
    eps_text: Name
    ensemble: Name
    test_set: TestSetDoc


class CostDoc(Document):
    """``card.training_cost``: seconds per epoch, and against the vanilla entry's (null without one)."""

    s_per_epoch: Annotated[float, Field(allow_inf_nan=False, ge=0.0)]
    epochs: Count
    vanilla_s_per_epoch: Annotated[float, Field(allow_inf_nan=False, ge=0.0)] | None = None
    vs_vanilla: Annotated[float, Field(allow_inf_nan=False, ge=0.0)] | None = None


class CardDoc(Document):
    """``entries[i].card``: what it takes to rerun the entry, and what its evaluation said."""

    run: Text
    defense: Name | None = None
    settings: dict[Name, Any] = Field(default_factory=dict)
    train_command: Text | None = None
    attack_command: Text
    training_cost: CostDoc | None = None
    evaluation_cost: dict[Name, Annotated[float, Field(allow_inf_nan=False, ge=0.0)]]
    converged: StrictBool | None = None
    doublings: Count
    failed_checks: list[Name] = Field(max_length=MAX_ENTRIES)
    failed_indicators: list[Name] = Field(max_length=MAX_ENTRIES)


class EntryDoc(Document):
    """``entries[i]``: RobustBench's entry fields, the SNN fields, the rank and the card."""

    key: Name
    name: Name
    paper: Name | None = None
    architecture: Name
    eps: Name | float | None = None
    clean_acc: Percent | None = None
    clean_ci95: Interval | None = None
    robust_acc: Percent | None = None
    robust_ci95: Interval | None = None
    robust: Count | None = None
    n: Count
    reported: Percent | None = None
    footnote: Text | None = None
    unreliable: StrictBool
    rank: Name | None = None
    group: Count | None = None
    T: Count | None = None
    neuron: Name | None = None
    encoding: Name | None = None
    stochastic: StrictBool | None = None
    eot_draws: Count | None = None
    attack_suite: Name
    external: StrictBool
    card: CardDoc

    @model_validator(mode="after")
    def _ranked_only_if_reliable(self) -> EntryDoc:
        if self.unreliable and self.rank is not None:
            raise ValueError(f"entry {self.key!r} is marked unreliable but ranked {self.rank}")
        return self


class PairDoc(Document):
    """``pairs[i]``: one exact McNemar test of the family, with its Holm-adjusted p-value."""

    a: Name
    b: Name
    a_only: Count
    b_only: Count
    p_value: Fraction
    p_holm: Fraction
    separated: StrictBool


class RankingDoc(Document):
    rule: Text
    correction: Literal["holm"]
    significance: Fraction
    pairs: Count
    groups: list[list[Name]] = Field(max_length=MAX_ENTRIES)


class Leaderboard(Document):
    """``leaderboard.json``."""

    format: Literal["evrobust-leaderboard"]
    version: Literal[1]
    complete: StrictBool
    pending: list[Name] = Field(default_factory=list, max_length=MAX_ENTRIES)
    protocol: ProtocolDoc
    ranking: RankingDoc
    entries: list[EntryDoc] = Field(max_length=MAX_ENTRIES)
    pairs: list[PairDoc] = Field(max_length=MAX_ENTRIES * MAX_ENTRIES)
    pareto_front: list[Name] = Field(max_length=MAX_ENTRIES)

    @model_validator(mode="after")
    def _references(self) -> Leaderboard:
        keys = {e.key for e in self.entries}
        if len(keys) != len(self.entries):
            raise ValueError("two entries share a key")
        named = [k for g in self.ranking.groups for k in g] + list(self.pareto_front)
        named += [k for p in self.pairs for k in (p.a, p.b)]
        unknown = sorted(set(named) - keys)
        if unknown:
            raise ValueError("groups, pairs or the Pareto front name unknown entries: "
                             + ", ".join(unknown[:5]))
        samples = self.protocol.test_set.samples
        wrong = [e.key for e in self.entries if e.n != samples]
        if wrong:
            raise ValueError(f"entries {', '.join(wrong[:5])} were not evaluated on the table's "
                             f"{samples} samples")
        return self
