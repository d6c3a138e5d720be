"""``evrobust reproduce ... --only TEXT``: a pipeline narrowed to some of its runs, its rows never
half-filled, its runs shared with the full pipelines under the same ``--out``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evrobust.pipelines.train.pipeline as train_pipeline
from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.reproduce import build_spec, load_results, run_reproduction, select_runs


def test_only_wrn16_keeps_the_wrn_rows_of_table1_and_nothing_of_vgg() -> None:
    full = build_spec("table1", "paper")
    part = select_runs(full, "wrn16")
    assert part.name == "table1-wrn16"
    # Two WRN-16 groups (CIFAR-10, CIFAR-100), five runs each: vanilla, its seed-1 black-box source, SR*,
    # AT and RAT.
    defenses = ("vanilla", "vanilla-s1", "sr_star", "at", "rat")
    assert sorted(r.key for r in part.runs) == sorted(
        f"{d}-wrn16-{x}" for d in ("cifar10", "cifar100") for x in defenses
    )
    assert all(r in full.runs for r in part.runs), "the runs are the full pipeline's: same directories"
    (table,) = part.tables
    assert [row.labels for row in table.rows] == [
        row.labels for row in full.tables[0].rows if row.labels[1] == "WRN-16"
    ]
    assert len(table.rows) == 8 and table.headers == full.tables[0].headers
    # White and black box on each of the four defenses of each group.
    assert len(part.attacks) == 16 and all("wrn16" in a.run and "wrn16" in (a.source or "wrn16")
                                           for a in part.attacks)
    assert part.notes[-1].startswith("Selection: --only wrn16 (10 of 15 runs")


def test_a_row_whose_black_box_source_is_left_out_is_dropped_whole() -> None:
    full = build_spec("table1", "paper")
    part = select_runs(full, "sr_star")
    # SR*'s white-box attacks are kept, but every SR* row also holds black-box columns crafted on the vanilla
    # seed-1 source, which is not selected: no row can be filled, so no table is shown half-empty.
    assert {a.mode for a in part.attacks} == {"whitebox"}
    assert part.tables == ()
    vanilla = select_runs(full, "vanilla")
    (table,) = vanilla.tables
    assert [row.labels[2] for row in table.rows] == ["Vanilla"] * 3


def test_analyses_follow_their_run() -> None:
    part = select_runs(build_spec("fig4", "paper"), "cifar100-wrn16-at")
    assert [a.key for a in part.analyses] == ["cifar100-wrn16-at:distribution"]


@pytest.mark.parametrize(("text", "needle"), [
    ("resnet", "--only 'resnet' matches no run of table3; its runs are: cifar10-wrn16-vanilla, "),
    ("  ", "--only needs a non-empty text"),
])
def test_a_text_matching_nothing_is_one_line(text: str, needle: str) -> None:
    with pytest.raises(UserInputError, match="^" + needle.replace("*", r"\*")):
        select_runs(build_spec("table3", "paper"), text)


def test_cli_only_matching_nothing_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main_app, ["reproduce", "table3", "--scale", "tiny", "--only", "resnet",
                                           "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "matches no run of table3" in lines[0], result.output
    assert not any(tmp_path.iterdir())


def test_only_reuses_the_runs_another_pipeline_trained(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Table 3 trains the wrn_small vanilla / AT / SR / SR* runs; Table 1 narrowed to wrn_small then trains
    only what Table 3 lacks (the seed-1 source and RAT), fills its WRN rows, and leaves table1/ untouched."""
    out, data_dir = tmp_path / "out", str(tmp_path / "data")
    run_reproduction("table3", scale="tiny", out=out, data_dir=data_dir, device="cpu", report=False)
    trained: list[str] = []
    real_train = train_pipeline.train

    def counting(config):  # noqa: ANN001, ANN202
        trained.append(Path(config.out).name)
        return real_train(config)

    monkeypatch.setattr(train_pipeline, "train", counting)
    result = CliRunner().invoke(main_app, ["reproduce", "table1", "--scale", "tiny", "--only", "wrn_small",
                                           "--out", str(out), "--data-dir", data_dir, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert sorted(name.rsplit("-", 1)[0] for name in trained) == ["digits-wrn_small-rat",
                                                                  "digits-wrn_small-vanilla-s1"]
    document = load_results(out / "table1-wrn_small")
    assert document["complete"] and not (out / "table1").exists()
    (table,) = document["spec"]["tables"]
    assert [row["labels"][1] for row in table["rows"]] == ["wrn_small (~WRN-16)"] * 4
    shared = load_results(out / "table3")["runs"]["digits-wrn_small-sr_star"]["dir"]
    assert document["runs"]["digits-wrn_small-sr_star"]["dir"] == shared
    report = (out / "table1-wrn_small" / "report.md").read_text()
    assert "only the runs matching 'wrn_small'" in report
    written = json.loads((out / "table1-wrn_small" / "results.json").read_text())
    assert written["spec"]["name"] == "table1-wrn_small"
