"""Declarative specs of the paper's experiments: which runs to train, which attacks and analyses to run on
them, and which table or figure they fill.

A spec is plain data (frozen dataclasses); :mod:`evrobust.pipelines.reproduce.runner` executes it and
:mod:`evrobust.pipelines.report` renders it. Every spec is built for a *scale*:

=======  ==================================================================================================
paper    the paper's exact settings (VGG-11 / WRN-16-4, CIFAR-10/100, CIFAR10-DVS, 200 epochs, full test set,
         the published attack columns). Meant for a GPU or a cluster; here it only has to resolve.
cpu      real CIFAR-10 (and CIFAR-100 where a table has it) images from stores given with ``--data``, the
         paper's VGG-11 / WRN-16-4 at an eighth of their width, T = 4, :data:`CPU_EPOCHS` epochs, the first
         500 test images attacked, PGD30/50 replaced by PGD10. Hours on a 2-core CPU; see
         ``docs/results.md`` ("cpu scale") for every choice and why.
smoke    minutes on a 2-core CPU: the embedded ``digits`` (images) / ``digits-dvs`` (events), or the store
         given with ``--data``; small widths, few epochs, 200 attacked samples, PGD30/50 replaced by PGD10.
tiny     seconds: the smoke layout with a quarter-width model, one epoch on 128 samples, 8 attacked
         samples. Used by the tests so every spec resolves *and runs*.
=======  ==================================================================================================

Runs are identified by their training options, so a run needed by several tables (the vanilla WRN-16 of
Tables 3 and 4, say) is trained once per output directory and reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError

SCALES: tuple[str, ...] = ("tiny", "smoke", "cpu", "paper")
ANALYSIS_KINDS: tuple[str, ...] = ("sparsity", "vulnerability", "theorem", "distribution", "heatmap")


@dataclass(frozen=True)
class Scale:
    """What a scale substitutes for the paper's settings.

    Attributes:
        name: tiny | smoke | cpu | paper.
        data: paper dataset name -> dataset used at this scale (``--data`` overrides every entry).
        models: paper model name -> model used at this scale.
        width: channel multiplier of every model.
        T: time steps for static images (None = the paper's default, 8); event data brings its own.
        epochs: training epochs of every run (Table 7 runs use ``min(epochs, 2)``).
        limit_train, limit_val: samples used from the train / val split (None = all).
        attack_limit: attacked test samples (None = the whole test set).
        attack_batch: samples per attack batch.
        max_pgd_steps: PGD and APGD attacks with more steps are replaced by ``pgd<max_pgd_steps>`` /
            ``apgd<max_pgd_steps>`` (CPU budget); None = the paper's PGD10/30/50 and APGD-CE 100.
        lam: defense -> SR weight at this scale (None = the paper's per-dataset default of TrainConfig).
        lam_sweep: the lambda grid of the Fig. 3 sweep.
        extra: further TrainConfig fields for every run (e.g. ``batch_size``).
        analysis_options: analysis kind -> extra ``run_analysis`` options at this scale.
    """

    name: str
    data: dict[str, str]
    models: dict[str, str]
    width: float
    T: int | None
    epochs: int
    limit_train: int | None
    limit_val: int | None
    attack_limit: int | None
    attack_batch: int
    max_pgd_steps: int | None
    lam: dict[str, float | None]
    lam_sweep: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    analysis_options: dict[str, dict[str, Any]] = field(default_factory=dict)


_SMALL_MODELS = {"vgg11": "vgg_small", "wrn16": "wrn_small"}

CPU_WIDTH = 0.125
"""cpu scale: channel multiplier of VGG-11 / WRN-16-4 (VGG-11 8..64 channels and a 512-512 classifier,
WRN-16-4 2/8/16/32 channels): about 1/64 of the paper's convolution cost. Measured on an otherwise idle 2-core
CPU, a VGG-11 epoch over the 4,653 training images takes about 11 s vanilla and 66 s SR* (PGD5-AT + SR);
under a load of about 20 the same vanilla epoch took 14-33 minutes (docs/results.md)."""
CPU_EPOCHS = 20
"""cpu scale: epochs of every run (cosine schedule over them). The vanilla VGG-11 reaches 53 % validation
accuracy at epoch 20, still rising slowly: the subset's ceiling is not reached (docs/results.md shows the
curve); 20 epochs keep the SR* runs near 20 minutes each on an idle 2-core CPU."""
CPU_ATTACK_LIMIT = 500
"""cpu scale: attacked (and analysed) test images, the first 500 of the 1,017 in the subset: a binomial
standard error of at most 2.2 points per accuracy."""
_EMBEDDED = {"cifar10": "digits", "cifar100": "digits", "cifar10dvs": "digits-dvs"}

SCALE_SETTINGS: dict[str, Scale] = {
    "paper": Scale(
        name="paper",
        data={"cifar10": "cifar10", "cifar100": "cifar100", "cifar10dvs": "cifar10dvs"},
        models={"vgg11": "vgg11", "wrn16": "wrn16"},
        width=1.0,
        T=None,
        epochs=200,
        limit_train=None,
        limit_val=None,
        attack_limit=None,
        attack_batch=128,
        max_pgd_steps=None,
        lam={"sr": None, "sr_star": None},
        # Fig. 3: lambda from 0.000 to 0.008 (WRN-16, CIFAR-10).
        lam_sweep=(0.0, 0.001, 0.002, 0.004, 0.006, 0.008),
    ),
    "cpu": Scale(
        name="cpu",
        # Filled from the stores given with --data (see resolve_image_stores); never embedded data.
        data={},
        models={"vgg11": "vgg11", "wrn16": "wrn16"},
        width=CPU_WIDTH,
        T=4,
        epochs=CPU_EPOCHS,
        limit_train=None,
        limit_val=None,
        attack_limit=CPU_ATTACK_LIMIT,
        attack_batch=100,
        max_pgd_steps=10,
        # None: TrainConfig's per-dataset paper lambdas (the stores record cifar10 / cifar100).
        lam={"sr": None, "sr_star": None},
        # The paper's Fig. 3 grid without 0.001 and 0.006 (two fewer WRN runs on a CPU).
        lam_sweep=(0.0, 0.002, 0.004, 0.008),
        analysis_options={"theorem": {"mc_samples": 16}},
    ),
    "smoke": Scale(
        name="smoke",
        data=dict(_EMBEDDED),
        models=dict(_SMALL_MODELS),
        width=0.5,
        T=4,
        epochs=6,
        limit_train=None,
        limit_val=None,
        attack_limit=200,
        attack_batch=100,
        max_pgd_steps=10,
        # Picked by the measured sweep recorded in docs/_drafts/results.md: the published lambdas were tuned
        # for VGG-11 / WRN-16 on 32x32 CIFAR; on 8x8 digits they barely move the gradient norms.
        lam={"sr": 0.01, "sr_star": 0.01},
        lam_sweep=(0.0, 0.005, 0.01, 0.02, 0.05),
    ),
    "tiny": Scale(
        name="tiny",
        data=dict(_EMBEDDED),
        models=dict(_SMALL_MODELS),
        width=0.25,
        T=2,
        epochs=1,
        limit_train=128,
        limit_val=32,
        attack_limit=8,
        attack_batch=8,
        max_pgd_steps=10,
        lam={"sr": 0.01, "sr_star": 0.01},
        lam_sweep=(0.0, 0.05),
        extra={"batch_size": 16},
        analysis_options={
            "theorem": {"mc_samples": 8, "pgd_steps": 3, "eps_grid": "8/255"},
            "vulnerability": {"eps_grid": "0,8/255,32/255"},
            "heatmap": {"count": 2},
        },
    ),
}


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``train`` holds :class:`~evrobust.pipelines.train_config.TrainConfig` fields
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
    """One ``run_attack`` call: attack names, eps, member ensemble; black-box crafts on ``source``."""

    key: str
    run: str
    mode: str = "whitebox"
    source: str | None = None
    attacks: tuple[str, ...] = ("clean", "pgd10")
    eps: float = 8 / 255
    ensemble: str = "paper"


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
            "attacks": [a.__dict__ | {"attacks": list(a.attacks)} for a in self.attacks],
            "analyses": [a.__dict__ for a in self.analyses],
            "tables": [dataclasses.asdict(t) for t in self.tables],
            "figures": list(self.figures),
            "attack_limit": self.attack_limit,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------- builders

PAPER_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar10dvs": "CIFAR10-DVS"}
ARCH_NAMES = {"vgg11": "VGG-11", "wrn16": "WRN-16"}
DEFENSE_NAMES = {"vanilla": "Vanilla", "sr": "SR", "at": "AT", "sr_star": "SR*", "rat": "RAT"}
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


class _Builder:
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
        self.attacks[key] = AttackSpec(key, run, mode, source, self.attack_names(names), eps, ensemble)
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


def _groups(b: _Builder, groups: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop groups mapping to the same (data, model) at this scale (CIFAR-10 and -100 both -> digits) and
    groups whose dataset has no store (cpu scale without a CIFAR-100 store)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for d, m in groups:
        if not b.has(d):
            continue
        mapped = (b.data(d), b.model(m))
        if mapped not in seen:
            seen.add(mapped)
            out.append((d, m))
    return out


def _attack_cells(b: _Builder, wb: str | None, bb: str | None, names: tuple[str, ...],
                  prefix: tuple[str, str] = ("", "")) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for mode_key, pre in ((wb, prefix[0]), (bb, prefix[1])):
        if mode_key is None:
            continue
        for n in b.attack_names(names):
            if n == "clean":
                # One clean column, from the first (white-box) result: the model is the same.
                cells.setdefault("Clean", Cell("attack", mode_key, n))
                continue
            cells[pre + ATTACK_LABELS[n]] = Cell("attack", mode_key, n)
    return cells


def _headers(b: _Builder, names: tuple[str, ...], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    out = ["Clean"] if "clean" in names else []
    for pre in prefixes:
        out += [pre + ATTACK_LABELS[n] for n in b.attack_names(names) if n != "clean"]
    return tuple(out)


def _table1(b: _Builder) -> PipelineSpec:
    names = ("clean", "pgd10", "pgd30", "pgd50", "apgd100")
    rows = []
    for d, m in _groups(b, [("cifar10", "vgg11"), ("cifar10", "wrn16"), ("cifar100", "wrn16")]):
        # Runs execute in the order they are added: the undefended baseline (not a row of the paper's table,
        # but what the defenses are measured against; the same run as Fig. 1's), the black-box source, SR*
        # (the paper's claim), then AT and RAT.
        vanilla = b.run(d, m, "vanilla")
        src = b.source(d, m)
        by_defense = {}
        for defense in ("vanilla", "sr_star", "at", "rat"):
            run = vanilla if defense == "vanilla" else b.run(d, m, defense)
            wb = b.attack(run, names)
            bb = b.attack(run, names[1:], mode="blackbox", source=src)
            by_defense[defense] = _attack_cells(b, wb, bb, names, ("W ", "B "))
        for defense in ("vanilla", "rat", "at", "sr_star"):  # the paper's row order, baseline first
            paper = (PAPER_NAMES[d], ARCH_NAMES[m], DEFENSE_NAMES[defense])
            label = (b.data_label(d), b.arch_label(m), DEFENSE_NAMES[defense])
            rows.append(Row(label, by_defense[defense], None if defense == "vanilla" else paper))
    table = TableSpec("table1", "Table 1: accuracy (%) under white-box (W) / black-box (B) ensemble attacks",
                      ("Dataset", "Arch.", "Defense"), _headers(b, names, ("W ", "B ")), tuple(rows))
    return b.build("table1", "Table 1: comparison with RAT and AT", [table],
                   notes=("Black box: examples crafted with the paper's ensemble on an independently trained "
                          "(seed 1) vanilla model of the same architecture.",))


def _table2(b: _Builder) -> PipelineSpec:
    names = ("clean", "fgsm", "pgd50")
    src = b.source("cifar10dvs", "vgg11")
    rows = []
    for defense in ("vanilla", "at", "sr", "sr_star"):
        run = b.run("cifar10dvs", "vgg11", defense)
        wb = b.attack(run, names)
        bb = b.attack(run, names[1:], mode="blackbox", source=src)
        rows.append(Row((DEFENSE_NAMES[defense],), _attack_cells(b, wb, bb, names, ("W ", "B ")),
                        (DEFENSE_NAMES[defense],)))
    table = TableSpec("table2", "Table 2: CIFAR10-DVS (event frames), accuracy (%)", ("Defense",),
                      _headers(b, names, ("W ", "B ")), tuple(rows))
    return b.build("table2", "Table 2: event-camera data", [table])


def _table3(b: _Builder) -> PipelineSpec:
    names = ("clean", "fgsm", "rfgsm", "pgd30", "pgd50", "apgd100")
    rows = []
    for d, m in _groups(b, [("cifar10", "wrn16"), ("cifar100", "wrn16")]):
        ablation = (("vanilla", "×", "×"), ("at", "×", "✓"), ("sr", "✓", "×"), ("sr_star", "✓", "✓"))
        for defense, sr, at in ablation:
            run = b.run(d, m, defense)
            wb = b.attack(run, names)
            rows.append(Row((b.data_label(d), sr, at), _attack_cells(b, wb, None, names),
                            (PAPER_NAMES[d], sr, at)))
    table = TableSpec("table3", "Table 3: ablation of the sparsity regularisation (white box), accuracy (%)",
                      ("Dataset", "SR", "AT"), _headers(b, names, ("",)), tuple(rows))
    return b.build("table3", "Table 3: ablation", [table])


def _table4(b: _Builder) -> PipelineSpec:
    rows = []
    for d, m in _groups(b, [("cifar10", "wrn16"), ("cifar100", "wrn16")]):
        cells = {}
        for defense in ("vanilla", "sr", "sr_star"):
            run = b.run(d, m, defense)
            key = b.attack(run, ("clean", "noise", "pgd10"), eps=0.1, tag="eps0.1")
            cells[DEFENSE_NAMES[defense]] = Cell("attack", key, "noise")
            cells[f"{DEFENSE_NAMES[defense]} PGD10"] = Cell("attack", key, "pgd10")
        rows.append(Row((b.data_label(d),), cells, (PAPER_NAMES[d],)))
    headers = ("Vanilla", "SR", "SR*", "Vanilla PGD10", "SR PGD10", "SR* PGD10")
    table = TableSpec("table4", "Table 4: accuracy (%) under uniform random noise, eps = 0.1 "
                      "(PGD10 at the same eps beside it, ours only)", ("Dataset",), headers, tuple(rows))
    return b.build("table4", "Table 4: random noise", [table])


def _table6(b: _Builder) -> PipelineSpec:
    rows_cells: dict[str, dict[str, Cell]] = {"single": {}, "paper": {}, "widths": {}}
    for defense in ("rat", "at", "sr_star"):
        run = b.run("cifar10", "vgg11", defense)
        for ens in rows_cells:
            key = b.attack(run, ("pgd10",), ensemble=ens)
            rows_cells[ens][DEFENSE_NAMES[defense]] = Cell("attack", key, "pgd10")
    labels = {"single": "PGD10 (w/o ensemble)", "paper": "PGD10 (w/ ensemble)",
              "widths": "PGD10 (γ ∈ [0.1, 3.0])"}
    rows = tuple(Row((labels[e],), cells, (labels[e],)) for e, cells in rows_cells.items())
    table = TableSpec("table6", "Table 6: accuracy (%) under PGD10 with different surrogate ensembles",
                      ("Attacks",), ("RAT", "AT", "SR*"), rows)
    return b.build("table6", "Table 6: surrogate-width ensemble", [table])


def _table7(b: _Builder) -> PipelineSpec:
    cells = {}
    epochs = min(b.scale.epochs, 2)
    for defense, header in (("vanilla", "Vanilla"), ("at", "PGD5-AT"), ("rat", "RAT"), ("sr", "SR"),
                            ("sr_star", "SR*")):
        run = b.run("cifar10", "vgg11", defense, epochs=epochs, suffix="-cost")
        cells[header] = Cell("metric", run, "seconds")
    table = TableSpec("table7", "Table 7: seconds per training epoch", (), tuple(cells),
                      (Row((), cells, ()),), unit="s")
    return b.build("table7", "Table 7: training cost per epoch", [table],
                   notes=("Absolute seconds depend on the machine; compare the ratios to Vanilla.",))


def _fig1(b: _Builder) -> PipelineSpec:
    # Section 4.1: a well-trained (vanilla) VGG-11 on CIFAR-10 and on CIFAR-100, noise vs FGSM.
    for d, m in _groups(b, [("cifar10", "vgg11"), ("cifar100", "vgg11")]):
        run = b.run(d, m, "vanilla")
        b.analysis(run, "vulnerability")
        b.analysis(run, "theorem")
    return b.build("fig1", "Figure 1: random vs adversarial vulnerability (VGG-11); Theorem 1", [],
                   figures=("vulnerability", "theorem"))


SPARSITY_TARGET = "two_class"
"""The f_y whose input gradient the norm columns describe: the two-class softmax SR regularises."""


def _norm_cells(b: _Builder, run: str) -> dict[str, Cell]:
    """Gradient-norm cells of a row, from a sparsity analysis of the same checkpoint (the best one) over
    the same test samples as the row's attacks (the first ``attack_limit``): never from training metrics,
    which describe the last epoch's validation batch."""
    an = b.analysis(run, "sparsity", targets=[SPARSITY_TARGET])
    path = f"targets.{SPARSITY_TARGET}.mean"
    return {
        "grad l1": Cell("analysis", an, f"{path}.l1"),
        "grad l2": Cell("analysis", an, f"{path}.l2"),
        "density": Cell("analysis", an, f"{path}.density"),
    }


def _lambda_runs(b: _Builder, model: str = "wrn16", paper_data: str = "cifar10"
                 ) -> list[tuple[float, str, str]]:
    from evrobust.pipelines.train_config import PAPER_LAMBDA

    out = []
    # The lambda the tables' plain SR run uses: the scale's, else the paper's for this dataset (cpu and
    # paper scale train on the real datasets, whose stores record the name TrainConfig looks up).
    default_lam = b.scale.lam.get("sr")
    if default_lam is None:
        default_lam = PAPER_LAMBDA.get(("sr", paper_data))
    for lam in b.scale.lam_sweep:
        defense = "sr" if lam > 0 else "vanilla"
        # The default lambda is the plain SR run of the other tables: same options, same directory, trained
        # once (the run leaves lam to its default exactly as those tables do).
        default = lam == default_lam
        run = b.run(paper_data, model, defense, lam=lam if lam > 0 and not default else None,
                    suffix=f"-lam{lam:g}" if lam > 0 and not default else "")
        out.append((lam, run, b.attack(run, ("clean", "pgd10"))))
    return out


def _lambda_sweep(b: _Builder, name: str, paper_data: str, title: str, figure: str) -> PipelineSpec:
    rows = []
    for lam, run, atk in _lambda_runs(b, "wrn16", paper_data):
        cells = {"Clean": Cell("attack", atk, "clean"), "PGD10": Cell("attack", atk, "pgd10")}
        norms = _norm_cells(b, run)
        cells |= {"grad l1": norms["grad l1"], "grad l2": norms["grad l2"]}
        rows.append(Row((f"{lam:g}",), cells))
    table = TableSpec(name, f"{title}: clean / PGD10 accuracy (%) and input-gradient norms against lambda "
                      "(norms of the evaluated checkpoint over the attacked test samples)",
                      ("lambda",), ("Clean", "PGD10", "grad l1", "grad l2"), tuple(rows))
    return b.build(name, f"{title}: lambda sweep ({PAPER_NAMES[paper_data]})", [table], figures=(figure,))


def _fig3(b: _Builder) -> PipelineSpec:
    return _lambda_sweep(b, "fig3", "cifar10", "Figure 3", "lambda")


def _fig6(b: _Builder) -> PipelineSpec:
    """Appendix F (Figure 6): the lambda sweep of SR-WRN-16 on CIFAR-100. The paper does not print its grid;
    the scale's Fig. 3 grid is used."""
    if not b.has("cifar100"):
        raise UserInputError("fig6 (Appendix F) needs a CIFAR-100 store: build it with `evrobust preprocess "
                             "cifar100 --raw DIR/cifar-100-python` and pass it with --data")
    return _lambda_sweep(b, "fig6", "cifar100", "Figure 6 (Appendix F)", "lambda")


def _fig4(b: _Builder) -> PipelineSpec:
    for d, m in _groups(b, [("cifar10", "wrn16"), ("cifar100", "wrn16")]):  # CIFAR-10 and CIFAR-100 (§5.4)
        for defense in ("vanilla", "at", "sr_star"):
            b.analysis(b.run(d, m, defense), "distribution")
    return b.build("fig4", "Figure 4: distribution of gradient components", [], figures=("distribution",))


def _fig5(b: _Builder) -> PipelineSpec:
    for defense in ("vanilla", "sr"):
        b.analysis(b.run("cifar10", "wrn16", defense), "heatmap")
    return b.build("fig5", "Figure 5: gradient heatmaps", [], figures=("heatmap",))


TRADEOFF_SETTINGS: dict[str, tuple[Any, ...]] = {
    "T": (2, 4, 8),
    "tau": (0.5, 0.9, 1.0),
    "theta": (0.5, 1.0, 2.0),
    "spec": ("triangle:0.5", "triangle:1", "triangle:2"),
    "pool": ("avg", "max"),
    "readout": ("mean", "last"),
}
"""The no-regulariser architecture sweep of the follow-up paper: one setting varied at a time."""


def _tradeoff(b: _Builder) -> PipelineSpec:
    settings = TRADEOFF_SETTINGS
    if b.scale.name == "tiny":  # one value per setting is enough to exercise the pipeline
        settings = {k: v[:1] for k, v in settings.items()}
    if b.is_event_data("cifar10"):
        # An event store's T is fixed when it is built (`evrobust preprocess ... --frames`): sweep T there by
        # building one store per frame count; here the T rows are left out.
        settings = {k: v for k, v in settings.items() if k != "T"}
    rows = []
    for setting, values in settings.items():
        for value in values:
            if setting == "T":
                options: dict[str, Any] = {}
                suffix = f"-T{value}"
            else:
                options = {setting: value}
                suffix = f"-{setting}{value}".replace(":", "")
            run = b.run("cifar10", "vgg11", "vanilla", options=options, suffix=suffix)
            if setting == "T":
                b.runs[run] = RunSpec(run, {**b.runs[run].train, "T": value})
            atk = b.attack(run, ("clean", "pgd10"))
            rows.append(Row((setting, str(value)), {
                "Clean": Cell("attack", atk, "clean"),
                "PGD10": Cell("attack", atk, "pgd10"),
                **_norm_cells(b, run),
            }))
    for lam, run, atk in _lambda_runs(b, "vgg11"):  # the same architecture as the settings above
        rows.append(Row(("SR lambda", f"{lam:g}"), {
            "Clean": Cell("attack", atk, "clean"),
            "PGD10": Cell("attack", atk, "pgd10"),
            **_norm_cells(b, run),
        }))
    table = TableSpec("tradeoff", "Dense–sparse trade-off: clean / PGD10 accuracy (%) and input-gradient "
                      "l1 / l2 norms and density (share of non-zero elements), all of the evaluated "
                      "checkpoint over the attacked test samples; one setting varied at a time, no "
                      "regulariser (last rows: SR lambda sweep)",
                      ("setting", "value"), ("Clean", "PGD10", "grad l1", "grad l2", "density"),
                      tuple(rows))
    return b.build("tradeoff", "Dense–sparse trade-off (follow-up paper)", [table], figures=("tradeoff",))


PIPELINES: dict[str, Callable[[_Builder], PipelineSpec]] = {
    "table1": _table1,
    "table2": _table2,
    "table3": _table3,
    "table4": _table4,
    "table6": _table6,
    "table7": _table7,
    "fig1": _fig1,
    "fig3": _fig3,
    "fig4": _fig4,
    "fig5": _fig5,
    "fig6": _fig6,
    "tradeoff": _tradeoff,
}


def list_pipelines() -> list[str]:
    """Names accepted by ``evrobust reproduce``."""
    return list(PIPELINES)


CPU_DATA_HINT = (
    "--scale cpu needs real CIFAR images: write the python-pickle layout (cifar-10-batches-py/, e.g. "
    "`python scripts/cifar_pickle_layout.py --out data/raw` from the shared subset), build the store with "
    "`evrobust preprocess cifar10 --raw data/raw/cifar-10-batches-py --out data/cifar10-subset.zarr` "
    "(and cifar100 likewise from cifar-100-python/), then pass --data data/cifar10-subset.zarr"
    "[,data/cifar100-subset.zarr]"
)


def resolve_image_stores(data: str | None, data_dir: str | None = None) -> dict[str, str]:
    """Paper dataset -> store path for the real-image scales: the comma-separated stores of ``data``, each
    assigned by the dataset its attributes record (cifar10 / cifar100), else the default named stores
    ``<data dir>/cifar10.zarr`` and ``<data dir>/cifar100.zarr`` that exist.

    Raises:
        UserInputError: no complete CIFAR-10 image store among them, a store that is not one, or two stores
            of the same dataset (one line naming how to build the store).
    """
    from evrobust.datasets.specs import default_store_path
    from evrobust.preprocess.store import read_attrs

    if data:
        paths = [p.strip() for p in data.split(",") if p.strip()]
    else:
        paths = [str(default_store_path(n, data_dir)) for n in ("cifar10", "cifar100")]
        paths = [p for p in paths if (Path(p) / "zarr.json").is_file()]
    stores: dict[str, str] = {}
    for path in paths:
        if not (Path(path) / "zarr.json").is_file():
            raise UserInputError(f"--data {path} is not a store. {CPU_DATA_HINT}")
        attrs = read_attrs(Path(path))
        dataset = attrs.get("dataset")
        if dataset not in ("cifar10", "cifar100") or attrs.get("kind") != "images":
            raise UserInputError(f"--data {path} holds {dataset!r}, not CIFAR images. {CPU_DATA_HINT}")
        if not attrs.get("complete"):
            raise UserInputError(f"--data {path} is incomplete; rerun its `evrobust preprocess` command")
        if dataset in stores:
            raise UserInputError(f"--data names two {dataset} stores ({stores[dataset]}, {path}); give one")
        stores[dataset] = path
    if "cifar10" not in stores:
        raise UserInputError(CPU_DATA_HINT)
    return stores


NO_CPU_SCALE = {"table2": "CIFAR10-DVS has no real recording available offline; use --scale smoke "
                          "(digits-dvs) or --scale paper with a store built by "
                          "`evrobust preprocess cifar10dvs`"}


def build_spec(name: str, scale: str = "smoke", data: str | None = None,
               data_dir: str | None = None) -> PipelineSpec:
    """The spec of pipeline ``name`` at ``scale``; ``data`` replaces every dataset (a store path or name).

    At ``cpu`` scale ``data`` is one store per dataset, comma-separated (see :func:`resolve_image_stores`);
    at ``paper`` scale a comma-separated list is read the same way (a single value still replaces every
    dataset).

    Raises:
        UserInputError: unknown pipeline or scale; cpu scale without a real CIFAR-10 store.
    """
    if name not in PIPELINES:
        raise UserInputError(f"unknown reproduction {name!r}; choose one of: {', '.join(PIPELINES)}")
    if scale not in SCALE_SETTINGS:
        raise UserInputError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    stores = None
    if scale == "cpu":
        if name in NO_CPU_SCALE:
            raise UserInputError(f"{name} has no cpu scale: {NO_CPU_SCALE[name]}")
        stores = resolve_image_stores(data, data_dir)
        data = None
    elif scale == "paper" and data and "," in data:
        stores = resolve_image_stores(data, data_dir)
        data = None
    return PIPELINES[name](_Builder(SCALE_SETTINGS[scale], data, stores))
