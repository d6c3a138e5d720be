"""TGO's threshold-margin penalty (Wang et al., "Robust Spiking Neural Networks Against Adversarial Attacks",
ICLR 2026, arXiv 2602.20548; no public code).

``loss = CE(f(x), y) + lam_e * mean_{layers, neurons, steps} max(0, delta - |V - theta|)`` where ``V`` is a
neuron's membrane potential before firing and ``theta`` its threshold: neurons closer than ``delta`` to the
threshold are pushed away from it (in either direction). The mean is over every recorded element of every
IF layer (a layer counts in proportion to its size). ``lam_e`` grows linearly over the first share
``warmup`` of the run: ``lam_e = lam * min(1, (e / E) / warmup)`` in epoch ``e = 1 .. E`` (``warmup = 0``:
constant ``lam``); a share, not a count, so one setting means the same for a 5-epoch and a 200-epoch run.

``delta``, ``lam`` and ``warmup`` are NOT the authors' (unpublished): they were chosen by the small search of
``scripts/tgo_search.py``, recorded in docs/architecture.md. The noisy neurons of TGO are offered for training
only (:func:`evrobust.neurons.membrane_noise`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons.recording import NeuronRecord, membrane_noise, record_neurons

# Chosen by scripts/tgo_search.py (docs/architecture.md, "TGO"); not published by the authors.
DEFAULT_DELTA = 0.3
DEFAULT_LAM = 1.0
DEFAULT_WARMUP = 0.5


def check_tgo_arguments(delta: float, lam: float, warmup: float, noise: float) -> None:
    """UserInputError unless ``delta > 0``, ``lam >= 0``, ``0 <= warmup <= 1`` and ``noise >= 0``."""
    if not (delta > 0.0 and delta < float("inf")):
        raise UserInputError(f"TGO delta (margin, units of the threshold) must be > 0 (got {delta})")
    if not (lam >= 0.0 and lam < float("inf")):
        raise UserInputError(f"TGO lambda must be a finite number >= 0 (got {lam})")
    if not 0.0 <= warmup <= 1.0:
        raise UserInputError(f"TGO warm-up (share of the epochs) must lie in [0, 1] (got {warmup})")
    if not (noise >= 0.0 and noise < float("inf")):
        raise UserInputError(f"TGO noise sigma must be a finite number >= 0 (got {noise})")


def tgo_lambda(lam: float, warmup: float, progress: float | None) -> float:
    """``lam * min(1, progress / warmup)``, ``progress = e / E`` in epoch ``e`` of ``E``; ``lam`` when
    ``warmup == 0`` or ``progress`` is None (outside a training loop)."""
    if warmup == 0.0 or progress is None:
        return lam
    return lam * min(1.0, max(progress, 0.0) / warmup)


def margin_penalty(record: NeuronRecord, delta: float) -> Tensor:
    """``mean max(0, delta - |V - theta|)`` over every element of every trace in ``record`` (scalar).

    ``V`` is :meth:`NeuronTrace.membrane` (differentiable, reset not detached).
    """
    if not record.traces:
        raise UserInputError("TGO found no IF layer activity to penalise (no IFNeuron ran)")
    total: Tensor | None = None
    count = 0
    for trace in record.traces:
        hinge = (delta - (trace.membrane() - trace.neuron.theta).abs()).clamp_min(0.0)
        part = hinge.sum()
        total = part if total is None else total + part
        count += hinge.numel()
    assert total is not None
    return total / count


def tgo_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    lam: float = DEFAULT_LAM,
    delta: float = DEFAULT_DELTA,
    noise: float = 0.0,
) -> dict[str, Tensor]:
    """CE plus ``lam`` times the margin penalty, from one forward pass on ``x`` (see the module docstring).

    ``lam`` is the already scheduled weight (:func:`tgo_lambda`). ``noise > 0`` runs this forward with
    Gaussian membrane noise of that standard deviation in every IF layer (training only).

    Returns:
        dict with ``loss``, ``ce``, ``reg`` (the penalty, before ``lam``) and ``logits`` ``[N, K]``.
    """
    check_tgo_arguments(delta, lam, 0, noise)
    with record_neurons(model, "all") as record, membrane_noise(model, noise):
        logits = model(x)
    reg = margin_penalty(record, delta)
    ce = F.cross_entropy(logits, y)
    return {"loss": ce + lam * reg, "ce": ce, "reg": reg, "logits": logits}


__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_LAM",
    "DEFAULT_WARMUP",
    "check_tgo_arguments",
    "margin_penalty",
    "tgo_lambda",
    "tgo_loss",
]
