"""run_analysis on a real (tiny) trained run over the digits test split: JSON layouts, cross-checks against
the core functions and the attacks, PNGs, and the one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from evrobust.analysis import gradient_norms, input_gradient
from evrobust.attacks import FGSM, predict
from evrobust.datasets import open_split
from evrobust.errors import UserInputError
from evrobust.pipelines.analyze import KINDS, result_path, run_analysis
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.pipelines.train.run_dir import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("analyze")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=1, batch_size=32,
        lr=0.1, limit_train=320, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def _test_samples(run: Path, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model, config = load_run(run)
    dataset = open_split(config["data"]["store"], "test")
    x = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(n)]).float()
    y = torch.tensor([int(dataset[i][1]) for i in range(n)])
    return model, x, y


def _strict_json(path: Path) -> dict:
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def test_sparsity_matches_the_core_function_on_the_same_samples(run_dir: Path) -> None:
    result = run_analysis(run_dir, "sparsity", limit=20, batch_size=8, device="cpu")
    assert _strict_json(result_path(run_dir, "sparsity")) == json.loads(json.dumps(result))
    assert result["kind"] == "sparsity" and result["samples"] == 20 and result["input_dim"] == 64
    assert result["spec"] == "triangle:1" and result["dataset"] == "digits" and result["plots"] == []
    model, x, y = _test_samples(run_dir, 20)
    assert result["clean_accuracy"] == pytest.approx(float((predict(model, x) == y).float().mean()))
    for target in ("two_class", "softmax"):
        expected = gradient_norms(model, x, y, target=target)
        got = result["targets"][target]
        for key in ("l0", "l1", "l2", "density"):
            assert got["per_sample"][key] == pytest.approx(expected[key].tolist(), rel=1e-5, abs=1e-9)
            assert got["mean"][key] == pytest.approx(float(expected[key].mean()), rel=1e-5)
    with_spec = run_analysis(run_dir, "sparsity", limit=4, spec="rate", targets="two_class", device="cpu")
    assert with_spec["spec"] == "rate" and list(with_spec["targets"]) == ["two_class"]


def test_vulnerability_curves_and_png(run_dir: Path) -> None:
    result = run_analysis(
        run_dir, "vulnerability", limit=24, eps_grid="0,4/255,32/255", attacks="noise,fgsm", device="cpu"
    )
    assert result["eps_text"] == ["0", "4/255", "32/255"]
    assert result["curves"]["noise"][0] == result["curves"]["fgsm"][0] == result["clean_accuracy"]
    model, x, y = _test_samples(run_dir, 24)
    fgsm = float((predict(model, FGSM(32 / 255)(model, x, y)) == y).float().mean())
    assert result["curves"]["fgsm"][2] == pytest.approx(fgsm)
    assert {c["name"] for c in result["checks"]} == {"monotone_eps", "adv_le_noise"}
    png = Path(result["plots"][0])
    assert png == run_dir / "analysis-vulnerability.png" and png.read_bytes()[:8] == PNG_MAGIC


def test_theorem_layout_and_bounds(run_dir: Path) -> None:
    result = run_analysis(
        run_dir, "theorem", limit=6, eps_grid="2/255,16/255", mc_samples=4, pgd_steps=1, device="cpu"
    )
    document = _strict_json(result_path(run_dir, "theorem"))
    assert [r["eps_text"] for r in document["results"]] == ["2/255", "16/255"]
    for entry in document["results"]:
        per = entry["per_sample"]
        assert len(per["rho_rand"]) == 6
        assert per["upper"] == pytest.approx([3 * v for v in per["l0"]])
        assert entry["defined"] == sum(r is not None for r in per["ratio"])
        for rand, adv in zip(per["rho_rand"], per["rho_adv"], strict=True):
            assert adv >= rand >= 0.0  # the maximiser also sees every Monte Carlo draw
    assert document["mc_samples"] == 4 and document["pgd_steps"] == 1 and document["clip"] is False
    assert Path(result["plots"][0]).read_bytes()[:8] == PNG_MAGIC


def test_distribution_and_heatmap(run_dir: Path) -> None:
    dist = run_analysis(run_dir, "distribution", limit=10, bins=11, device="cpu")
    assert len(dist["edges"]) == 12 and len(dist["counts"]) == 11
    assert sum(dist["counts"]) == dist["total"] == 10 * 64
    model, x, y = _test_samples(run_dir, 10)
    grad = input_gradient(model, x, y)
    assert dist["zero_count"] == int((grad == 0).sum())
    assert dist["abs_max"] == pytest.approx(float(grad.abs().max()))
    heat = run_analysis(run_dir, "heatmap", limit=10, count=3, device="cpu")
    assert heat["indices"] == [0, 1, 2] and heat["labels"] == y[:3].tolist()
    assert torch.tensor(heat["grad_maps"]).shape == (3, 8, 8)
    torch.testing.assert_close(torch.tensor(heat["grad_maps"][1]), grad[1, 0].abs())
    torch.testing.assert_close(torch.tensor(heat["input_maps"][2]), x[2, 0])
    assert Path(heat["plots"][0]).read_bytes()[:8] == PNG_MAGIC


def test_user_errors_are_one_line(run_dir: Path, tmp_path: Path) -> None:
    no_ckpt = tmp_path / "no-ckpt"
    no_ckpt.mkdir()
    shutil.copy(run_dir / "config.json", no_ckpt / "config.json")
    cases = [
        (lambda: run_analysis(tmp_path / "missing", "sparsity"), "does not exist"),
        (lambda: run_analysis(tmp_path, "sparsity"), "not a run directory"),
        (lambda: run_analysis(no_ckpt, "sparsity", device="cpu"), "checkpoint"),
        (lambda: run_analysis(run_dir, "bogus"), ", ".join(KINDS)),
        (lambda: run_analysis(run_dir, "sparsity", eps_grid="0,1/255"), "does not apply"),
        (lambda: run_analysis(run_dir, "sparsity", bins=3), "valid"),
        (lambda: run_analysis(run_dir, "vulnerability", eps_grid="0,8/255,4/255"), "strictly increasing"),
        (lambda: run_analysis(run_dir, "theorem", eps_grid="0,8/255"), "eps > 0"),
        (lambda: run_analysis(run_dir, "sparsity", limit=0), "--limit"),
        (lambda: run_analysis(run_dir, "sparsity", targets="logit"), "two_class"),
    ]
    for call, words in cases:
        with pytest.raises(UserInputError, match=words) as info:
            call()
        assert "\n" not in str(info.value)
