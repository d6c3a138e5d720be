"""``evrobust.evaluate``: the ``evrobust attack`` evaluation for any model, from Python, in one call.

The model is any :class:`torch.nn.Module` that maps inputs in [0, 1] (``[N, C, H, W]`` images or
``[N, T, C, H, W]`` frames, or whatever layout it was trained on, as long as the batch comes first) to logits
``[N, K]``: an evrobust model, or one built with spikingjelly, snntorch or norse. The surrogate adapters
(:mod:`evrobust.adapters`) find the model's spiking neurons and swap their backward pass for each member of
the surrogate ensemble; members they cannot apply, and models whose neurons no adapter knows, fall back to
the model's own gradient, and every output says so (``notes``).

The result is the document ``evrobust attack`` writes (schema ``attack_result``), so ``evrobust compare`` and
``evrobust report`` read it; :class:`EvaluationResult` wraps it with accessors, ``to_json()`` and
``to_markdown()``. The model is given back exactly as it came: train/eval flags, ``requires_grad``, the
neurons' hidden state and their surrogates (:meth:`evrobust.adapters.AdaptedModel.preserved`).

Choices where the caller says nothing: white-box only (a transfer attack crafts on another model: use
``evrobust attack --mode blackbox`` on run directories); the inputs are read once into memory (a
``DataLoader`` too) and attacked in batches of ``batch_size`` on the model's device; nothing is written to
disk and nothing is resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks import ensemble_specs, member_name
from evrobust.attacks.base import check_batch
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.core import (
    EvaluationInputs,
    certificate_doublings,
    check_suite_options,
    evaluate_jobs,
    fit_to_model,
    make_jobs,
)
from evrobust.pipelines.attack.pipeline import render_markdown
from evrobust.pipelines.common.options import MAX_LIMIT, check_attack_bounds, parse_eps

__all__ = ["EvaluationResult", "evaluate", "labels_digest", "model_device"]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """What :func:`evaluate` found: the ``attack_result`` document and accessors over it.

    Attributes:
        document: the JSON document (the layout of ``attack-<mode>.json``).
    """

    document: dict[str, Any]

    @property
    def samples(self) -> int:
        """Number of evaluated samples ``n``."""
        return int(self.document["samples"])

    @property
    def accuracy(self) -> dict[str, float]:
        """Robust accuracy (fraction in [0, 1]) per attack key of the table and of the checks."""
        return {a["name"]: a["accuracy"] for a in self.document["attacks"]}

    @property
    def intervals(self) -> dict[str, list[float] | None]:
        """Two-sided 95 % Clopper–Pearson interval of each accuracy, per attack key."""
        return {a["name"]: a["ci95"] for a in self.document["attacks"]}

    @property
    def robust_accuracy(self) -> float:
        """The headline: the reliable accuracy with a cascade, else the lowest accuracy in the table."""
        reliable = self.document.get("reliable")
        if reliable is not None:
            return float(reliable["accuracy"])
        table = [a["accuracy"] for a in self.document["attacks"] if a["in_table"] and a["name"] != "clean"]
        return float(min(table)) if table else float(self.accuracy.get("clean", 0.0))

    @property
    def converged(self) -> bool | None:
        """The convergence certificate's verdict (None without a cascade or certificate)."""
        return (self.document.get("reliable") or {}).get("converged")

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The masking checks (``name``, ``subject``, ``passed``, ``detail``), failed ones included."""
        return list(self.document.get("checks") or [])

    @property
    def indicators(self) -> list[dict[str, Any]]:
        """The attack-failure indicators of a reliable run (unbounded eps, loss plateau, binarization per
        stage), each with ``passed`` and its numbers; empty without a cascade."""
        return list((self.document.get("reliable") or {}).get("indicators") or [])

    @property
    def notes(self) -> list[str]:
        """What the evaluation could not apply (surrogate members, unknown neuron types), one line each."""
        return list(self.document.get("notes") or [])

    def flags(self, key: str) -> Tensor:
        """Per-sample robust flags ``[n]`` (bool) of one attack key: True = survived every member."""
        text = self.document["flags"][key]["correct"]
        return torch.tensor([c == "1" for c in text], dtype=torch.bool)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The document as JSON text; with ``path``, also written there atomically (what ``compare`` and
        ``report`` read as ``attack-whitebox.json``)."""
        text = json.dumps(self.document, indent=1)
        if path is not None:
            from evrobust.safeio import check_write_target
            from evrobust.safeio.atomic import write_text_atomic

            check_write_target(Path(path))
            write_text_atomic(Path(path), text)
        return text

    def to_markdown(self) -> str:
        """The markdown ``evrobust attack`` prints: the table, per-member and cascade sections, checks."""
        return render_markdown(self.document)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def labels_digest(labels: Tensor) -> str:
    """sha256 of the labels as int64 little-endian, in order: the ``test_set.labels_sha256`` that
    ``evrobust attack`` records for a store's test split, so the two results pair in ``compare``."""
    values = labels.detach().to("cpu", torch.int64).numpy().astype("<i8")
    return hashlib.sha256(values.tobytes()).hexdigest()


def _read_inputs(inputs: Any, labels: Any, limit: int | None) -> tuple[Tensor, Tensor]:
    """``(x [N, ...] float32, y [N] int64)`` on the CPU from tensors or an iterable of ``(x, y)`` batches."""
    cap = MAX_LIMIT if limit is None else limit
    if isinstance(inputs, Tensor):
        if labels is None:
            raise UserInputError(
                "evaluate needs labels [N] beside an input tensor (or a DataLoader of (x, y))"
            )
        x, y = inputs, torch.as_tensor(labels)
    else:
        if labels is not None:
            raise UserInputError("labels are given by the DataLoader's (x, y) batches; pass labels=None")
        if not isinstance(inputs, Iterable):
            raise UserInputError(
                "inputs must be a tensor [N, ...] or a DataLoader of (x, y) batches, "
                f"got {type(inputs).__name__}"
            )
        xs, ys, count = [], [], 0
        for batch in inputs:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise UserInputError("every batch of the DataLoader must be a pair (x [B, ...], y [B])")
            xs.append(torch.as_tensor(batch[0]).detach().cpu())
            ys.append(torch.as_tensor(batch[1]).detach().cpu())
            count += xs[-1].shape[0]
            if count >= cap:
                break
        if not xs:
            raise UserInputError("the DataLoader yielded no batch")
        try:
            x, y = torch.cat(xs), torch.cat(ys)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise UserInputError(f"the DataLoader's batches do not stack: {detail}") from None
    x, y = x[:cap], y[:cap]
    if x.is_floating_point():
        x = x.detach().to("cpu", torch.float32)
    check_batch(x, y)
    if x.shape[0] > MAX_LIMIT:
        raise UserInputError(f"{x.shape[0]:,} samples are more than a result can record ({MAX_LIMIT:,}); "
                             "pass limit= or fewer inputs")
    return x, y.detach().to("cpu", torch.long)


def evaluate(
    model: nn.Module,
    inputs: Tensor | Iterable[Any],
    labels: Tensor | None = None,
    *,
    suite: str = "reliable",
    attacks: str | None = None,
    eps: float | str = 8 / 255,
    ensemble: str = "paper",
    batch_size: int = 64,
    seed: int = 0,
    checks: bool = True,
    steps: int | None = None,
    queries: int | None = None,
    max_doublings: int | None = None,
    limit: int | None = None,
    name: str | None = None,
    dataset: str | None = None,
    defense: str | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` under an attack suite, white-box, with intervals, checks and indicators.

    Args:
        model: maps ``x`` in [0, 1] to logits ``[N, K]``; normalisation belongs inside it. Its neurons may
            be evrobust's, spikingjelly 2.0's, snntorch 1.0's or norse's.
        inputs: ``x [N, ...]`` float in [0, 1], or a DataLoader (any iterable) of ``(x, y)`` batches.
        labels: ``y [N]`` integer class labels (tensors only).
        suite: ``quick`` | ``paper`` | ``strong`` | ``reliable`` | ``exhaustive``; ignored with ``attacks``.
        attacks: comma-separated attack names instead of a suite.
        eps: L-inf radius in input units, a number or a text such as ``"8/255"``.
        ensemble: the surrogate members of the table's attacks (``paper``, ``widths``, ``single``, ``wide``,
            ``assg``); members a foreign model's neurons cannot take are dropped (see ``notes``).
        batch_size, seed: as ``evrobust attack``; the flags depend on both, not on the device.
        checks: run the gradient-masking checks.
        steps, queries, max_doublings: the budgets of ``evrobust attack`` (same bounds).
        limit: evaluate only the first ``limit`` samples.
        name, dataset, defense: labels written into the result (``run``, ``dataset``, ``defense``).

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        UserInputError: an invalid option, inputs outside [0, 1], labels that do not match.
    """
    check_attack_bounds(steps=steps, queries=queries, max_doublings=max_doublings, limit=limit,
                        batch_size=batch_size, seed=seed)
    if not isinstance(model, nn.Module):
        raise UserInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = check_suite_options(ensemble, suite, attacks, steps, queries, max_doublings)
    eps_value = parse_eps(eps if isinstance(eps, str) else repr(float(eps)))
    x_all, y_all = _read_inputs(inputs, labels, limit)
    n = int(x_all.shape[0])

    from evrobust.adapters import adapt

    adapted = adapt(model)
    specs = ensemble_specs(ensemble)
    jobs = make_jobs(names, eps_value, seed, "whitebox", checks, {"steps": steps, "queries": queries}, specs)
    doublings = certificate_doublings(
        jobs, max_doublings, "max_doublings certifies a cascade; use suite='reliable' or 'exhaustive'"
    )
    jobs, specs, fields = fit_to_model(adapted, jobs, specs)
    device = model_device(model)

    def batches(first: int) -> Iterator[tuple[int, Tensor, Tensor]]:
        for start in range(first * batch_size, n, batch_size):
            stop = min(start + batch_size, n)
            yield start // batch_size, x_all[start:stop].to(device), y_all[start:stop].to(device)

    with adapted.preserved():
        document = evaluate_jobs(EvaluationInputs(
            model=adapted, batches=batches, n=n, batch_size=batch_size, jobs=jobs, specs=specs,
            eps=eps_value, seed=seed, mode="whitebox", checks=checks, doublings=doublings,
            meta={
                "run": name or type(model).__name__,
                "mode": "whitebox",
                "source": None,
                "checkpoint": None,
                "dataset": dataset,  # None: unknown (compare then checks the labels only)
                "arch": type(model).__name__,
                "defense": defense or "?",
                "ensemble": ensemble,
                "members": [member_name(s) for s in specs],
            },
            test_set={"store": None, "split": "test", "samples": n, "labels_sha256": labels_digest(y_all)},
        ))
    document.update(fields)
    return EvaluationResult(document)
