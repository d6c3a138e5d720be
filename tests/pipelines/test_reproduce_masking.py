"""``reproduce masking``: the spec reuses Table 3's runs and attacks, varies SR's h, and runs end to end at
the tiny scale, stopping after a set number of steps and resuming to the same complete results."""

from __future__ import annotations

from pathlib import Path

import pytest

from evrobust.pipelines.leaderboard.spec import build_leaderboard_spec
from evrobust.pipelines.report.pipeline import cell_value
from evrobust.pipelines.reproduce import build_spec, execute, list_pipelines, load_results
from evrobust.pipelines.reproduce.experiments import MASKING_H
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.run_dir import read_metrics


def test_masking_is_listed_and_reuses_table3(tmp_path: Path) -> None:
    assert "masking" in list_pipelines()
    for scale in ("smoke", "paper"):
        spec, table3 = build_spec("masking", scale), build_spec("table3", scale)
        runs = {r.key: r for r in spec.runs}
        wrn = spec.runs[0].train["model"]
        sr = [r for r in spec.runs if r.train["defense"] == "sr" and r.train["model"] == wrn]
        assert sorted(r.train.get("h", 0.01) for r in sr) == sorted(MASKING_H)
        # h = 0.01 is Table 3's SR run itself: the same options, so the same directory (trained once)
        t3 = {r.train["defense"]: r for r in table3.runs if r.train["data"] == spec.runs[0].train["data"]}
        for defense in ("vanilla", "at", "sr", "sr_star"):
            assert runs[t3[defense].key].dirname == t3[defense].dirname
        assert "h" not in runs[t3["sr"].key].train
        # Table 3's runs come first (reused where that table ran), the new h after them, VGG-11 last
        assert [r.train["defense"] for r in spec.runs[:4]] == ["vanilla", "at", "sr", "sr_star"]
        assert [r.train["defense"] for r in spec.runs[-4:]] == ["vanilla", "at", "sr", "sr_star"]
        # VGG-11's runs are the leaderboard's of the same scale: one directory, trained once
        board = build_leaderboard_spec(None, scale, only="vanilla,at,sr,sr_star")
        assert [r.dirname for r in spec.runs[-4:]] == [r.dirname for r in board.runs.values()]
        assert all(r.train["model"] != spec.runs[0].train["model"] for r in spec.runs[-4:])
        for r in spec.runs:
            TrainConfig(**r.train).validate()
        # the paper-protocol attack is Table 3's (one cache entry); the reliable one ends with the cascade
        shared = {a.key: a for a in table3.attacks}
        paper = [a for a in spec.attacks if not a.key.endswith(":reliable")]
        assert len(paper) == len(spec.runs)
        assert [a for a in paper if a.key in shared] == [shared[f"{t3[d].key}:whitebox"]
                                                         for d in ("vanilla", "at", "sr", "sr_star")]
        reliable = [a for a in spec.attacks if a.key.endswith(":reliable")]
        assert all(a.attacks[-1] == "reliable" for a in reliable) and len(reliable) == len(spec.runs)
        assert {a.kind for a in spec.analyses} == {"landscape", "fidelity"}
        assert len(spec.tables[0].rows) == 11 and spec.tables[0].label_headers == ("Model", "Defense", "h")
        assert [row.labels[0] for row in spec.tables[0].rows] == ["WRN-16"] * 7 + ["VGG-11"] * 4
    assert build_spec("masking", "paper").attacks[1].budget == {}  # the reliable suite at its own budgets


def test_masking_runs_at_tiny_scale_stops_and_resumes(tmp_path: Path) -> None:
    spec = build_spec("masking", "tiny")
    out, data = tmp_path / "out", str(tmp_path / "data")
    path = execute(spec, out, data_dir=data, device="cpu", stop_after=2, report=False)
    partial = load_results(path)
    # two units of work: the first run's one epoch, then its first attack (steps follow as runs finish)
    assert partial["complete"] is False and list(partial["runs"]) == [spec.runs[0].key]
    assert list(partial["attacks"]) == [spec.attacks[0].key] and not partial["analyses"]
    first = Path(partial["runs"][spec.runs[0].key]["dir"])
    assert len(read_metrics(first)) == 1
    path = execute(spec, out, data_dir=data, device="cpu", resume=True)
    results = load_results(path)
    assert results["complete"] is True and results["pending"] == {"runs": [], "attacks": [], "analyses": []}
    assert len(read_metrics(first)) == 1  # resumed, not retrained
    table = results["spec"]["tables"][0]
    for row in table["rows"]:
        for header in ("Clean", "Reliable", "FD cosine", "flat at h"):
            value, _ = cell_value(results, row["cells"][header])
            assert value is not None, (row["labels"], header)
    for key, attack in results["attacks"].items():
        if key.endswith(":reliable"):
            over = attack["overestimate"]
            assert over["difference"] == pytest.approx(over["paper"] - over["reliable"])
    report = execute(spec, out, data_dir=data, device="cpu").parent / "report.md"
    text = report.read_text()
    assert "Paper protocol (its lowest accuracy) vs the reliable evaluation" in text
    assert "landscape.png" in text and (report.parent / "landscape.png").is_file()
