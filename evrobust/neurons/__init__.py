"""IF neurons for robust SNNs: dynamics, surrogate gradients, gradient specs and backends (DESIGN §3).

Public API::

    GradSpec, DEFAULT_SPEC, PAPER_ENSEMBLE, WIDTH_ENSEMBLE      how the backward estimates dSpike/dU
    WIDE_ENSEMBLE, ASSG_GRID                                    the wide ensemble; ASSG's grid of A
    if_multistep(x [T, ...], spec, tau=1.0, theta=1.0)          pure function -> spikes [T, ...]
    IFNeuron(backend="native", spec=DEFAULT_SPEC, tau, theta)  nn.Module; .spec and .backend settable
    gradient_spec(model, spec)                                  context manager over all IFNeurons of a model
    record_neurons(model, layers="all"|"last")                  context manager: per-forward NeuronTrace list
    membrane_noise(model, sigma), enable_input_gains(model, T)  TGO's training noise; DLIF's per-step gain
    list_backends(), list_surrogates()
"""

from evrobust.neurons.assg import AssgState
from evrobust.neurons.backends import get_backend, list_backends
from evrobust.neurons.context import gradient_spec, if_neurons
from evrobust.neurons.functional import if_membrane, if_multistep
from evrobust.neurons.module import IFNeuron
from evrobust.neurons.rate import rate_grad
from evrobust.neurons.recording import (
    NeuronRecord,
    NeuronTrace,
    enable_input_gains,
    leaky_integrate,
    membrane_noise,
    record_neurons,
)
from evrobust.neurons.spec import (
    ASSG_DEFAULT_A,
    ASSG_ENSEMBLE,
    ASSG_GRID,
    CRAFTING_MODES,
    DEFAULT_SPEC,
    MODES,
    PAPER_ENSEMBLE,
    WIDE_ENSEMBLE,
    WIDTH_ENSEMBLE,
    GradSpec,
)
from evrobust.neurons.surrogates import SURROGATES, get_surrogate, list_surrogates

__all__ = [
    "ASSG_DEFAULT_A",
    "ASSG_ENSEMBLE",
    "ASSG_GRID",
    "AssgState",
    "CRAFTING_MODES",
    "DEFAULT_SPEC",
    "GradSpec",
    "IFNeuron",
    "MODES",
    "NeuronRecord",
    "NeuronTrace",
    "PAPER_ENSEMBLE",
    "SURROGATES",
    "WIDE_ENSEMBLE",
    "WIDTH_ENSEMBLE",
    "get_backend",
    "enable_input_gains",
    "get_surrogate",
    "gradient_spec",
    "if_membrane",
    "if_multistep",
    "if_neurons",
    "list_backends",
    "leaky_integrate",
    "list_surrogates",
    "membrane_noise",
    "rate_grad",
    "record_neurons",
]
