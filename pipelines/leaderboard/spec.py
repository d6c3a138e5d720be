"""The leaderboard as a declarative spec: which entries, how each is trained, how all are evaluated.

A :class:`LeaderboardSpec` is plain data built at one of ``evrobust reproduce``'s scales
(:mod:`evrobust.pipelines.reproduce.scales`) through the same :class:`~evrobust.pipelines.reproduce.specs.
SpecBuilder`: an entry's run has exactly the training options the reproduction tables give the same defense
on the same data and model (except Table 2's FGSM override on event data, see below), so it lands in the
same ``<out>/runs/<key>-<hash>/`` directory and a run trained by ``evrobust reproduce`` is reused (and the
other way round). Every option left out (the SR weight of the
dataset, the training attack of each defense, TRADES's beta, DLIF's kappa, TGO's margin, DSD's base ``at``)
is resolved by ``evrobust train`` exactly as for a user's own command.

The evaluation is one protocol for every entry: ``evrobust attack --suite reliable`` (the paper's attacks,
then the reliable cascade on the samples that survive them), white box, the paper's surrogate ensemble,
eps 8/255 L-inf, the first ``limit`` test images, the convergence certificate on (at least one doubling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.reproduce.scales import SCALE_SETTINGS, SCALES
from evrobust.pipelines.reproduce.specs import RunSpec, SpecBuilder, _slug, is_event_data

__all__ = ["ENTRIES", "EntrySpec", "EvalSettings", "LeaderboardSpec", "build_leaderboard_spec",
           "parse_only"]


@dataclass(frozen=True)
class EntrySpec:
    """One built-in entry: a defense with evrobust's resolved defaults.

    Attributes:
        key: the entry's name on the command line (``--only``) and in the JSON.
        name: the table's display name.
        defense: the ``evrobust train --defense`` value.
        paper: where the method was published (RobustBench's ``paper``/``venue``); None for the baseline.
    """

    key: str
    name: str
    defense: str
    paper: str | None


ENTRIES: dict[str, EntrySpec] = {e.key: e for e in (
    EntrySpec("vanilla", "Vanilla", "vanilla", None),
    EntrySpec("at", "AT (PGD)", "at", "Madry et al., ICLR 2018"),
    EntrySpec("rat", "RAT", "rat", "Ding et al., NeurIPS 2022"),
    EntrySpec("sr", "SR", "sr", "Liu et al., ICML 2024 (sparse gradients)"),
    EntrySpec("sr_star", "SR*", "sr_star", "Liu et al., ICML 2024 (sparse gradients)"),
    EntrySpec("trades", "TRADES", "trades", "Zhang et al., ICML 2019; SNN setting: arXiv 2512.22522"),
    EntrySpec("dsd", "DSD (on AT)", "dsd", "Zhang, Hu, Min, ICLR 2026"),
    EntrySpec("dlif", "DLIF", "dlif", "Ding et al., ICML 2024 (stable SNNs)"),
    EntrySpec("tgo", "TGO", "tgo", "Wang et al., ICLR 2026"),
)}
"""The built-in entries, in the order they train (the baseline first: every training cost is against it)."""

MIN_DOUBLINGS = 1
"""The certificate is always on: a scale whose cascade budget has no doubling (``tiny``) gets one."""


@dataclass(frozen=True)
class EvalSettings:
    """The one evaluation every entry gets (``run_attack`` options)."""

    eps: float = 8 / 255
    eps_text: str = "8/255"
    ensemble: str = "paper"
    suite: str = "reliable"
    limit: int | None = None
    batch_size: int = 64
    budget: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "mode": "whitebox", "eps": self.eps, "eps_text": self.eps_text,
                "threat_model": "Linf", "ensemble": self.ensemble, "limit": self.limit,
                "batch_size": self.batch_size, "budget": dict(self.budget)}


@dataclass(frozen=True)
class LeaderboardSpec:
    """Everything one leaderboard does: the entries' runs and the evaluation they share."""

    name: str
    scale: str
    data: str
    paper_data: str
    event_data: bool
    entries: tuple[EntrySpec, ...]
    runs: dict[str, RunSpec]
    evaluation: EvalSettings
    model_label: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "scale": self.scale, "data": self.data, "event_data": self.event_data,
            "architecture": self.model_label,
            "entries": [e.key for e in self.entries],
            "runs": {k: {"dir": r.dirname, "train": r.train} for k, r in self.runs.items()},
            "evaluation": self.evaluation.to_json(),
        }


def parse_only(only: str | None) -> tuple[EntrySpec, ...]:
    """The entries named by ``--only`` (comma-separated keys, in the built-in order), or all of them.

    Raises:
        UserInputError: an unknown or empty name.
    """
    if only is None:
        return tuple(ENTRIES.values())
    names = [n.strip() for n in only.split(",")]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown or not any(names):
        raise UserInputError(f"unknown leaderboard entry {', '.join(unknown) or repr(only)}; choose from: "
                             f"{', '.join(ENTRIES)}")
    return tuple(e for e in ENTRIES.values() if e.key in names)


def build_leaderboard_spec(
    data: str | None = None,
    scale: str = "smoke",
    *,
    limit: int | None = None,
    only: str | None = None,
    data_dir: str | None = None,
) -> LeaderboardSpec:
    """The leaderboard of ``data`` at ``scale``.

    Args:
        data: a dataset name or store path (None: the scale's stand-in for CIFAR-10, ``digits`` below cpu
            scale); at ``cpu`` scale one real CIFAR-10 store (as ``evrobust reproduce --scale cpu``).
        limit: evaluate the first ``limit`` test images (None: the scale's ``attack_limit``).
        only: comma-separated entry keys (None: every entry of :data:`ENTRIES`).

    Raises:
        UserInputError: unknown scale or entry, ``limit < 1``, cpu scale without a CIFAR store.
    """
    if scale not in SCALE_SETTINGS:
        raise UserInputError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise UserInputError(f"--limit must be an integer >= 1 (got {limit!r}); leave it out for the scale's "
                             f"{SCALE_SETTINGS[scale].attack_limit or 'whole test set'}")
    entries = parse_only(only)
    s = SCALE_SETTINGS[scale]
    stores = None
    if scale == "cpu":
        from evrobust.pipelines.reproduce.experiments import resolve_image_stores

        stores = {"cifar10": resolve_image_stores(data, data_dir)["cifar10"]}
        data = None
    builder = SpecBuilder(s, data, stores)
    resolved = builder.data("cifar10")
    events = is_event_data(resolved)
    # Every run leaves its training attack to `evrobust train`'s defaults for the dataset (FGSM on the
    # CIFAR10-DVS stores, PGD elsewhere), so that AT, RAT, SR* and DSD-on-AT of one table train with the
    # same attack (TRADES and DLIF have their own). Table 2 of `reproduce` forces FGSM on the event stand-in
    # for AT and SR* only, so those two runs are not shared with it on digits-dvs.
    paper_data = "cifar10"
    runs = {e.key: builder.runs[builder.run(paper_data, "vgg11", e.defense)] for e in entries}
    budget = dict(s.cascade_budget)
    budget["max_doublings"] = max(MIN_DOUBLINGS, budget.get("max_doublings", 3))
    evaluation = EvalSettings(limit=limit if limit is not None else s.attack_limit,
                              batch_size=s.attack_batch, budget=budget)
    name = f"leaderboard-{_slug(resolved)}-{scale}"
    if limit is not None:
        name += f"-n{limit}"
    if only is not None:
        name += "-" + re.sub(r"[^A-Za-z0-9_]+", "_", "-".join(e.key for e in entries))
    return LeaderboardSpec(name=name, scale=scale, data=resolved, paper_data=paper_data, event_data=events,
                           entries=entries, runs=runs, evaluation=evaluation,
                           model_label=builder.arch_label("vgg11"))
