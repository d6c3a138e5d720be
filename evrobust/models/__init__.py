"""Spiking model zoo: registry + builders (DESIGN §4).

Public API::

    create_model(name, num_classes, in_channels=3, T=8, width=1.0, neuron_backend="native",
                 input_size=32, mean=None, std=None, **overrides) -> nn.Module
    list_models(), describe_models(), describe_overrides(name), register_model(name, description)

Every model maps ``[N,C,H,W]`` (static, repeated over T) or ``[N,T,C,H,W]`` (frames) floats in ``[0,1]`` to
logits ``[N,K]`` and carries ``model.config`` so that ``create_model(**model.config)`` rebuilds it.
"""

from evrobust.models.base import SpikingModel
from evrobust.models.encoders import InputEncoder, Normalize
from evrobust.models.layers import POOLS, READOUTS, ConvexCombination, Readout, TimeDistributed
from evrobust.models.registry import (
    COMMON_OVERRIDES,
    ModelArgs,
    create_model,
    describe_models,
    describe_overrides,
    list_models,
    register_model,
)
from evrobust.models.vgg import VGG  # importing vgg and wrn registers their models
from evrobust.models.wrn import PreActBlock, WideResNet

__all__ = [
    "COMMON_OVERRIDES",
    "POOLS",
    "READOUTS",
    "VGG",
    "ConvexCombination",
    "InputEncoder",
    "ModelArgs",
    "Normalize",
    "PreActBlock",
    "Readout",
    "SpikingModel",
    "TimeDistributed",
    "WideResNet",
    "create_model",
    "describe_models",
    "describe_overrides",
    "list_models",
    "register_model",
]
