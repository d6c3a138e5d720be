"""The convergence certificate: the doubling rule by hand, the doubled budgets, the per-sample AND with the
cascade, the JSON and markdown it writes, and a kill during the certificate that resumes identically."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import evrobust.pipelines.attack.core as attack_core
from evrobust.attacks import APGD, SAPGD, Cascade, Square, Stage
from evrobust.attacks.cascade import cascade_member_seed, reliable_cascade
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.certificate import (
    check_max_doublings,
    doubled_cascade,
    needs_another_doubling,
    threshold,
)
from evrobust.pipelines.attack.pipeline import result_paths, run_attack
from evrobust.pipelines.cli.app import app as main_app

from .conftest import OPTIONS, strip_seconds


def test_threshold_and_doubling_rule_by_hand() -> None:
    assert threshold(40) == 1.0 and threshold(200) == 1.0 and threshold(1017) == pytest.approx(5.085)
    # 40 samples: a doubling that breaks 2 (> 1) asks for another, unless it was the last allowed
    assert needs_another_doubling(2, 40, 1, 3) and needs_another_doubling(2, 40, 2, 3)
    assert not needs_another_doubling(2, 40, 3, 3)
    assert not needs_another_doubling(1, 40, 1, 3)  # exactly the threshold: converged
    # 1,017 samples: 5 broken is within 0.5 %, 6 is not
    assert not needs_another_doubling(5, 1017, 1, 3) and needs_another_doubling(6, 1017, 1, 3)


def test_doubled_cascade_doubles_the_strongest_stages_with_new_starts() -> None:
    cascade = reliable_cascade(8 / 255, seed=3, ensemble="paper", steps=10, n_queries=20)
    x4 = doubled_cascade(cascade, 2)
    assert [s.name for s in x4.stages] == ["x4/sapgd", "x4/square"]
    sapgd, square = (s.attack for s in x4.stages)
    assert isinstance(sapgd, SAPGD) and sapgd.steps == 40
    assert isinstance(square, Square) and square.n_queries == 80
    assert square.p_inits == (0.8, 0.3) and square.warm_start and square.accept_ties
    # new random starts: no member of the doubled cascade shares a seed with one of the cascade
    old = {cascade_member_seed(0, m) for m in cascade.members}
    assert not old & {cascade_member_seed(0, m) for m in x4.members}
    with pytest.raises(UserInputError, match="SA-PGD or a Square"):
        doubled_cascade(Cascade([Stage("apgd-ce", APGD(0.1, steps=1), ("triangle:1",))]), 1)


@pytest.mark.parametrize("bad", [-1, 9, 1.5, True, "3"])
def test_max_doublings_is_checked(bad: object) -> None:
    with pytest.raises(UserInputError, match="--max-doublings"):
        check_max_doublings(bad)


def test_certificate_joins_the_verdict_and_is_recorded(
    run_dir: Path, tmp_path: Path, small_reliable: None, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with caplog.at_level(logging.INFO, logger="evrobust.pipelines.attack.certificate"):
        result = run_attack(run, **OPTIONS, max_doublings=2)
    reliable = result["reliable"]
    n = result["samples"]
    doublings = reliable["doublings"]
    assert 1 <= len(doublings) <= 2 and reliable["max_doublings"] == 2
    assert [d["factor"] for d in doublings] == [2 ** (i + 1) for i in range(len(doublings))]
    # another doubling ran only where the previous one broke more than the threshold
    for d in doublings[:-1]:
        assert d["broke"] > threshold(n)
    assert reliable["converged"] == (doublings[-1]["broke"] <= threshold(n))
    accuracies = [d["accuracy_after"] for d in doublings]
    assert accuracies == sorted(accuracies, reverse=True)
    entry = next(a for a in result["attacks"] if a["name"] == "reliable")
    assert entry["accuracy"] == pytest.approx(accuracies[-1]) == pytest.approx(reliable["accuracy"])
    assert entry["converged"] == reliable["converged"]
    # the verdict is the per-sample AND over every attack that ran: no sample robust that any attack broke
    flags = result["flags"]
    verdict = flags["reliable"]["correct"]
    for a in result["attacks"]:
        if a["in_table"] and a["eps"] == result["eps"]:
            other = flags[a["name"]]["correct"]
            assert all(not (v == "1" and o == "0") for v, o in zip(verdict, other, strict=True)), a["name"]
    # what the doublings broke is named per sample, and adds up
    broken_by_doubling = [b for b in result["cascade"]["broken_by"] if b and b.startswith("x")]
    assert len(broken_by_doubling) == sum(d["broke"] for d in doublings)
    # every batch of every doubling says how far it is; the last line of a doubling has its total
    total = -(-n // OPTIONS["batch_size"])
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("certificate x")]
    assert len(progress) == total * len(doublings)
    for i, d in enumerate(doublings):
        last = progress[(i + 1) * total - 1]
        assert last == (f"certificate x{d['factor']}: batch {total}/{total}, {d['broke']} broken in this "
                        "doubling so far")
    # where the time went: the cascade per stage, the certificate, the indicators (wall clock, >= 0)
    cost = reliable["seconds"]
    assert set(cost) == {"cascade", "stages", "certificate", "indicators"}
    assert set(cost["stages"]) == {s["name"] for s in result["cascade"]["stages"]}
    totals = (cost["cascade"], cost["certificate"], cost["indicators"], *cost["stages"].values())
    assert all(v >= 0 for v in totals)
    assert sum(cost["stages"].values()) <= cost["cascade"] + 1e-6  # the stages run inside the cascade's time
    markdown = result_paths(run, "whitebox")[1].read_text()
    assert "Convergence certificate:" in markdown and "| x2 |" in markdown
    assert "Cost of the reliable evaluation (wall clock): cascade " in markdown
    if not reliable["converged"]:
        assert "≤ " in markdown and "(not converged)" in markdown


def test_a_kill_during_the_certificate_resumes_identically(
    run_dir: Path, tmp_path: Path, small_reliable: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference_run = tmp_path / "reference"
    shutil.copytree(run_dir, reference_run)
    reference = run_attack(reference_run, **OPTIONS, max_doublings=1)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    real = attack_core.run_certificate

    def dying(*args: Any) -> Any:
        save = args[-1]

        def save_then_die(progress: dict[str, Any]) -> None:
            save(progress)  # the certificate's first batch is on disk; the process dies before the second
            raise KeyboardInterrupt

        return real(*args[:-1], save_then_die)

    monkeypatch.setattr(attack_core, "run_certificate", dying)
    with pytest.raises(KeyboardInterrupt):
        run_attack(run, **OPTIONS, max_doublings=1)
    partial = json.loads(result_paths(run, "whitebox")[2].read_text())
    assert partial["certificate"]["batches_done"] == 1 and partial["batches_done"] == 2
    monkeypatch.setattr(attack_core, "run_certificate", real)
    resumed = run_attack(run, **OPTIONS, max_doublings=1)
    assert strip_seconds(resumed) | {"run": None} == strip_seconds(reference) | {"run": None}


def test_cli_max_doublings_bad_input_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    base = ["attack", "--run", str(run_dir), "--limit", "8", "--device", "cpu", "--no-checks"]
    runner = CliRunner()
    for extra, needle in (
        (["--suite", "reliable", "--max-doublings", "-1"], "--max-doublings"),
        (["--suite", "paper", "--max-doublings", "2"], "certifies a cascade"),
    ):
        out = runner.invoke(main_app, [*base, *extra])
        assert out.exit_code == 2, (extra, out.output)
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], out.output
    assert not result_paths(run_dir, "whitebox")[2].exists()


def test_reliable_runs_record_the_attack_failure_indicators(
    run_dir: Path, tmp_path: Path, small_reliable: None
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = run_attack(run, **OPTIONS, max_doublings=1)
    indicators = {i["name"]: i for i in result["reliable"]["indicators"]}
    assert {"unbounded_eps/pgd", "unbounded_eps/square"} <= set(indicators)
    # every gradient stage but APGD-T (two classes) and Square face the binarization test
    assert {"binarization/apgd-ce", "binarization/sapgd", "binarization/square"} <= set(indicators)
    assert "binarization/apgd-t" not in indicators
    assert {"loss_plateau/apgd-ce", "loss_plateau/sapgd", "loss_plateau/apgd-t"} <= set(indicators)
    for ind in indicators.values():
        assert ind["passed"] in (True, False, None) and isinstance(ind["detail"], str)
        if ind["passed"] is False:
            assert ind["remedy"], ind
    # at eps = 1 every correctly classified sample is breakable: PGD reaches 0 % on this plain SNN
    assert indicators["unbounded_eps/pgd"]["value"] == 0.0 and indicators["unbounded_eps/pgd"]["passed"]
    fidelity = result["reliable"]["gradient_fidelity"]
    assert fidelity["samples"] == 40 and len(fidelity["zero_share"]) == 40
    assert all(0.0 <= v <= 1.0 for v in fidelity["zero_share"])
    assert "Attack-failure indicators" in result_paths(run, "whitebox")[1].read_text()
