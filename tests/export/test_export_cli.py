"""`evrobust export` on a real run: the file, its metadata, and the one-line exit-2 contract for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nir
import pytest
import torch
from typer.testing import CliRunner

from evrobust.export import load_nir
from evrobust.pipelines.attack.pipeline import run_attack
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.export import export_run
from evrobust.pipelines.train.run_dir import load_run

runner = CliRunner()


def _one_line_exit_2(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output


def test_export_writes_a_valid_nir_file_with_the_runs_numbers(run_dir: Path, tmp_path: Path) -> None:
    absent = export_run(run_dir, tmp_path / "before.nir")["metadata"]
    assert absent["whitebox_robust_accuracy"].startswith("not measured: attack-whitebox.json is absent")

    result = run_attack(
        run_dir, attacks="clean,fgsm,pgd10", ensemble="single", limit=16, batch_size=16, device="cpu",
        eps="8/255", checks=False,
    )
    accuracy = {a["name"]: a["accuracy"] for a in result["attacks"]}
    out = tmp_path / "model.nir"
    cli = runner.invoke(app, ["export", "--run", str(run_dir), "--format", "nir", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    assert f"wrote {out}" in cli.output

    graph = nir.read(str(out))
    meta = graph.metadata
    assert meta["defense"] == "sr" and meta["lambda"] == pytest.approx(0.008)
    assert meta["whitebox_robust_accuracy"] == pytest.approx(min(accuracy["fgsm"], accuracy["pgd10"]))
    assert meta["whitebox_clean_accuracy"] == pytest.approx(accuracy["clean"])
    assert meta["whitebox_eps"] == pytest.approx(8 / 255)
    summary = json.loads(meta["whitebox_attack"])
    assert summary["samples"] == 16 and summary["same_checkpoint"] is True
    assert meta["blackbox_robust_accuracy"].startswith("not measured")
    assert "mean over the T time steps" in meta["readout"] and meta["dataset"] == "digits"

    model, _ = load_run(run_dir)
    imported = load_nir(out)
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = model(x), imported(x)
    trace = imported.trace(x)
    assert torch.equal(got[trace["sample_margin"] >= 1e-5], expected[trace["sample_margin"] >= 1e-5])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.nir"
    _one_line_exit_2(["export", "--run", str(tmp_path / "missing"), "--out", str(out)], "does not exist")
    _one_line_exit_2(["export", "--run", str(run_dir), "--format", "onnx", "--out", str(out)], "'onnx'")
    _one_line_exit_2(
        ["export", "--run", str(run_dir), "--out", str(tmp_path / "no" / "such" / "dir" / "m.nir")],
        "does not exist",
    )
    _one_line_exit_2(["export", "--run", str(run_dir), "--out", str(tmp_path)], "is a directory")
    _one_line_exit_2(["export", "--run", str(run_dir), "--out", str(out), "--checkpoint", "worst"], "worst")

    damaged = tmp_path / "damaged-config"
    shutil.copytree(run_dir, damaged)
    (damaged / "config.json").write_text("{ not json")
    _one_line_exit_2(["export", "--run", str(damaged), "--out", str(out)], "not valid JSON")

    truncated = tmp_path / "damaged-checkpoint"
    shutil.copytree(run_dir, truncated)
    best = truncated / "checkpoint-best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    _one_line_exit_2(["export", "--run", str(truncated), "--out", str(out)], "cannot read checkpoint")

    last_readout = tmp_path / "readout-last"
    shutil.copytree(run_dir, last_readout)
    config = json.loads((last_readout / "config.json").read_text())
    config["model"]["readout"] = "last"
    (last_readout / "config.json").write_text(json.dumps(config))
    _one_line_exit_2(["export", "--run", str(last_readout), "--out", str(out)], "readout='last'")

    assert not out.exists()
    assert not any(p.suffix in (".nir", ".tmp") for p in tmp_path.iterdir())


def test_an_existing_file_survives_a_failed_export(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.nir"
    out.write_bytes(b"previous")
    _one_line_exit_2(["export", "--run", str(tmp_path / "missing"), "--out", str(out)], "does not exist")
    assert out.read_bytes() == b"previous"


def test_a_damaged_attack_result_is_reported_not_trusted(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "attack-whitebox.json").write_text('{"attacks": [{"name": "clean"')
    meta = export_run(run, tmp_path / "model.nir")["metadata"]
    expected = "not available: attack-whitebox.json is unreadable (" + str(run / "attack-whitebox.json")
    assert meta["whitebox_robust_accuracy"].startswith(expected)
    assert "is not valid JSON" in meta["whitebox_robust_accuracy"]
