"""Attack-failure indicators of a ``--suite reliable`` run (:mod:`evrobust.analysis.indicators`), in the
result JSON under ``reliable.indicators``.

After the cascade and the convergence certificate, on the first :data:`SUBSET` test samples (all of them if
fewer), white-box only:

- ``unbounded_eps``: PGD (20 steps of 1/4) and Square (1,000 queries) at eps = 1, the whole input range,
  must leave 0 % accuracy (Carlini et al.: with an unbounded budget every sample is breakable). Remedy: the
  attacks are blind to this model (masking, a saturated readout); trust only the gradient-free stages and
  look at the gradient.
- ``loss_plateau/<stage>``: for each gradient stage of the cascade, the share of the samples a run did not
  break whose best loss still rose over its last tenth of iterations (collected while the cascade ran, over
  every batch). Above 5 %: the stage stopped too early; raise ``--steps``.
- ``binarization/<stage>``: Zimmermann et al.'s test on the frozen features; each gradient stage (its first
  surrogate; APGD-T is left out: the binarized model has two classes) and Square must break at least 95 % of
  the provably breakable points. Remedy: the stage cannot find adversarial examples that exist; do not
  trust its verdicts.
- ``gradient_fidelity``: per sample, the share of exactly-zero input-gradient components and the
  disagreement of the surrogate directional derivative with a finite difference (informational: a spiking
  network's loss is piecewise constant, so disagreement is expected; its size says how blind a gradient
  attack is there).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.analysis.indicators import (
    BINARIZATION_PASS,
    Indicator,
    binarization_test,
    fd_disagreement,
    loss_still_moving,
)
from evrobust.attacks.apgd import APGDT
from evrobust.attacks.base import Attack, predict, recording_traces
from evrobust.attacks.cascade import Cascade
from evrobust.attacks.pgd import PGD
from evrobust.attacks.square import Square

__all__ = ["PLATEAU_LIMIT", "SUBSET", "compute_indicators", "plateau_recorder", "render_indicators"]

logger = logging.getLogger(__name__)

SUBSET = 50
"""Samples the unbounded-eps, binarization and fidelity indicators use (the first ones of the test split)."""
PLATEAU_LIMIT = 0.05
"""A gradient stage fails the plateau indicator when more than this share of its runs was still rising."""


@contextmanager
def plateau_recorder(cascade: Cascade, counts: dict[str, list[int]]) -> Iterator[None]:
    """While the block runs, every gradient stage of ``cascade`` adds ``[still moving, survivors]`` of each
    of its runs to ``counts[stage name]`` (kept in the partial file, so a resume goes on counting)."""
    by_attack: dict[int, str] = {id(s.attack): s.name for s in cascade.stages if s.attack.uses_gradient}
    attacks = [s.attack for s in cascade.stages if s.attack.uses_gradient]

    def sink(attack: Attack, best: Tensor, fooled: Tensor) -> None:
        moving, total = loss_still_moving(best, fooled)
        entry = counts.setdefault(by_attack[id(attack)], [0, 0])
        entry[0] += moving
        entry[1] += total

    with recording_traces(attacks, sink):
        yield


def _plateau(counts: dict[str, list[int]]) -> list[Indicator]:
    out = []
    for stage, (moving, total) in counts.items():
        share = moving / total if total else 0.0
        out.append(Indicator(
            f"loss_plateau/{stage}", stage, share <= PLATEAU_LIMIT, share,
            f"{moving} of {total} runs that did not break their sample still raised their best loss over the "
            f"last tenth of the iterations (limit {100 * PLATEAU_LIMIT:.0f} %)",
            "" if share <= PLATEAU_LIMIT else f"raise --steps: {stage} stopped before its loss converged",
        ))
    return out


def compute_indicators(
    cascade: Cascade,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    plateau_counts: dict[str, list[int]],
    seed: int = 0,
) -> dict[str, Any]:
    """The indicators on ``x [m, ...]``, ``y [m]`` (the first samples of the test split) and the plateau
    counts collected during the cascade. Returns ``{"indicators": [...], "gradient_fidelity": {...}}``."""
    indicators = _plateau(plateau_counts)
    clean_ok = predict(model, x) == y
    xs, ys = x[clean_ok], y[clean_ok]
    if xs.shape[0]:
        for name, attack in (("pgd", PGD(1.0, alpha=0.25, steps=20, seed=seed)),
                             ("square", Square(1.0, n_queries=1000, seed=seed))):
            accuracy = float((predict(model, attack(model, xs, ys)) == ys).float().mean())
            indicators.append(Indicator(
                f"unbounded_eps/{name}", name, accuracy == 0.0, accuracy,
                f"{name} at eps = 1 (the whole input range) leaves {100 * accuracy:.1f} % of {xs.shape[0]} "
                "correctly classified samples robust (must be 0 %)",
                "" if accuracy == 0.0 else f"{name} cannot break samples that any input of another class "
                "breaks: it is blind to this model (masking or a saturated readout); trust the gradient-free "
                "stages",
            ))
    attacks: dict[str, Any] = {}
    for stage in cascade.stages:
        if isinstance(stage.attack, APGDT):
            continue  # the binarized model has two classes; APGD-T needs four
        spec = stage.specs[0] if stage.attack.uses_gradient else None
        attacks[stage.name] = lambda m, xx, yy, a=stage.attack, s=spec: a(m, xx, yy, spec=s, seed=seed)
    binarization = binarization_test(model, xs if xs.shape[0] else x, eps, attacks, seed=seed)
    if "skipped" in binarization:
        indicators.append(Indicator("binarization", "", None, None, binarization["skipped"]))
    else:
        for stage, rate in binarization["rates"].items():
            ok = None if rate is None else rate >= BINARIZATION_PASS
            indicators.append(Indicator(
                f"binarization/{stage}", stage, ok, rate,
                f"broke {'–' if rate is None else f'{100 * rate:.1f} %'} of {binarization['valid']} "
                f"provably breakable points (of {binarization['samples']}; at least "
                f"{100 * BINARIZATION_PASS:.0f} % needed)",
                "" if ok is not False else f"{stage} misses adversarial examples that exist: its verdicts "
                "are not to be trusted on this model",
            ))
    zero, disagreement = fd_disagreement(model, x, y, seed=seed)
    fidelity = {
        "samples": int(x.shape[0]),
        "zero_share": [round(float(v), 6) for v in zero],
        "fd_disagreement": [round(float(v), 6) for v in disagreement],
        "median_zero_share": statistics.median(float(v) for v in zero),
        "median_fd_disagreement": statistics.median(float(v) for v in disagreement),
    }
    for ind in indicators:
        if ind.passed is False:
            logger.warning("attack-failure indicator %s failed: %s; %s", ind.name, ind.detail, ind.remedy)
    return {"indicators": [i.to_json() for i in indicators], "gradient_fidelity": fidelity}


def render_indicators(reliable: dict[str, Any]) -> list[str]:
    """Markdown lines: one per indicator (PASS / FAIL / n/a, what it measured, the remedy)."""
    items = reliable.get("indicators")
    if not items:
        return []
    lines = ["Attack-failure indicators (docs/architecture.md):", ""]
    for ind in items:
        mark = {True: "pass", False: "FAIL", None: "n/a"}[ind["passed"]]
        remedy = f". Remedy: {ind['remedy']}." if ind["remedy"] else ""
        lines.append(f"- {mark} `{ind['name']}`: {ind['detail']}{remedy}")
    fidelity = reliable.get("gradient_fidelity")
    if fidelity:
        lines.append(
            f"- gradient fidelity on {fidelity['samples']} samples: median share of exactly-zero "
            f"input-gradient components {100 * fidelity['median_zero_share']:.1f} %, median disagreement of "
            "the surrogate directional derivative with a finite difference "
            f"{fidelity['median_fd_disagreement']:.2f} (0 = agree, 1 = one of them is zero)"
        )
    lines.append("")
    return lines


def first_samples(batches: Any, limit: int = SUBSET) -> tuple[Tensor, Tensor]:
    """The first ``limit`` samples from ``batches`` (an iterator of ``(b, x, y)``)."""
    xs, ys, count = [], [], 0
    for _, x, y in batches:
        xs.append(x)
        ys.append(y)
        count += x.shape[0]
        if count >= limit:
            break
    return torch.cat(xs)[:limit], torch.cat(ys)[:limit]
