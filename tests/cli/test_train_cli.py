"""``evrobust train`` through the real typer app: a quick run, and every bad input -> one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from evrobust.datasets import resolve_data
from evrobust.defenses import AT_METHODS, DEFENSES, DSD_BASES, PENALTIES
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.cli.train import AtMethod, Defense, DsdBase, Penalty
from evrobust.pipelines.train.run_dir import load_run, read_config, read_metrics

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.getbasetemp() / "evrobust-data"
    resolve_data("digits", str(path))
    resolve_data("digits-dvs", str(path))
    return path


def quick(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        "digits",
        "--data-dir",
        str(data_dir),
        "--model",
        "vgg_small",
        "--width",
        "0.5",
        "--T",
        "2",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--limit-val",
        "32",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_enums_match_the_library() -> None:
    assert [d.value for d in Defense] == list(DEFENSES)
    assert [p.value for p in Penalty] == list(PENALTIES)
    assert [m.value for m in AtMethod] == list(AT_METHODS)
    assert [b.value for b in DsdBase] == list(DSD_BASES)


def test_quick_dlif_run_trains_and_reloads_the_input_gain(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, quick(data_dir, out, "--defense", "dlif", "--dlif-alpha", "0.5"))
    assert result.exit_code == 0, result.output
    cfg = read_config(out)
    assert cfg["train"]["input_gain"] is True and cfg["identity"]["input_gain"] is True
    assert (cfg["defense"]["at_method"], cfg["defense"]["dlif_alpha"]) == ("fgsm", 0.5)
    assert cfg["defense"]["at_eps"] == pytest.approx(4 / 255)
    model, _ = load_run(out)
    gains = [k for k in model.state_dict() if k.endswith("input_gain")]
    assert gains and all(model.state_dict()[k].shape == (2,) for k in gains)


def test_quick_dsd_on_trades_run(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    extra = ("--defense", "dsd", "--dsd-base", "trades", "--at-steps", "1", "--trades-beta", "2")
    result = runner.invoke(app, quick(data_dir, out, *extra))
    assert result.exit_code == 0, result.output
    cfg = read_config(out)
    assert (cfg["defense"]["dsd_base"], cfg["defense"]["trades_beta"], cfg["defense"]["at_steps"]) == (
        "trades",
        2.0,
        1,
    )
    assert "input_gain" not in cfg["identity"] and "tgo_lam" not in cfg["identity"]


def test_quick_sr_star_run_with_fraction_eps(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        quick(
            data_dir,
            out,
            "--defense",
            "sr_star",
            "--at-eps",
            "4/255",
            "--at-step",
            "2.55/255",
            "--at-steps",
            "1",
            "--sr-penalty",
            "l1",
            "--lam",
            "0.01",
        ),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    cfg = read_config(out)
    assert cfg["defense"]["at_eps"] == pytest.approx(4 / 255) and cfg["defense"]["at_step"] == pytest.approx(
        0.01
    )
    assert cfg["defense"]["penalty"] == "l1" and cfg["defense"]["lam"] == 0.01
    assert len(read_metrics(out)) == 1


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "resnet9000"], "unknown model 'resnet9000'"),
        (["--lam", "-0.1"], "--lam must be >= 0"),
        (["--h", "0"], "--h must be > 0"),
        (["--h", "-0.01"], "--h must be > 0"),
        (["--at-eps", "8"], "did you mean 8/255"),
        (["--at-eps", "-1/255"], "--at-eps must be a number"),
        (["--at-eps", "2/0"], "divides by zero"),
        (["--at-eps", "abc"], "--at-eps must be a number"),
        (["--defense", "trades", "--trades-tau", "0"], "--trades-tau must be > 0"),
        (["--defense", "trades", "--at-method", "fgsm"], "own sign-gradient attack"),
        (["--defense", "dlif", "--dlif-kappa", "2"], "--dlif-kappa must be >= 0 and <= 1"),
        (["--defense", "tgo", "--tgo-noise", "-1"], "--tgo-noise must be >= 0"),
        (["--epochs", "0"], "--epochs must be an integer >= 1"),
        (["--model-opt", "tau"], "not KEY=VALUE"),
        (["--data", str(Path("/nonexistent/store.zarr"))], "neither a known dataset"),
        (["--data", "cifar10"], "evrobust preprocess cifar10"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    data_dir: Path, tmp_path: Path, extra: list[str], needle: str
) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, [*quick(data_dir, out), *extra])
    assert result.exit_code == 2, result.output
    assert needle in _one_error_line(result)
    assert not out.exists()


def test_frames_store_into_a_three_channel_model(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = quick(data_dir, out, "--model-opt", "in_channels=3")
    args[args.index("digits")] = "digits-dvs"
    args[args.index("--T") : args.index("--T") + 2] = []
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "in_channels=3 but the data has 2" in _one_error_line(result)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra", [["--defense", "madry"], ["--sr-penalty", "l3"], ["--device", "tpu"], ["--dsd-base", "sr"]]
)
def test_unknown_choice_is_a_usage_error(data_dir: Path, tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, [*quick(data_dir, out), *extra])
    assert result.exit_code == 2
    assert extra[1] in result.stderr and not out.exists()


def test_existing_run_dir_with_another_config(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert runner.invoke(app, quick(data_dir, out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = runner.invoke(app, quick(data_dir, out, "--lr", "0.01"))
    assert result.exit_code == 2
    assert "different configuration (train.lr: 0.1 -> 0.01)" in _one_error_line(result)
    result = runner.invoke(app, quick(data_dir, out))
    assert result.exit_code == 2 and "--resume" in _one_error_line(result)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
