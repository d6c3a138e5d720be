"""Declarative specs of the paper's experiments: which runs to train, which attacks and analyses to run on
them, and which table or figure they fill.

A spec is plain data (frozen dataclasses, here); :mod:`.experiments` builds one per table or figure at a
*scale* (:mod:`.scales`) through :class:`SpecBuilder`, :mod:`evrobust.pipelines.reproduce.runner` executes it
and :mod:`evrobust.pipelines.report.pipeline` renders it.

Runs are identified by their training options, so a run needed by several tables (the vanilla WRN-16 of
Tables 3 and 4, say) is trained once per output directory and reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.pipelines.common.paper import PAPER_NAMES
from evrobust.pipelines.reproduce.scales import Scale

ANALYSIS_KINDS: tuple[str, ...] = (
    "sparsity", "vulnerability", "theorem", "distribution", "heatmap", "landscape", "fidelity"
)


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``train`` holds :class:`~evrobust.pipelines.train.config.TrainConfig` fields
    (everything except the runtime ones: out, data_dir, device, resume, progress)."""

    key: str
    train: dict[str, Any]

    def digest(self) -> str:
        """Short hash of the training options: equal options -> the same run directory."""
        text = json.dumps(self.train, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def dirname(self) -> str:
        return f"{self.key}-{self.digest()}"


@dataclass(frozen=True)
class AttackSpec:
    """One ``run_attack`` call: attack names, eps, member ensemble; black-box crafts on ``source``.

    ``budget``: ``run_attack``'s ``steps`` / ``queries`` / ``max_doublings`` for a cascade (the reliable
    suite), empty for the defaults; only a non-empty budget enters the step's cache key.
    """

    key: str
    run: str
    mode: str = "whitebox"
    source: str | None = None
    attacks: tuple[str, ...] = ("clean", "pgd10")
    eps: float = 8 / 255
    ensemble: str = "paper"
    budget: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisSpec:
    """One ``run_analysis(run, kind, **options)`` call."""

    key: str
    run: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    """Where a table cell's value comes from.

    ``source`` is ``attack`` (``ref`` = attack key, ``item`` = attack name: its accuracy in %),
    ``metric`` (``ref`` = run key, ``item`` = a field of the run's metrics: ``val_acc``, ``seconds`` (mean
    per epoch), ``val_grad_l1``...), or ``analysis`` (``ref`` = analysis key, ``item`` = a dotted path in its
    JSON).
    """

    source: str
    ref: str
    item: str


@dataclass(frozen=True)
class Row:
    """A table row: its labels, its cells by column header, and the paper row it is compared with."""

    labels: tuple[str, ...]
    cells: dict[str, Cell]
    paper: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table in the paper's layout: label columns, value columns (headers), rows."""

    name: str
    title: str
    label_headers: tuple[str, ...]
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    unit: str = "%"


@dataclass(frozen=True)
class PipelineSpec:
    """Everything one reproduction pipeline does, at one scale."""

    name: str
    title: str
    scale: str
    runs: tuple[RunSpec, ...]
    attacks: tuple[AttackSpec, ...] = ()
    analyses: tuple[AnalysisSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    figures: tuple[str, ...] = ()
    attack_limit: int | None = None
    attack_batch: int = 64
    notes: tuple[str, ...] = ()

    def run(self, key: str) -> RunSpec:
        for r in self.runs:
            if r.key == key:
                return r
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable description (stored beside the results)."""
        return {
            "name": self.name,
            "title": self.title,
            "scale": self.scale,
            "runs": {r.key: {"dir": r.dirname, "train": r.train} for r in self.runs},
            # an empty budget is left out: the spec documents of existing results stay what they were
            "attacks": [{k: v for k, v in a.__dict__.items() if k != "budget" or v}
                        | {"attacks": list(a.attacks)} for a in self.attacks],
            "analyses": [a.__dict__ for a in self.analyses],
            "tables": [dataclasses.asdict(t) for t in self.tables],
            "figures": list(self.figures),
            "attack_limit": self.attack_limit,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------- builders

ARCH_NAMES = {"vgg11": "VGG-11", "wrn16": "WRN-16"}
ATTACK_LABELS = {
    "clean": "Clean",
    "fgsm": "FGSM",
    "rfgsm": "RFGSM",
    "noise": "Noise",
    "apgd10": "APGD10",
    "apgd100": "APGD100",
    "pgd10": "PGD10",
    "pgd30": "PGD30",
    "pgd50": "PGD50",
}


EVENT_DATA_NAMES = ("digits-dvs", "cifar10dvs")


def is_event_data(data: str) -> bool:
    """An embedded/default event dataset name, or a store path whose attributes say ``kind = events``."""
    if data in EVENT_DATA_NAMES:
        return True
    path = Path(data)
    if not (path / "zarr.json").is_file():
        return False
    from evrobust.preprocess.store import read_attrs

    return read_attrs(path).get("kind") == "events"


class SpecBuilder:
    """Collects runs / attacks / analyses for one spec; maps paper settings to the scale."""

    def __init__(self, scale: Scale, data: str | None, stores: dict[str, str] | None = None) -> None:
        self.scale = scale
        self.data_override = data
        # paper dataset -> store path, when the data came as one store per dataset (cpu scale, or a
        # comma-separated --data list); datasets without a store are left out of the tables.
        self.stores = stores
        self.runs: dict[str, RunSpec] = {}
        self.attacks: dict[str, AttackSpec] = {}
        self.analyses: dict[str, AnalysisSpec] = {}

    def has(self, paper_data: str) -> bool:
        """Whether this spec has data standing in for ``paper_data``."""
        return self.stores is None or paper_data in self.stores

    def data(self, paper_data: str) -> str:
        if self.stores is not None:
            return self.stores[paper_data]
        return self.data_override or self.scale.data[paper_data]

    def is_event_data(self, paper_data: str) -> bool:
        """Whether the data standing in for ``paper_data`` is event frames (their T is fixed by the store)."""
        return paper_data == "cifar10dvs" or is_event_data(self.data(paper_data))

    def model(self, paper_model: str) -> str:
        return self.scale.models[paper_model]

    def data_label(self, paper_data: str) -> str:
        """Row label: the paper's dataset name, and what stands in for it below paper scale."""
        name = PAPER_NAMES[paper_data]
        if self.scale.name == "paper" and not self.data_override:
            return name
        if self.scale.name == "cpu":
            return f"{name} subset"
        return f"{_slug(self.data(paper_data))} (~{name})"

    def arch_label(self, paper_model: str) -> str:
        name = ARCH_NAMES[paper_model]
        if self.scale.name == "paper":
            return name
        if self.scale.name == "cpu":
            return f"{name} x{self.scale.width:g}"
        return f"{self.model(paper_model)} (~{name})"

    def attack_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The paper's attack names at this scale (long PGD/APGD shortened), order kept, no duplicates."""
        out: list[str] = []
        for name in names:
            steps = self.scale.max_pgd_steps
            capped = re.fullmatch(r"(a?pgd)(\d+)", name)
            if steps is not None and capped and int(capped[2]) > steps:
                name = f"{capped[1]}{steps}"
            if name not in out:
                out.append(name)
        return tuple(out)

    def run(
        self,
        paper_data: str,
        paper_model: str,
        defense: str,
        *,
        seed: int = 0,
        lam: float | None = None,
        options: dict[str, Any] | None = None,
        suffix: str = "",
        epochs: int | None = None,
    ) -> str:
        """Add (or find) a run; returns its key."""
        data, model = self.data(paper_data), self.model(paper_model)
        s = self.scale
        train: dict[str, Any] = {
            "data": data,
            "model": model,
            "width": s.width,
            "defense": defense,
            "epochs": epochs or s.epochs,
            "seed": seed,
        }
        if s.T is not None and not self.is_event_data(paper_data):
            train["T"] = s.T
        if defense in ("sr", "sr_star"):
            train["lam"] = lam if lam is not None else s.lam.get(defense)
        elif lam is not None:
            train["lam"] = lam
        if train.get("lam") is None:
            train.pop("lam", None)
        if paper_data == "cifar10dvs" and defense in ("at", "sr_star"):
            train["at_method"] = "fgsm"  # Table 5: FGSM adversarial training on CIFAR10-DVS
        if options:
            train["model_options"] = dict(options)
        for name, value in (("limit_train", s.limit_train), ("limit_val", s.limit_val)):
            if value is not None:
                train[name] = value
        train.update(s.extra)
        key = f"{_slug(data)}-{model}-{defense}" + (f"-s{seed}" if seed else "") + suffix
        spec = RunSpec(key, train)
        old = self.runs.get(key)
        if old is not None and old.train != train:
            raise AssertionError(f"two different runs named {key}")  # a spec-authoring bug, not user input
        self.runs[key] = spec
        return key

    def source(self, paper_data: str, paper_model: str) -> str:
        """The black-box source: an independently trained (seed 1) vanilla model of the same architecture."""
        return self.run(paper_data, paper_model, "vanilla", seed=1)

    def attack(
        self,
        run: str,
        names: tuple[str, ...],
        *,
        mode: str = "whitebox",
        source: str | None = None,
        eps: float = 8 / 255,
        ensemble: str = "paper",
        tag: str = "",
    ) -> str:
        key = f"{run}:{mode}" + (f":{ensemble}" if ensemble != "paper" else "") + (f":{tag}" if tag else "")
        names = self.attack_names(names)
        # A cascade (the reliable suite) takes the scale's budget; other attacks have fixed settings.
        budget = dict(self.scale.cascade_budget) if "reliable" in names else {}
        self.attacks[key] = AttackSpec(key, run, mode, source, names, eps, ensemble, budget)
        return key

    def analysis(self, run: str, kind: str, **options: Any) -> str:
        key = f"{run}:{kind}"
        options = {**self.scale.analysis_options.get(kind, {}), **options}
        self.analyses[key] = AnalysisSpec(key, run, kind, options)
        return key

    def build(self, name: str, title: str, tables: list[TableSpec], figures: tuple[str, ...] = (),
              notes: tuple[str, ...] = ()) -> PipelineSpec:
        s = self.scale
        scale_notes = () if s.name == "paper" else (
            f"{s.name} scale: {', '.join(sorted({r.train['model'] for r in self.runs.values()}))} "
            f"(width {s.width}) for {', '.join(sorted({r.train['data'] for r in self.runs.values()}))}, "
            f"{s.epochs} epochs, first {s.attack_limit} test samples attacked"
            + (f"; PGD with more than {s.max_pgd_steps} steps replaced by PGD{s.max_pgd_steps}, APGD-CE 100 "
               f"by APGD-CE {s.max_pgd_steps} (no published number beside it)" if s.max_pgd_steps else ""),
        )
        return PipelineSpec(
            name=name,
            title=title,
            scale=s.name,
            runs=tuple(self.runs.values()),
            attacks=tuple(self.attacks.values()),
            analyses=tuple(self.analyses.values()),
            tables=tuple(tables),
            figures=figures,
            attack_limit=s.attack_limit,
            attack_batch=s.attack_batch,
            notes=scale_notes + notes,
        )


def _slug(data: str) -> str:
    """A directory-safe short name for a dataset name or store path."""
    tail = data.rstrip("/").split("/")[-1]
    return "".join(c if c.isalnum() else "_" for c in tail.removesuffix(".zarr"))[:32] or "data"

