"""``analyze landscape`` and ``analyze fidelity`` on a real (small) trained run: documents that validate,
numbers that the core functions reproduce on the same samples, the adversarial direction's provenance, the
PNGs and the comparison figure, and one-line errors before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evrobust.analysis import default_radii
from evrobust.analysis.fidelity import ce_and_gradient, central_difference, interior
from evrobust.analysis.landscape import loss_along
from evrobust.datasets import open_split
from evrobust.errors import UserInputError
from evrobust.pipelines.analyze import compare_plot, result_path, run_analysis
from evrobust.pipelines.attack.pipeline import run_attack
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.pipelines.train.run_dir import load_run
from evrobust.safeio import read_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("analyze-masking")
    # Three epochs on 640 digits: a model that classifies (a one-epoch one is constant: flat everywhere).
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=4, epochs=3, batch_size=32,
        lr=0.1, limit_train=640, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def _samples(run: Path, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model, config = load_run(run)
    dataset = open_split(config["data"]["store"], "test")
    x = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(n)]).float()
    return model, x, torch.tensor([int(dataset[i][1]) for i in range(n)])


def test_landscape_document_matches_the_core_functions(run_dir: Path) -> None:
    result = run_analysis(run_dir, "landscape", limit=10, batch_size=5, points=6, random=1, adv_steps=3,
                          device="cpu")
    document = read_json(result_path(run_dir, "landscape"), "analysis")  # validates against the schema
    assert document == json.loads(json.dumps(result))
    assert result["radii"] == pytest.approx(default_radii(8 / 255, 6))
    assert list(result["directions"]) == ["gradient", "random-0", "adversarial"]
    model, x, y = _samples(run_dir, 10)
    _, grad = ce_and_gradient(model, x, y)
    expected = loss_along(model, x, y, grad.sign(), result["radii"])
    gradient = result["directions"]["gradient"]
    got = torch.tensor(gradient["per_sample"]["ce"], dtype=torch.float64)
    torch.testing.assert_close(got, expected["ce"], rtol=1e-5, atol=1e-6)
    assert gradient["ce"]["median"] == pytest.approx(expected["ce"].quantile(0.5, dim=0).tolist(), rel=1e-5)
    assert result["clean_accuracy"] > 0.3  # a model that classifies: its loss is not flat by construction
    for name, body in result["directions"].items():
        ce0 = result["clean"]["per_sample"]["ce"]
        for i, radius in enumerate(body["per_sample"]["rise_radius"]):
            risen = [c - ce0[i] >= result["rise"] for c in body["per_sample"]["ce"][i]]
            assert radius == (result["radii"][risen.index(True)] if any(risen) else None), name
    adversarial = result["adversarial"]
    assert adversarial["attack"] == "pgd3" and adversarial["attack_file"] is None
    assert "holds no attack result" in adversarial["note"] and "PGD-3" in adversarial["note"]
    assert max(adversarial["per_sample"]["distance"]) <= 8 / 255 + 1e-6
    assert Path(result["plots"][0]).read_bytes()[:8] == PNG_MAGIC


def test_landscape_says_where_the_adversarial_direction_comes_from(run_dir: Path, tmp_path: Path) -> None:
    run_attack(run_dir, attacks="clean,fgsm", ensemble="single", limit=4, batch_size=4, device="cpu")
    result = run_analysis(run_dir, "landscape", limit=4, radii="0.01,0.03,0.1", random=0, adv_steps=2,
                          device="cpu", plots=False)
    assert result["adversarial"]["attack_file"] == "attack-whitebox.json"
    note = result["adversarial"]["note"]
    assert note.startswith("attack-whitebox.json holds per-sample flags, not adversarial examples")
    assert list(result["directions"]) == ["gradient", "adversarial"] and result["radii"] == [0.01, 0.03, 0.1]
    other = run_analysis(run_dir, "landscape", limit=4, radii="0.01,0.03,0.1", adv_steps=0, device="cpu",
                         plots=False)
    assert other["adversarial"] is None and "adversarial" not in other["directions"]
    png = compare_plot([result, other], "landscape", tmp_path / "compare.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_fidelity_document_matches_the_core_functions(run_dir: Path) -> None:
    result = run_analysis(run_dir, "fidelity", limit=6, spec="sigmoid:4", steps="1e-3,1e-2", random=1,
                          device="cpu")
    read_json(result_path(run_dir, "fidelity"), "analysis")
    assert result["steps"] == [1e-3, 1e-2] and list(result["specs"]) == ["sigmoid:4"]
    assert result["directions"] == ["gradient", "random-0"] and result["ensemble"] == "spec"
    assert result["headline"]["spec"] == "sigmoid:4" and result["headline"]["step"] == 1e-2
    model, x, y = _samples(run_dir, 6)
    _, grad = ce_and_gradient(model, x, y, "sigmoid:4")
    for s, h in enumerate(result["steps"]):
        entry = result["specs"]["sigmoid:4"]["results"][s]
        fd = central_difference(model, x, y, interior(grad.sign(), x, h), h)
        got = [row[0] for row in entry["per_sample"]["fd"]]
        assert got == pytest.approx(fd.tolist(), rel=1e-4, abs=1e-4)
        zero = sum(v == 0 for row in entry["per_sample"]["fd"] for v in row) / 12
        assert entry["zero_fd_share"] == pytest.approx(zero)
        assert -1 <= entry["cosine"] <= 1
    assert Path(result["plots"][0]).read_bytes()[:8] == PNG_MAGIC
    paper = run_analysis(run_dir, "fidelity", limit=2, steps="1e-2", random=0, device="cpu", plots=False)
    assert list(paper["specs"]) == ["triangle:1", "sigmoid:4", "atan:2", "rate"]
    assert paper["headline"]["spec"] == "triangle:1"  # the model's own spec leads


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("landscape", {"radii": "0.02,0.01"}, "strictly increasing"),
        ("landscape", {"radii": "0,0.01"}, "in (0, 1]"),
        ("landscape", {"rise": 0}, "--rise must be a number > 0"),
        ("landscape", {"points": 1}, "--points must be an integer"),
        ("landscape", {"eps": "8"}, "did you mean 8/255"),
        ("fidelity", {"steps": "0,1e-2"}, "in (0, 0.5]"),
        ("fidelity", {"steps": "1e-2,1e-3"}, "strictly increasing"),
        ("fidelity", {"random": -1}, "--random must be an integer"),
        ("fidelity", {"rise": 0.1}, "does not apply"),
        ("landscape", {"limit": 0}, "--limit"),
    ],
)
def test_bad_options_are_one_line_before_any_work(
    run_dir: Path, kind: str, options: dict, words: str
) -> None:
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(UserInputError) as info:
        run_analysis(run_dir, kind, device="cpu", **options)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_report_draws_the_landscape_beside_the_runs(run_dir: Path, tmp_path: Path) -> None:
    from evrobust.pipelines.report.pipeline import write_report

    run_attack(run_dir, attacks="clean,fgsm", ensemble="single", limit=4, batch_size=4, device="cpu")
    run_analysis(run_dir, "landscape", limit=4, radii="0.01,0.1", random=0, adv_steps=0, device="cpu",
                 plots=False)
    run_analysis(run_dir, "fidelity", limit=2, steps="1e-2", random=0, spec="triangle:1", device="cpu",
                 plots=False)
    report = write_report([run_dir], out=tmp_path / "report")
    text = report.read_text()
    png = tmp_path / "report" / "plot-loss-landscape-digits.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.name in text
    assert "gradient: median radius of a 0.1-nat loss rise" in text
    assert "triangle:1 at step 0.01: cosine surrogate vs finite difference" in text
