"""`run_attack` end to end on two small runs trained here on the embedded digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

import evrobust.pipelines.attack.core as attack_core
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.pipeline import result_paths, run_attack
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train

from .conftest import strip_seconds

COMMON: dict[str, Any] = {"limit": 40, "batch_size": 20, "device": "cpu"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(target run, independently trained source run): vgg_small, T=2, digits, 2 short epochs."""
    root = tmp_path_factory.mktemp("attack-runs")
    out = []
    for seed in (0, 1):
        config = TrainConfig(
            data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=2, batch_size=32,
            lr=0.1, limit_train=640, device="cpu", out=str(root / f"run{seed}"), seed=seed, progress=False,
        )
        out.append(train(config))
    return out[0], out[1]


def test_whitebox_writes_json_and_table(runs: tuple[Path, Path]) -> None:
    target, _ = runs
    result = run_attack(target, suite="quick", ensemble="paper", **COMMON)
    json_path, md_path, partial = result_paths(target, "whitebox")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(result))
    assert not partial.exists()
    table = [a for a in result["attacks"] if a["in_table"]]
    assert [a["name"] for a in table] == ["clean", "fgsm", "pgd10"]
    assert {a["name"] for a in result["attacks"]} >= {"noise", "pgd10@4/255", "pgd10@64/255"}
    by_name = {a["name"]: a for a in result["attacks"]}
    for a in result["attacks"]:
        flags = result["flags"][a["name"]]["correct"]
        assert a["samples"] == len(flags) == 40
        assert a["accuracy"] == pytest.approx(flags.count("1") / 40)
    # The ensemble's accuracy is the last cumulative member accuracy, and below every earlier one.
    pgd = by_name["pgd10"]
    assert list(pgd["members"]) == ["triangle:1", "sigmoid:4", "atan:2", "rate"]
    cumulative = [m["cumulative"] for m in pgd["members"].values()]
    assert cumulative == sorted(cumulative, reverse=True) and cumulative[-1] == pytest.approx(pgd["accuracy"])
    assert by_name["pgd10"]["accuracy"] <= by_name["clean"]["accuracy"]
    assert by_name["pgd10@64/255"]["accuracy"] <= 0.05
    expected_checks = {"adv_le_noise", "monotone_eps", "large_eps", "zero_gradients"}
    assert {c["name"] for c in result["checks"]} == expected_checks
    assert pgd["eps"] == pytest.approx(8 / 255) and result["eps_text"] == "8/255"
    md = md_path.read_text()
    assert "| Dataset | Arch. | Defense | Clean | FGSM | PGD10 |" in md
    clean = by_name["clean"]
    low, high = clean["ci95"]
    cell = f"{100 * clean['accuracy']:.2f} [{100 * low:.2f}, {100 * high:.2f}]"
    assert f"| digits | vgg_small | vanilla | {cell} |" in md
    # every accuracy carries n, the robust count and the Clopper–Pearson interval (scipy's beta quantiles)
    for a in result["attacks"]:
        k = result["flags"][a["name"]]["correct"].count("1")
        assert (a["n"], a["robust"]) == (40, k)
        ref_low = 0.0 if k == 0 else sps.beta.ppf(0.025, k, 40 - k + 1)
        ref_high = 1.0 if k == 40 else sps.beta.ppf(0.975, k + 1, 40 - k)
        assert a["ci95"] == pytest.approx([ref_low, ref_high], abs=1e-9)
    for m in pgd["members"].values():
        assert m["n"] == 40 and m["cumulative_ci95"][0] <= m["cumulative"] <= m["cumulative_ci95"][1]
    # the evaluated samples are identified by their labels, so results can be paired only on the same ones
    assert result["test_set"]["samples"] == 40 and len(result["test_set"]["labels_sha256"]) == 64
    assert "Masking checks:" in md


def test_blackbox_uses_the_source_and_checks_against_whitebox(runs: tuple[Path, Path]) -> None:
    target, source = runs
    white = run_attack(target, attacks="clean,pgd10", ensemble="single", **COMMON)
    black = run_attack(
        target, mode="blackbox", source=source, attacks="clean,pgd10", ensemble="single", **COMMON
    )
    assert black["source"] == str(source) and black["mode"] == "blackbox"
    assert black["flags"]["clean"] == white["flags"]["clean"]
    assert black["flags"]["pgd10"] != white["flags"]["pgd10"]
    names = {c["name"] for c in black["checks"]}
    assert names == {"adv_le_noise", "whitebox_le_blackbox"}
    check = next(c for c in black["checks"] if c["name"] == "whitebox_le_blackbox")
    wb = next(a for a in white["attacks"] if a["name"] == "pgd10")["accuracy"]
    bb = next(a for a in black["attacks"] if a["name"] == "pgd10")["accuracy"]
    assert check["passed"] == (wb <= bb + 0.01)
    assert result_paths(target, "blackbox")[1].read_text().startswith("# Black Box Attack")


def test_resume_after_interruption_ends_identical(
    runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run"
    shutil.copytree(runs[0], target)
    options: dict[str, Any] = {"attacks": "fgsm,pgd10", "ensemble": "single", **COMMON, "limit": 60}
    reference = run_attack(target, **options)
    result_paths(target, "whitebox")[0].unlink()

    calls = {"n": 0}
    real = attack_core.evaluate_batch

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 2 * 5:  # 5 jobs per batch: die during the third batch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(attack_core, "evaluate_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        run_attack(target, **options)
    partial = result_paths(target, "whitebox")[2]
    assert json.loads(partial.read_text())["batches_done"] == 2
    assert not result_paths(target, "whitebox")[0].exists()
    monkeypatch.setattr(attack_core, "evaluate_batch", real)
    resumed = run_attack(target, **options)
    assert strip_seconds(resumed) == strip_seconds(reference)
    assert not partial.exists()


def test_partial_results_from_other_options_are_not_reused(runs: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "run"
    shutil.copytree(runs[0], target)
    partial = result_paths(target, "whitebox")[2]
    stale = {"fingerprint": {"eps": 0.5}, "batches_done": 1, "flags": {}, "seconds": {}}
    partial.write_text(json.dumps(stale))
    result = run_attack(target, attacks="clean", checks=False, **COMMON)
    assert result["attacks"][0]["samples"] == 40


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attacks": "pgd7"}, "unknown attack 'pgd7'"),
        ({"suite": "huge"}, "unknown attack suite 'huge'"),
        ({"ensemble": "all"}, "unknown ensemble 'all'"),
        ({"eps": "-1/255"}, "eps"),
        ({"eps": "8"}, "8/255"),
        ({"mode": "greybox"}, "unknown mode"),
        ({"mode": "blackbox"}, "needs --source"),
        ({"limit": 0}, "--limit"),
        ({"batch_size": 0}, "--batch-size"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_options_raise_user_input_error(
    runs: tuple[Path, Path], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(UserInputError, match=match):
        run_attack(runs[0], **{**COMMON, **kwargs})


def test_bad_runs_raise_user_input_error(runs: tuple[Path, Path], tmp_path: Path) -> None:
    target, source = runs
    with pytest.raises(UserInputError, match="does not exist"):
        run_attack(tmp_path / "nope", **COMMON)
    with pytest.raises(UserInputError, match="does not exist"):
        run_attack(target, mode="blackbox", source=tmp_path / "nope", **COMMON)
    with pytest.raises(UserInputError, match="same run"):
        run_attack(target, mode="blackbox", source=target, **COMMON)
    with pytest.raises(UserInputError, match="only used with --mode blackbox"):
        run_attack(target, source=source, **COMMON)
    # A source trained on another input shape is refused before any attack runs.
    other = tmp_path / "other"
    shutil.copytree(source, other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["in_channels"] = 2
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="in_channels"):
        run_attack(target, mode="blackbox", source=other, **COMMON)


def test_failed_check_is_printed_beside_its_number() -> None:
    from evrobust.pipelines.attack.pipeline import render_markdown

    failed = {"name": "large_eps", "passed": False, "detail": "accuracy 40.00% at eps 64/255 > 5.00%",
              "subject": "pgd10"}
    result = {
        "run": "runs/x", "mode": "whitebox", "source": None, "dataset": "cifar10", "arch": "vgg11",
        "defense": "sr_star", "ensemble": "single", "members": ["own"], "eps_text": "8/255", "samples": 10,
        "seed": 0, "checks": [failed],
        "attacks": [
            {"name": "clean", "label": "Clean", "in_table": True, "accuracy": 0.9, "members": {}},
            {"name": "pgd10", "label": "PGD10", "in_table": True, "accuracy": 0.5,
             "members": {"own": {"accuracy": 0.5, "cumulative": 0.5}}},
        ],
    }
    md = render_markdown(result)
    assert "| cifar10 | vgg11 | sr_star | 90.00 | 50.00 (check failed: large_eps) |" in md
    assert "- FAIL `large_eps` [pgd10]: accuracy 40.00% at eps 64/255 > 5.00%" in md


def test_member_table_per_member_list_noise_draws_beside_surrogates() -> None:
    """Noise is labelled by its draws, gradient attacks by their specs: one member table for each list."""
    from evrobust.pipelines.attack.pipeline import render_markdown

    draws = {f"draw{k}": {"accuracy": 0.9, "cumulative": 0.9 - 0.1 * k} for k in range(2)}
    specs = {"triangle:1": {"accuracy": 0.6, "cumulative": 0.6},
             "sigmoid:4": {"accuracy": 0.5, "cumulative": 0.4}}
    result = {
        "run": "runs/x", "mode": "whitebox", "source": None, "dataset": "digits", "arch": "vgg_small",
        "defense": "sr", "ensemble": "paper", "members": list(specs), "eps_text": "8/255", "samples": 10,
        "seed": 0, "checks": [],
        "attacks": [
            {"name": "noise", "label": "Noise", "in_table": True, "accuracy": 0.8, "members": draws},
            {"name": "pgd10", "label": "PGD10", "in_table": True, "accuracy": 0.4, "members": specs},
        ],
    }
    md = render_markdown(result)
    assert "| Attack | draw0 | draw1 |" in md and "| Noise | 90.00 | 80.00 |" in md
    assert "| Attack | triangle:1 | sigmoid:4 |" in md and "| PGD10 | 60.00 | 40.00 |" in md


@pytest.fixture(scope="module")
def frames_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on the embedded event-frame digits (digits-dvs: [T=4, 2, 20, 20] frames)."""
    root = tmp_path_factory.mktemp("attack-frames")
    config = TrainConfig(
        data="digits-dvs", data_dir=str(root / "data"), model="vgg_small", epochs=1, batch_size=32,
        lr=0.1, limit_train=320, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def test_event_frames_end_to_end_and_shape_mismatch(frames_run: Path, runs: tuple[Path, Path]) -> None:
    """Frames are attacked in normalised [0,1] units; a source trained on images is refused for them."""
    result = run_attack(frames_run, attacks="clean,fgsm", ensemble="paper", **{**COMMON, "limit": 16})
    by_name = {a["name"]: a for a in result["attacks"]}
    assert by_name["fgsm"]["samples"] == 16 and by_name["fgsm"]["accuracy"] <= by_name["clean"]["accuracy"]
    assert result["dataset"] == "digits-dvs"
    with pytest.raises(UserInputError, match="in_channels"):
        run_attack(frames_run, mode="blackbox", source=runs[0], **COMMON)
