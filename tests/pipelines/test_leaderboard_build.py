"""``evrobust leaderboard`` end to end at the ``tiny`` scale of ``reproduce`` on the embedded digits: three
entries, the outputs, a byte-identical rebuild, a stopped-and-resumed build, ``--add`` accepted and refused,
and a non-converged external entry marked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import evrobust.pipelines.train.pipeline as train_pipeline
from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.leaderboard import build_leaderboard
from evrobust.pipelines.leaderboard.build import OUTPUT_FILES
from evrobust.safeio import read_json

ONLY = "vanilla,sr,trades"
runner = CliRunner()


def _build(out: Path, data: Path, **kwargs: Any) -> Path | None:
    return build_leaderboard("digits", "tiny", out=out, only=ONLY, data_dir=str(data), device="cpu", **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    """``(leaderboard.json, data dir, bytes of every output file right after the first build)``."""
    root = tmp_path_factory.mktemp("leaderboard")
    path = _build(root / "out", root / "data")
    assert path is not None
    return path, root / "data", {name: (path.parent / name).read_bytes() for name in OUTPUT_FILES}


def _table_section(markdown: str) -> list[str]:
    """The ranked table's rows (no costs, no paths in them)."""
    return [line for line in markdown.split("## Paired tests")[0].splitlines() if line.startswith("| ")]


def _ranking(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["key"], e["rank"], e["group"], e["clean_acc"], e["robust_acc"], e["robust"], e["robust_ci95"],
             e["unreliable"], e["card"]["converged"]) for e in document["entries"]]


def test_writes_the_three_outputs_with_one_protocol(built: tuple[Path, Path, dict[str, bytes]]) -> None:
    path, _, files = built
    assert path.parent.name == "leaderboard-digits-tiny-vanilla_sr_trades"
    assert all(files[name] for name in OUTPUT_FILES)
    assert files["leaderboard-robust.png"][:8] == b"\x89PNG\r\n\x1a\n"
    document = read_json(path, "leaderboard")  # the schema reads it back
    assert document["complete"] is True
    assert {e["key"] for e in document["entries"]} == {"vanilla", "sr", "trades"}
    # tiny scale: its first 8 test images, its cascade budget with the certificate switched on
    assert document["protocol"]["test_set"]["samples"] == 8
    assert document["protocol"]["budget"] == {"steps": 5, "queries": 40, "max_doublings": 1}
    assert len(document["pairs"]) == 3
    for e in document["entries"]:
        assert e["n"] == 8 and e["attack_suite"] == "reliable" and e["T"] == 2 and e["reported"] is None
        card = e["card"]
        assert card["doublings"] == 1 and card["converged"] in (True, False)
        assert card["train_command"].startswith("evrobust train --data digits --model vgg_small --width "
                                                f"0.25 --defense {e['key']} --epochs 1 --seed 0 --T 2")
        assert card["attack_command"].endswith("--suite reliable --eps 8/255 --ensemble paper --limit 8 "
                                               "--batch-size 8 --steps 5 --queries 40 --max-doublings 1")
        assert card["training_cost"]["epochs"] == 1 and card["evaluation_cost"]["seconds"] > 0
        # the robust number is the reliable verdict of the attack document the run holds
        attack = json.loads((Path(card["run"]) / "attack-whitebox.json").read_text())
        assert e["robust"] == attack["reliable"]["robust"]
        assert e["robust_acc"] == round(100 * attack["reliable"]["accuracy"], 2)
    vanilla = next(e for e in document["entries"] if e["key"] == "vanilla")["card"]["training_cost"]
    for e in document["entries"]:
        cost = e["card"]["training_cost"]
        assert cost["vanilla_s_per_epoch"] == vanilla["s_per_epoch"]
        assert cost["vs_vanilla"] == pytest.approx(cost["s_per_epoch"] / vanilla["s_per_epoch"])
    sr = next(e for e in document["entries"] if e["key"] == "sr")
    assert sr["card"]["settings"] == {"lam": 0.01, "h": 0.01, "penalty": "l2sq"}
    markdown = (path.parent / "leaderboard.md").read_text()
    assert "## Entry cards" in markdown and "(1.00× vanilla's" in markdown


def test_a_rebuild_from_the_same_runs_is_byte_identical(built: tuple[Path, Path, dict[str, bytes]]) -> None:
    path, data, files = built
    again = _build(path.parent.parent, data)
    assert again == path
    for name in OUTPUT_FILES:
        assert (path.parent / name).read_bytes() == files[name], name


def test_stopped_then_resumed_gives_the_same_table(built: tuple[Path, Path, dict[str, bytes]],
                                                   tmp_path: Path) -> None:
    path, data, files = built
    out = tmp_path / "out"
    assert _build(out, data, stop_after=1) is None  # the vanilla run's one epoch, then stop
    assert not (out / path.parent.name).exists(), "a stopped build writes no table"
    assert len(list((out / "runs").iterdir())) == 1
    # a kill inside the next run's first epoch leaves its config without metrics: refused without --resume
    sr = next(e for e in json.loads(files["leaderboard.json"])["entries"] if e["key"] == "sr")
    run = out / "runs" / Path(sr["card"]["run"]).name
    shutil.copytree(next((out / "runs").iterdir()), run)
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(UserInputError, match="partly trained"):
        _build(out, data)
    shutil.rmtree(run)
    resumed = _build(out, data, resume=True)
    assert resumed is not None
    first, second = json.loads(files["leaderboard.json"]), read_json(resumed, "leaderboard")
    assert _ranking(second) == _ranking(first)
    assert second["pairs"] == first["pairs"] and second["pareto_front"] == first["pareto_front"]
    assert _table_section(resumed.with_suffix(".md").read_text()) == _table_section(
        files["leaderboard.md"].decode())


def test_runs_from_copies_every_run_and_gives_the_same_table(built: tuple[Path, Path, dict[str, bytes]],
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path, data, files = built

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("--runs-from must copy the completed runs, not train them")

    monkeypatch.setattr(train_pipeline, "train", forbidden)
    copied = _build(tmp_path / "out", data, runs_from=[str(path.parent.parent)])
    assert copied is not None
    assert _ranking(read_json(copied, "leaderboard")) == _ranking(json.loads(files["leaderboard.json"]))
    assert sorted(p.name for p in (tmp_path / "out" / "runs").iterdir()) == sorted(
        p.name for p in (path.parent.parent / "runs").iterdir())


def _external(built: tuple[Path, Path, dict[str, bytes]], tmp_path: Path, name: str) -> Path:
    """A copy of the vanilla entry's run directory, as an external run."""
    document = json.loads(built[2]["leaderboard.json"])
    run = Path(next(e for e in document["entries"] if e["key"] == "vanilla")["card"]["run"])
    target = tmp_path / name
    target.mkdir()
    for file in ("attack-whitebox.json", "config.json", "metrics.jsonl"):
        shutil.copy(run / file, target / file)
    return target


def test_add_puts_a_matching_run_on_the_table(built: tuple[Path, Path, dict[str, bytes]],
                                              tmp_path: Path) -> None:
    ext = _external(built, tmp_path, "mine")
    out = tmp_path / "out"
    shutil.copytree(built[0].parent.parent / "runs", out / "runs")  # trained runs reused, re-evaluated here
    path = _build(out, built[1], add=[str(ext)])
    document = read_json(path, "leaderboard")
    added = next(e for e in document["entries"] if e["key"] == "add:mine")
    vanilla = next(e for e in document["entries"] if e["key"] == "vanilla")
    assert added["external"] is True and added["name"] == "mine"
    assert added["robust"] == vanilla["robust"] and added["card"]["attack_command"].startswith(
        f"evrobust attack --run {ext} --suite reliable --eps 8/255 --ensemble paper --limit 8")
    assert added["card"]["train_command"].endswith(f"--out {ext}")
    # the same flags as the vanilla entry: the table cannot tell them apart
    assert added["unreliable"] == vanilla["unreliable"]
    if not added["unreliable"]:
        pair = next(t for t in document["pairs"] if {t["a"], t["b"]} == {"vanilla", "add:mine"})
        assert (pair["a_only"], pair["b_only"], pair["separated"]) == (0, 0, False)
        assert added["group"] == vanilla["group"] and added["rank"] == vanilla["rank"]


def test_a_non_converged_external_run_is_marked_and_not_ranked(built: tuple[Path, Path, dict[str, bytes]],
                                                               tmp_path: Path) -> None:
    ext = _external(built, tmp_path, "upper")
    attack = json.loads((ext / "attack-whitebox.json").read_text())
    attack["reliable"]["converged"] = False
    (ext / "attack-whitebox.json").write_text(json.dumps(attack))
    out = tmp_path / "out"
    shutil.copytree(built[0].parent.parent / "runs", out / "runs")
    path = _build(out, built[1], add=[str(ext)])
    document = read_json(path, "leaderboard")
    added = next(e for e in document["entries"] if e["key"] == "add:upper")
    assert added["unreliable"] is True and added["rank"] is None and added["group"] is None
    ranked = [i for i, e in enumerate(document["entries"]) if e["rank"] is not None]
    assert document["entries"].index(added) > max(ranked, default=-1)
    assert "add:upper" not in {k for t in document["pairs"] for k in (t["a"], t["b"])}
    markdown = path.with_suffix(".md").read_text()
    assert "| – | upper |" in markdown and "(not converged) [^" in markdown
    assert "not converged: doubling the budget still broke samples" in markdown


def test_add_on_other_test_samples_is_refused_with_one_line(built: tuple[Path, Path, dict[str, bytes]],
                                                            tmp_path: Path) -> None:
    ext = _external(built, tmp_path, "other")
    attack = json.loads((ext / "attack-whitebox.json").read_text())
    attack["test_set"]["labels_sha256"] = "0" * 64
    (ext / "attack-whitebox.json").write_text(json.dumps(attack))
    out = tmp_path / "out"
    base = ["leaderboard", "--scale", "tiny", "--only", ONLY, "--out", str(out), "--data-dir", str(built[1]),
            "--device", "cpu"]
    for extra, needle in ((["--add", str(ext)], "other test samples than the table"),
                          (["--add", str(_external(built, tmp_path, "eight")), "--limit", "4"],
                           "evaluated on 8 test samples, the table on 4")):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], result.output
        assert not out.exists(), "nothing is trained or written before --add is checked"
