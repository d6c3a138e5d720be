"""``evrobust attack --model pkg.module:factory --weights FILE --data NAME --run DIR``: a model trained
elsewhere, evaluated into a run directory that ``report`` and ``compare`` read; every bad input one line and
exit 2, with nothing executed from a weights file and nothing written."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from evrobust.pipelines.cli.app import app as main_app

runner = CliRunner()

MODULE = "evr_cli_user_nets"
SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        # digits: [N, 1, 8, 8] in [0, 1] -> logits [N, 10]; a plain network (no spiking neuron)
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            return self.body(x)


    def build():
        torch.manual_seed(0)
        return Net()


    def broken():
        raise RuntimeError("no such layer size")


    def not_a_module():
        return 42
    """
)


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's module in the working directory (the CLI imports from there, as ``python -m`` does)."""
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, MODULE, raising=False)
    return tmp_path


def _weights(tmp_path: Path) -> Path:
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(MODULE)
        model = module.build()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(MODULE, None)
    path = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _invoke(tmp_path: Path, *extra: str) -> object:
    args = ["attack", "--data", "digits", "--data-dir", str(tmp_path / "data"), "--limit", "24",
            "--batch-size", "12", "--device", "cpu", "--attacks", "clean,fgsm,pgd10", *extra]
    return runner.invoke(main_app, args)


def test_model_from_a_factory_is_evaluated_into_a_run_dir(user_code: Path) -> None:
    weights = _weights(user_code)
    out = user_code / "eval"
    result = _invoke(user_code, "--model", f"{MODULE}:build", "--weights", str(weights), "--run", str(out),
                     "--defense", "plain")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "attack-whitebox.json").read_text())
    assert document["arch"] == f"{MODULE}:build" and document["defense"] == "plain"
    assert document["dataset"] == "digits" and document["samples"] == 24
    # a plain network: the surrogate ensemble cannot apply, and every output says so
    assert document["members"] == ["own"]
    assert any("surrogate ensemble not applied" in n for n in document["notes"])
    assert "surrogate ensemble not applied" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["foreign"]["factory"] == f"{MODULE}:build"
    assert len(config["foreign"]["weights_sha256"]) == 64
    # report reads the directory; compare pairs the result with itself
    report = runner.invoke(main_app, ["report", str(out), "--out", str(user_code / "report")])
    assert report.exit_code == 0, report.output
    compare = runner.invoke(main_app, ["compare", str(out), str(out / "attack-whitebox.json")])
    assert compare.exit_code == 0, compare.output
    # the same command again resumes nothing and gives the same flags; without --model it is refused
    again = _invoke(user_code, "--model", f"{MODULE}:build", "--weights", str(weights), "--run", str(out))
    assert again.exit_code == 0, again.output
    assert json.loads((out / "attack-whitebox.json").read_text())["flags"] == document["flags"]
    bare = runner.invoke(main_app, ["attack", "--run", str(out), "--device", "cpu"])
    assert bare.exit_code == 2 and "never imports code named only in a file" in bare.output
    # other weights into the same directory would mix two models in one result: refused, nothing changed
    from safetensors.torch import load_file

    tensors = load_file(str(weights))
    tensors["body.3.bias"] = tensors["body.3.bias"] + 1
    other = user_code / "other.safetensors"
    save_file(tensors, str(other))
    before = (out / "attack-whitebox.json").read_bytes()
    mixed = _invoke(user_code, "--model", f"{MODULE}:build", "--weights", str(other), "--run", str(out))
    assert mixed.exit_code == 2 and "evaluates another weights" in mixed.output
    assert (out / "attack-whitebox.json").read_bytes() == before


class _RunsCode:
    """Unpickling this would create a marker file: the weights reader must refuse it without running it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def _pickle_weights(tmp_path: Path, raw: bool) -> Path:
    marker = tmp_path / "EXECUTED"
    payload = {"body.1.weight": torch.zeros(32, 64), "hook": _RunsCode(marker)}
    path = tmp_path / ("raw.pkl" if raw else "zip.pt")
    if raw:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-module", "cannot import 'no_such_module_xyz'"),
        ("bad-factory-text", "pkg.module:function"),
        ("factory-raises", "the factory raised RuntimeError: no such layer size"),
        ("not-a-module", "returned int, not a torch.nn.Module"),
        ("missing-keys", "1 missing (body.3.bias) keys"),
        ("extra-keys", "1 unexpected (extra.weight) keys"),
        ("pickle-zip", "weights_only=True only"),
        ("pickle-raw", "weights_only=True only"),
        ("no-weights", "--model needs --weights"),
        ("no-run", "--model needs --run"),
        ("blackbox", "white-box only"),
        ("weights-without-model", "describe a --model"),
        ("train-run", "is a run of `evrobust train`"),
    ],
)
def test_bad_model_input_is_one_line_and_exit_2(user_code: Path, case: str, needle: str) -> None:
    weights = _weights(user_code)
    factory = f"{MODULE}:build"
    out = user_code / "eval"
    extra: list[str] = []
    if case == "missing-module":
        factory = "no_such_module_xyz:build"
    elif case == "bad-factory-text":
        factory = "not a factory"
    elif case == "factory-raises":
        factory = f"{MODULE}:broken"
    elif case == "not-a-module":
        factory = f"{MODULE}:not_a_module"
    elif case in ("missing-keys", "extra-keys"):
        from safetensors.torch import load_file

        tensors = load_file(str(weights))
        if case == "missing-keys":
            tensors.pop("body.3.bias")
        else:
            tensors["extra.weight"] = torch.zeros(2)
        save_file(tensors, str(weights))
    elif case.startswith("pickle"):
        weights = _pickle_weights(user_code, raw=case == "pickle-raw")
    args = ["--model", factory, "--weights", str(weights), "--run", str(out)]
    if case == "no-weights":
        args = ["--model", factory, "--run", str(out)]
    elif case == "no-run":
        args = ["--model", factory, "--weights", str(weights)]
    elif case == "blackbox":
        extra = ["--mode", "blackbox", "--source", str(user_code)]
    elif case == "weights-without-model":
        args = ["--weights", str(weights), "--run", str(out)]
    elif case == "train-run":
        out.mkdir()
        (out / "config.json").write_text('{"format": "evrobust-run", "model": {"name": "vgg11"}}')
    result = _invoke(user_code, *args, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output
    assert not (user_code / "EXECUTED").exists()
    if case == "train-run":
        assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    else:
        assert not out.exists()  # nothing half-written
