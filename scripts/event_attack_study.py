"""Summarise the event-domain attack results of several runs beside their frame-level robustness.

Reads, per run directory: ``attack-events.json`` and ``attack-retiming.json`` (``evrobust attack --threat``),
``attack-whitebox.json`` (frame attacks) and, if present, ``evaluate-reliable.json`` (the demo's converged
evaluation). Prints markdown: one row per run with every accuracy and its 95 % interval, the events changed
(median [quartiles]) on the samples each event attack fooled, then paired McNemar tests between runs under the
same attack and, per run, event attack vs the frame attack on the same samples.

    .venv/bin/python scripts/event_attack_study.py runs/demo/digits-dvs/{vanilla,at,sr,sr_star}

No library logic lives here: every number comes from the result files and ``evrobust.stats``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from evrobust.stats import ci95, compare_paired, format_interval


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _flags(doc: dict[str, Any], name: str) -> list[bool]:
    return [c == "1" for c in doc["flags"][name]["correct"]]


def _entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in doc["attacks"] if a["name"] == name)


def _cell(doc: dict[str, Any] | None, name: str) -> str:
    if doc is None or name not in doc["flags"]:
        return "–"
    e = _entry(doc, name)
    return format_interval(e["accuracy"], e.get("ci95"))


def _changed(doc: dict[str, Any] | None, name: str) -> str:
    if doc is None or name not in doc["flags"]:
        return "–"
    s = _entry(doc, name).get("changed_when_fooled") or {}
    if not s.get("fooled"):
        return "none fooled"
    return f"{s['median']:g} [{s['q1']:g}, {s['q3']:g}] (n={s['fooled']})"


BUDGETS = (25, 50, 100, 200, 400, 800)
"""SDA budgets (events added plus deleted) at which accuracy is read off the per-sample counts."""


def _within(doc: dict[str, Any], name: str, budget: int) -> list[bool]:
    """Robust flags had the attack been limited to ``budget`` events. SDA stops at the first
    misclassification and its search does not depend on the budget, so a run with ``--max-events b`` fools
    exactly the samples this unbounded run fooled with at most ``b`` events."""
    clean = _flags(doc, "clean")
    robust = _flags(doc, name)
    changed = _entry(doc, name)["events_changed"]
    return [ok and (r or c is None or c > budget) for ok, r, c in zip(clean, robust, changed, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--frame-attack", default="pgd10", help="attack-whitebox.json's attack to pair")
    args = parser.parse_args(argv)
    rows = []
    for run in args.runs:
        config = json.loads((run / "config.json").read_text())
        rows.append({
            "run": run,
            "defense": (config.get("defense") or {}).get("name", "?"),
            "events": _load(run / "attack-events.json"),
            "retiming": _load(run / "attack-retiming.json"),
            "frames": _load(run / "attack-whitebox.json"),
            "converged": _load(run / "evaluate-reliable.json"),
        })
    fa = args.frame_attack
    print(f"| defense | n | clean | SDA | SDA events changed, fooled: median [q1, q3] | retiming B∞ (D=1) | "
          f"events moved | retiming B0 | frames {fa} (8/255) | frames converged reliable (n) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ev, rt, fr, cv = r["events"], r["retiming"], r["frames"], r["converged"]
        n = (ev or rt or fr)["samples"]
        conv = "–"
        if cv and cv.get("reliable"):
            rel = cv["reliable"]
            conv = f"{format_interval(rel['accuracy'], rel.get('ci95'))} ({cv['samples']})"
        print(f"| {r['defense']} | {n} | {_cell(ev, 'clean')} | {_cell(ev, 'sda')} | {_changed(ev, 'sda')} | "
              f"{_cell(rt, 'retime-inf')} | {_changed(rt, 'retime-inf')} | {_cell(rt, 'retime-zero')} | "
              f"{_cell(fr, fa)} | {conv} |")
    print()
    print("SDA robust accuracy (%) at event budgets (events added plus deleted per sample):")
    print()
    head = " | ".join(f"<= {b}" for b in BUDGETS)
    print(f"| defense | {head} | retiming B∞: largest shift, median (ms) |")
    print("|---|" + "---|" * (len(BUDGETS) + 1))
    for r in rows:
        ev, rt = r["events"], r["retiming"]
        if not ev or "sda" not in ev["flags"]:
            continue
        cells = []
        for b in BUDGETS:
            flags = _within(ev, "sda", b)
            k, n = sum(flags), len(flags)
            cells.append(format_interval(k / n, ci95(k, n)))
        us = []
        if rt and "retime-inf" in rt["flags"]:
            us = sorted(u for u in _entry(rt, "retime-inf").get("max_shift_us") or [] if u is not None)
        shift = f"{us[len(us) // 2] / 1000:.0f}" if us else "–"
        print(f"| {r['defense']} | " + " | ".join(cells) + f" | {shift} |")
    print()
    print("Paired (McNemar, exact), SDA within 100 events:")
    print()
    for a, b in itertools.combinations(rows, 2):
        if a["events"] and b["events"] and a["events"]["samples"] == b["events"]["samples"]:
            c = compare_paired(_within(a["events"], "sda", 100), _within(b["events"], "sda", 100))
            print(f"- {a['defense']} vs {b['defense']}: {c.verdict(a['defense'], b['defense'])} "
                  f"({c.a_only} vs {c.b_only} discordant of {c.n})")
    print()
    print("Paired (McNemar, exact), between runs under the same attack:")
    print()
    for a, b in itertools.combinations(rows, 2):
        for key, name in (("events", "sda"), ("retiming", "retime-inf"), ("retiming", "retime-zero"),
                          ("frames", fa)):
            da, db = a[key], b[key]
            if not da or not db or name not in da["flags"] or name not in db["flags"]:
                continue
            if da["samples"] != db["samples"]:
                continue
            c = compare_paired(_flags(da, name), _flags(db, name))
            print(f"- {name}: {c.verdict(a['defense'], b['defense'])} "
                  f"({c.a_only} vs {c.b_only} discordant of {c.n})")
    print()
    print(f"Paired, per run: robust under the event attack vs under frames {fa} (same samples):")
    print()
    for r in rows:
        for key, name in (("events", "sda"), ("retiming", "retime-inf")):
            doc, fr = r[key], r["frames"]
            if not doc or not fr or doc["samples"] != fr["samples"] or name not in doc["flags"]:
                continue
            c = compare_paired(_flags(doc, name), _flags(fr, fa))
            print(f"- {r['defense']}: {c.verdict(name, f'frames {fa}')} "
                  f"({c.a_only} vs {c.b_only} discordant of {c.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
