"""The cpu scale of `evrobust reproduce`: real CIFAR-10/100 images from the shared subset, built into stores
through the official pickle layout; the spec it resolves to; a run at a tiny size with --stop-after/--resume;
gradient norms of the evaluated checkpoint; the exit-2 line without real images."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evrobust.datasets import open_split
from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.preprocess import preprocess_cifar
from evrobust.pipelines.report.pipeline import cell_value
from evrobust.pipelines.reproduce import (
    MixedProvenanceError,
    build_spec,
    check_row_provenance,
    list_pipelines,
    load_results,
    run_reproduction,
)
from evrobust.pipelines.reproduce import scales as scales_module
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.run_dir import load_run, read_metrics

REPO = Path(__file__).resolve().parents[2]


def _layout_script() -> ModuleType:
    script = REPO / "scripts" / "cifar_pickle_layout.py"
    spec = importlib.util.spec_from_file_location("cifar_pickle_layout", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stores(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CIFAR-10 and CIFAR-100 stores built by `evrobust preprocess` from the layout the script writes."""
    root = tmp_path_factory.mktemp("cifar")
    layout = _layout_script()
    c10 = layout.write_cifar10(real_data, root / "raw")
    c100 = layout.write_cifar100(real_data, root / "raw")
    preprocess_cifar("cifar10", c10, out=root / "c10.zarr")
    preprocess_cifar("cifar100", c100, out=root / "c100.zarr")
    return {"cifar10": str(root / "c10.zarr"), "cifar100": str(root / "c100.zarr")}


def _both(stores: dict[str, str]) -> str:
    return f"{stores['cifar10']},{stores['cifar100']}"


def test_pickle_layout_store_holds_the_shared_images_in_order(
    real_data: Path, stores: dict[str, str]
) -> None:
    train = np.load(real_data / "cifar10" / "cifar10_train_subset_5170.npz")
    test = np.load(real_data / "cifar10" / "cifar10_test_first1017.npz")
    order = np.lexsort((train["index_in_batch"], train["batch"]))  # batch 1..5, then position in the batch
    tr = open_split(stores["cifar10"], "train+val")
    te = open_split(stores["cifar10"], "test")
    assert len(tr) == 5170 and len(te) == 1017
    # Spot rows: store row i of train+val is the i-th image in batch order (values in [0, 1] = uint8 / 255).
    for i in (0, 1101, 1102, 5169):
        x, y = tr[i]
        expected = train["data"][order[i]].reshape(3, 32, 32) / 255.0
        assert int(y) == int(train["labels"][order[i]])
        assert torch.allclose(torch.as_tensor(x).double(), torch.as_tensor(expected), atol=1e-6)
    x, y = te[1016]
    assert int(y) == int(test["labels"][1016])
    assert torch.allclose(torch.as_tensor(x).double(),
                          torch.as_tensor(test["data"][1016].reshape(3, 32, 32) / 255.0), atol=1e-6)
    c100 = np.load(real_data / "cifar100" / "cifar100_test_first916.npz")
    te100 = open_split(stores["cifar100"], "test")
    assert len(open_split(stores["cifar100"], "train+val")) == 486 and len(te100) == 916
    assert [int(te100[i][1]) for i in range(5)] == c100["fine_labels"][:5].tolist() == [49, 33, 72, 51, 71]


def test_cpu_scale_trains_the_papers_architectures_on_the_real_stores(stores: dict[str, str]) -> None:
    spec = build_spec("table1", "cpu", _both(stores))
    assert {(r.train["data"], r.train["model"]) for r in spec.runs} == {
        (stores["cifar10"], "vgg11"), (stores["cifar10"], "wrn16"), (stores["cifar100"], "wrn16")}
    assert all(r.train["width"] == scales_module.CPU_WIDTH and r.train["T"] == 4 for r in spec.runs)
    assert all(r.train["epochs"] == scales_module.CPU_EPOCHS for r in spec.runs)
    assert all("lam" not in r.train for r in spec.runs)  # the paper's per-dataset lambdas
    assert spec.attack_limit == scales_module.CPU_ATTACK_LIMIT
    labels = [row.labels for row in spec.tables[0].rows]
    assert labels[:4] == [("CIFAR-10 subset", "VGG-11 x0.125", d) for d in ("Vanilla", "RAT", "AT", "SR*")]
    # Run order: the baseline, the black-box source, then SR* before AT and RAT.
    assert [r.train["defense"] for r in spec.runs[:5]] == ["vanilla", "vanilla", "sr_star", "at", "rat"]
    # Without a CIFAR-100 store the CIFAR-100 rows are left out, not trained on CIFAR-10.
    only10 = build_spec("table1", "cpu", stores["cifar10"])
    assert {r.train["data"] for r in only10.runs} == {stores["cifar10"]}
    assert len(only10.tables[0].rows) == 8


@pytest.mark.parametrize("name", [n for n in list_pipelines() if n != "table2"])
def test_every_cpu_spec_is_valid(name: str, stores: dict[str, str]) -> None:
    spec = build_spec(name, "cpu", _both(stores))
    for r in spec.runs:
        TrainConfig(**r.train).validate()
        assert r.train["data"] in stores.values()
    for table in spec.tables:
        for row in table.rows:
            # Checkpoint numbers only: a training metric may appear in a row only as a cost (Table 7).
            assert all(c.source != "metric" or c.item == "seconds" for c in row.cells.values()), row


def test_figure_specs_follow_the_paper(stores: dict[str, str]) -> None:
    fig1 = build_spec("fig1", "cpu", _both(stores))
    assert {(r.train["data"], r.train["model"], r.train["defense"]) for r in fig1.runs} == {
        (stores["cifar10"], "vgg11", "vanilla"), (stores["cifar100"], "vgg11", "vanilla")}
    fig4 = build_spec("fig4", "cpu", _both(stores))
    assert {r.train["data"] for r in fig4.runs} == set(stores.values())
    fig6 = build_spec("fig6", "cpu", _both(stores))
    assert {r.train["data"] for r in fig6.runs} == {stores["cifar100"]}
    with pytest.raises(UserInputError, match="fig6 .* needs a CIFAR-100 store"):
        build_spec("fig6", "cpu", stores["cifar10"])
    with pytest.raises(UserInputError, match="table2 has no cpu scale"):
        build_spec("table2", "cpu", _both(stores))


@pytest.mark.parametrize("data", [None, "digits", "{c100}"])
def test_cpu_scale_without_real_images_is_one_line_exit_2(tmp_path: Path, stores: dict[str, str],
                                                           data: str | None) -> None:
    args = ["reproduce", "table1", "--scale", "cpu", "--out", str(tmp_path / "out"),
            "--data-dir", str(tmp_path / "empty")]
    if data is not None:
        args += ["--data", data.format(c100=stores["cifar100"])]
    result = CliRunner().invoke(main_app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "evrobust preprocess cifar10 --raw" in lines[0] and "cifar-10-batches-py" in lines[0]
    assert not (tmp_path / "out").exists()


TINY_CPU = {
    "width": 1 / 16, "epochs": 2, "limit_train": 64, "limit_val": 16, "attack_limit": 8, "attack_batch": 8,
    "lam_sweep": (0.0, 0.008), "extra": {"batch_size": 16},
    "analysis_options": {"theorem": {"mc_samples": 4, "pgd_steps": 2, "eps_grid": "8/255"},
                         "vulnerability": {"eps_grid": "0,8/255"}},
}
"""The cpu scale shrunk to seconds: same data, same architectures, fewer channels, epochs and samples."""


@pytest.fixture(scope="module")
def tiny_fig3(stores: dict[str, str], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Fig. 3 at the shrunk cpu scale, run as a user would with --stop-after 1, then --resume.

    Yields ``(out, partial results, error of the plain rerun, final results path)``.
    """
    out = tmp_path_factory.mktemp("cpu") / "out"
    with pytest.MonkeyPatch.context() as mp:
        tiny = dataclasses.replace(scales_module.SCALE_SETTINGS["cpu"], **TINY_CPU)
        mp.setitem(scales_module.SCALE_SETTINGS, "cpu", tiny)
        common = {"scale": "cpu", "data": stores["cifar10"], "out": out, "device": "cpu", "report": False}
        partial = load_results(run_reproduction("fig3", stop_after=1, **common))
        try:
            run_reproduction("fig3", **common)
            refused = None
        except UserInputError as exc:
            refused = exc
        final = run_reproduction("fig3", resume=True, **common)
        first = build_spec("fig3", "cpu", stores["cifar10"]).runs[0]
    yield out, partial, refused, final, first


def _grad_l1_by_hand(run_dir: str, n: int) -> float:
    """Mean l1 norm of d sigmoid(z_y - z_k) / dx over the first n test images, best checkpoint."""
    model, config = load_run(run_dir, which="best", device="cpu")
    model.eval()
    test = open_split(config["data"]["store"], "test")
    xs, ys = zip(*(test[i] for i in range(n)), strict=True)
    x = torch.stack([torch.as_tensor(v) for v in xs]).requires_grad_(True)
    y = torch.as_tensor(ys)
    z = model(x)
    others = z.detach().clone()
    others[torch.arange(n), y] = -torch.inf
    k = others.argmax(1)
    f = torch.sigmoid(z[torch.arange(n), y] - z[torch.arange(n), k])
    (grad,) = torch.autograd.grad(f.sum(), x)
    return float(grad.flatten(1).abs().sum(1).double().mean())


def test_cpu_scale_runs_at_a_tiny_size_stops_and_resumes(tiny_fig3) -> None:  # noqa: ANN001
    out, partial, refused, final, first = tiny_fig3
    # One unit of work: the first run's first epoch; results.json already lists what is pending.
    assert partial["complete"] is False and len(partial["pending"]["runs"]) == 2
    assert partial["attacks"] == {} and partial["runs"][first.key]["epochs"] == 1
    # A partly trained run continues only when asked to.
    assert refused is not None
    assert "partly trained (1 of 2 epochs)" in str(refused) and "--resume" in str(refused)
    results = load_results(final)
    assert results["complete"] is True and results["pending"] == {"runs": [], "attacks": [], "analyses": []}
    assert all(len(read_metrics(r["dir"])) == 2 for r in results["runs"].values())  # no epoch trained twice
    assert all(r["dir"].startswith(str(out)) for r in results["runs"].values())
    table = results["spec"]["tables"][0]
    for row in table["rows"]:
        values = {h: cell_value(results, c)[0] for h, c in row["cells"].items()}
        assert all(v is not None for v in values.values()), row["labels"]
        # The norm columns are those of the checkpoint the accuracy columns evaluate, on the same images.
        run = results["analyses"][row["cells"]["grad l1"]["ref"]]["run"]
        assert values["grad l1"] == pytest.approx(_grad_l1_by_hand(run, 8), rel=1e-6)
    check_row_provenance(results)


def test_a_row_mixing_checkpoints_or_samples_is_refused(tiny_fig3) -> None:  # noqa: ANN001
    good = load_results(tiny_fig3[3])
    check_row_provenance(good)
    row = good["spec"]["tables"][0]["rows"][0]
    run_key = good["spec"]["attacks"][0]["run"]

    def tampered(change: str) -> dict:
        doc = json.loads(json.dumps(good))
        first = doc["spec"]["tables"][0]["rows"][0]
        analysis = first["cells"]["grad l1"]["ref"]
        if change == "metric":  # the old layout: Clean from the best checkpoint, grad l1 from the last epoch
            first["cells"]["grad l1"] = {"source": "metric", "ref": run_key, "item": "val_grad_l1"}
        elif change == "checkpoint":
            doc["analyses"][analysis]["which"] = "last"
        elif change == "stamp":
            doc["provenance"][analysis]["stamp"] = 0.0
        elif change == "samples":
            doc["analyses"][analysis]["samples"] = 7
        return doc

    assert row["cells"]["grad l1"]["source"] == "analysis"
    for change in ("metric", "checkpoint", "stamp", "samples"):
        with pytest.raises(MixedProvenanceError, match="different checkpoints or samples"):
            check_row_provenance(tampered(change))
