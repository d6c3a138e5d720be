"""The run-level part of ``evrobust report``: the runs as read from disk and one summary table of them.

:func:`load_runs` reads run directories (``config.json`` + ``attack-<mode>.json`` + ``analysis-<kind>.json``
+ ``metrics.jsonl``); :func:`summary_rows` / :func:`summary_table` turn them into one row per run (clean,
worst white-box, worst black-box accuracy, the reliable cascade and the paper protocol's overestimate when
the attack JSON holds them, gradient l1, failed masking checks). The figures that many runs support are
drawn from the same :class:`RunData` by :mod:`evrobust.pipelines.report.figures`.

Accuracies in the JSON documents are fractions in [0, 1]; tables show %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.train.run_dir import read_metrics
from evrobust.stats import ci95

DEFENSE_ORDER = ("vanilla", "at", "rat", "sr", "sr_star")
RELIABLE = "reliable"


@dataclass
class RunData:
    """What one run directory holds for the report (documents as read from disk)."""

    path: Path
    config: dict[str, Any]
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> attack-<mode>.json
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> analysis-<kind>.json
    metrics: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""
    attack_list: list[dict[str, Any]] = field(default_factory=list)  # every attack JSON, in file order
    event_attacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # threat -> attack-<threat>.json
    analysis_list: list[dict[str, Any]] = field(default_factory=list)  # every analysis JSON, in file order

    @property
    def dataset(self) -> str:
        return str((self.config.get("data") or {}).get("dataset", "?"))

    @property
    def defense(self) -> str:
        return str((self.config.get("defense") or {}).get("name", "?"))


def read_json(path: Path, kind: str) -> dict[str, Any]:
    """A JSON object of ``kind`` from ``path``, read and validated by :func:`evrobust.safeio.read_json`.

    A link, FIFO or oversized file, invalid JSON or a field of the wrong type or range is one
    :class:`UserInputError` line naming the file (and the field).
    """
    from evrobust.safeio import read_json as read_document

    document = read_document(path, kind)
    if not isinstance(document, dict):  # every schema is an object; kept for a kind validated loosely
        raise UserInputError(f"{path} is not a JSON object")
    return document


def read_analysis(path: Path) -> dict[str, Any]:
    """An ``analysis-<kind>.json``, validated as the model of its ``kind``.

    A document without ``kind`` is filed under the kind its name gives (``analysis-heatmap.json`` ->
    ``heatmap``), as the report always did; it is then validated as that kind, so the figures never meet a
    heatmap that was only checked for the common fields.
    """
    from evrobust.safeio import read_json as read_document
    from evrobust.safeio.schemas import validate

    document = read_document(path, "analysis", validate=False)
    if isinstance(document, dict) and not document.get("kind"):
        document = {**document, "kind": path.stem.removeprefix("analysis-")}
    validate(document, "analysis", str(path))
    if not isinstance(document, dict):
        raise UserInputError(f"{path} is not a JSON object")
    return document


def _need(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise UserInputError(f"{path} has an unexpected layout: {what}; rerun the command that wrote it")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_checks(checks: Any, path: Path, where: str) -> None:
    _need(isinstance(checks, list), path, f"{where} 'checks' is not a list")
    for c in checks:
        _need(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("passed"), bool),
              path, f"a masking check in {where} lacks a string 'name' or a boolean 'passed'")


def check_config_layout(config: dict[str, Any], path: Path) -> None:
    """Fields of config.json the report reads: ``model``, ``data``, ``defense`` are objects or absent."""
    for key in ("model", "data", "defense"):
        _need(config.get(key) is None or isinstance(config[key], dict), path, f"'{key}' is not an object")


def check_attack_layout(document: dict[str, Any], path: Path) -> None:
    """The fields of an ``attack-<mode>.json`` the report reads, with their types (UserInputError otherwise).

    A document of the wrong shape (hand-edited, or from another tool) is one error line naming the file, never
    a traceback halfway through the report.
    """
    for key in ("mode", "ensemble", "eps_text"):
        _need(isinstance(document.get(key), str), path, f"'{key}' is missing or not a string")
    _need(isinstance(document.get("samples"), int) and not isinstance(document["samples"], bool), path,
          "'samples' is missing or not an integer")
    attacks = document.get("attacks")
    _need(isinstance(attacks, list), path, "'attacks' is missing or not a list")
    for entry in attacks:
        _need(isinstance(entry, dict), path, "an entry of 'attacks' is not an object")
        name = entry.get("name")
        _need(isinstance(name, str) and isinstance(entry.get("label"), str), path,
              "an attack lacks a string 'name' or 'label'")
        _need(_is_number(entry.get("accuracy")), path, f"attack {name!r} has no numeric 'accuracy'")
        members = entry.get("members", {})
        _need(isinstance(members, dict) and all(isinstance(v, dict) for v in members.values()), path,
              f"attack {name!r} has malformed 'members'")
        _check_checks(entry.get("checks", []), path, f"attack {name!r}")
    _check_checks(document.get("checks", []), path, "the document")
    over = document.get("overestimate")
    _need(over is None or isinstance(over, dict) and all(_overestimate_field(k, v) for k, v in over.items()),
          path, "'overestimate' is not an object of numbers and intervals")
    for entry in attacks:
        _need(_is_interval(entry.get("ci95")), path, f"attack {entry['name']!r} has a malformed 'ci95'")


EVENT_THREATS = ("events", "retiming")
"""The ``threat`` of an event-domain attack result (the frame results have none, or ``frames``)."""


def check_event_layout(document: dict[str, Any], path: Path) -> None:
    """The fields of an ``attack-<threat>.json`` (event threats) the report reads, with their types."""
    _need(isinstance(document.get("samples"), int), path, "'samples' is missing or not an integer")
    attacks = document.get("attacks")
    _need(isinstance(attacks, list), path, "'attacks' is missing or not a list")
    for entry in attacks:
        _need(isinstance(entry, dict) and isinstance(entry.get("name"), str)
              and isinstance(entry.get("label"), str), path, "an attack lacks a string 'name' or 'label'")
        _need(_is_number(entry.get("accuracy")), path, f"attack {entry['name']!r} has no numeric 'accuracy'")
        _need(_is_interval(entry.get("ci95")), path, f"attack {entry['name']!r} has a malformed 'ci95'")
    example = document.get("example")
    _need(example is None or isinstance(example, dict) and isinstance(example.get("changes"), list), path,
          "'example' is not an object with a 'changes' list")


def _overestimate_field(key: str, value: Any) -> bool:
    if key == "paper_attack":
        return isinstance(value, str)
    return _is_interval(value) if key.endswith("_ci95") else _is_number(value)


def _is_interval(value: Any) -> bool:
    """None (not recorded: files written before intervals were kept) or ``[low, high]`` within [0, 1]."""
    if value is None:
        return True
    return (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
            and 0.0 <= value[0] <= value[1] <= 1.0)


def load_run(run: Path) -> RunData:
    """Read one run directory (its finished attack and analysis results and its metrics).

    Every document goes through :mod:`evrobust.safeio`: ``config.json`` through
    :func:`~evrobust.pipelines.train.run_dir.read_config`, ``attack-<mode>.json`` as ``attack_result``,
    ``analysis-<kind>.json`` as ``analysis`` (:func:`read_analysis`), ``metrics.jsonl`` through
    :func:`~evrobust.pipelines.train.run_dir.read_metrics`.
    """
    from evrobust.pipelines.train.run_dir import read_config

    data = RunData(path=run, config=read_config(run))
    check_config_layout(data.config, run / "config.json")
    for p in sorted(run.glob("attack-*.json")):
        if not p.name.endswith(".partial.json"):
            document = read_json(p, "attack_result")
            if document.get("threat") in EVENT_THREATS:
                # Event-domain results (`--threat events|retiming`) have their own tables and figures; the
                # frame tables never see them.
                check_event_layout(document, p)
                data.event_attacks[str(document["threat"])] = document
                continue
            check_attack_layout(document, p)
            data.attack_list.append(document)
            data.attacks[str(document.get("mode") or p.stem.removeprefix("attack-"))] = document
    for p in sorted(run.glob("analysis-*.json")):
        document = read_analysis(p)
        data.analysis_list.append(document)
        data.analyses[str(document["kind"])] = document
    data.metrics = read_metrics(run)
    return data


def load_runs(runs: Sequence[Path], loaded: dict[Path, RunData] | None = None) -> list[RunData]:
    """Read runs and give each a short unique label (``dataset/defense``, the directory name on a clash).

    ``loaded``: runs already read (by path), reused instead of reading (and validating) them again; the runs
    read here are added to it.
    """
    loaded = {} if loaded is None else loaded
    for r in runs:
        if r not in loaded:
            loaded[r] = load_run(r)
    data = [loaded[r] for r in runs]
    base = [f"{r.dataset}/{r.defense}" for r in data]
    for r, label in zip(data, base, strict=True):
        r.label = label if base.count(label) == 1 else f"{label} ({r.path.name})"
    return sorted(data, key=_order)


def _order(run: RunData) -> tuple[str, int, str]:
    rank = DEFENSE_ORDER.index(run.defense) if run.defense in DEFENSE_ORDER else len(DEFENSE_ORDER)
    return run.dataset, rank, run.label


# ------------------------------------------------------------------------------------------ numbers


def attack_entries(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The object entries of an attack document's ``attacks`` list (empty for no document)."""
    return [] if result is None else [e for e in result.get("attacks", []) if isinstance(e, dict)]


def _accuracy(result: dict[str, Any] | None, name: str) -> float | None:
    for entry in attack_entries(result):
        if entry.get("name") == name and entry.get("accuracy") is not None:
            return float(entry["accuracy"])
    return None


def _worst_entry(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The table attack with the lowest accuracy (clean and the reliable cascade excluded), or None."""
    best: dict[str, Any] | None = None
    for entry in attack_entries(result):
        if entry.get("name") in ("clean", RELIABLE) or not entry.get("in_table", True):
            continue
        if entry.get("accuracy") is None:
            continue
        if best is None or float(entry["accuracy"]) < float(best["accuracy"]):
            best = entry
    return best


def _worst(result: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """Lowest accuracy over the table's attacks (clean and the reliable cascade excluded) and its label."""
    entry = _worst_entry(result)
    if entry is None:
        return None, None
    return float(entry["accuracy"]), str(entry.get("label", entry.get("name")))


def entry_interval(result: dict[str, Any] | None, entry: dict[str, Any] | None) -> list[float] | None:
    """The 95 % interval of an attack entry: its ``ci95``, else (files written before intervals were kept)
    the Clopper–Pearson interval of ``round(accuracy * samples)`` of its ``samples``; None without samples."""
    if entry is None:
        return None
    if entry.get("ci95") is not None:
        return [float(v) for v in entry["ci95"]]
    n = entry.get("samples", (result or {}).get("samples"))
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return None
    return ci95(min(n, max(0, round(float(entry["accuracy"]) * n))), n)


def _named_interval(result: dict[str, Any] | None, name: str) -> list[float] | None:
    entry = next((e for e in attack_entries(result) if e.get("name") == name), None)
    return entry_interval(result, entry)


def overestimate(run: RunData) -> dict[str, float] | None:
    """The agreed ``overestimate`` key of the run's attack JSON (white box first), or None."""
    for mode in ("whitebox", *[m for m in run.attacks if m != "whitebox"]):
        value = (run.attacks.get(mode) or {}).get("overestimate")
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items() if isinstance(v, int | float)}
    return None


def reliable_accuracy(run: RunData) -> float | None:
    """Accuracy under the reliable cascade: its attack entry, else ``overestimate.reliable``."""
    for result in run.attacks.values():
        value = _accuracy(result, RELIABLE)
        if value is not None:
            return value
    over = overestimate(run)
    return None if over is None else over.get("reliable")


def grad_l1(run: RunData) -> float | None:
    """Mean l1 norm of grad_x f_y (two-class target) from the sparsity analysis, else the last epoch's."""
    mean = (((run.analyses.get("sparsity") or {}).get("targets") or {}).get("two_class") or {}).get("mean")
    if isinstance(mean, dict) and mean.get("l1") is not None:
        return float(mean["l1"])
    for record in reversed(run.metrics):
        if record.get("val_grad_l1") is not None:
            return float(record["val_grad_l1"])
    return None


def summary_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """One row per run with attack results: accuracies as fractions, None where the run lacks them."""
    rows = []
    for run in runs:
        if not run.attacks:
            continue
        white = run.attacks.get("whitebox")
        clean = _accuracy(white, "clean")
        if clean is None:
            clean = next(
                (v for v in (_accuracy(r, "clean") for r in run.attacks.values()) if v is not None), None
            )
        white_acc, white_name = _worst(white)
        black_acc, black_name = _worst(run.attacks.get("blackbox"))
        black = run.attacks.get("blackbox")
        clean_doc = white if _accuracy(white, "clean") is not None else next(
            (r for r in run.attacks.values() if _accuracy(r, "clean") is not None), None)
        reliable_doc = next((r for r in run.attacks.values() if _accuracy(r, RELIABLE) is not None), None)
        failed = sorted(
            {
                str(c.get("name"))
                for r in run.attacks.values()
                for c in r.get("checks", [])
                if isinstance(c, dict) and not c.get("passed", True)
            }
        )
        over = overestimate(run)
        rows.append(
            {
                "label": run.label,
                "data": run.dataset,
                "defense": run.defense,
                "clean": clean,
                "white": white_acc,
                "white_attack": white_name,
                "black": black_acc,
                "black_attack": black_name,
                "reliable": reliable_accuracy(run),
                "clean_ci95": _named_interval(clean_doc, "clean"),
                "white_ci95": entry_interval(white, _worst_entry(white)),
                "black_ci95": entry_interval(black, _worst_entry(black)),
                "reliable_ci95": _named_interval(reliable_doc, RELIABLE),
                "reliable_converged": ((reliable_doc or {}).get("reliable") or {}).get("converged"),
                "overestimate": None if over is None else over.get("difference"),
                "paper_protocol": None if over is None else over.get("paper"),
                "grad_l1": grad_l1(run),
                "failed_checks": failed,
                "eps": sorted({str(r.get("eps_text")) for r in run.attacks.values() if r.get("eps_text")}),
            }
        )
    return rows


def pct(value: float | None, ci95: Sequence[float] | None = None) -> str:
    """A fraction as a % with one decimal, ``–`` for missing; with its 95 % interval in brackets if given."""
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    return text if ci95 is None else f"{text} [{100 * ci95[0]:.1f}, {100 * ci95[1]:.1f}]"


def summary_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the summary table; reliable / overestimate columns only when some run has them."""
    reliable = any(r["reliable"] is not None or r["overestimate"] is not None for r in rows)
    eps = sorted({e for r in rows for e in r["eps"]})
    headers = ["data", "defense", "clean", "white-box (worst attack)", "black-box (worst attack)"]
    if reliable:
        headers += ["reliable", "overestimate (points)"]
    headers += ["grad l1", "failed masking checks"]
    lines = [
        f"Accuracy (%) at eps {', '.join(eps) or '?'} (L-inf). White box / black box: the lowest accuracy "
        "over the suite's attacks, the attack named in brackets."
        + (
            " Reliable: the reliable attack cascade and its convergence certificate (\"not converged\": "
            "doubling the budget still broke samples, so the number is an upper bound); overestimate: how "
            "many points the paper protocol's lowest accuracy lies above it."
            if reliable
            else ""
        )
        + " Grad l1: mean l1 norm of grad_x f_y (two-class target). Brackets after a number: its 95 % "
        "Clopper–Pearson interval over the samples evaluated.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]

    def named(value: float | None, ci95: Sequence[float] | None, name: str | None) -> str:
        return pct(value, ci95) + (f" ({name})" if value is not None and name else "")

    for r in rows:
        cells = [
            r["data"],
            r["defense"],
            pct(r["clean"], r.get("clean_ci95")),
            named(r["white"], r.get("white_ci95"), r["white_attack"]),
            named(r["black"], r.get("black_ci95"), r["black_attack"]),
        ]
        if reliable:
            over = r["overestimate"]
            value = pct(r["reliable"], r.get("reliable_ci95"))
            if r.get("reliable_converged") is False:
                value = f"≤ {value} (not converged)"
            cells += [value, "–" if over is None else f"{100 * over:+.1f}"]
        cells += [
            "–" if r["grad_l1"] is None else f"{r['grad_l1']:.3g}",
            ", ".join(r["failed_checks"]) or "none",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
