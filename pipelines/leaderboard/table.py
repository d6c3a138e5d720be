"""Assemble the leaderboard document from evaluated entries: pairing check, ranking, Pareto front.

Torch-free and deterministic: the same entries (the same attack documents) give the same document, field
for field, so a table rebuilt from the same runs is byte-identical. There are no timestamps in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.leaderboard.ranking import group_ranks, pair_tests, pareto_front, rank_label
from evrobust.stats import SIGNIFICANCE

__all__ = ["FORMAT", "GROUPING_RULE", "VERSION", "assemble", "check_same_samples"]

FORMAT = "evrobust-leaderboard"
VERSION = 1
GROUPING_RULE = (
    "Entries whose reliable number converged and whose checks and indicators all passed are sorted by robust "
    "accuracy (ties: clean accuracy, then key). Every pair of them is compared with the exact McNemar test "
    "on the per-sample verdict flags of their reliable evaluations, and the p-values are adjusted with "
    "Holm's method over all pairs. Going down the sorted list, an entry joins the group of the entry "
    f"above it unless its Holm-adjusted p-value is below {SIGNIFICANCE} against every member of that "
    "group; then it opens a new group. A group's rank is the span of its positions (\"2–4\"). Other "
    "entries are listed below, marked, without a rank."
)
"""The ranking rule in one paragraph (written into the JSON and the markdown; ``docs/leaderboard.md``)."""


def check_same_samples(test_set: Mapping[str, Any], document: Mapping[str, Any], what: str) -> None:
    """Refuse an attack document evaluated on other samples than the table's.

    Raises:
        UserInputError: another sample count or another ``test_set.labels_sha256`` (one line).
    """
    theirs = document.get("test_set") or {}
    if document.get("samples") != test_set["samples"] or theirs.get("samples", test_set["samples"]) != \
            test_set["samples"]:
        raise UserInputError(f"{what} was evaluated on {document.get('samples')} test samples, the table on "
                             f"{test_set['samples']}; evaluate it with --limit {test_set['samples']}")
    if theirs.get("labels_sha256") != test_set["labels_sha256"] or theirs.get("split", "test") != "test":
        raise UserInputError(f"{what} was evaluated on other test samples than the table (its test_set's "
                             "labels_sha256 differs); evaluate it on the same store's test split")


def _order_key(entry: Mapping[str, Any]) -> tuple[float, float, str]:
    return (-(entry["robust_acc"] or 0.0), -(entry["clean_acc"] or 0.0), entry["key"])


def _training_cost_against_vanilla(by_key: dict[str, dict[str, Any]]) -> None:
    """Put the vanilla entry's seconds per epoch and the ratio to it in every card's ``training_cost`` (the
    cost of a defense is its factor over plain training on the same machine, not its absolute seconds)."""
    vanilla = ((by_key.get("vanilla") or {}).get("card") or {}).get("training_cost")
    base = vanilla["s_per_epoch"] if vanilla else None
    for entry in by_key.values():
        cost = entry["card"].get("training_cost")
        if cost is None:
            continue
        ratio = cost["s_per_epoch"] / base if base else None
        entry["card"] = {**entry["card"], "training_cost": {**cost, "vanilla_s_per_epoch": base,
                                                            "vs_vanilla": ratio}}


def assemble(protocol: dict[str, Any], entries: Sequence[dict[str, Any]],
             flags: Mapping[str, Sequence[bool]], pending: Sequence[str] = ()) -> dict[str, Any]:
    """The leaderboard document.

    Args:
        protocol: the evaluation settings and the ``test_set`` every entry was evaluated on.
        entries: entry documents (:func:`~evrobust.pipelines.leaderboard.entries.entry_document`).
        flags: entry key -> per-sample verdict flags.
        pending: built-in entries not evaluated yet (the table is then incomplete).

    Raises:
        UserInputError: two entries with the same key.
    """
    keys = [e["key"] for e in entries]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise UserInputError(f"the entry {', '.join(twice)} is on the table twice; give each --add once")
    rankable = sorted((e for e in entries if not e["unreliable"]), key=_order_key)
    unranked = sorted((e for e in entries if e["unreliable"]), key=_order_key)
    order = [e["key"] for e in rankable]
    tests = pair_tests(order, flags)
    groups = group_ranks(order, tests)
    by_key = {e["key"]: dict(e) for e in entries}
    _training_cost_against_vanilla(by_key)
    position = 1
    for index, group in enumerate(groups, start=1):
        label = rank_label(position, len(group))
        for key in group:
            by_key[key]["rank"] = label
            by_key[key]["group"] = index
        position += len(group)
    points = {e["key"]: (e["clean_acc"] or 0.0, e["robust_acc"] or 0.0) for e in rankable}
    return {
        "format": FORMAT,
        "version": VERSION,
        "complete": not pending,
        "pending": list(pending),
        "protocol": protocol,
        "ranking": {
            "rule": GROUPING_RULE,
            "test": "exact McNemar (two-sided) on per-sample reliable verdict flags",
            "correction": "holm",
            "significance": SIGNIFICANCE,
            "pairs": len(tests),
            "groups": groups,
        },
        "entries": [by_key[k] for k in order] + [by_key[e["key"]] for e in unranked],
        "pairs": [t.to_json() for t in tests],
        "pareto_front": pareto_front(points),
    }
