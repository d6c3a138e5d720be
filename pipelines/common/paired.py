"""Paired comparisons of attack results: intervals, the exact McNemar test, and the worst case over files.

An ``attack-<mode>.json`` (:mod:`evrobust.pipelines.attack.pipeline`) keeps one flag per sample and attack
(``"1"`` robust, ``"0"`` broken, ``"-"`` not attacked). Two such files of two models on the *same* samples
are paired data, so their difference is tested on the samples where they disagree
(:func:`evrobust.stats.compare_paired`), not by comparing two accuracies.

- :func:`load_attack_file` reads one file (or ``attack-<mode>.json`` of a run directory) through
  :mod:`evrobust.safeio` as a ``compare_input`` document (schema :mod:`evrobust.safeio.schemas.attack`);
- :func:`merge_attack_documents` takes several files of one model and returns one document whose flags are
  the per-sample worst case: a sample is robust only if no attack of any file broke it. That is how a user
  adds their own attack to an evaluation (a file in this layout with their flags);
- :func:`compare_attack_documents` compares two documents per common attack and on the headline verdict
  (the ``reliable`` cascade's, else the worst case over the table's attacks);
- :func:`render_comparison` renders the result as markdown.

Torch-free: flags stay strings here.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.safeio import read_json
from evrobust.safeio.schemas import validate
from evrobust.stats import compare_paired, format_interval, format_p

__all__ = [
    "WORST_CASE",
    "compare_attack_documents",
    "check_flags_layout",
    "compare_paths",
    "headline_key",
    "load_attack_file",
    "merge_attack_documents",
    "render_comparison",
    "robust_flags",
    "same_samples",
]

logger = logging.getLogger(__name__)

WORST_CASE = "worst-case"
"""Key of the per-sample worst case over every in-table attack of a document (and over merged files)."""


def load_attack_file(path: str | os.PathLike[str], mode: str = "whitebox") -> dict[str, Any]:
    """One attack result: a JSON file, or the ``attack-<mode>.json`` of a run directory.

    Read through :func:`evrobust.safeio.read_json` as a ``compare_input`` document: a regular file within its
    size cap (a link, FIFO or device is refused without blocking), valid JSON, and valid against the
    :class:`~evrobust.safeio.schemas.attack.AttackResult` schema (flag strings as long as ``samples``, of
    ``1``, ``0`` and ``-`` only), so everything below indexes it safely.

    Raises:
        UserInputError: missing, not a regular file, too large, not JSON, or not an attack result with
            per-sample flags (one line naming the file and the field).
    """
    path = Path(path)
    missing = "does not exist; run `evrobust attack` first, or give an attack JSON"
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)  # lstat: a link to a directory is a link, not a run
    except FileNotFoundError:
        raise UserInputError(f"{path} {missing}") from None
    except OSError as exc:
        raise UserInputError(f"cannot read {path} ({exc.strerror or exc})") from None
    if is_dir:
        path = path / f"attack-{mode}.json"
        if not os.path.lexists(path):
            raise UserInputError(f"{path} {missing}")
    document = dict(read_json(path, "compare_input"))
    document["_path"] = str(path)
    return document


def check_flags_layout(document: Any, path: Path) -> None:
    """Validate a document already in memory as a ``compare_input`` (the schema :func:`load_attack_file`
    reads with): one-line UserInputError naming ``path`` and the field otherwise."""
    validate(document, "compare_input", str(path))


def robust_flags(document: dict[str, Any], key: str) -> list[bool]:
    """Per-sample robust flags of attack ``key`` (or :data:`WORST_CASE`) in a checked document."""
    if key == WORST_CASE:
        keys = _table_keys(document)
        columns = [robust_flags(document, k) for k in keys]
        return [all(col[i] for col in columns) for i in range(document["samples"])]
    return [c == "1" for c in document["flags"][key]["correct"]]


def _table_keys(document: dict[str, Any]) -> list[str]:
    """The attacks of the table (in-table, at the document's eps), else every flagged attack."""
    eps = document.get("eps")
    keys = [a["name"] for a in document.get("attacks", [])
            if a.get("in_table", True) and (eps is None or a.get("eps", eps) == eps)
            and a["name"] in document["flags"]]
    merged = document.get("merged_keys")
    return list(dict.fromkeys(keys + (merged or []))) or list(document["flags"])


def headline_key(document: dict[str, Any]) -> str:
    """The attack whose flags are the document's verdict: the ``reliable`` cascade's, else the worst case."""
    cascade = document.get("cascade")
    merged = document.get("merged_keys")
    if isinstance(cascade, dict) and cascade.get("attack") in document["flags"] and not merged:
        return str(cascade["attack"])
    return WORST_CASE


def same_samples(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Refuse two documents that were not evaluated on the same samples in the same order.

    Same sample count and dataset; and where both record the test set's identity (``test_set``: the store's
    dataset and split, and a digest of the evaluated labels), the same identity.

    Raises:
        UserInputError: one line naming what differs.
    """
    pa, pb = a.get("_path", "A"), b.get("_path", "B")
    if a["samples"] != b["samples"]:
        raise UserInputError(f"{pa} and {pb} cover different samples ({a['samples']} vs {b['samples']}); "
                             "rerun both with the same --limit")
    if a.get("dataset") and b.get("dataset") and a["dataset"] != b["dataset"]:
        raise UserInputError(f"{pa} and {pb} were evaluated on different datasets "
                             f"({a['dataset']} vs {b['dataset']})")
    ta, tb = a.get("test_set"), b.get("test_set")
    if isinstance(ta, dict) and isinstance(tb, dict):
        if ta.get("labels_sha256") != tb.get("labels_sha256") or ta.get("split") != tb.get("split"):
            raise UserInputError(f"{pa} and {pb} were evaluated on different samples (their test sets' "
                                 "labels differ); compare results of the same test store")
    else:
        logger.warning("%s or %s records no test-set identity (written before it was kept); pairing them by "
                       "position and sample count only", pa, pb)


def merge_attack_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document whose flags are the per-sample worst case over several files of one model.

    Every attack of every file is kept (a key that two files share gets the file's name as a suffix), and
    :data:`WORST_CASE` is the AND over every file's table attacks.

    Raises:
        UserInputError: no document, or files on different samples.
    """
    if not documents:
        raise UserInputError("nothing to merge")
    if len(documents) == 1:
        return documents[0]
    base = documents[0]
    for other in documents[1:]:
        same_samples(base, other)
    merged = {k: v for k, v in base.items() if k not in ("flags", "attacks", "cascade", "merged_keys")}
    flags: dict[str, Any] = {}
    attacks: list[dict[str, Any]] = []
    keys: list[str] = []
    for i, document in enumerate(documents):
        table = _table_keys(document)
        for key in document["flags"]:
            new = key if key not in flags else f"{key}@{Path(document.get('_path', str(i))).name}"
            flags[new] = document["flags"][key]
            entry = next((a for a in document.get("attacks", []) if a["name"] == key), {"name": key})
            attacks.append({**entry, "name": new})
            if key in table:
                keys.append(new)
    merged["flags"] = flags
    merged["attacks"] = attacks
    merged["merged_keys"] = keys
    merged["merged_from"] = [d.get("_path", "?") for d in documents]
    return merged


def compare_attack_documents(a: dict[str, Any], b: dict[str, Any], name_a: str = "A",
                             name_b: str = "B") -> dict[str, Any]:
    """Per attack that both documents ran, and for their headline verdicts: accuracies with intervals, the
    paired counts, the exact McNemar p-value and a verdict sentence.

    Raises:
        UserInputError: the two were not evaluated on the same samples.
    """
    same_samples(a, b)
    ha, hb = headline_key(a), headline_key(b)
    pairs = [(k, k) for k in a["flags"] if k in b["flags"]]
    if (ha, hb) not in pairs:
        pairs.append((ha, hb))
    rows = []
    for ka, kb in pairs:
        cmp = compare_paired(robust_flags(a, ka), robust_flags(b, kb))
        rows.append({
            "attack": ka if ka == kb else f"{ka} vs {kb}",
            "headline": (ka, kb) == (ha, hb),
            **cmp.to_json(),
            "verdict": cmp.verdict(name_a, name_b, "accurate" if ka == kb == "clean" else "robust"),
        })
    return {
        "format": "evrobust-compare",
        "a": {"name": name_a, "path": a.get("_path"), "headline": ha, "converged": _converged(a)},
        "b": {"name": name_b, "path": b.get("_path"), "headline": hb, "converged": _converged(b)},
        "samples": a["samples"],
        "rows": rows,
        "verdict": next(r["verdict"] for r in rows if r["headline"]),
    }


def compare_paths(
    paths_a: list[str | os.PathLike[str]],
    paths_b: list[str | os.PathLike[str]],
    *,
    mode: str = "whitebox",
    name_a: str | None = None,
    name_b: str | None = None,
) -> dict[str, Any]:
    """``evrobust compare``: load each side's files (run directories or attack JSON), merge each side's
    files into its per-sample worst case, and compare the two (:func:`compare_attack_documents`).

    Names default to each side's defense (``A`` / ``B`` where unknown; suffixed when equal).

    Raises:
        UserInputError: an unknown ``mode``, an unreadable file, or results on different samples.
    """
    if mode not in ("whitebox", "blackbox"):
        raise UserInputError(f"unknown mode {mode!r}; valid choices: whitebox, blackbox")
    doc_a = merge_attack_documents([load_attack_file(p, mode) for p in paths_a])
    doc_b = merge_attack_documents([load_attack_file(p, mode) for p in paths_b])
    label_a = name_a or str(doc_a.get("defense") or "A")
    label_b = name_b or str(doc_b.get("defense") or "B")
    if label_a == label_b:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    return compare_attack_documents(doc_a, doc_b, label_a, label_b)


def _converged(document: dict[str, Any]) -> bool | None:
    """The certificate's verdict on the document's reliable number (None: no certificate ran)."""
    reliable = document.get("reliable")
    if not isinstance(reliable, dict) or document.get("merged_keys"):
        return None
    return reliable.get("converged")


def render_comparison(result: dict[str, Any]) -> str:
    """Markdown: one row per attack (headline in bold), then the verdict sentence."""
    na, nb = result["a"]["name"], result["b"]["name"]
    lines = [
        f"# {na} vs {nb}: robust accuracy (%, 95 % Clopper–Pearson interval) on {result['samples']} paired "
        "samples",
        "",
        f"- {na}: `{result['a']['path']}`",
        f"- {nb}: `{result['b']['path']}`",
        "",
        f"| Attack | {na} | {nb} | {na} only | {nb} only | McNemar p | Verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        name = f"**{r['attack']}**" if r["headline"] else r["attack"]
        lines.append(
            f"| {name} | {format_interval(r['a']['accuracy'], r['a']['ci95'])} | "
            f"{format_interval(r['b']['accuracy'], r['b']['ci95'])} | {r['a_only']} | {r['b_only']} | "
            f"{format_p(r['p_value'])} | {r['verdict']} |"
        )
    heads = f"{result['a']['headline']} vs {result['b']['headline']}"
    lines += ["", f"Verdict ({heads}): {result['verdict']}.", ""]
    for side in ("a", "b"):
        if result[side].get("converged") is False:
            lines += [f"{result[side]['name']}'s reliable number did not converge (doubling the budget still "
                      "broke samples): it is an upper bound, and a lead in its favour may shrink with more "
                      "budget.", ""]
    return "\n".join(lines)
