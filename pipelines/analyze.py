"""``evrobust analyze``: gradient sparsity, vulnerability curves, Theorem 1 check, gradient plots of a run.

:func:`run_analysis` loads a trained run (:func:`evrobust.pipelines.train.run_dir.load_run`), reads the first
``limit`` samples of its test split, computes one *kind* of analysis with :mod:`evrobust.analysis`, writes
``<run>/analysis-<kind>.json`` atomically through :mod:`evrobust.safeio` (plus PNGs from
:mod:`evrobust.pipelines.report.analysis_plots`) and returns the JSON document. The JSON layouts are
documented in ``docs/_drafts/analysis.md``; their schema (what ``evrobust report`` and ``evrobust reproduce``
accept back) is :mod:`evrobust.safeio.schemas.analysis`, whose bounds the option limits here stay within.
Every document records the sha256 of the checkpoint it analysed (``checkpoint_sha256``).

An analysis is always computed afresh: nothing here reuses an earlier result. The reuse decision for analyses
is ``evrobust reproduce``'s cache (:func:`evrobust.pipelines.reproduce.runner.analyse_run`), whose fingerprint
holds the checkpoint's sha256 and the store's digest.

Kinds: ``sparsity`` (l0/l1/l2 of grad_x f_y), ``vulnerability`` (accuracy vs eps under noise/FGSM/PGD,
Fig. 1), ``theorem`` (measured rho_adv/rho_rand vs 3 l1^2/l2^2 and [3, 3 l0]), ``distribution`` (histogram
of gradient components, Fig. 4), ``heatmap`` (|grad| maps of a few samples, Fig. 5), and the masking study's
``landscape`` (the loss along gradient, random and adversarial directions over radii around eps) and
``fidelity`` (surrogate directional derivatives vs finite differences of the exact forward pass), which live
in :mod:`evrobust.pipelines.analyze_masking` (docs/masking-study.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.analysis import (
    DEFAULT_ATTACKS,
    DEFAULT_EPS_GRID,
    DEFAULT_REL_TOL,
    DEFAULT_TOL,
    TARGETS,
    accuracy_counts,
    check_adversarial_below_noise,
    check_eps_grid,
    check_monotone_in_eps,
    gradient_norms,
    input_gradient,
    model_spec,
    summarize_theorem,
    theorem_check,
)
from evrobust.analysis.theorem import DEFAULT_MC_SAMPLES, DEFAULT_PGD_STEPS
from evrobust.attacks import ATTACKS, ENSEMBLES, create_attack, ensemble_specs, member_name, predict
from evrobust.errors import UserInputError
from evrobust.neurons import GradSpec
from evrobust.pipelines import analyze_masking
from evrobust.pipelines.attack.inputs import (
    checkpoint_digest,
    eps_text,
    iter_test_batches,
    load_evaluated_run,
    open_test_split,
    resolve_device,
    run_test_store,
)
from evrobust.pipelines.common.options import parse_eps
from evrobust.safeio import write_text_atomic
from evrobust.safeio.schemas.analysis import MAX_BINS, MAX_HEATMAP_SAMPLES

__all__ = ["DEFAULT_LIMIT", "KINDS", "THEOREM_EPS_GRID", "compare_plot", "result_path", "run_analysis"]

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = (
    "sparsity", "vulnerability", "theorem", "distribution", "heatmap", *analyze_masking.KINDS
)
RESULT_FORMAT = "evrobust-analysis"
RESULT_VERSION = 1
DEFAULT_LIMIT = 256
THEOREM_EPS_GRID: tuple[float, ...] = (1 / 255, 2 / 255, 8 / 255)
CHECK_TOL = 0.01

_OPTIONS: dict[str, dict[str, Any]] = {
    "sparsity": {"targets": TARGETS, "tol": DEFAULT_TOL, "rel_tol": DEFAULT_REL_TOL},
    "vulnerability": {"attacks": DEFAULT_ATTACKS, "ensemble": "single"},
    "theorem": {
        "target": "two_class",
        "mc_samples": DEFAULT_MC_SAMPLES,
        "pgd_steps": DEFAULT_PGD_STEPS,
        "clip": False,
        "tol": DEFAULT_TOL,
    },
    "distribution": {"target": "two_class", "bins": 101},
    "heatmap": {"target": "two_class", "count": 4},
    **analyze_masking.OPTIONS,
}
"""Kind-specific keyword options of :func:`run_analysis` and their defaults."""


def result_path(run: str | os.PathLike[str], kind: str) -> Path:
    """``<run>/analysis-<kind>.json``."""
    return Path(run) / f"analysis-{kind}.json"


def _png_path(run: Path, kind: str) -> Path:
    return run / f"analysis-{kind}.png"


def parse_eps_grid(grid: str | Sequence[Any] | None, default: Sequence[float]) -> list[float]:
    """``"0,2/255,4/255"`` or a sequence of numbers/fractions -> a strictly increasing list in [0, 1]."""
    if grid is None:
        return list(default)
    items = [s for s in grid.split(",") if s.strip()] if isinstance(grid, str) else list(grid)
    return check_eps_grid([parse_eps(item) for item in items])


def _check_target(target: Any) -> str:
    if target not in TARGETS:
        raise UserInputError(f"unknown gradient target {target!r}; valid choices: {', '.join(TARGETS)}")
    return str(target)


# Documented limits (docs/reliability.md): far above what any analysis needs, far below what exhausts memory.
# bins and count are the schema's bounds (evrobust.safeio.schemas.analysis), so that every document written
# here reads back: a heatmap draws one column per sample, so its samples are bounded tightly.
MAX_COUNTS = {"mc_samples": 100_000, "pgd_steps": 100_000, "bins": MAX_BINS, "count": MAX_HEATMAP_SAMPLES}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    bad_type = isinstance(value, bool) or not isinstance(value, int | float)
    if bad_type or not math.isfinite(value) or int(value) != value or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    most = MAX_COUNTS.get(name)
    if most is not None and value > most:
        raise UserInputError(f"{name} must be at most {most}, got {value!r}")
    return int(value)


def _resolve_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = _OPTIONS[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise UserInputError(f"option {unknown[0]!r} does not apply to analysis {kind!r}; valid: {valid}")
    resolved = {**allowed, **{k: v for k, v in options.items() if v is not None}}
    if kind in analyze_masking.KINDS:
        return analyze_masking.resolve_options(kind, resolved)
    if "targets" in resolved:
        targets = resolved["targets"]
        targets = [t for t in targets.split(",") if t.strip()] if isinstance(targets, str) else list(targets)
        resolved["targets"] = [_check_target(t.strip()) for t in targets] or list(TARGETS)
    if "target" in resolved:
        resolved["target"] = _check_target(resolved["target"])
    if "attacks" in resolved:
        attacks = resolved["attacks"]
        if isinstance(attacks, str):
            attacks = [a.strip() for a in attacks.split(",") if a.strip()]
        resolved["attacks"] = list(attacks)
        for name in resolved["attacks"]:
            if name not in ATTACKS or name == "clean":
                valid = ", ".join(a for a in ATTACKS if a != "clean")
                raise UserInputError(f"unknown attack {name!r}; valid choices: {valid}")
    if "ensemble" in resolved and resolved["ensemble"] not in ENSEMBLES:
        raise UserInputError(
            f"unknown ensemble {resolved['ensemble']!r}; valid choices: {', '.join(ENSEMBLES)}"
        )
    for name, minimum in (("mc_samples", 2), ("pgd_steps", 0), ("bins", 2), ("count", 1)):
        if name in resolved:
            resolved[name] = _positive_int(name, resolved[name], minimum)
    for name in ("tol", "rel_tol"):
        if name in resolved:
            value = resolved[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise UserInputError(f"{name} must be a number >= 0, got {value!r}")
            resolved[name] = float(value)
    if "clip" in resolved:
        resolved["clip"] = bool(resolved["clip"])
    return resolved


class _Context:
    """What every kind needs: the model, its config, the test data iterator and bookkeeping."""

    def __init__(
        self,
        run: Path,
        model: nn.Module,
        config: dict[str, Any],
        dataset: Any,
        n: int,
        batch_size: int,
        device: torch.device,
        spec: str | None,
        seed: int,
    ) -> None:
        self.run = run
        self.model = model
        self.config = config
        self.dataset = dataset
        self.n = n
        self.batch_size = batch_size
        self.device = device
        self.spec = spec
        self.seed = seed
        self.correct = 0
        self._counted = False

    def batches(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        """``(batch index, x, y)`` on the device; counts clean accuracy on the first pass."""
        count_clean = not self._counted
        self._counted = True
        for b, x, y in iter_test_batches(self.dataset, self.n, self.batch_size, 0):
            x, y = x.to(self.device), y.to(self.device)
            if count_clean:
                self.correct += int((predict(self.model, x) == y).sum())
            yield b, x, y


def _uses_gradient(name: str) -> bool:
    attack = create_attack(name, 1 / 255, 0)
    return attack is not None and attack.uses_gradient


def _kind_sparsity(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    per_target: dict[str, dict[str, list[Tensor]]] = {t: {} for t in opts["targets"]}
    for _, x, y in ctx.batches():
        for target in opts["targets"]:
            norms = gradient_norms(
                ctx.model, x, y, target=target, spec=ctx.spec, tol=opts["tol"], rel_tol=opts["rel_tol"]
            )
            for key, value in norms.items():
                per_target[target].setdefault(key, []).append(value)
    targets: dict[str, Any] = {}
    for target, parts in per_target.items():
        values = {k: torch.cat(v) for k, v in parts.items()}
        mean = {k: float(v.mean()) for k, v in values.items()}
        mean["zero_gradient_share"] = float((values["l0"] == 0).double().mean())
        targets[target] = {"mean": mean, "per_sample": {k: v.tolist() for k, v in values.items()}}
    return {"tol": opts["tol"], "rel_tol": opts["rel_tol"], "targets": targets}


def _kind_vulnerability(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    specs: tuple[Any, ...] = (ctx.spec,) if ctx.spec is not None else ensemble_specs(opts["ensemble"])
    totals: dict[str, list[int]] = {}
    for b, x, y in ctx.batches():
        counts = accuracy_counts(
            ctx.model, x, y, grid, attacks=opts["attacks"], specs=specs, seed=ctx.seed * 1_000_003 + b
        )
        for key, values in counts.items():
            if key == "clean":
                continue
            prev = totals.setdefault(key, [0] * len(values))
            totals[key] = [a + c for a, c in zip(prev, values, strict=True)]
    curves = {k: [c / ctx.n for c in v] for k, v in totals.items()}
    checks = []
    for name, curve in curves.items():
        # Uniform noise is a random draw per point: allow the binomial spread of n samples there.
        samples = None if _uses_gradient(name) else ctx.n
        checks.append(
            check_monotone_in_eps(dict(zip(grid, curve, strict=True)), CHECK_TOL, name, samples).to_json()
        )
    if "noise" in curves:
        for name, curve in curves.items():
            if name == "noise" or not _uses_gradient(name):
                continue
            for i, eps in enumerate(grid):
                if eps > 0:
                    check = check_adversarial_below_noise(curve[i], curves["noise"][i], CHECK_TOL, name)
                    checks.append(check.to_json())
    return {
        "eps": grid,
        "eps_text": [eps_text(e) if e > 0 else "0" for e in grid],
        "ensemble": "spec" if ctx.spec is not None else opts["ensemble"],
        "members": [member_name(s) if s is not None else (model_spec(ctx.model) or "model") for s in specs],
        "attacks": list(curves),
        "curves": curves,
        "checks": checks,
    }


def _kind_theorem(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    if grid[0] <= 0:
        raise UserInputError("the theorem check needs eps > 0; drop 0 from --eps")
    parts: list[dict[str, list[Tensor]]] = [{} for _ in grid]
    for b, x, y in ctx.batches():
        for i, eps in enumerate(grid):
            measured = theorem_check(
                ctx.model,
                x,
                y,
                eps,
                target=opts["target"],
                spec=ctx.spec,
                mc_samples=opts["mc_samples"],
                pgd_steps=opts["pgd_steps"],
                clip=opts["clip"],
                seed=ctx.seed * 1_000_003 + b,
                tol=opts["tol"],
            )
            for key, value in measured.items():
                parts[i].setdefault(key, []).append(value)
    results = []
    for eps, part in zip(grid, parts, strict=True):
        summary = summarize_theorem({k: torch.cat(v) for k, v in part.items()})
        results.append({"eps": eps, "eps_text": eps_text(eps), **summary})
    return {key: opts[key] for key in ("target", "mc_samples", "pgd_steps", "clip", "tol")} | {
        "results": results
    }


def _kind_distribution(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    grads = []
    for _, x, y in ctx.batches():
        grad = input_gradient(ctx.model, x, y, target=opts["target"], spec=ctx.spec)
        grads.append(grad.reshape(-1).double().cpu())
    values = torch.cat(grads)
    abs_max = float(values.abs().max())
    # Symmetric edges with an odd bin count put 0 in the middle of a bin, so exact zeros fall in one bin.
    half = abs_max if abs_max > 0 else 1.0
    edges = torch.linspace(-half, half, opts["bins"] + 1, dtype=torch.float64)
    counts = torch.histc(values, bins=opts["bins"], min=-half, max=half)
    return {
        "target": opts["target"],
        "bins": opts["bins"],
        "edges": edges.tolist(),
        "counts": [int(c) for c in counts.tolist()],
        "zero_count": int((values == 0).sum()),
        "total": int(values.numel()),
        "abs_max": abs_max,
        "std": float(values.std()) if values.numel() > 1 else 0.0,
    }


def _input_map(x: Tensor) -> list[Any]:
    """One sample as a displayable map: ``[H,W,3]`` RGB, ``[H,W]`` gray, or frames summed over T and p."""
    if x.dim() == 4:  # frames [T, 2, H, W]
        return x.sum(dim=(0, 1)).tolist()
    if x.shape[0] == 3:
        return x.permute(1, 2, 0).tolist()
    return x.sum(0).tolist()


def _kind_heatmap(ctx: _Context, opts: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    count = min(opts["count"], ctx.n)
    indices: list[int] = []
    labels: list[int] = []
    inputs: list[Any] = []
    maps: list[Any] = []
    l0: list[float] = []
    l1: list[float] = []
    frames: dict[str, Any] = {}
    for _, x, y in ctx.batches():
        if len(indices) >= count:
            continue  # keep iterating so the clean accuracy covers every analysed sample
        take = min(count - len(indices), x.shape[0])
        xs, ys = x[:take], y[:take]
        grad = input_gradient(ctx.model, xs, ys, target=opts["target"], spec=ctx.spec).cpu()
        flat = grad.reshape(take, -1).abs().double()
        for i in range(take):
            indices.append(len(indices))
            labels.append(int(ys[i]))
            inputs.append(_input_map(xs[i].cpu()))
            # |grad| summed over channels (images) or over T and polarity (frames): one map per sample.
            maps.append(grad[i].abs().reshape(-1, *grad.shape[-2:]).sum(0).tolist())
            l0.append(float((flat[i] > 0).sum()))
            l1.append(float(flat[i].sum()))
            if xs.dim() == 5 and not frames:
                # Event frames [T, 2, H, W]: the first sample is also kept per polarity and step (Fig. 5 for
                # events); one sample only, so the JSON stays small for 128x128 sensors.
                frames = {"input_frames": [xs[i].cpu().tolist()], "grad_frames": [grad[i].tolist()]}
    return {
        "target": opts["target"],
        "count": count,
        "indices": indices,
        "labels": labels,
        "l0": l0,
        "l1": l1,
        "input_maps": inputs,
        "grad_maps": maps,
        **frames,
    }


_KINDS: dict[str, Callable[[_Context, dict[str, Any], list[float]], dict[str, Any]]] = {
    "sparsity": _kind_sparsity,
    "vulnerability": _kind_vulnerability,
    "theorem": _kind_theorem,
    "distribution": _kind_distribution,
    "heatmap": _kind_heatmap,
    "landscape": analyze_masking.kind_landscape,
    "fidelity": analyze_masking.kind_fidelity,
}


def _plots(kind: str, result: dict[str, Any], run: Path) -> list[str]:
    from evrobust.pipelines.report import analysis_plots as plots

    path = _png_path(run, kind)
    if kind == "vulnerability":
        return [str(plots.plot_vulnerability(result, path))]
    if kind == "theorem":
        return [str(plots.plot_theorem(result, path))]
    if kind == "distribution":
        return [str(plots.plot_distribution([result], path))]
    if kind in analyze_masking.KINDS:
        from evrobust.pipelines.report import masking_plots

        draw = masking_plots.plot_landscape if kind == "landscape" else masking_plots.plot_fidelity
        return [str(draw(result, path))]
    if kind == "heatmap":
        drawn = [str(plots.plot_heatmaps([result], path))]
        if "input_frames" in result:
            drawn.append(str(plots.plot_frame_heatmaps([result], run / f"analysis-{kind}-frames.png")))
        return drawn
    return []


def run_analysis(
    run: str | os.PathLike[str],
    kind: str,
    *,
    limit: int | None = DEFAULT_LIMIT,
    eps_grid: str | Sequence[Any] | None = None,
    spec: str | GradSpec | None = None,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
    data_dir: str | None = None,
    which: str = "best",
    plots: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Run one analysis on a trained run; write ``<run>/analysis-<kind>.json`` (+ PNG); return the JSON.

    Args:
        run: run directory (``--out`` of ``evrobust train``).
        kind: one of :data:`KINDS`.
        limit: analyse the first ``limit`` test samples (``None`` = all).
        eps_grid: ``"0,2/255,8/255"`` or a sequence; vulnerability and theorem only (``None`` = default).
        spec: gradient spec for every gradient (``"triangle:1"``, ``"rate"``, ...); ``None`` = the model's.
        batch_size: samples per batch.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        seed: seed of the random draws (combined with the batch index).
        data_dir: data directory for re-resolving the test store if its recorded path moved.
        which: ``best`` or ``last`` checkpoint.
        plots: write the PNG figure(s).
        **options: kind-specific options (see :data:`_OPTIONS` and docs/_drafts/analysis.md).

    Raises:
        UserInputError: unknown kind/option, bad eps grid or limit, a directory that is not a run, a run
            without the requested checkpoint.
    """
    if kind not in KINDS:
        raise UserInputError(f"unknown analysis {kind!r}; valid choices: {', '.join(KINDS)}")
    opts = _resolve_options(kind, options)
    if limit is not None:
        limit = _positive_int("--limit", limit)
    batch_size = _positive_int("--batch-size", batch_size)
    uses_eps = kind in ("vulnerability", "theorem")
    if eps_grid is not None and not uses_eps:
        raise UserInputError(f"--eps does not apply to analysis {kind!r} (only vulnerability and theorem)")
    default_grid = DEFAULT_EPS_GRID if kind == "vulnerability" else THEOREM_EPS_GRID
    grid = parse_eps_grid(eps_grid, default_grid) if uses_eps else []
    spec_text = None if spec is None else str(GradSpec.parse(spec))
    dev = resolve_device(device)
    run_dir = Path(run)
    start = time.perf_counter()
    model, config = load_evaluated_run(run_dir, which, dev, "analysed")
    checkpoint_sha256 = checkpoint_digest(run_dir, which)
    store = run_test_store(config, data_dir)
    dataset, n = open_test_split(store, limit)
    if n == 0:
        raise UserInputError(f"the test split of {store} is empty")
    ctx = _Context(run_dir, model, config, dataset, n, batch_size, dev, spec_text, seed)
    logger.info("analysis %s of %s on %d test samples", kind, run_dir, n)
    body = _KINDS[kind](ctx, opts, grid)
    data = config.get("data", {})
    first = dataset[0][0]
    result: dict[str, Any] = {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "kind": kind,
        "run": str(run_dir.resolve()),
        "which": which,
        "dataset": data.get("dataset", data.get("name", "?")),
        "arch": config.get("model", {}).get("name", "?"),
        "defense": (config.get("defense") or {}).get("name", "?"),
        "input_kind": "frames" if torch.as_tensor(first).dim() == 4 else "images",
        "input_dim": int(torch.as_tensor(first).numel()),
        "samples": n,
        "seed": seed,
        "spec": spec_text if spec_text is not None else model_spec(model),
        "clean_accuracy": ctx.correct / n,
        "checkpoint_sha256": checkpoint_sha256,
        **body,
    }
    result["plots"] = _plots(kind, result, run_dir) if plots else []
    result["seconds"] = time.perf_counter() - start
    result = _json_safe(result)
    write_text_atomic(result_path(run_dir, kind), json.dumps(result, indent=1) + "\n")
    logger.info("wrote %s", result_path(run_dir, kind))
    return result


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by ``None`` (strict JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def compare_plot(results: Sequence[dict[str, Any]], kind: str, path: str | os.PathLike[str]) -> Path:
    """One PNG comparing several runs' ``distribution`` (overlaid), ``heatmap`` (one row each) or
    ``landscape`` (median loss curves with quartile bands, one colour per run) results."""
    from evrobust.pipelines.report import analysis_plots as plots

    if kind == "distribution":
        return plots.plot_distribution(results, path)
    if kind == "heatmap":
        indices = {tuple(r["indices"]) for r in results}
        if len(indices) > 1:
            raise UserInputError("heatmaps of several runs need the same samples; use the same --count")
        return plots.plot_heatmaps(results, path)
    if kind == "landscape":
        from evrobust.pipelines.report.masking_plots import plot_landscape_compare

        return plot_landscape_compare(results, path)
    raise UserInputError(f"comparison plots exist for distribution, heatmap and landscape, not {kind!r}")
