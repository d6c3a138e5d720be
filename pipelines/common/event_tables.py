"""The markdown table of an event-attack result (``attack-<threat>.json``), shared by ``evrobust attack`` and
``evrobust report`` (torch-free)."""

from __future__ import annotations

from typing import Any

from evrobust.stats import format_interval

__all__ = ["render_event_markdown"]


def render_event_markdown(result: dict[str, Any]) -> str:
    """The markdown table of an event-attack result: accuracy with its interval, and events changed."""
    threat = result.get("threat", "events")
    unit = "events moved" if threat == "retiming" else "events changed"
    lines = [
        f"# Event-domain attacks ({threat}): {result.get('defense', '?')} {result.get('arch', '?')} on "
        f"{result.get('dataset', '?')}",
        "",
        f"{result['samples']} test samples, gradient spec {result.get('spec')}, seed {result.get('seed')}. "
        "Robust accuracy (95 % Clopper-Pearson interval); for the samples each attack fooled, the "
        f"{unit} per sample (median [quartiles], max).",
        "",
        f"| attack | budget | robust accuracy % | fooled | {unit}: median [q1, q3] | max |",
        "|---|---|---|---|---|---|",
    ]
    for a in result["attacks"]:
        acc = format_interval(a["accuracy"], a.get("ci95"))
        if a["name"] == "clean":
            lines.append(f"| Clean | – | {acc} | – | – | – |")
            continue
        s = a.get("changed_when_fooled") or {}
        budget = ", ".join(f"{k} {v}" for k, v in (a.get("budgets") or {}).items() if v is not None) or "–"
        med = "–" if s.get("median") is None else f"{s['median']:g} [{s['q1']:g}, {s['q3']:g}]"
        top = "–" if s.get("max") is None else str(s["max"])
        lines.append(f"| {a['label']} | {budget} | {acc} | {s.get('fooled', 0)} | {med} | {top} |")
    ref = result.get("frames_reference")
    if ref:
        acc = format_interval(ref["accuracy"], ref.get("ci95"))
        note = "" if ref.get("converged") is not False else " (not converged)"
        lines += [
            "",
            f"Frame-level reference on the same samples ({ref['attack']} at eps {ref['eps']}): {acc}{note}.",
        ]
    return "\n".join(lines) + "\n"
