"""The leaderboard's ranking on hand-made per-sample flags: exact McNemar p-values checked against
``scipy.stats.binomtest``, Holm's adjustment against a direct implementation, the grouping rule, the Pareto
front; and the table's marking of an entry whose number did not converge."""

from __future__ import annotations

import subprocess
import sys
from itertools import combinations

import pytest
from scipy.stats import binomtest

from evrobust.errors import UserInputError
from evrobust.pipelines.leaderboard.ranking import (
    group_ranks,
    holm_adjust,
    pair_tests,
    pareto_front,
    rank_label,
)
from evrobust.pipelines.leaderboard.render import render_markdown
from evrobust.pipelines.leaderboard.table import assemble
from evrobust.safeio.schemas import validate

N = 40


def robust_on(first: int) -> list[bool]:
    """Flags robust on samples ``0 .. first - 1`` of :data:`N` (nested sets: discordance is one-sided)."""
    return [i < first for i in range(N)]


def reference_p(a: list[bool], b: list[bool]) -> float:
    """Exact McNemar p-value computed independently: a binomial test on the discordant samples."""
    a_only = sum(1 for u, v in zip(a, b, strict=True) if u and not v)
    b_only = sum(1 for u, v in zip(a, b, strict=True) if v and not u)
    if a_only + b_only == 0:
        return 1.0
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def reference_holm(p: list[float]) -> list[float]:
    """Holm by the textbook: sort, multiply the j-th smallest by (m - j + 1), running maximum, cap at 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    best = 0.0
    for j, i in enumerate(order, start=1):
        best = max(best, min(1.0, (m - j + 1) * p[i]))
        out[i] = best
    return out


def _adjusted(flags: dict[str, list[bool]]) -> dict[frozenset[str], tuple[float, float]]:
    pairs = list(combinations(flags, 2))
    raw = [reference_p(flags[a], flags[b]) for a, b in pairs]
    return {frozenset(pair): (r, q) for pair, r, q in zip(pairs, raw, reference_holm(raw), strict=True)}


def test_pair_tests_match_binomtest_and_textbook_holm() -> None:
    flags = {"A": robust_on(30), "B": robust_on(28), "C": robust_on(18), "D": robust_on(16)}
    reference = _adjusted(flags)
    tests = pair_tests(list(flags), flags)
    assert len(tests) == 6
    for t in tests:
        raw, adjusted = reference[frozenset((t.a, t.b))]
        assert t.p_value == pytest.approx(raw, rel=1e-12)
        assert t.p_holm == pytest.approx(adjusted, rel=1e-12)
    # one pair by hand: A vs D differ on 14 samples, all one way: p = 2 * 2^-14; smallest of 6 -> times 6
    ad = next(t for t in tests if (t.a, t.b) == ("A", "D"))
    assert (ad.a_only, ad.b_only) == (14, 0)
    assert ad.p_holm == pytest.approx(6 * 2 * 0.5**14)


def test_holm_adjust_against_the_textbook_with_ties() -> None:
    p = [0.01, 0.04, 0.03, 0.01, 0.5, 0.04]
    assert holm_adjust(p) == pytest.approx(reference_holm(p))
    assert holm_adjust([0.01, 0.01]) == [0.02, 0.02]
    assert holm_adjust([]) == []


def test_two_groups_when_holm_separates_each_from_the_group_above() -> None:
    # A 30 robust, B 28 (A only 2), C 18, D 16 (C only 2): A~B and C~D, every cross pair separated.
    flags = {"A": robust_on(30), "B": robust_on(28), "C": robust_on(18), "D": robust_on(16)}
    reference = _adjusted(flags)
    assert reference[frozenset("AB")][1] >= 0.05 and reference[frozenset("CD")][1] >= 0.05
    for pair in ("AC", "AD", "BC", "BD"):
        assert reference[frozenset(pair)][1] < 0.05, pair
    groups = group_ranks(list(flags), pair_tests(list(flags), flags))
    assert groups == [["A", "B"], ["C", "D"]]
    assert [rank_label(1, 2), rank_label(3, 2), rank_label(5, 1)] == ["1–2", "3–4", "5"]


def test_an_entry_separated_from_only_part_of_the_group_above_joins_it() -> None:
    # A 30, B 24, C 18: A vs C is separated; A vs B and B vs C are not after Holm (raw p 0.031 < 0.05 each:
    # without the correction B would open a group of its own).
    flags = {"A": robust_on(30), "B": robust_on(24), "C": robust_on(18)}
    reference = _adjusted(flags)
    assert reference[frozenset("AB")][0] < 0.05 and reference[frozenset("AB")][1] >= 0.05
    assert reference[frozenset("BC")][0] < 0.05 and reference[frozenset("BC")][1] >= 0.05
    assert reference[frozenset("AC")][1] < 0.05
    assert group_ranks(list(flags), pair_tests(list(flags), flags)) == [["A", "B", "C"]]


def test_identical_flags_are_never_separated_and_a_lone_entry_is_rank_one() -> None:
    flags = {"A": robust_on(20), "B": robust_on(20)}
    assert group_ranks(["A", "B"], pair_tests(["A", "B"], flags)) == [["A", "B"]]
    assert group_ranks(["A"], pair_tests(["A"], {"A": robust_on(3)})) == [["A"]]


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = {"a": (90.0, 10.0), "b": (80.0, 30.0), "c": (70.0, 25.0), "d": (60.0, 40.0), "e": (60.0, 40.0)}
    assert pareto_front(points) == ["d", "e", "b", "a"]


def _entry(key: str, robust: int, clean: float, converged: bool | None, failed: list[str] | None = None
           ) -> dict:
    unreliable = converged is not True or bool(failed)
    return {
        "key": key, "name": key.upper(), "paper": None, "architecture": "vgg_small x0.25",
        "dataset": "digits", "eps": "8/255", "threat_model": "Linf", "clean_acc": clean,
        "clean_ci95": [clean - 5, clean + 5],
        "robust_acc": 100 * robust / N, "robust_ci95": [0.0, 100.0], "robust": robust, "n": N,
        "reported": None, "footnote": "not converged: upper bound" if unreliable else None,
        "unreliable": unreliable, "rank": None, "group": None, "T": 2, "neuron": "IF", "encoding": "direct",
        "stochastic": False, "eot_draws": 1, "attack_suite": "reliable", "ensemble": "paper",
        "external": False,
        "card": {"run": f"runs/{key}", "defense": key, "settings": {}, "train_command": "evrobust train",
                 "attack_command": "evrobust attack --suite reliable", "training_cost": None,
                 "evaluation_cost": {"seconds": 1.0}, "converged": converged, "doublings": 1,
                 "failed_checks": failed or [], "failed_indicators": []},
    }


PROTOCOL = {"scale": "tiny", "data": "digits", "architecture": "vgg_small", "suite": "reliable",
            "eps": 8 / 255, "eps_text": "8/255", "ensemble": "paper", "budget": {"steps": 5},
            "test_set": {"split": "test", "samples": N, "labels_sha256": "ab" * 32}}


def test_a_non_converged_entry_is_marked_and_never_ranked() -> None:
    # "best" has the highest number but did not converge: it is listed last, unranked, with a footnote.
    entries = [_entry("best", 35, 90.0, False), _entry("a", 30, 80.0, True), _entry("b", 18, 85.0, True),
               _entry("odd", 20, 70.0, True, ["adv_le_noise [pgd10]"])]
    flags = {"best": robust_on(35), "a": robust_on(30), "b": robust_on(18), "odd": robust_on(20)}
    table = assemble(PROTOCOL, entries, flags)
    validate(table, "leaderboard", "leaderboard.json")
    assert [(e["key"], e["rank"]) for e in table["entries"]] == [("a", "1"), ("b", "2"), ("best", None),
                                                                  ("odd", None)]
    assert table["ranking"]["groups"] == [["a"], ["b"]] and table["pairs"][0]["separated"] is True
    assert table["pareto_front"] == ["a", "b"]  # ranked entries only: "best" would dominate both
    text = render_markdown(table)
    assert "| – | BEST |" in text and "≤ 87.50 [0.00, 100.00] (not converged) [^1]" in text
    assert "50.00 [0.00, 100.00] (checks failed) [^2]" in text
    assert "[^1]: not converged: upper bound; not ranked." in text


def test_the_schema_refuses_a_ranked_unreliable_entry_and_duplicate_keys_are_refused() -> None:
    table = assemble(PROTOCOL, [_entry("a", 30, 80.0, True)], {"a": robust_on(30)})
    bad = {**table, "entries": [{**table["entries"][0], "unreliable": True}]}
    with pytest.raises(UserInputError, match="marked unreliable but ranked 1"):
        validate(bad, "leaderboard", "leaderboard.json")
    with pytest.raises(UserInputError, match="on the table twice"):
        assemble(PROTOCOL, [_entry("a", 30, 80.0, True)] * 2, {"a": robust_on(30)})


def test_ranking_rendering_and_reading_a_table_never_import_torch() -> None:
    """Only the build trains and attacks; a table is re-ranked, rendered and validated from documents."""
    code = ("import sys\n"
            "import evrobust.pipelines.leaderboard.table, evrobust.pipelines.leaderboard.render\n"
            "import evrobust.pipelines.leaderboard.entries, evrobust.pipelines.leaderboard.figures\n"
            "from evrobust.safeio.schemas import model_of\n"
            "model_of('leaderboard')\n"
            "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=True)
    assert proc.stdout.strip() == "False", proc.stderr
