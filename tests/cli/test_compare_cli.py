"""`evrobust compare A B` and :mod:`evrobust.pipelines.common.paired`: paired counts and p-values against
scipy, the worst case over merged files, and the exit-2 contract for results on different samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.common.paired import (
    WORST_CASE,
    compare_attack_documents,
    load_attack_file,
    merge_attack_documents,
    robust_flags,
)

runner = CliRunner()


def _doc(defense: str, flags: dict[str, str], *, cascade: str | None = None, labels: str = "abc") -> dict:
    """A minimal attack result in the layout `evrobust attack` writes (per-sample flag strings)."""
    n = len(next(iter(flags.values())))
    document = {
        "format": "evrobust-attack",
        "version": 1,
        "dataset": "cifar10",
        "defense": defense,
        "eps": 8 / 255,
        "samples": n,
        "test_set": {"split": "test", "samples": n, "labels_sha256": labels},
        "attacks": [{"name": k, "in_table": True, "eps": 8 / 255} for k in flags],
        "flags": {k: {"name": k, "correct": v, "members": {}} for k, v in flags.items()},
    }
    if cascade:
        document["cascade"] = {"attack": cascade}
    return document


def _write(tmp: Path, name: str, document: dict) -> Path:
    path = tmp / name
    path.write_text(json.dumps(document))
    return path


# 20 samples: SR* survives PGD on 10, AT on 4; the reliable verdicts 6 and 2
SRSTAR = {"clean": "1" * 18 + "00", "pgd10": "1" * 10 + "0" * 10, "reliable": "1" * 6 + "0" * 14}
AT = {"clean": "1" * 19 + "0", "pgd10": "1111" + "0" * 16, "reliable": "0" * 18 + "11"}


def test_compare_counts_pvalues_and_verdict(tmp_path: Path) -> None:
    a = load_attack_file(_write(tmp_path, "a.json", _doc("sr_star", SRSTAR, cascade="reliable")))
    b = load_attack_file(_write(tmp_path, "b.json", _doc("at", AT, cascade="reliable")))
    result = compare_attack_documents(a, b, "SR*", "AT")
    rows = {r["attack"]: r for r in result["rows"]}
    assert set(rows) == {"clean", "pgd10", "reliable"}
    # PGD10: SR* robust on 0-9, AT on 0-3 -> 6 discordant, all one way
    pgd = rows["pgd10"]
    assert (pgd["a_only"], pgd["b_only"]) == (6, 0)
    assert pgd["p_value"] == pytest.approx(sps.binomtest(6, 6, 0.5).pvalue)
    assert pgd["a"]["ci95"] == pytest.approx([sps.beta.ppf(0.025, 10, 11), sps.beta.ppf(0.975, 11, 10)])
    # reliable: SR* on 0-5, AT on 18-19: 6 vs 2 discordant, not significant
    rel = rows["reliable"]
    assert rel["headline"] and (rel["a_only"], rel["b_only"]) == (6, 2)
    assert rel["p_value"] == pytest.approx(sps.binomtest(2, 8, 0.5).pvalue)
    assert result["verdict"].startswith("not established (p = 0.289)")


def test_worst_case_headline_without_a_cascade(tmp_path: Path) -> None:
    a = _doc("sr", {"pgd10": "1100", "square": "1010"})
    b = _doc("at", {"pgd10": "0000", "square": "0000"})
    assert robust_flags(a, WORST_CASE) == [True, False, False, False]
    result = compare_attack_documents(a, b, "SR", "AT")
    head = next(r for r in result["rows"] if r["headline"])
    assert head["attack"] == WORST_CASE and head["a"]["robust"] == 1


def test_merge_is_the_per_sample_worst_case_over_files(tmp_path: Path) -> None:
    base = _doc("sr_star", {"pgd10": "11110000", "reliable": "11100000"}, cascade="reliable")
    mine = _doc("sr_star", {"my-attack": "01111111"})
    merged = merge_attack_documents([base, mine])
    assert robust_flags(merged, WORST_CASE) == [False, True, True] + [False] * 5
    assert "my-attack" in merged["flags"] and merged["merged_from"]
    # a user's attack that broke one more sample moves the verdict against an unchanged other model
    other = _doc("at", {"pgd10": "10000000", "reliable": "10000000"}, cascade="reliable")
    head = next(r for r in compare_attack_documents(merged, other)["rows"] if r["headline"])
    assert head["a"]["robust"] == 2


def test_different_samples_are_refused(tmp_path: Path) -> None:
    a = _doc("sr", {"pgd10": "1100"})
    with pytest.raises(UserInputError, match="different samples"):
        compare_attack_documents(a, _doc("at", {"pgd10": "11000"}))
    with pytest.raises(UserInputError, match="different samples"):
        compare_attack_documents(a, _doc("at", {"pgd10": "1100"}, labels="xyz"))


def test_cli_prints_table_and_writes_json(tmp_path: Path) -> None:
    pa = _write(tmp_path, "a.json", _doc("sr_star", SRSTAR, cascade="reliable"))
    pb = _write(tmp_path, "b.json", _doc("at", AT, cascade="reliable"))
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", str(pa), str(pb), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| **reliable** | 30.0 [11.9, 54.3] | 10.0 [1.2, 31.7] | 6 | 2 |" in result.output
    assert "Verdict (reliable vs reliable): not established (p = 0.289)" in result.output
    saved = json.loads(out.read_text())
    assert saved["format"] == "evrobust-compare" and saved["a"]["name"] == "sr_star"


def test_cli_run_directory_and_add_option(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write(run, "attack-whitebox.json", _doc("sr_star", {"pgd10": "1111"}))
    extra = _write(tmp_path, "mine.json", _doc("sr_star", {"my-attack": "0111"}))
    other = _write(tmp_path, "b.json", _doc("at", {"pgd10": "1111"}))
    result = runner.invoke(app, ["compare", str(run), str(other), "--add-a", str(extra)])
    assert result.exit_code == 0, result.output
    assert "| **worst-case** | 75.0" in result.output


def _bad_pairs(t: Path) -> list[tuple[Path, Path, str]]:
    """(A, B, a word of the error line): results on other samples, a missing file, not a result, not JSON."""
    b3 = _write(t, "b3.json", _doc("at", {"p": "111"}))
    b1 = _write(t, "b1.json", _doc("at", {"p": "1"}))
    (t / "broken.json").write_text("{not json")
    return [
        (_write(t, "a2.json", _doc("sr", {"p": "11"})), b3, "different samples"),
        (t / "missing.json", b3, "does not exist"),
        (_write(t, "other.json", {"format": "x"}), b1, "format"),
        (t / "broken.json", b1, "not valid JSON"),
    ]


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for a, b, word in _bad_pairs(tmp_path):
        result = runner.invoke(app, ["compare", str(a), str(b)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and word in lines[0], result.output
    b1 = str(tmp_path / "b1.json")
    result = runner.invoke(app, ["compare", b1, b1, "--mode", "x"])
    assert result.exit_code == 2 and "unknown mode" in result.output


def test_cli_refuses_damaged_flag_strings(tmp_path: Path) -> None:
    bad = _doc("sr", {"p": "11"})
    bad["flags"]["p"]["correct"] = "1x"
    a = _write(tmp_path, "a.json", bad)
    b = _write(tmp_path, "b.json", _doc("at", {"p": "11"}))
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2 and "characters other than" in result.output


def test_an_unconverged_side_is_named_in_the_output(tmp_path: Path) -> None:
    a = _doc("sr_star", SRSTAR, cascade="reliable")
    a["reliable"] = {"accuracy": 0.3, "converged": False}
    pa = _write(tmp_path, "a.json", a)
    pb = _write(tmp_path, "b.json", _doc("at", AT, cascade="reliable"))
    result = runner.invoke(app, ["compare", str(pa), str(pb)])
    assert result.exit_code == 0, result.output
    assert "sr_star's reliable number did not converge" in result.output
    assert "at's reliable number" not in result.output
