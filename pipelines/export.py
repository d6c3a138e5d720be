"""``evrobust export``: write a trained run as a NIR graph whose metadata carries its robustness numbers.

The graph (see :mod:`evrobust.export.nir_export` for the node semantics) is written atomically; its metadata
records the defense, its lambda and training eps, and the accuracies of the run's latest
``attack-whitebox.json`` (and ``attack-blackbox.json``) when present -- the numbers were measured by
``evrobust attack`` before the export and are copied, not re-measured. When no attack result exists the
metadata says so in words instead of a number.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.safeio import UnsafeFileError, check_write_target, read_json

__all__ = ["FORMATS", "export_run", "robustness_metadata"]

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("nir",)
ATTACK_MODES: tuple[str, ...] = ("whitebox", "blackbox")


def _attack_summary(path: Path, which: str) -> dict[str, Any] | str:
    """The accuracies of one attack result file, or a sentence saying why there are none."""
    if not os.path.lexists(path):
        return f"not measured: {path.name} is absent (run `evrobust attack` on the run before exporting)"
    try:
        # Schema-checked (evrobust.safeio): every field used below has its type and range.
        document = read_json(path, "attack_result")
        attacks = document["attacks"]
        table = {str(a["name"]): float(a["accuracy"]) for a in attacks if a.get("in_table", True)}
    except UnsafeFileError:
        raise  # a link, FIFO or directory where the run's own result belongs is refused, not summarised
    except UserInputError as exc:  # not JSON, or not a valid attack result: the one line says why
        return f"not available: {path.name} is unreadable ({' '.join(str(exc).split())[:300]})"
    except (KeyError, TypeError, AttributeError) as exc:
        return f"not available: {path.name} is unreadable ({type(exc).__name__})"
    robust = {name: acc for name, acc in table.items() if name != "clean"}
    summary: dict[str, Any] = {
        "file": path.name,
        "checkpoint": document.get("checkpoint"),
        "same_checkpoint": document.get("checkpoint") == which,
        "eps": document.get("eps"),
        "eps_text": document.get("eps_text"),
        "samples": document.get("samples"),
        "ensemble": document.get("ensemble"),
        "accuracy": table,
        "clean_accuracy": table.get("clean"),
        "robust_accuracy": min(robust.values()) if robust else None,
        "robust_attack": min(robust, key=robust.__getitem__) if robust else None,
    }
    if isinstance(document.get("overestimate"), dict):
        summary["overestimate"] = document["overestimate"]
    return summary


def _number(value: Any) -> float | str:
    """A number for the metadata, or ``"?"`` when a (damaged) config holds something else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return float(value)


def robustness_metadata(run: Path, config: dict[str, Any], which: str) -> dict[str, Any]:
    """Graph metadata for a run: defense, lambda, eps, data, and the measured accuracies (or their
    absence)."""
    defense = config.get("defense") if isinstance(config.get("defense"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    uses_sr = defense.get("name") in ("sr", "sr_star")
    # Every defense that crafts perturbed inputs while training (AT-type, DLIF, TRADES, DSD on those bases)
    # records the radius it trained at; the loss kinds are evrobust.defenses' own.
    from evrobust.defenses.objectives import ATTACK_DEFENSES, loss_kind

    kind = loss_kind(str(defense.get("name")), str(defense.get("dsd_base", "at")))
    uses_at = kind in ATTACK_DEFENSES or kind == "trades"
    meta: dict[str, Any] = {
        "run": str(run),
        "checkpoint": which,
        "dataset": data.get("dataset", "?"),
        "classes": json.dumps(data.get("classes", [])),
        "defense": defense.get("name", "?"),
        "lambda": _number(defense.get("lam", 0.0)) if uses_sr else 0.0,
        "sr_penalty": defense.get("penalty", "?") if uses_sr else "none",
        "train_eps": _number(defense.get("at_eps", 0.0)) if uses_at else 0.0,
        "train_attack": defense.get("at_method", "?") if uses_at else "none",
        "defense_config": json.dumps(defense, sort_keys=True),
    }
    for mode in ATTACK_MODES:
        summary = _attack_summary(run / f"attack-{mode}.json", which)
        if isinstance(summary, str):
            meta[f"{mode}_robust_accuracy"] = summary
            meta[f"{mode}_attack"] = summary
            continue
        robust = summary["robust_accuracy"]
        meta[f"{mode}_robust_accuracy"] = (
            robust if robust is not None else "not measured: no attack besides clean"
        )
        meta[f"{mode}_clean_accuracy"] = (
            summary["clean_accuracy"] if summary["clean_accuracy"] is not None else "none"
        )
        meta[f"{mode}_eps"] = summary["eps"] if summary["eps"] is not None else "none"
        meta[f"{mode}_attack"] = json.dumps(summary, sort_keys=True)
    return meta


def export_run(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    format: str = "nir",
    which: str = "best",
) -> dict[str, Any]:
    """Export the ``which`` checkpoint of a run to ``out``.

    Returns:
        ``{"out", "format", "nodes", "edges", "metadata"}``.

    Raises:
        UserInputError: unknown format, missing output directory, missing or damaged run, or a model that
            NIR cannot represent. Nothing is written in any of these cases.
    """
    from evrobust.export import to_nir_graph, write_nir
    from evrobust.pipelines.train.run_dir import load_run

    if format not in FORMATS:
        raise UserInputError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    if not out.parent.is_dir():
        raise UserInputError(f"cannot write {out}: directory {out.parent} does not exist; create it first")
    if out.is_dir():
        raise UserInputError(f"--out {out} is a directory; give a file name such as model.nir")
    check_write_target(out)  # a link, FIFO or device at --out is refused, never written through
    run = Path(run)
    if not run.is_dir():
        raise UserInputError(f"run {run} does not exist; give the --out directory of `evrobust train`")
    if os.path.samefile(out.parent, run) and out.suffix != ".nir":
        # The run's own files (checkpoints, config, metrics, attack and analysis results) are never an
        # export's target: inside a run directory only a .nir file may be written.
        raise UserInputError(
            f"--out {out} would overwrite a file of the run directory {run}; inside a run only a .nir file "
            "may be exported (e.g. model.nir)"
        )
    model, config = load_run(run, which=which)
    graph = to_nir_graph(model, robustness_metadata(run, config, which))
    write_nir(graph, out)
    logger.debug("wrote %s (%d nodes) from %s", out, len(graph.nodes), run)
    return {
        "out": str(out),
        "format": format,
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "metadata": dict(graph.metadata),
    }
