"""`run_attack --suite reliable`: the cascade after the paper protocol, the overestimate, bookkeeping, resume.

The registered ``reliable`` cascade is replaced here by the same stages with small budgets
(``small_reliable`` in conftest.py), so the test checks the bookkeeping, not the attack strength.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from scipy import stats as sps
from typer.testing import CliRunner

import evrobust.pipelines.attack.core as attack_core
import evrobust.pipelines.attack.pipeline as attack_pipeline
from evrobust.analysis.evaluate import flags_from_text
from evrobust.attacks import Cascade, ensemble_specs, member_name
from evrobust.attacks.registry import PAPER_PROTOCOL
from evrobust.pipelines.attack.pipeline import result_paths, run_attack
from evrobust.pipelines.cli.app import app as main_app

from .conftest import OPTIONS, strip_seconds


def test_reliable_suite_records_the_overestimate_and_who_broke_each_sample(
    run_dir: Path, tmp_path: Path, small_reliable: None
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = run_attack(run, **OPTIONS)
    assert json.loads(result_paths(run, "whitebox")[0].read_text()) == result
    by_name = {a["name"]: a for a in result["attacks"]}
    table = [a["name"] for a in result["attacks"] if a["in_table"]]
    assert table == ["clean", "fgsm", "pgd10", "pgd30", "pgd50", "apgd100", "reliable"]
    assert by_name["apgd100"]["settings"]["steps"] == 100

    # paper = lowest paper-protocol accuracy; reliable = the cascade's; difference = paper - reliable
    over = result["overestimate"]
    paper = min(by_name[n]["accuracy"] for n in table if n in PAPER_PROTOCOL)
    assert over["paper"] == paper and over["reliable"] == by_name["reliable"]["accuracy"]
    assert over["difference"] == pytest.approx(paper - over["reliable"])
    assert over["reliable"] <= over["paper"]

    # the difference is a count of its own: paper-protocol survivors the cascade broke, with an exact
    # Clopper–Pearson interval (scipy's beta quantiles, written out here)
    paper_key = over["paper_attack"]
    paper_alive = flags_from_text(result["flags"][paper_key]["correct"]) == 1
    reliable_alive = flags_from_text(result["flags"]["reliable"]["correct"]) == 1
    assert bool((reliable_alive <= paper_alive).all())
    k = int((paper_alive & ~reliable_alive).sum())
    assert over["difference_robust"] == k and over["difference"] == pytest.approx(k / 40)
    low = 0.0 if k == 0 else float(sps.beta.ppf(0.025, k, 40 - k + 1))
    high = 1.0 if k == 40 else float(sps.beta.ppf(0.975, k + 1, 40 - k))
    assert over["difference_ci95"] == pytest.approx([low, high], abs=1e-9)

    # reliable = the per-sample AND of every table attack and the cascade.
    flags = {k: flags_from_text(v["correct"]) for k, v in result["flags"].items()}
    worst = torch.stack([flags[n] == 1 for n in table]).all(0)
    assert torch.equal(flags["reliable"] == 1, worst)

    cascade = result["cascade"]
    broken_by = cascade["broken_by"]
    assert len(broken_by) == 40
    survivors_before = torch.stack([flags[n] == 1 for n in table if n != "reliable"]).all(0)
    assert cascade["entering"] == int(survivors_before.sum())
    for i, label in enumerate(broken_by):
        if label is None:
            assert bool(worst[i])
        elif label == "clean":
            assert int(flags["clean"][i]) == 0
        elif label.startswith("paper:"):
            name = label.split(":", 1)[1].split("/")[0]
            assert int(flags[name][i]) == 0 and bool(flags["clean"][i] == 1)
        else:
            assert bool(survivors_before[i]) and not bool(worst[i])
            member_flags = flags_from_text(result["flags"]["reliable"]["members"][label])
            assert int(member_flags[i]) == 0
    assert sum(s["broken"] for s in cascade["stages"]) == sum(
        1 for b in broken_by if b is not None and b != "clean" and not b.startswith("paper:")
    )
    names = {c["name"] for c in result["checks"] if c["subject"] == "reliable"}
    assert {"whitebox_le_square", "reliable_le_paper"} <= names
    markdown = result_paths(run, "whitebox")[1].read_text()
    assert "| Defense | Paper | Reliable | Overestimate |" in markdown
    assert "| apgd-ce | 2 |" in markdown


def test_reliable_suite_resumes_identically(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_reliable: None
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    options = {**OPTIONS, "checks": False}
    reference = run_attack(run, **options)
    result_paths(run, "whitebox")[0].unlink()
    calls = {"n": 0}
    real = Cascade.__call__

    def dying(self: Cascade, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # one cascade call per batch: die in the second batch
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Cascade, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run_attack(run, **options)
    assert json.loads(result_paths(run, "whitebox")[2].read_text())["batches_done"] == 1
    monkeypatch.setattr(Cascade, "__call__", real)
    assert strip_seconds(run_attack(run, **options)) == strip_seconds(reference)


def test_cli_accepts_the_reliable_suite(run_dir: Path, tmp_path: Path, small_reliable: None) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    args = ["attack", "--run", str(run), "--suite", "reliable", "--ensemble", "single", "--limit", "8"]
    result = CliRunner().invoke(main_app, [*args, "--device", "cpu", "--no-checks"])
    assert result.exit_code == 0, result.output
    assert "Overestimate" in result.output
    assert attack_pipeline.result_paths(run, "whitebox")[0].is_file()


def test_steps_and_queries_reach_the_attacks_that_take_them(run_dir: Path, tmp_path: Path) -> None:
    """``--steps``/``--queries`` set SA-PGD's iterations and Square's queries (recorded in the settings);
    a budget that no selected attack takes, or one below 1, is one line and exit code 2."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = run_attack(run, attacks="clean,sapgd,square,pgd10", limit=8, batch_size=8, device="cpu",
                        checks=False, steps=3, queries=7)
    settings = {a["name"]: a["settings"] for a in result["attacks"]}
    assert settings["sapgd"]["steps"] == 3 and settings["square"]["n_queries"] == 7
    assert settings["pgd10"]["steps"] == 10  # the budget is in its name
    runner = CliRunner()
    base = ["attack", "--run", str(run), "--limit", "8", "--device", "cpu", "--no-checks"]
    for extra, needle in (
        (["--suite", "paper", "--queries", "10"], "--queries applies to"),
        (["--attacks", "clean,pgd10", "--steps", "5"], "--steps applies to"),
        (["--suite", "reliable", "--steps", "0"], "--steps"),
        (["--suite", "reliable", "--queries", "0"], "--queries"),
    ):
        out = runner.invoke(main_app, [*base, *extra])
        assert out.exit_code == 2, (extra, out.output)
        assert needle in out.output and "Traceback" not in out.output, out.output


def test_the_reliable_suite_skips_the_members_its_apgd100_already_ran() -> None:
    specs = ensemble_specs("paper")
    jobs = attack_core.make_jobs(("clean", "apgd100", "reliable"), 8 / 255, 0, "whitebox", False, None, specs)
    cascade = jobs[-1].attack
    assert isinstance(cascade, Cascade)
    apgd_ce = [m for m in cascade.members if m.startswith("apgd-ce/")]
    # the wide set without the batch-coupled PDSG (22 members), less the paper's four that apgd100 ran
    assert len(apgd_ce) == len(ensemble_specs("wide")) - 1 - 4 == 18
    assert not {f"apgd-ce/{member_name(s)}" for s in specs} & set(apgd_ce)
    # With --steps the cascade's APGD-CE is another attack than APGD-CE 100: every member stays.
    budget = {"steps": 50, "queries": None}
    names = ("clean", "apgd100", "reliable")
    jobs = attack_core.make_jobs(names, 8 / 255, 0, "whitebox", False, budget, specs)
    kept = [m for m in jobs[-1].attack.members if m.startswith("apgd-ce/")]
    assert len(kept) == len(ensemble_specs("wide")) - 1 == 22
