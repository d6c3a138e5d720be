"""DLIF robust training (Ding et al., "Robust Stable Spiking Neural Networks", ICML 2024; code
DingJianhao/stable-snn ``main_train-v2.py``).

``loss = kappa * CE(f(x), y) + (1 - kappa) * CE(f(x_adv), y) + alpha * mean(Y^2)`` where, at the last spiking
layer, ``d[t] = I_clean[t] - I_adv[t]`` is the difference of the input currents the layer receives on the
clean and on the adversarial batch (before its input gain), and ``Y`` is ``d`` filtered by the neuron's
leaky integration without threshold or reset: ``Y[t] = tau * Y[t-1] + d[t]``, ``Y[-1] = 0`` (the reference's
``simple_dynamic``). ``mean`` runs over all of ``Y`` ``[T, N, ...]``. The clean current is detached, as in
the reference (lines 265/297): the stability term moves the adversarial response towards the clean one.

``x_adv`` is evrobust's FGSM (default eps 4/255, the reference's ``--eps 4``) or PGD, crafted in eval mode.
The learnable per-step input gain of the DLIF neuron is :meth:`evrobust.neurons.IFNeuron.enable_input_gain`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.defenses.adversarial import adversarial_examples
from evrobust.errors import UserInputError
from evrobust.neurons.recording import NeuronRecord, leaky_integrate, record_neurons

DEFAULT_KAPPA = 0.5
DEFAULT_ALPHA = 1.0
DEFAULT_EPS = 4 / 255


def check_dlif_arguments(kappa: float, alpha: float) -> None:
    """Raise :class:`UserInputError` unless ``0 <= kappa <= 1`` and ``alpha >= 0`` (finite)."""
    if not 0.0 <= kappa <= 1.0:
        raise UserInputError(
            f"DLIF kappa (share of the clean loss) must lie in [0, 1] (got {kappa}); default 0.5"
        )
    if not (alpha >= 0.0 and alpha < float("inf")):
        raise UserInputError(f"DLIF alpha must be a finite number >= 0 (got {alpha}); default 1")


def _last_layer_current(record: NeuronRecord) -> tuple[Tensor, float]:
    """The one recorded input current ``[T, ...]`` of the last IF layer, and that layer's leak ``tau``."""
    if len(record.traces) != 1:
        raise UserInputError(
            f"DLIF expects the last IF layer to run once per forward pass; it ran {len(record.traces)} times"
        )
    trace = record.traces[0]
    return trace.current, trace.neuron.tau


def perturbation_energy(clean_current: Tensor, adv_current: Tensor, tau: float = 1.0) -> Tensor:
    """``mean(Y^2)`` with ``Y = leaky_integrate(clean_current - adv_current, tau)`` (both ``[T, ...]``)."""
    return leaky_integrate(clean_current - adv_current, tau).square().mean()


def dlif_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    kappa: float = DEFAULT_KAPPA,
    alpha: float = DEFAULT_ALPHA,
    method: str = "fgsm",
    eps: float = DEFAULT_EPS,
    step: float = 0.01,
    steps: int = 5,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The DLIF objective on one batch (see the module docstring).

    One forward on the clean and one on the adversarial batch, both in the model's own mode; the last IF
    layer's input currents are recorded during those same passes (:func:`record_neurons`), no extra pass.

    Returns:
        dict with ``loss``, ``ce`` (``kappa * CE_clean + (1 - kappa) * CE_adv``), ``reg``
        (``mean(Y^2)``, before ``alpha``), ``logits`` ``[N, K]`` on the clean batch, ``adv_logits``,
        ``x_adv``.
    """
    check_dlif_arguments(kappa, alpha)
    x_adv = adversarial_examples(model, x, y, method, eps, step, steps, generator)
    with record_neurons(model, "last") as clean_record:
        logits = model(x)
    with record_neurons(model, "last") as adv_record:
        adv_logits = model(x_adv)
    clean_current, tau = _last_layer_current(clean_record)
    adv_current, _ = _last_layer_current(adv_record)
    energy = perturbation_energy(clean_current.detach(), adv_current, tau)
    ce = kappa * F.cross_entropy(logits, y) + (1.0 - kappa) * F.cross_entropy(adv_logits, y)
    return {
        "loss": ce + alpha * energy,
        "ce": ce,
        "reg": energy,
        "logits": logits,
        "adv_logits": adv_logits,
        "x_adv": x_adv,
    }
