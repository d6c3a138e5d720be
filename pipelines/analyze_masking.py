"""The masking-study kinds of ``evrobust analyze``: ``landscape`` and ``fidelity`` (docs/masking-study.md).

:func:`evrobust.pipelines.analyze.run_analysis` loads the run and its test samples and calls
:func:`kind_landscape` or :func:`kind_fidelity` with its context; the options are checked here first
(:func:`resolve_options`), so a bad grid is one line before any model is loaded. The numbers come from
:mod:`evrobust.analysis.landscape` and :mod:`evrobust.analysis.fidelity`.

- ``landscape``: the cross-entropy and the margin at ``clip(x + r u)`` for radii ``r`` from 1e-3 to 4 eps
  (log-spaced) along the sign of the surrogate gradient, seeded random sign directions and the direction to an
  adversarial example. The attack results of a run (``attack-whitebox.json``) hold per-sample flags, not
  adversarial examples, so the example is found here by PGD under the same gradient spec, and the document
  says so (``adversarial.note``).
- ``fidelity``: per gradient spec and finite-difference step, the surrogate directional derivative against
  the central difference of the exact forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from evrobust.analysis import model_spec
from evrobust.analysis.fidelity import (
    DEFAULT_STEPS,
    ce_and_gradient,
    check_steps,
    disagreement,
    fidelity_check,
    sign_directions,
    summarize_fidelity,
)
from evrobust.analysis.landscape import (
    DEFAULT_POINTS,
    DEFAULT_RISE,
    adversarial_direction,
    check_radii,
    default_radii,
    loss_along,
    margins,
    median_rise,
    quartiles,
    rise_radius,
)
from evrobust.attacks import ENSEMBLES, PGD, ensemble_specs, member_name, predict
from evrobust.attacks.base import eval_mode
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.inputs import eps_text
from evrobust.pipelines.common.options import parse_eps


class _Context(Protocol):
    """What ``run_analysis`` hands a kind (:class:`evrobust.pipelines.analyze._Context` satisfies it; named
    here as a protocol so that this module, which ``analyze`` imports, does not import ``analyze``)."""

    run: Path
    model: nn.Module
    spec: str | None
    seed: int

    def batches(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        """``(batch index, x [B, ...], y [B])`` on the model's device."""
        ...

__all__ = ["KINDS", "OPTIONS", "SR_STEP", "kind_fidelity", "kind_landscape", "resolve_options"]

KINDS: tuple[str, ...] = ("landscape", "fidelity")
SR_STEP = 0.01
"""SR's finite-difference step h (evrobust.defenses.sr): recorded beside the grids it is compared with."""
PGD_ALPHA = 2.55 / 255
"""Step of the PGD that finds the adversarial direction: the paper's evaluation step."""
MAX_RADII = 256
"""Most radii (or steps) of one document: a curve per sample and direction is stored for each."""
MAX_RANDOM = 16
"""Most random sign directions (each costs a forward pass per radius or step)."""
MAX_ADV_STEPS = 1000
"""Most PGD steps of the adversarial direction."""

OPTIONS: dict[str, dict[str, Any]] = {
    "landscape": {
        "eps": 8 / 255, "radii": None, "points": DEFAULT_POINTS, "rise": DEFAULT_RISE, "random": 2,
        "adv_steps": 10,
    },
    "fidelity": {"eps": 8 / 255, "steps": DEFAULT_STEPS, "random": 2, "ensemble": "paper"},
}
"""Kind options of ``run_analysis`` and their defaults (the CLI's defaults are the same)."""


def _numbers(value: Any, what: str) -> list[float]:
    """``"1e-3,1e-2"`` / ``"1/255,2/255"`` or a sequence of numbers -> floats (unchecked)."""
    items = [s for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            out.append(parse_eps(item, what) if isinstance(item, str) else float(item))
        except (TypeError, ValueError):
            raise UserInputError(f"{what} must be numbers, got {item!r}") from None
    return out


def _count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or not (
        low <= value <= high
    ):
        raise UserInputError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def resolve_options(kind: str, resolved: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise the options of ``kind`` (defaults already merged in); one-line UserInputError."""
    opts = dict(resolved)
    eps = parse_eps(opts["eps"], "--eps") if isinstance(opts["eps"], str) else float(opts["eps"])
    if not (math.isfinite(eps) and 0.0 < eps <= 0.25):
        raise UserInputError(f"--eps must be in (0, 0.25] input units for {kind}, got {opts['eps']!r}")
    opts["eps"] = eps
    opts["random"] = _count("--random", opts["random"], 0, MAX_RANDOM)
    if kind == "landscape":
        if opts["radii"] is None:
            opts["points"] = _count("--points", opts["points"], 2, MAX_RADII)
            opts["radii"] = default_radii(eps, opts["points"])
        else:
            opts["radii"] = check_radii(_numbers(opts["radii"], "--radii"))
            if len(opts["radii"]) > MAX_RADII:
                raise UserInputError(f"--radii holds {len(opts['radii'])} radii, more than {MAX_RADII}")
            opts["points"] = len(opts["radii"])
        rise = opts["rise"]
        if isinstance(rise, bool) or not isinstance(rise, int | float) or not (
            math.isfinite(rise) and rise > 0
        ):
            raise UserInputError(f"--rise must be a number > 0 (nats), got {rise!r}")
        opts["rise"] = float(rise)
        opts["adv_steps"] = _count("--adv-steps", opts["adv_steps"], 0, MAX_ADV_STEPS)
    else:
        opts["steps"] = check_steps(_numbers(opts["steps"], "--steps"))
        if len(opts["steps"]) > MAX_RADII:
            raise UserInputError(f"--steps holds {len(opts['steps'])} steps, more than {MAX_RADII}")
        if opts["ensemble"] not in ENSEMBLES:
            valid = ", ".join(ENSEMBLES)
            raise UserInputError(f"unknown ensemble {opts['ensemble']!r}; valid choices: {valid}")
    return opts


# ------------------------------------------------------------------------------------------- landscape


def _clean(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(CE [N] nats, margin [N] logit units)`` at the samples themselves, float64 on the CPU."""
    with eval_mode(model), torch.no_grad():
        logits = model(x)
        ce = nn.functional.cross_entropy(logits, y, reduction="none")
    return ce.double().cpu(), margins(logits, y).double().cpu()


def _adversarial_note(ctx: _Context, steps: int, eps: float, spec: str) -> tuple[str | None, str]:
    """``(attack file or None, note)``: where the adversarial direction comes from, in words."""
    attack_file = "attack-whitebox.json" if (ctx.run / "attack-whitebox.json").is_file() else None
    found = (f"the example found by PGD-{steps} (random start, step 2.55/255, eps {eps_text(eps)}) run "
             f"by this analysis under gradient spec {spec}")
    if attack_file is not None:
        return attack_file, (f"{attack_file} holds per-sample flags, not adversarial examples: the "
                             f"adversarial direction points to {found}")
    return None, f"the run holds no attack result: the adversarial direction points to {found}"


def kind_landscape(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    """The ``landscape`` document's body (see docs/masking-study.md for the layout)."""
    radii: list[float] = opts["radii"]
    curves: dict[str, dict[str, list[Tensor]]] = {}
    clean: dict[str, list[Tensor]] = {"ce": [], "margin": []}
    adv: dict[str, list[Tensor]] = {"distance": [], "broken": []}
    attack = PGD(opts["eps"], alpha=PGD_ALPHA, steps=opts["adv_steps"]) if opts["adv_steps"] else None
    for b, x, y in ctx.batches():
        ce0, m0 = _clean(ctx.model, x, y)
        clean["ce"].append(ce0)
        clean["margin"].append(m0)
        _, grad = ce_and_gradient(ctx.model, x, y, ctx.spec)
        directions = {"gradient": grad.sign()}
        for i, u in enumerate(sign_directions(x, opts["random"], ctx.seed * 1_000_003 + b)):
            directions[f"random-{i}"] = u
        if attack is not None:
            x_adv = attack(ctx.model, x, y, seed=ctx.seed * 1_000_003 + b, spec=ctx.spec)
            directions["adversarial"], distance = adversarial_direction(x, x_adv)
            adv["distance"].append(distance.double().cpu())
            adv["broken"].append((predict(ctx.model, x_adv) != y).double().cpu())
        for name, u in directions.items():
            along = loss_along(ctx.model, x, y, u, radii)
            parts = curves.setdefault(name, {"ce": [], "margin": [], "clipped": [], "rise": []})
            for key in ("ce", "margin", "clipped"):
                parts[key].append(along[key])
            parts["rise"].append(rise_radius(ce0, along["ce"], radii, opts["rise"]))
    directions_out: dict[str, Any] = {}
    for name, parts in curves.items():
        ce, margin, clipped, rise = (torch.cat(parts[k]) for k in ("ce", "margin", "clipped", "rise"))
        directions_out[name] = {
            "ce": quartiles(ce),
            "margin": quartiles(margin),
            "clipped": clipped.mean(0).tolist(),
            "rise": {"median_radius": median_rise(rise),
                     "share": float((~torch.isnan(rise)).double().mean())},
            "per_sample": {"ce": ce.tolist(), "margin": margin.tolist(), "rise_radius": rise.tolist()},
        }
    ce0_all, m0_all = torch.cat(clean["ce"]), torch.cat(clean["margin"])
    body: dict[str, Any] = {
        "eps": opts["eps"],
        "eps_text": eps_text(opts["eps"]),
        "radii": radii,
        "rise": opts["rise"],
        "sr_h": SR_STEP,
        "random_directions": opts["random"],
        "clean": {"median_ce": float(ce0_all.median()), "median_margin": float(m0_all.median()),
                  "per_sample": {"ce": ce0_all.tolist(), "margin": m0_all.tolist()}},
        "directions": directions_out,
        "adversarial": None,
    }
    if attack is not None:
        spec = ctx.spec if ctx.spec is not None else (model_spec(ctx.model) or "the model's own")
        attack_file, note = _adversarial_note(ctx, opts["adv_steps"], opts["eps"], spec)
        broken = torch.cat(adv["broken"])
        body["adversarial"] = {
            "source": "pgd", "attack": f"pgd{opts['adv_steps']}", "steps": opts["adv_steps"],
            "alpha": PGD_ALPHA, "random_start": True, "spec": spec, "attack_file": attack_file, "note": note,
            "broken": float(broken.mean()),
            "per_sample": {"distance": torch.cat(adv["distance"]).tolist(), "broken": broken.tolist()},
        }
    return body


# ------------------------------------------------------------------------------------------- fidelity


def _nearest(values: Sequence[float], target: float) -> int:
    """Index of the value nearest ``target`` on a log scale (the first on a tie)."""
    return min(range(len(values)), key=lambda i: abs(math.log(values[i] / target)))


def kind_fidelity(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    """The ``fidelity`` document's body (see docs/masking-study.md for the layout)."""
    steps: list[float] = opts["steps"]
    specs: tuple[Any, ...] = (ctx.spec,) if ctx.spec is not None else ensemble_specs(opts["ensemble"])
    own = model_spec(ctx.model) or "own"
    names = [str(ctx.spec)] if ctx.spec is not None else [own if s is None else member_name(s) for s in specs]
    parts: dict[str, list[dict[str, list[Tensor]]]] = {n: [{} for _ in steps] for n in names}
    directions: list[str] = []
    for b, x, y in ctx.batches():
        for name, spec in zip(names, specs, strict=True):
            out = fidelity_check(ctx.model, x, y, steps, spec=spec, random=opts["random"],
                                 seed=ctx.seed * 1_000_003 + b, eps=opts["eps"])
            directions = out["directions"]
            for s in range(len(steps)):
                for key in ("surrogate", "fd", "delta_eps"):
                    parts[name][s].setdefault(key, []).append(out[key][s])
    results: dict[str, Any] = {}
    for name in names:
        entries = []
        for s, h in enumerate(steps):
            a, f, d = (torch.cat(parts[name][s][k]) for k in ("surrogate", "fd", "delta_eps"))
            entries.append({
                "step": h, **summarize_fidelity(a, f, d),
                "per_sample": {"surrogate": a.tolist(), "fd": f.tolist(), "delta_eps": d.tolist(),
                               "disagreement": disagreement(a, f).tolist()},
            })
        results[name] = {"results": entries}
    lead = own if own in results else names[0]
    at = _nearest(steps, SR_STEP)
    headline = {k: v for k, v in results[lead]["results"][at].items() if k != "per_sample"}
    return {
        "eps": opts["eps"],
        "eps_text": eps_text(opts["eps"]),
        "steps": steps,
        "sr_h": SR_STEP,
        "random_directions": opts["random"],
        "directions": directions,
        "ensemble": "spec" if ctx.spec is not None else opts["ensemble"],
        "specs": results,
        "headline": {"spec": lead, **headline},
    }
