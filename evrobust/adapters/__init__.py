"""Surrogate-gradient adapters: evrobust's gradient specs for models built with spikingjelly, snntorch, norse.

Public API::

    adapt(model) -> AdaptedModel                     wrap any nn.Module (inputs in [0,1] -> logits [N, K])
    AdaptedModel.found / .unknown                    library -> neurons; unknown neuron class names
    AdaptedModel.unsupported(spec) -> str | None     None when spec applies to every neuron
    AdaptedModel.notes() -> list[str]                what cannot be adapted, in words
    AdaptedModel.preserved()                         context: give the model back exactly on exit
    gradient_spec(adapted, spec)                     (evrobust.neurons) swaps every neuron's surrogate
    ADAPTERS, get_adapter(library)                   the per-library NeuronAdapter objects
    ForeignSpike                                     the spike Function: library forward, our backward
    unsupported_reason(spec) -> str | None           which specs foreign neurons take (surrogate mode)

The libraries are never imported here: an adapter looks at a model only if its library is already loaded.
"""

from evrobust.adapters.base import ForeignSpike, NeuronAdapter, unsupported_reason
from evrobust.adapters.model import ADAPTERS, NEURON_NAME, AdaptedModel, adapt, get_adapter

__all__ = [
    "ADAPTERS",
    "AdaptedModel",
    "ForeignSpike",
    "NEURON_NAME",
    "NeuronAdapter",
    "adapt",
    "get_adapter",
    "unsupported_reason",
]
