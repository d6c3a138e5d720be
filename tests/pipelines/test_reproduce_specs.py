"""Reproduction specs: every pipeline resolves at every scale, paper scale = the paper's settings, and the
published numbers match the paper's text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evrobust.errors import UserInputError
from evrobust.pipelines.common.paper import CLAIMS, PUBLISHED
from evrobust.pipelines.reproduce import SCALES, build_spec, list_pipelines
from evrobust.pipelines.reproduce.experiments import TRADEOFF_SETTINGS
from evrobust.pipelines.train.config import TrainConfig

EXPECTED = {"table1", "table2", "table3", "table4", "table6", "table7", "fig1", "fig3", "fig4", "fig5",
            "fig6", "tradeoff", "masking"}
STUDIES = {"masking"}
"""Our own studies: no claim of the paper to print beside them."""
NAMED_DATA_SCALES = [s for s in SCALES if s != "cpu"]  # cpu needs real stores: test_reproduce_cpu.py


def test_every_requested_pipeline_is_registered_with_a_claim() -> None:
    assert set(list_pipelines()) == EXPECTED
    assert set(CLAIMS) == EXPECTED - STUDIES
    assert SCALES == ("tiny", "smoke", "cpu", "paper")


@pytest.mark.parametrize("scale", NAMED_DATA_SCALES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_resolves_to_valid_train_configs_and_consistent_references(name: str, scale: str) -> None:
    spec = build_spec(name, scale)
    keys = {r.key for r in spec.runs}
    assert len(keys) == len(spec.runs), "duplicate run keys"
    for r in spec.runs:
        TrainConfig(**r.train).validate()  # every run is a valid `evrobust train` invocation
    for a in spec.attacks:
        assert a.run in keys and (a.source is None or a.source in keys)
        assert (a.mode == "blackbox") == (a.source is not None)
    attack_keys = {a.key for a in spec.attacks}
    analysis_keys = {a.key for a in spec.analyses}
    for table in spec.tables:
        for row in table.rows:
            assert set(row.cells) <= set(table.headers)
            assert set(row.cells) == set(table.headers), (name, row.labels)
            for cell in row.cells.values():
                # Checkpoint numbers only: a training metric appears in a row only as a cost (Table 7).
                assert cell.source != "metric" or cell.item == "seconds", (name, row.labels)
                ref_set = {"attack": attack_keys, "metric": keys, "analysis": analysis_keys}[cell.source]
                assert cell.ref in ref_set
                if cell.source == "attack":
                    atk = next(a for a in spec.attacks if a.key == cell.ref)
                    assert cell.item in atk.attacks
    assert spec.tables or spec.analyses, "a pipeline must emit a table or a figure"


def test_paper_scale_uses_the_papers_settings() -> None:
    t1 = build_spec("table1", "paper")
    combos = {(r.train["data"], r.train["model"], r.train["defense"]) for r in t1.runs
              if r.train["seed"] == 0}
    groups = (("cifar10", "vgg11"), ("cifar10", "wrn16"), ("cifar100", "wrn16"))
    # The paper's three defenses, plus the undefended baseline row (no published number beside it).
    assert combos == {(d, m, x) for d, m in groups for x in ("vanilla", "rat", "at", "sr_star")}
    assert [row.paper is None for row in t1.tables[0].rows] == [True, False, False, False] * 3
    assert all(r.train["epochs"] == 200 and r.train["width"] == 1.0 for r in t1.runs)
    assert all("limit_train" not in r.train for r in t1.runs) and t1.attack_limit is None
    wb = [a for a in t1.attacks if a.mode == "whitebox"]
    # The paper's APGD column is APGD-CE 100 (torchattacks 3.2.7's default, which the authors ran).
    assert all(a.attacks == ("clean", "pgd10", "pgd30", "pgd50", "apgd100") for a in wb)
    assert all(a.ensemble == "paper" for a in t1.attacks)
    # Every published column has a cell of ours beside it at paper scale (the APGD one included).
    for name in ("table1", "table3"):
        headers = set(build_spec(name, "paper").tables[0].headers)
        published = {h for cells in PUBLISHED[name].values() for h in cells}
        assert published <= headers, (name, published - headers)
    # SR* lambda: None = TrainConfig's per-dataset paper default (0.002 CIFAR-10, 0.001 CIFAR-100).
    assert all("lam" not in r.train for r in t1.runs)
    t2 = build_spec("table2", "paper")
    assert {r.train["data"] for r in t2.runs} == {"cifar10dvs"}
    assert all("T" not in r.train for r in t2.runs)  # frames bring their own T (10)
    assert {r.train.get("at_method") for r in t2.runs if r.train["defense"] in ("at", "sr_star")} == {"fgsm"}
    assert {a.eps for a in build_spec("table4", "paper").attacks} == {0.1}
    t6 = build_spec("table6", "paper")
    assert {a.ensemble for a in t6.attacks} == {"single", "paper", "widths"}
    fig3 = build_spec("fig3", "paper")
    assert sorted(r.train.get("lam", 0.008 if r.train["defense"] == "sr" else 0.0) for r in fig3.runs) == [
        0.0, 0.001, 0.002, 0.004, 0.006, 0.008]
    # fig1 (Section 4.1): a vanilla VGG-11 on CIFAR-10 and on CIFAR-100; fig4 covers both datasets.
    fig1 = build_spec("fig1", "paper")
    assert {(r.train["data"], r.train["model"], r.train["defense"]) for r in fig1.runs} == {
        ("cifar10", "vgg11", "vanilla"), ("cifar100", "vgg11", "vanilla")}
    assert {a.kind for a in fig1.analyses} == {"vulnerability", "theorem"}
    assert {r.train["data"] for r in build_spec("fig4", "paper").runs} == {"cifar10", "cifar100"}
    fig6 = build_spec("fig6", "paper")  # Appendix F: the CIFAR-100 sweep
    assert {r.train["data"] for r in fig6.runs} == {"cifar100"} and len(fig6.runs) == 6


@pytest.mark.parametrize(("sweep", "data"), [("fig3", "cifar10"), ("fig6", "cifar100")])
def test_the_paper_lambda_sr_run_is_trained_once(sweep: str, data: str) -> None:
    """The sweep's point at the paper's lambda (0.008 CIFAR-10, 0.002 CIFAR-100) is the tables' SR run."""
    table3 = [r for r in build_spec("table3", "paper").runs if r.train["data"] == data]
    tables = {r.dirname for r in table3}
    sweep_dirs = {r.dirname for r in build_spec(sweep, "paper").runs}
    sr = [r for r in table3 if r.train["defense"] == "sr"]
    assert len(sr) == 1 and sr[0].dirname in sweep_dirs
    assert len(tables & sweep_dirs) == 2  # the vanilla (lambda 0) and the SR run
    assert len(sweep_dirs) == 6  # six lambdas, six runs: none trained twice under two names


def test_smaller_scales_map_to_embedded_data_and_short_pgd() -> None:
    smoke = build_spec("table3", "smoke")
    assert {r.train["data"] for r in smoke.runs} == {"digits"}
    # CIFAR-10 and CIFAR-100 both map to digits: the duplicated group is dropped, not trained twice.
    assert len(smoke.runs) == 4
    assert smoke.attacks[0].attacks == ("clean", "fgsm", "rfgsm", "pgd10", "apgd10")
    assert {r.train["data"] for r in build_spec("table2", "smoke").runs} == {"digits-dvs"}
    custom = build_spec("table1", "smoke", data="/stores/cifar10-subset.zarr")
    assert {r.train["data"] for r in custom.runs} == {"/stores/cifar10-subset.zarr"}
    assert custom.tables[0].rows[0].labels[0] == "cifar10_subset (~CIFAR-10)"


def test_equal_training_options_share_one_run_directory_across_pipelines() -> None:
    t3 = {r.key: r.dirname for r in build_spec("table3", "smoke").runs}
    t4 = {r.key: r.dirname for r in build_spec("table4", "smoke").runs}
    shared = set(t3) & set(t4)
    assert shared == {"digits-wrn_small-vanilla", "digits-wrn_small-sr", "digits-wrn_small-sr_star"}
    assert all(t3[k] == t4[k] for k in shared)
    # ... and different options never share one.
    fig3 = build_spec("fig3", "smoke")
    assert len({r.dirname for r in fig3.runs}) == len(fig3.runs)
    # The sweep's lambda equal to the scale default is the plain SR run of the tables.
    assert {r.key: r.dirname for r in fig3.runs}["digits-wrn_small-sr"] == t4["digits-wrn_small-sr"]


def test_tradeoff_varies_one_architecture_setting_at_a_time_without_regulariser() -> None:
    spec = build_spec("tradeoff", "smoke")
    sweep = [r for r in spec.runs if "model_options" in r.train or "-T" in r.key]
    assert {r.train["model"] for r in spec.runs} == {"vgg_small"}
    assert all(r.train["defense"] == "vanilla" for r in sweep)
    varied = {k for r in sweep for k in r.train.get("model_options", {})}
    assert varied == set(TRADEOFF_SETTINGS) - {"T"}
    assert {r.train["T"] for r in sweep} >= set(TRADEOFF_SETTINGS["T"])


def test_unknown_pipeline_or_scale_is_one_clear_line() -> None:
    with pytest.raises(UserInputError, match=r"unknown reproduction 'table5'; choose one of: table1, "):
        build_spec("table5", "smoke")
    with pytest.raises(UserInputError, match="unknown scale 'huge'; choose one of: tiny, smoke, cpu, paper"):
        build_spec("table1", "huge")


def _paper_text(real_data: Path) -> str:
    paper = real_data.parent / "paper"  # the paper's text sits beside the real data
    files = sorted(paper.glob("001_*.txt"))
    assert files, f"paper text missing under {paper}"
    return files[0].read_text()


def _number_text(value: float) -> list[str]:
    return [f"{value:.2f}", f"{value:.3f}", f"{value:g}"]


@pytest.mark.parametrize("table", sorted(PUBLISHED))
def test_published_numbers_are_transcribed_from_the_paper(real_data: Path, table: str) -> None:
    """Each published row appears in the paper's text as one tab-separated line, in column order."""
    lines = _paper_text(real_data).splitlines()
    for labels, cells in PUBLISHED[table].items():
        values = list(cells.values())
        pattern = r"\s+".join(
            "(?:" + "|".join(re.escape(t) for t in _number_text(v)) + r")s?" for v in values
        )
        hits = [line for line in lines if re.search(pattern, line)]
        assert hits, f"{table} {labels}: {values} not found in the paper"


def test_paper_scale_without_cifar_store_names_the_preprocess_command(tmp_path: Path) -> None:
    from evrobust.pipelines.reproduce import run_reproduction

    with pytest.raises(UserInputError, match="evrobust preprocess"):
        run_reproduction("table3", scale="paper", out=tmp_path / "out", data_dir=str(tmp_path / "data"),
                         device="cpu")
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


@pytest.mark.parametrize("name", ["table1", "tradeoff"])
def test_event_data_never_gets_a_T_override(name: str) -> None:
    # An event store fixes T at preprocessing time: `--T` on one is refused by `evrobust train`, so a spec
    # pointed at event data must leave T to the store (and the trade-off study drops its T rows there).
    spec = build_spec(name, "smoke", data="digits-dvs")
    assert spec.runs and all("T" not in run.train for run in spec.runs)
    if name == "tradeoff":
        assert not any(run.key.endswith(("-T2", "-T4", "-T8")) for run in spec.runs)
        images = build_spec(name, "smoke", data="digits")
        assert {r.key.rsplit("-", 1)[-1] for r in images.runs} >= {"T2", "T4", "T8"}
