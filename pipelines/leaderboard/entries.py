"""A leaderboard entry from an evaluated run: its numbers, verdict flags, reliability and card.

An entry follows RobustBench's entry format where a field fits (``name``, ``paper``, ``architecture``,
``eps``, ``clean_acc``, ``robust_acc``, ``reported``, ``footnote``, ``unreliable``) and adds what an SNN needs
to be compared: ``T``, ``neuron``, ``encoding``, ``stochastic``, ``eot_draws``, ``attack_suite``. Its
``card`` holds what it takes to rerun it: the exact ``evrobust train`` and ``evrobust attack`` commands, the
training cost (seconds per epoch from ``metrics.jsonl``, against the vanilla entry's), the evaluation cost
(the attack document's seconds), the certificate's verdict and the failed checks and indicators.

Also :func:`load_external`: ``--add RUN``, a run directory holding ``attack-whitebox.json`` of
``evrobust attack --suite reliable`` (also one written by ``evrobust attack --model ... --run DIR``).

Torch-free: this module reads documents only.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evrobust.errors import UserInputError
from evrobust.pipelines.common.paired import headline_key, load_attack_file, robust_flags

if TYPE_CHECKING:  # the spec imports the reproduction package (and torch); the entries read documents only
    from evrobust.pipelines.leaderboard.spec import EvalSettings

__all__ = ["attack_command", "entry_document", "load_external", "reliability", "train_command",
           "training_seconds", "verdict_flags"]

_RUNTIME_KEYS = frozenset({"data_dir", "device", "out", "resume", "workers", "progress", "stop_after"})
"""``config.json`` ``train`` fields that do not change the trained weights (left out of the command)."""


_AT = ("at_method", "at_eps", "at_step", "at_steps")
_SR = ("lam", "h", "penalty")
SETTINGS: dict[str, tuple[str, ...]] = {
    "vanilla": (),
    "sr": _SR,
    "at": _AT,
    "sr_star": _SR + _AT,
    "rat": _AT + ("rat_beta",),
    "trades": ("at_eps", "at_step", "at_steps", "trades_beta", "trades_tau"),
    "dlif": _AT + ("dlif_kappa", "dlif_alpha"),
    "tgo": ("tgo_delta", "tgo_lam", "tgo_warmup", "tgo_noise"),
}
"""The resolved settings that act in each defense (``config.json`` records every field for every defense)."""


def defense_settings(defense: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``config.json``'s ``defense`` block that the defense uses (DSD: its own base's too)."""
    name = defense.get("name")
    if name == "dsd":
        keys = ("dsd_base", *SETTINGS.get(str(defense.get("dsd_base") or "at"), ()))
    else:
        keys = SETTINGS.get(str(name), tuple(k for k in defense if k != "name"))
    return {k: defense[k] for k in keys if k in defense}


def _pct(value: float | None) -> float | None:
    """An accuracy fraction as RobustBench prints it: percent, two decimals."""
    return None if value is None else round(100.0 * value, 2)


def _pct_interval(ci: list[float] | None) -> list[float] | None:
    return None if ci is None else [round(100.0 * v, 2) for v in ci]


def _option(key: str) -> str:
    return "--T" if key == "T" else "--" + key.replace("_", "-")


def train_command(train: dict[str, Any], out: str | None) -> str:
    """The ``evrobust train`` command that trains a run with these ``TrainConfig`` fields into ``out``.

    None-valued fields are left to ``evrobust train``'s defaults (that is what they mean in a spec);
    booleans become ``--x`` / ``--no-x`` and ``model_options`` one ``--model-opt k=v`` each.
    """
    args = ["evrobust", "train"]
    for key, value in train.items():
        if key in _RUNTIME_KEYS or value is None:
            continue
        if key == "model_options":
            args += [a for k, v in sorted(value.items()) for a in ("--model-opt", f"{k}={v}")]
        elif isinstance(value, bool):
            if key == "amp":
                args += ["--amp"] if value else []
            else:
                args.append(_option(key) if value else "--no-" + key.replace("_", "-"))
        else:
            args += [_option(key), f"{value:g}" if isinstance(value, float) else str(value)]
    if out is not None:
        args += ["--out", out]
    return " ".join(shlex.quote(a) for a in args)


def attack_command(run: str, settings: EvalSettings | None, document: dict[str, Any]) -> str:
    """The ``evrobust attack`` command of the entry's evaluation (``--suite reliable``).

    For a built-in entry, from the protocol's settings; for an ``--add`` entry, from what its attack document
    records (eps, ensemble, samples, seed, doublings; the cascade's step and query budgets are in its
    ``cascade.stages[*].attack`` settings).
    """
    args = ["evrobust", "attack", "--run", run, "--suite", "reliable"]
    if settings is not None:
        args += ["--eps", settings.eps_text, "--ensemble", settings.ensemble]
        if settings.limit is not None:
            args += ["--limit", str(settings.limit)]
        args += ["--batch-size", str(settings.batch_size)]
        args += [a for k, v in settings.budget.items() for a in (_option(k), str(v))]
        return " ".join(shlex.quote(a) for a in args)
    args += ["--eps", str(document.get("eps_text") or document.get("eps")),
             "--ensemble", str(document.get("ensemble") or "paper"), "--limit", str(document["samples"])]
    if document.get("seed") is not None:
        args += ["--seed", str(document["seed"])]
    doublings = (document.get("reliable") or {}).get("max_doublings")
    if doublings is not None:
        args += ["--max-doublings", str(doublings)]
    return " ".join(shlex.quote(a) for a in args)


def training_seconds(run: Path) -> dict[str, Any] | None:
    """``{"s_per_epoch", "epochs"}`` from the run's ``metrics.jsonl`` (None when it has none)."""
    from evrobust.pipelines.train.run_dir import read_metrics

    if not os.path.lexists(run / "metrics.jsonl"):
        return None
    metrics = read_metrics(run)
    if not metrics:
        return None
    seconds = [float(m.get("seconds", 0.0)) for m in metrics]
    return {"s_per_epoch": sum(seconds) / len(seconds), "epochs": len(seconds)}


def reliability(document: dict[str, Any]) -> dict[str, Any]:
    """Whether the document's reliable number can be ranked, and why not.

    Returns:
        ``{"converged", "doublings", "failed_checks", "failed_indicators", "unreliable", "footnote"}``:
        ``converged`` is the certificate's verdict (None: no certificate ran); a failed check is named with
        the attack it is about (``adv_le_noise [pgd10]``); an indicator counts as failed only when it says so
        (``passed: false``; ``null`` means it did not apply).
    """
    reliable = document.get("reliable") or {}
    converged = reliable.get("converged")
    failed_checks = [c["name"] + (f" [{c['subject']}]" if c.get("subject") else "")
                     for c in document.get("checks", []) if c.get("passed") is False]
    failed_indicators = [i["name"] for i in reliable.get("indicators") or [] if i.get("passed") is False]
    notes = []
    if converged is False:
        notes.append("not converged: doubling the budget still broke samples, so the number is an upper "
                     "bound")
    elif converged is None:
        notes.append("no convergence certificate ran: the number is an upper bound")
    if failed_checks:
        notes.append("masking checks failed: " + ", ".join(failed_checks))
    if failed_indicators:
        notes.append("attack-failure indicators failed: " + ", ".join(failed_indicators))
    return {
        "converged": converged,
        "doublings": len(reliable.get("doublings") or []),
        "failed_checks": failed_checks,
        "failed_indicators": failed_indicators,
        "unreliable": bool(notes),
        "footnote": "; ".join(notes) or None,
    }


def _evaluation_seconds(document: dict[str, Any]) -> dict[str, float]:
    """Wall-clock seconds of the evaluation: ``attacks`` (every attack's, the cascade and its certificate
    included, as the attack document records them), ``indicators`` (the attack-failure indicators) and their
    sum ``seconds``."""
    attacks = sum(float(a.get("seconds") or 0.0) for a in document.get("attacks", []))
    timing = (document.get("reliable") or {}).get("seconds")
    indicators = float(timing.get("indicators") or 0.0) if isinstance(timing, dict) else 0.0
    return {"seconds": attacks + indicators, "attacks": attacks, "indicators": indicators}


def _snn_fields(config: dict[str, Any] | None) -> dict[str, Any]:
    """T, neuron, encoding, stochasticity of the evaluated model, from its run's ``config.json``."""
    model = (config or {}).get("model") or {}
    data = (config or {}).get("data") or {}
    neuron = None
    if model.get("theta") is not None or model.get("spec") is not None:
        neuron = (f"IF (tau {model.get('tau', 1.0):g}, theta {model.get('theta', 1.0):g}, hard reset), "
                  f"surrogate {model.get('spec', '?')}, readout {model.get('readout', 'mean')}")
    kind = data.get("kind")
    encoding = {"images": "direct (image repeated over T)", "frames": "event frames",
                "events": "event frames"}.get(kind)
    return {
        "T": model.get("T"),
        "neuron": neuron,
        "encoding": encoding,
        # evrobust's models are deterministic at test time (TGO's membrane noise is a training option):
        # one forward pass per gradient, no expectation over transformations needed.
        "stochastic": False if model else None,
        "eot_draws": 1 if model else None,
    }


def entry_document(
    *,
    key: str,
    name: str,
    paper: str | None,
    run: Path,
    run_label: str,
    config: dict[str, Any] | None,
    document: dict[str, Any],
    train: str | None,
    attack: str,
    external: bool,
) -> dict[str, Any]:
    """The JSON of one entry (before ranking: ``rank`` and ``group`` are filled by the table)."""
    reliable = document.get("reliable") or {}
    clean = next((a for a in document.get("attacks", []) if a["name"] == "clean"), {})
    verdict = reliability(document)
    defense = (config or {}).get("defense") or {}
    model = (config or {}).get("model") or {}
    arch = model.get("name") or document.get("arch") or "?"
    if model.get("width") not in (None, 1, 1.0):
        arch = f"{arch} x{model['width']:g}"
    cost = training_seconds(run)
    return {
        "key": key,
        "name": name,
        "paper": paper,
        "architecture": arch,
        "dataset": document.get("dataset"),
        "eps": document.get("eps_text") or document.get("eps"),
        "threat_model": "Linf",
        "clean_acc": _pct(clean.get("accuracy")),
        "clean_ci95": _pct_interval(clean.get("ci95")),
        "robust_acc": _pct(reliable.get("accuracy")),
        "robust_ci95": _pct_interval(reliable.get("ci95")),
        "robust": reliable.get("robust"),
        "n": document["samples"],
        "reported": None,
        "footnote": verdict["footnote"],
        "unreliable": verdict["unreliable"],
        "rank": None,
        "group": None,
        **_snn_fields(config),
        "attack_suite": "reliable",
        "ensemble": document.get("ensemble"),
        "external": external,
        "card": {
            "run": run_label,
            "defense": defense.get("name") or document.get("defense"),
            "settings": defense_settings(defense),
            "train_command": train,
            "attack_command": attack,
            "training_cost": cost,
            "evaluation_cost": _evaluation_seconds(document),
            "converged": verdict["converged"],
            "doublings": verdict["doublings"],
            "failed_checks": verdict["failed_checks"],
            "failed_indicators": verdict["failed_indicators"],
        },
    }


def verdict_flags(document: dict[str, Any]) -> list[bool]:
    """Per-sample robust flags of the document's headline verdict (the reliable cascade's)."""
    return robust_flags(document, headline_key(document))


def load_external(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any], dict[str, Any] | None]:
    """``(run dir, attack document, config or None)`` of ``--add RUN``.

    Raises:
        UserInputError: not a directory, no ``attack-whitebox.json``, or one without reliable-suite results.
    """
    from evrobust.pipelines.train.run_dir import read_config

    run = Path(path)
    if not run.is_dir() or run.is_symlink():
        raise UserInputError(f"--add {run}: not a run directory; give a directory holding "
                             "attack-whitebox.json from `evrobust attack --suite reliable`")
    if not os.path.lexists(run / "attack-whitebox.json"):
        raise UserInputError(f"--add {run}: no attack-whitebox.json; run `evrobust attack --run {run} "
                             "--suite reliable` first")
    document = load_attack_file(run, "whitebox")
    cascade = document.get("cascade") or {}
    if not isinstance(document.get("reliable"), dict) or cascade.get("attack") not in document["flags"] \
            or "clean" not in document["flags"]:
        raise UserInputError(f"--add {run}: its attack-whitebox.json holds no reliable-suite verdict; rerun "
                             f"`evrobust attack --run {run} --suite reliable`")
    config = read_config(run) if os.path.lexists(run / "config.json") else None
    return run, document, config

