"""``leaderboard.md`` from the leaderboard document: the ranked table, footnotes, the paired tests, the cards.

Everything printed comes from the document (:mod:`.table`), so the markdown is a function of the JSON and a
rebuilt table is byte-identical. Torch-free.
"""

from __future__ import annotations

from typing import Any

from evrobust.stats import format_p

__all__ = ["render_markdown"]


def _interval(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def _robust_cell(entry: dict[str, Any], note: int | None) -> str:
    cell = _interval(entry["robust_acc"], entry["robust_ci95"])
    card = entry["card"]
    if card["converged"] is not True:
        cell = f"≤ {cell} (not converged)" if card["converged"] is False else f"≤ {cell} (no certificate)"
    elif card["failed_checks"] or card["failed_indicators"]:
        cell += " (checks failed)"
    return cell + (f" [^{note}]" if note is not None else "")


def _cost(card: dict[str, Any]) -> str:
    cost = card.get("training_cost")
    if not cost:
        return "unknown (no metrics.jsonl)"
    text = f"{cost['s_per_epoch']:.3g} s/epoch over {cost['epochs']} epochs"
    if cost.get("vs_vanilla") is not None:
        text += f" ({cost['vs_vanilla']:.2f}× vanilla's {cost['vanilla_s_per_epoch']:.3g} s/epoch)"
    return text


def _protocol_lines(document: dict[str, Any]) -> list[str]:
    p = document["protocol"]
    ts = p["test_set"]
    budget = ", ".join(f"{k} {v}" for k, v in p["budget"].items()) or "the defaults"
    return [
        f"Protocol: white box, L-inf eps {p['eps_text']}, `evrobust attack --suite reliable` (the paper's "
        f"attacks, then the reliable cascade on the samples that survive them) with the `{p['ensemble']}` "
        f"surrogate ensemble; cascade budget: {budget}; convergence certificate on. Evaluated on the first "
        f"{ts['samples']} images of the test split of `{p['data']}` (labels sha256 "
        f"`{ts['labels_sha256'][:16]}…`), the same images for every entry. Accuracies in % with their 95 % "
        "Clopper–Pearson interval; robust accuracy is the reliable verdict (per-sample worst case over every "
        "attack).",
        "",
        f"Ranking: {document['ranking']['rule']}",
        "",
    ]


def render_markdown(document: dict[str, Any]) -> str:
    """The leaderboard as markdown."""
    p = document["protocol"]
    lines = [f"# SNN leaderboard: {p['data']} ({p['scale']} scale, {p['architecture']}), eps {p['eps_text']} "
             "L-inf", ""]
    if not document["complete"]:
        lines += [f"**Incomplete**: not evaluated yet: {', '.join(document['pending'])} (rerun with "
                  "`--resume`).", ""]
    lines += _protocol_lines(document)
    lines += ["| Rank | Entry | Paper | Architecture | T | Clean | Robust (reliable) | Reported | Defense |",
              "|---|---|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for entry in document["entries"]:
        note = None
        if entry["footnote"]:
            notes.append(entry["footnote"])
            note = len(notes)
        reported = "–" if entry["reported"] is None else f"{entry['reported']:.2f}"
        lines.append(
            f"| {entry['rank'] or '–'} | {entry['name']} | {entry['paper'] or '–'} | "
            f"{entry['architecture']} | "
            f"{entry['T'] if entry['T'] is not None else '?'} | "
            f"{_interval(entry['clean_acc'], entry['clean_ci95'])} | {_robust_cell(entry, note)} | "
            f"{reported} | {entry['card']['defense'] or '?'} |"
        )
    lines.append("")
    for i, text in enumerate(notes, start=1):
        lines.append(f"[^{i}]: {text}; not ranked.")
    if notes:
        lines.append("")
    front = [next(e["name"] for e in document["entries"] if e["key"] == k) for k in document["pareto_front"]]
    lines += [f"Pareto front (clean vs robust, ranked entries): {', '.join(front) or '–'}.", ""]
    lines += _pairs_lines(document)
    lines += _card_lines(document)
    return "\n".join(lines)


def _pairs_lines(document: dict[str, Any]) -> list[str]:
    pairs = document["pairs"]
    if not pairs:
        return ["No paired tests: fewer than two ranked entries.", ""]
    names = {e["key"]: e["name"] for e in document["entries"]}
    lines = [f"## Paired tests ({len(pairs)} pairs, Holm-adjusted)", "",
             "| A | B | A only | B only | McNemar p | Holm p | Separated |", "|---|---|---|---|---|---|---|"]
    for t in pairs:
        lines.append(f"| {names[t['a']]} | {names[t['b']]} | {t['a_only']} | {t['b_only']} | "
                     f"{format_p(t['p_value'])} | {format_p(t['p_holm'])} | "
                     f"{'yes' if t['separated'] else 'no'} |")
    return [*lines, ""]


def _card_lines(document: dict[str, Any]) -> list[str]:
    lines = ["## Entry cards", ""]
    for e in document["entries"]:
        card = e["card"]
        settings = ", ".join(f"{k} {v}" for k, v in card["settings"].items()) or "–"
        if card["converged"] is True:
            convergence = f"converged ({card['doublings']} doubling(s) of the budget broke no further sample)"
        elif card["converged"] is False:
            convergence = "NOT converged: an upper bound"
        else:
            convergence = "no certificate ran: an upper bound"
        lines += [
            f"### {e['name']}" + (" (added with --add)" if e["external"] else ""),
            "",
            f"- Run: `{card['run']}`; defense `{card['defense']}`; settings: {settings}",
            f"- Neuron: {e['neuron'] or '?'}; encoding: {e['encoding'] or '?'}; stochastic: "
            f"{e['stochastic']}; EOT draws: {e['eot_draws']}",
            f"- Train: `{card['train_command']}`" if card["train_command"] else
            "- Train: not an `evrobust train` run (command unknown)",
            f"- Attack: `{card['attack_command']}`",
            f"- Training cost: {_cost(card)}",
            f"- Evaluation cost: {card['evaluation_cost']['seconds']:.3g} s",
            f"- Convergence: {convergence}",
            f"- Failed checks: {', '.join(card['failed_checks']) or 'none'}",
            f"- Failed indicators: {', '.join(card['failed_indicators']) or 'none'}",
            "",
        ]
    return lines
