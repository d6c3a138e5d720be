"""The masking study in ``evrobust report``: summary lines of ``landscape`` / ``fidelity`` analyses, and the
``reproduce masking`` section (paper protocol vs reliable evaluation with their intervals, the landscape of
every run on the same axes). docs/masking-study.md describes what is measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["analysis_lines", "repro_lines"]


def _num(value: Any, digits: str = ".3g") -> str:
    return "–" if value is None else format(float(value), digits)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"


def _interval(pair: Any) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or None in pair:
        return ""
    return f" [{100 * float(pair[0]):.1f}, {100 * float(pair[1]):.1f}]"


def analysis_lines(a: dict[str, Any]) -> list[str]:
    """Indented Markdown lines for one landscape or fidelity document (other kinds: none)."""
    kind = a.get("kind")
    lines: list[str] = []
    if kind == "landscape":
        for name, body in (a.get("directions") or {}).items():
            rise = body.get("rise") or {}
            lines.append(f"  - {name}: median radius of a {_num(a.get('rise'), 'g')}-nat loss rise "
                         f"{_num(rise.get('median_radius'))} (SR's h {_num(a.get('sr_h'), 'g')}, eps "
                         f"{a.get('eps_text', '?')}); {_pct(rise.get('share'))}% of samples rise within "
                         "the grid")
        adversarial = a.get("adversarial") or {}
        if adversarial.get("note"):
            lines.append(f"  - {adversarial['note']}")
    elif kind == "fidelity":
        head = a.get("headline") or {}
        lines.append(
            f"  - {head.get('spec', '?')} at step {_num(head.get('step'), 'g')}: cosine surrogate vs finite "
            f"difference {_num(head.get('cosine'))}, norm ratio {_num(head.get('ratio'))}, exactly-zero "
            f"finite differences {_pct(head.get('zero_fd_share'))}%, flat but moving at eps "
            f"{_pct(head.get('flat_changes_share'))}% of samples"
        )
    return lines


def repro_lines(results: dict[str, Any], directory: Path, link: Any, record: Any = None) -> list[str]:
    """The ``masking`` reproduction's extra section: paper vs reliable per attacked run, and the landscape
    figure of every analysed run (``link(path)`` makes a report-relative link; ``record`` notes the PNG)."""
    lines: list[str] = []
    rows = []
    for key, result in results.get("attacks", {}).items():
        over = result.get("overestimate")
        if not isinstance(over, dict):
            continue
        rows.append(f"| `{key}` | {_pct(over.get('paper'))}{_interval(over.get('paper_ci95'))} | "
                    f"{_pct(over.get('reliable'))}{_interval(over.get('reliable_ci95'))} | "
                    f"{_pct(over.get('difference'))}{_interval(over.get('difference_ci95'))} |")
    if rows:
        lines += ["Paper protocol (its lowest accuracy) vs the reliable evaluation, % with 95 % "
                  "Clopper–Pearson intervals; the difference has its own exact interval:", "",
                  "| attack | paper | reliable | paper − reliable |", "|---|---|---|---|", *rows, ""]
    landscapes = [a for a in results.get("analyses", {}).values() if a.get("kind") == "landscape"]
    if landscapes:
        from evrobust.pipelines.report.masking_plots import plot_landscape_compare

        labels = [f"{a.get('defense', '?')} ({Path(str(a.get('run', ''))).name})" for a in landscapes]
        png = plot_landscape_compare(landscapes, directory / "landscape.png", labels=labels)
        if record is not None:
            record.add(png)
        lines += [f"![loss landscape by run]({link(png)})", ""]
    return lines
