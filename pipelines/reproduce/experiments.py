"""The paper's tables and figures as specs: one builder function per pipeline name, and :func:`build_spec`.

Each function declares, through :class:`~evrobust.pipelines.reproduce.specs.SpecBuilder`, the runs a table or
figure needs, the attacks and analyses on them and the table layout in the paper's order; the builder maps
the paper's datasets, models and attack columns to the chosen scale (:mod:`.scales`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evrobust.attacks.registry import SUITES
from evrobust.errors import UserInputError
from evrobust.pipelines.common.paper import DEFENSE_NAMES, PAPER_NAMES, TABLE3_ABLATION
from evrobust.pipelines.reproduce.scales import SCALE_SETTINGS, SCALES
from evrobust.pipelines.reproduce.select import select_runs
from evrobust.pipelines.reproduce.specs import (
    ARCH_NAMES,
    ATTACK_LABELS,
    Cell,
    PipelineSpec,
    Row,
    RunSpec,
    SpecBuilder,
    TableSpec,
)


def _groups(b: SpecBuilder, groups: list[tuple[str, str]]) -> list[tuple[str, str]]:
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


def _attack_cells(b: SpecBuilder, wb: str | None, bb: str | None, names: tuple[str, ...],
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


def _headers(b: SpecBuilder, names: tuple[str, ...], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    out = ["Clean"] if "clean" in names else []
    for pre in prefixes:
        out += [pre + ATTACK_LABELS[n] for n in b.attack_names(names) if n != "clean"]
    return tuple(out)


def _table1(b: SpecBuilder) -> PipelineSpec:
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


def _table2(b: SpecBuilder) -> PipelineSpec:
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


def _table3(b: SpecBuilder) -> PipelineSpec:
    names = ("clean", "fgsm", "rfgsm", "pgd30", "pgd50", "apgd100")
    rows = []
    for d, m in _groups(b, [("cifar10", "wrn16"), ("cifar100", "wrn16")]):
        for defense, (sr, at) in TABLE3_ABLATION.items():
            run = b.run(d, m, defense)
            wb = b.attack(run, names)
            rows.append(Row((b.data_label(d), sr, at), _attack_cells(b, wb, None, names),
                            (PAPER_NAMES[d], sr, at)))
    table = TableSpec("table3", "Table 3: ablation of the sparsity regularisation (white box), accuracy (%)",
                      ("Dataset", "SR", "AT"), _headers(b, names, ("",)), tuple(rows))
    return b.build("table3", "Table 3: ablation", [table])


def _table4(b: SpecBuilder) -> PipelineSpec:
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


def _table6(b: SpecBuilder) -> PipelineSpec:
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


def _table7(b: SpecBuilder) -> PipelineSpec:
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


def _fig1(b: SpecBuilder) -> PipelineSpec:
    # Section 4.1: a well-trained (vanilla) VGG-11 on CIFAR-10 and on CIFAR-100, noise vs FGSM.
    for d, m in _groups(b, [("cifar10", "vgg11"), ("cifar100", "vgg11")]):
        run = b.run(d, m, "vanilla")
        b.analysis(run, "vulnerability")
        b.analysis(run, "theorem")
    return b.build("fig1", "Figure 1: random vs adversarial vulnerability (VGG-11); Theorem 1", [],
                   figures=("vulnerability", "theorem"))


SPARSITY_TARGET = "two_class"
"""The f_y whose input gradient the norm columns describe: the two-class softmax SR regularises."""


def _norm_cells(b: SpecBuilder, run: str) -> dict[str, Cell]:
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


def _lambda_runs(b: SpecBuilder, model: str = "wrn16", paper_data: str = "cifar10"
                 ) -> list[tuple[float, str, str]]:
    from evrobust.pipelines.train.config import PAPER_LAMBDA

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


def _lambda_sweep(b: SpecBuilder, name: str, paper_data: str, title: str, figure: str) -> PipelineSpec:
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


def _fig3(b: SpecBuilder) -> PipelineSpec:
    return _lambda_sweep(b, "fig3", "cifar10", "Figure 3", "lambda")


def _fig6(b: SpecBuilder) -> PipelineSpec:
    """Appendix F (Figure 6): the lambda sweep of SR-WRN-16 on CIFAR-100. The paper does not print its grid;
    the scale's Fig. 3 grid is used."""
    if not b.has("cifar100"):
        raise UserInputError("fig6 (Appendix F) needs a CIFAR-100 store: build it with `evrobust preprocess "
                             "cifar100 --raw DIR/cifar-100-python` and pass it with --data")
    return _lambda_sweep(b, "fig6", "cifar100", "Figure 6 (Appendix F)", "lambda")


def _fig4(b: SpecBuilder) -> PipelineSpec:
    for d, m in _groups(b, [("cifar10", "wrn16"), ("cifar100", "wrn16")]):  # CIFAR-10 and CIFAR-100 (§5.4)
        for defense in ("vanilla", "at", "sr_star"):
            b.analysis(b.run(d, m, defense), "distribution")
    return b.build("fig4", "Figure 4: distribution of gradient components", [], figures=("distribution",))


def _fig5(b: SpecBuilder) -> PipelineSpec:
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


def _tradeoff(b: SpecBuilder) -> PipelineSpec:
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


MASKING_H: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 1e-1)
"""SR's finite-difference steps h of the masking study; 1e-2 is the paper's (and Table 3's SR run)."""


SR_DEFAULT_H = 0.01
"""TrainConfig's (and the paper's) SR step h."""


MASKING_DEFENSES: tuple[str, ...] = ("vanilla", "at", "sr", "sr_star")
"""The defenses of the masking study's fixed rows, on each architecture."""


def _masking(b: SpecBuilder) -> PipelineSpec:
    """The masking study (docs/masking-study.md): SR WRN-16 on CIFAR-10 with h in :data:`MASKING_H` beside
    Table 3's vanilla, AT and SR* runs, and VGG-11's vanilla, AT, SR and SR* (the cpu-scale leaderboard's
    runs); each run attacked with Table 3's paper protocol and the reliable suite, and analysed with the loss
    landscape and the surrogate fidelity."""
    names = ("clean", "fgsm", "rfgsm", "pgd30", "pgd50", "apgd100")  # Table 3's columns
    reliable = b.attack_names(SUITES["reliable"])
    # Runs train in the order they are added: Table 3's four first (reused where it ran), the new h next,
    # VGG-11 last (the context rows; `--runs-from` a leaderboard's output copies them).
    for defense in MASKING_DEFENSES:
        b.run("cifar10", "wrn16", defense)
    wrn, vgg = ARCH_NAMES["wrn16"], ARCH_NAMES["vgg11"]
    runs: list[tuple[str, str, str, str]] = []
    for defense in ("vanilla", "at"):
        runs.append((wrn, DEFENSE_NAMES[defense], "–", b.run("cifar10", "wrn16", defense)))
    for h in MASKING_H:
        # h = 0.01 is TrainConfig's default: the very run (same options, same directory) of Table 3's SR row.
        run = b.run("cifar10", "wrn16", "sr", suffix="" if h == SR_DEFAULT_H else f"-h{h:g}")
        if h != SR_DEFAULT_H:
            b.runs[run] = RunSpec(run, {**b.runs[run].train, "h": h})
        runs.append((wrn, DEFENSE_NAMES["sr"], f"{h:g}", run))
    runs.append((wrn, DEFENSE_NAMES["sr_star"], f"{SR_DEFAULT_H:g}", b.run("cifar10", "wrn16", "sr_star")))
    for defense in MASKING_DEFENSES:
        h_text = f"{SR_DEFAULT_H:g}" if defense in ("sr", "sr_star") else "–"
        runs.append((vgg, DEFENSE_NAMES[defense], h_text, b.run("cifar10", "vgg11", defense)))
    paper_columns = [n for n in b.attack_names(names) if n != "clean"]
    headers = ("Clean", *(ATTACK_LABELS[n] for n in paper_columns), "Reliable", "rise r grad",
               "rise r random", "rise r adv", "FD cosine", "flat at h")
    rows = []
    for arch, label, h_text, run in runs:
        paper = b.attack(run, names)
        robust = b.attack(run, reliable, tag="reliable")
        land = b.analysis(run, "landscape")
        fid = b.analysis(run, "fidelity")
        cells = {"Clean": Cell("attack", paper, "clean")}
        cells |= {ATTACK_LABELS[n]: Cell("attack", paper, n) for n in paper_columns}
        cells |= {
            "Reliable": Cell("attack", robust, "reliable"),
            "rise r grad": Cell("analysis", land, "directions.gradient.rise.median_radius"),
            "rise r random": Cell("analysis", land, "directions.random-0.rise.median_radius"),
            "rise r adv": Cell("analysis", land, "directions.adversarial.rise.median_radius"),
            "FD cosine": Cell("analysis", fid, "headline.cosine"),
            "flat at h": Cell("analysis", fid, "headline.flat_changes_share"),
        }
        rows.append(Row((arch, label, h_text), cells))
    table = TableSpec(
        "masking",
        "Masking study: accuracy (%) under the paper protocol and the reliable suite; median radius (input "
        "units) at which the loss first rises by the landscape's rise, along the gradient sign, a random "
        "sign and the adversarial direction (– : half the samples never rise within 4 eps); cosine of the "
        "surrogate vs finite-difference directional derivatives and the share of samples flat at the step "
        "nearest h = 0.01 but moving at eps (the model's own gradient spec)",
        ("Model", "Defense", "h"), headers, tuple(rows), unit="mixed")
    return b.build("masking", "Masking study: SR's finite-difference step h vs gradient masking", [table],
                   figures=("landscape",),
                   notes=("The paper-vs-reliable difference of every run, with its interval, is listed below "
                          "the table; the landscape figure puts every run on the same axes.",))


PIPELINES: dict[str, Callable[[SpecBuilder], PipelineSpec]] = {
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
    "masking": _masking,
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
               data_dir: str | None = None, only: str | None = None) -> PipelineSpec:
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
    spec = PIPELINES[name](SpecBuilder(SCALE_SETTINGS[scale], data, stores))
    # --only: the runs whose key contains the text (results under <name>-<text>/), see select.py.
    return spec if only is None else select_runs(spec, only)
