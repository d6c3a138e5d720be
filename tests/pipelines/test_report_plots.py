"""Report figures from run directories: every supported plot drawn, valid PNGs, exact links, skips with notes.

The runs here are hand-made (``config.json``, attack / analysis JSON in the layouts ``evrobust attack`` and
``evrobust analyze`` write, ``metrics.jsonl``), so every expected number and file is known in advance.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import stats as sps
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.report.figures import paper_point
from evrobust.pipelines.report.pipeline import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEMBERS = ("triangle:1", "sigmoid:4", "atan:2", "rate")
EPS = [0.0, 8 / 255, 16 / 255, 32 / 255]


def _entry(name: str, accuracy: float, members: dict[str, float] | None = None) -> dict[str, Any]:
    cumulative, summary = 1.0, {}
    for member, own in (members or {}).items():
        cumulative = min(cumulative, own)
        summary[member] = {"accuracy": own, "cumulative": cumulative}
    return {
        "name": name,
        "label": name.upper(),
        "in_table": True,
        "eps": 8 / 255,
        "accuracy": accuracy,
        "samples": 40,
        "members": summary,
        "checks": [],
    }


def _cell(accuracy: float, n: int = 40) -> str:
    """An accuracy of ``n`` samples as the summary table prints it; the interval from scipy's beta."""
    k = round(accuracy * n)
    low = 0.0 if k == 0 else sps.beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else sps.beta.ppf(0.975, k + 1, n - k)
    return f"{100 * accuracy:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _attack(
    mode: str, accs: dict[str, float], members: dict[str, dict[str, float]] | None = None, **extra: Any
) -> dict[str, Any]:
    members = members or {}
    return {
        "format": "evrobust-attack",
        "mode": mode,
        "ensemble": "paper" if members else "single",
        "members": list(next(iter(members.values()), {})) or ["triangle:1"],
        "eps": 8 / 255,
        "eps_text": "8/255",
        "samples": 40,
        "attacks": [_entry(n, a, members.get(n)) for n, a in accs.items()],
        # Per-sample flags, as the attack_result schema requires: the first round(40 * accuracy) robust.
        "flags": {n: {"correct": "1" * round(40 * a) + "0" * (40 - round(40 * a))} for n, a in accs.items()},
        "checks": [],
        **extra,
    }


def _make_run(
    root: Path, dataset: str, defense: str, *, frames: bool = False, full: bool = True, strength: float = 0.0
) -> Path:
    """A run directory; ``strength`` in [0, 1] lifts every attacked accuracy (a stronger defense)."""
    run = root / dataset / defense
    run.mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps(
            {"format": "evrobust-run", "data": {"dataset": dataset}, "model": {"name": "vgg_small"},
             "defense": {"name": defense}}
        )
    )
    pgd = 0.1 + 0.6 * strength
    members = {"pgd10": {m: pgd + 0.05 * i for i, m in enumerate(MEMBERS)}} if full else None
    (run / "attack-whitebox.json").write_text(
        json.dumps(_attack("whitebox", {"clean": 0.9, "fgsm": pgd + 0.1, "pgd10": pgd}, members))
    )
    if not full:
        return run
    (run / "attack-blackbox.json").write_text(
        json.dumps(_attack("blackbox", {"clean": 0.9, "fgsm": 0.6, "pgd10": 0.4 + 0.2 * strength}))
    )
    curves = {
        "noise": [0.9, 0.9, 0.85, 0.8],
        "fgsm": [0.9, pgd + 0.2, pgd + 0.1, pgd],
        "pgd10": [0.9, pgd + 0.1, pgd, pgd / 2],
    }
    analyses: dict[str, dict[str, Any]] = {
        "vulnerability": {
            "eps": EPS,
            "eps_text": ["0", "8/255", "16/255", "32/255"],
            "ensemble": "single",
            "attacks": list(curves),
            "curves": curves,
            "checks": [],
        },
        "sparsity": {
            "targets": {"two_class": {"mean": {"l0": 64.0, "l1": 2.0 - strength, "l2": 0.4, "density": 1.0}}}
        },
        "distribution": {
            "edges": np.linspace(-1, 1, 12).tolist(),
            "counts": [0, 1, 3, 9, 30, 200, 30, 9, 3, 1, 0],
            "total": 286,
            "zero_count": 0,
            "abs_max": 1.0,
            "std": 0.1,
        },
    }
    shape = (4, 2, 6, 6) if frames else (8, 8)
    rng = np.random.default_rng(len(defense))
    heat: dict[str, Any] = {
        "indices": [0, 1],
        "labels": [3, 7],
        "input_kind": "frames" if frames else "images",
        "input_maps": [rng.random(shape[-2:]).tolist() for _ in range(2)],
        "grad_maps": [rng.random(shape[-2:]).tolist() for _ in range(2)],
    }
    if frames:
        heat["input_frames"] = [rng.integers(0, 3, shape).astype(float).tolist()]
        heat["grad_frames"] = [rng.normal(size=shape).tolist()]
    analyses["heatmap"] = heat
    for kind, body in analyses.items():
        doc = {
            "format": "evrobust-analysis",
            "kind": kind,
            "dataset": dataset,
            "defense": defense,
            "samples": 40,
            "clean_accuracy": 0.9,
            "checks": [],
            "plots": [],
            **body,
        }
        (run / f"analysis-{kind}.json").write_text(json.dumps(doc))
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"epoch": e, "loss": 2.0 / e, "val_acc": 50.0 + 10 * e, "train_acc": 40.0 + 10 * e})
            + "\n"
            for e in (1, 2, 3)
        )
    )
    return run


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def _links(report: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())


@pytest.fixture()
def full_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for dataset, frames in (("digits", False), ("digits-dvs", True)):
        for defense, strength in (("vanilla", 0.0), ("sr_star", 0.5)):
            _make_run(root, dataset, defense, frames=frames, strength=strength)
    return root


def test_report_draws_every_plot_its_runs_support(full_runs: Path) -> None:
    report = write_report([full_runs])
    assert report == full_runs / "report.md"
    expected = {
        "accuracy-vs-eps",
        "defense-comparison",
        "ensemble-members",
        "accuracy-scatter",
        "gradient-histogram-digits",
        "gradient-histogram-digits-dvs",
        "gradient-heatmaps-digits",
        "gradient-heatmaps-digits-dvs",
        "gradient-frames-digits-dvs",
        "training-curves",
    }
    drawn = {p.name for p in full_runs.glob("*.png")}
    assert drawn == {f"plot-{name}.png" for name in expected}
    for name in drawn:
        width, height = _png_size(full_runs / name)
        # Legible at 100 % zoom: not a thumbnail, not a poster.
        assert 350 <= width <= 3000 and 250 <= height <= 3000, (name, width, height)
        pixels = imread(full_runs / name)
        assert pixels.shape[:2] == (height, width) and float(pixels[..., :3].std()) > 0.02, name
    # Relative links, exactly the files on disk; every link is a file beside report.md.
    links = _links(report)
    assert sorted(links) == sorted(drawn) and len(links) == len(set(links))
    text = report.read_text()
    # The summary table and the two leading plots come first, the long per-attack tables after the plots.
    summary = text.index("| data | defense | clean |")
    assert summary < text.index("plot-accuracy-vs-eps.png") < text.index("plot-defense-comparison.png")
    assert text.index("plot-defense-comparison.png") < text.index("plot-ensemble-members.png")
    assert (
        text.index("plot-training-curves.png") < text.index("## Per-run results") < text.index("| attack |")
    )
    # White box: worst of FGSM 20 % and PGD10 10 % for vanilla; black box: PGD10 40 %; l1 2.0. Each
    # accuracy with its Clopper–Pearson interval over the 40 samples (files without ci95: from the counts).
    c = _cell
    assert f"| digits | vanilla | {c(0.9)} | {c(0.1)} (PGD10) | {c(0.4)} (PGD10) | 2 | none |" in text
    assert f"| digits-dvs | sr_star | {c(0.9)} | {c(0.4)} (PGD10) | {c(0.5)} (PGD10) | 1.5 | none |" in text
    assert "reliable" not in text.split("## Plots")[0].split("| data |")[1].split("\n")[0]
    assert "Plots not drawn" not in text
    # The curves reach 32/255, past the 10 x 2.55/255 PGD-10's fixed steps can travel: the caption says so.
    assert "past 25.5/255 it cannot reach the edge of the eps-ball" in text


def test_missing_data_skip_plots_with_notes_and_foreign_plots_stay(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _make_run(root, "digits", "vanilla", full=False)
    _make_run(root, "digits", "sr", full=False, strength=0.5)
    # Not in any report manifest: a file the report did not write is never deleted (tests/safeio covers the
    # removal of plots an earlier report listed).
    (root / "plot-accuracy-vs-eps.png").write_bytes(PNG_SIGNATURE)
    report = write_report([root])
    assert {p.name for p in root.glob("*.png")} == {"plot-accuracy-vs-eps.png", "plot-defense-comparison.png"}
    assert _links(report) == ["plot-defense-comparison.png"]
    text = report.read_text()
    notes = text.split("Plots not drawn:")[1]
    for needle in (
        "no run holds `analysis-vulnerability.json`",
        "more than one ensemble member",
        "fewer than two runs",
        "no `analysis-distribution.json`",
        "no `analysis-heatmap.json`",
        "no run holds `metrics.jsonl`",
    ):
        assert needle in notes, needle


def test_a_malformed_analysis_is_one_line_naming_the_file(full_runs: Path, tmp_path: Path) -> None:
    """The analysis schema refuses it before any plot is drawn (edges and counts must agree)."""
    root = tmp_path / "copy"
    shutil.copytree(full_runs, root)
    path = root / "digits" / "vanilla" / "analysis-distribution.json"
    doc = json.loads(path.read_text())
    doc["edges"] = doc["edges"][:3]  # edges and counts disagree
    path.write_text(json.dumps(doc))
    with pytest.raises(UserInputError, match=f"{path}: .*3 edges for 11 counts"):
        write_report([root])


def test_overestimate_key_adds_reliable_and_overestimate_columns(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = _make_run(root, "cifar10dvs", "sr_star", full=False)
    doc = _attack(
        "whitebox",
        {"clean": 0.8, "fgsm": 0.5, "pgd10": 0.3, "reliable": 0.225},
        overestimate={"paper": 0.30, "reliable": 0.225, "difference": 0.075},
    )
    (run / "attack-whitebox.json").write_text(json.dumps(doc))
    plain = _make_run(root, "cifar10dvs", "vanilla", full=False)
    text = write_report([root]).read_text()
    head = text.split("## Plots")[0]
    assert (
        "| data | defense | clean | white-box (worst attack) | black-box (worst attack) | reliable | "
        "overestimate (points) | grad l1 | failed masking checks |" in head
    )
    # The cascade is not a paper-protocol attack: the white-box column stays PGD10's 30 %; 30 - 22.5 = +7.5.
    c = _cell
    row = f"| cifar10dvs | sr_star | {c(0.8)} | {c(0.3)} (PGD10) | – | {c(0.225)} | +7.5 | – | none |"
    assert row in head
    assert f"| cifar10dvs | vanilla | {c(0.9)} | {c(0.1)} (PGD10) | – | – | – | – | none |" in head
    assert "overestimates robust accuracy by +7.5 points" in text
    assert plain.name == "vanilla"


def test_paper_points_come_from_the_published_tables() -> None:
    assert paper_point("cifar10dvs", "sr_star", "pgd10") == (61.2, "paper PGD50, SR*")  # Table 2
    assert paper_point("cifar10dvs", "vanilla", "fgsm") == (22.2, "paper FGSM, Vanilla")
    assert paper_point("cifar10", "vanilla", "noise") == (67.467, "paper noise, Vanilla")  # Table 4
    assert paper_point("cifar100", "at", "fgsm") == (19.07, "paper FGSM, AT")  # Table 3, AT only
    assert paper_point("cifar10", "at", "noise") is None  # Table 4 has no AT column
    assert paper_point("digits", "vanilla", "pgd10") is None


runner = CliRunner()


def test_cli_report_on_a_dir_without_runs_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main_app, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds neither a run" in lines[0]


def test_cli_report_on_runs_without_attack_results_is_one_line_exit_2(tmp_path: Path) -> None:
    for defense in ("vanilla", "sr"):
        run = tmp_path / "runs" / defense
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"format": "evrobust-run", "defense": {"name": defense}}))
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 1.0, "val_acc": 50.0}) + "\n")
    result = runner.invoke(main_app, ["report", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no attack results" in lines[0] and "evrobust attack" in lines[0]
    assert not (tmp_path / "runs" / "report.md").exists() and not list((tmp_path / "runs").glob("*.png"))
    # A run with analyses but no attack results, given by name, is refused the same way.
    (tmp_path / "runs" / "sr" / "analysis-sparsity.json").write_text(json.dumps({"kind": "sparsity"}))
    with pytest.raises(UserInputError, match="no attack results"):
        write_report([tmp_path / "runs" / "sr"])


def test_cli_report_on_a_torn_attack_json_is_one_line_exit_2(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "runs", "digits", "vanilla", full=False)
    (run / "attack-whitebox.json").write_text('{"mode": "whitebox", "attacks": [')
    for target in (run, tmp_path / "runs"):
        result = runner.invoke(main_app, ["report", str(target)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and f"{run / 'attack-whitebox.json'} is not valid JSON" in lines[0]
    assert not list((tmp_path / "runs").rglob("report.md"))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("attack-whitebox.json", '{"mode": 3, "attacks": "x"}', "field format: Field required"),
        ("attack-whitebox.json",
         '{"format": "evrobust-attack", "mode": 3, "samples": 4, "flags": {"clean": {"correct": "1111"}}, '
         '"attacks": []}',
         "field mode: Input should be 'whitebox' or 'blackbox'"),
        ("attack-whitebox.json",
         '{"format": "evrobust-attack", "mode": "whitebox", "ensemble": "paper", "eps_text": "8/255", '
         '"samples": 4, "flags": {"clean": {"correct": "1111"}}, "attacks": [{"name": 5}]}',
         "field attacks.0.name: Input should be a valid string"),
        ("attack-whitebox.json",
         '{"format": "evrobust-attack", "mode": "whitebox", "ensemble": "paper", "eps_text": "8/255", '
         '"samples": 4, "flags": {"pgd10": {"correct": "1111"}}, "attacks": '
         '[{"name": "pgd10", "label": "PGD10", "accuracy": "high"}]}',
         "field attacks.0.accuracy: Input should be a valid number"),
        ("config.json", '{"format": "evrobust-run", "model": 5}', "entry 'model' is not a JSON object"),
    ],
)
def test_wrong_typed_json_is_one_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    """Valid JSON of the wrong shape: one line naming the file and the field, exit 2, nothing written."""
    run = _make_run(tmp_path / "runs", "digits", "sr", full=False)
    (run / name).write_text(text)
    result = CliRunner().invoke(main_app, ["report", str(run)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(run / name) in lines[0] and expected in lines[0], result.stderr
    assert not (run / "report.md").exists()


def test_an_unconverged_reliable_number_is_marked_as_a_bound(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = _make_run(root, "cifar10", "sr_star", full=False)
    doc = _attack(
        "whitebox",
        {"clean": 0.8, "pgd10": 0.3, "reliable": 0.225},
        overestimate={"paper": 0.30, "reliable": 0.225, "difference": 0.075},
        reliable={"accuracy": 0.225, "n": 40, "converged": False, "doublings": []},
    )
    (run / "attack-whitebox.json").write_text(json.dumps(doc))
    head = write_report([root]).read_text().split("## Plots")[0]
    assert f"| ≤ {_cell(0.225)} (not converged) | +7.5 |" in head
