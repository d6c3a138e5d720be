"""The cost estimate printed before a reproduction starts: one timed warm-up per kind of run, scaled to the
epochs each run still has to train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.datasets import resolve_data, store_info
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.reproduce import build_spec, cost, estimate_cost


def _fake_run(out: Path, dirname: str, epochs: int) -> None:
    run = out / "runs" / dirname
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1}) + "\n" for e in range(epochs)))


def test_one_warmup_per_kind_scaled_to_the_epochs_left(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    spec = build_spec("fig3", "smoke")  # vanilla + four SR runs that differ only in lambda
    assert len(spec.runs) == 5
    calls: list[dict] = []
    real = cost._warmup

    def counted(train: dict, batches: int, data_dir: str | None, device: str) -> float:
        calls.append(train)
        return real(train, batches, data_dir, device)

    monkeypatch.setattr(cost, "_warmup", counted)
    out = tmp_path / "out"
    sr_runs = [r for r in spec.runs if r.train["defense"] == "sr"]
    _fake_run(out, sr_runs[0].dirname, 6)  # complete: costs nothing
    _fake_run(out, sr_runs[1].dirname, 2)  # partly trained: 4 epochs left
    estimate = estimate_cost(spec, out, data_dir=str(tmp_path / "data"), device="cpu", batches=2)
    assert sorted(c["defense"] for c in calls) == ["sr", "vanilla"]  # lambda does not change the cost
    left = {k: r["epochs_left"] for k, r in estimate.runs.items()}
    assert left[sr_runs[0].key] == 0 and left[sr_runs[1].key] == 4
    assert estimate.epochs_left == 6 + 0 + 4 + 6 + 6
    per_epoch = {r["seconds_per_epoch"] for k, r in estimate.runs.items() if k != sr_runs[0].key}
    assert len(per_epoch) == 2 and min(per_epoch) > 0  # one figure per kind
    sr_seconds = estimate.runs[sr_runs[1].key]["seconds_per_epoch"]
    assert estimate.total_seconds == pytest.approx(
        sum(r["epochs_left"] * r["seconds_per_epoch"] for r in estimate.runs.values()))
    assert sr_seconds == estimate.runs[sr_runs[2].key]["seconds_per_epoch"]
    lines = estimate.lines()
    assert lines[0].startswith("estimated training cost") and lines[-1].startswith("  total: 22 epochs")
    assert not any(sr_runs[0].key in line for line in lines)  # nothing left to train there


def test_warmup_scales_the_probe_epoch_to_the_training_split(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """seconds per epoch = seconds of the probe epoch x (training samples / probe samples)."""
    import evrobust.pipelines.train.pipeline as train_pipeline

    seen: dict = {}
    real = train_pipeline.train

    def recording(config):  # noqa: ANN001, ANN202 - a test spy
        seen["limit_train"] = config.limit_train
        seen["out"] = config.out
        run = real(config)
        seen["seconds"] = json.loads((Path(run) / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
        return run

    monkeypatch.setattr(train_pipeline, "train", recording)
    train = build_spec("fig5", "smoke").runs[0].train
    per_epoch = cost._warmup(train, 2, str(tmp_path), "cpu")
    n_train = store_info(resolve_data("digits", str(tmp_path))).split_sizes["train"]
    assert seen["limit_train"] == 2 * 64
    assert per_epoch == pytest.approx(seen["seconds"] * n_train / (2 * 64))
    assert not Path(seen["out"]).exists()  # the warm-up leaves nothing behind


def test_cli_prints_the_estimate_before_it_starts(tmp_path: Path) -> None:
    args = ["reproduce", "fig5", "--scale", "tiny", "--out", str(tmp_path / "out"), "--data-dir",
            str(tmp_path / "data"), "--device", "cpu", "--estimate", "--no-report"]
    result = CliRunner().invoke(main_app, args)
    assert result.exit_code == 0, result.output
    out = result.output
    # fig5 at tiny scale: a vanilla and an SR run of one epoch each.
    assert out.index("estimated training cost") < out.index("total: 2 epochs") < out.index("results written")
