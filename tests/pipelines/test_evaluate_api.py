"""``evrobust.evaluate`` on evrobust's own model through the generic path: the same flags as ``evrobust
attack`` on the same run, the model given back untouched, one line for every bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import evrobust
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.inputs import iter_test_batches, open_test_split, run_test_store
from evrobust.pipelines.attack.pipeline import run_attack
from evrobust.pipelines.common.paired import compare_attack_documents
from evrobust.pipelines.train.run_dir import load_run
from evrobust.safeio import read_json

from .conftest import OPTIONS, strip_seconds

pytestmark = pytest.mark.usefixtures("small_reliable")

META = ("run", "checkpoint", "dataset", "arch", "defense", "notes", "neurons")


def _test_split(run: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    _, config = load_run(run, device="cpu")
    dataset, total = open_test_split(run_test_store(config, None), n)
    xs, ys = zip(*[(x, y) for _, x, y in iter_test_batches(dataset, total, 1000, 0)], strict=True)
    return torch.cat(xs), torch.cat(ys)


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    out = strip_seconds(result)
    for key in META:
        out.pop(key, None)
    out["test_set"].pop("store")
    return out


def test_generic_path_equals_attack_on_the_same_run(run_dir: Path, tmp_path: Path) -> None:
    by_attack = run_attack(run_dir, **OPTIONS)
    model, _ = load_run(run_dir, device="cpu")
    x, y = _test_split(run_dir, OPTIONS["limit"])
    result = evrobust.evaluate(model, x, y, suite="reliable", ensemble="single", eps="24/255",
                               batch_size=OPTIONS["batch_size"], dataset="digits")
    assert result.document["flags"] == by_attack["flags"]
    assert _comparable(result.document) == _comparable(by_attack)
    assert result.samples == 40 and result.robust_accuracy == by_attack["reliable"]["accuracy"]
    assert result.notes == [] and result.document["neurons"] == {}
    # the JSON is an attack_result document; compare pairs it with the run's own result (same labels)
    result.to_json(tmp_path / "attack-whitebox.json")
    document = read_json(tmp_path / "attack-whitebox.json", "attack_result")
    paired = compare_attack_documents(document, by_attack)
    assert paired["rows"] and all(r["a_only"] == r["b_only"] == 0 for r in paired["rows"])
    assert f"| digits | {type(model).__name__} | ? |" in result.to_markdown()  # no defense named: "?"


def test_model_given_back_exactly(run_dir: Path) -> None:
    model, _ = load_run(run_dir, device="cpu")
    model.train()
    model.features[0].eval() if hasattr(model, "features") else None
    first = next(model.parameters())
    first.requires_grad_(False)
    flags = [(name, m.training) for name, m in model.named_modules()]
    grads = [(name, p.requires_grad) for name, p in model.named_parameters()]
    x, y = _test_split(run_dir, 20)
    with torch.no_grad():
        model.eval()
        before = model(x)
        model.train()
        model.features[0].eval() if hasattr(model, "features") else None
    evrobust.evaluate(model, x, y, attacks="clean,pgd10", ensemble="paper", batch_size=20)
    assert [(name, m.training) for name, m in model.named_modules()] == flags
    assert [(name, p.requires_grad) for name, p in model.named_parameters()] == grads
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_dataloader_equals_tensors(run_dir: Path) -> None:
    model, _ = load_run(run_dir, device="cpu")
    x, y = _test_split(run_dir, 30)
    options: dict[str, Any] = {"attacks": "clean,fgsm,pgd10", "ensemble": "paper", "batch_size": 10}
    direct = evrobust.evaluate(model, x, y, **options)
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    via_loader = evrobust.evaluate(model, loader, **options)
    assert via_loader.document["flags"] == direct.document["flags"]
    assert via_loader.accuracy == direct.accuracy and via_loader.intervals == direct.intervals
    assert torch.equal(direct.flags("pgd10"), torch.tensor([c == "1" for c in
                                                            direct.document["flags"]["pgd10"]["correct"]]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x, y: evrobust.evaluate(m, x), "needs labels"),
        (lambda m, x, y: evrobust.evaluate(m, x * 2 + 0.5, y), "must lie in [0,1]"),
        (lambda m, x, y: evrobust.evaluate(m, x, y[:-1]), "integer tensor [N]"),
        (lambda m, x, y: evrobust.evaluate(m, x, y, ensemble="nope"), "unknown ensemble"),
        (lambda m, x, y: evrobust.evaluate(m, x, y, suite="paper", max_doublings=2), "certifies a cascade"),
        (lambda m, x, y: evrobust.evaluate(m, x, y, steps=0), "steps"),
        (lambda m, x, y: evrobust.evaluate("model", x, y), "torch.nn.Module"),
        (lambda m, x, y: evrobust.evaluate(m, [(x, y)], y), "labels are given by the DataLoader"),
    ],
)
def test_bad_input_is_one_line(run_dir: Path, call: Any, message: str) -> None:
    model, _ = load_run(run_dir, device="cpu")
    x, y = _test_split(run_dir, 4)
    with pytest.raises(UserInputError) as err:
        call(model, x, y)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_import_evrobust_stays_torch_free() -> None:
    import subprocess
    import sys

    code = "import sys, evrobust; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
