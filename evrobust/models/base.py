"""``SpikingModel``: what every registered model has in common (input encoder, ``T``, ``config``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from evrobust.errors import UserInputError
from evrobust.models.encoders import InputEncoder


class SpikingModel(nn.Module):
    """Base class of the registered models.

    Subclasses set ``self.encoder`` (an :class:`InputEncoder`) and implement ``forward(x) -> [N, K]``.
    ``create_model`` sets ``name`` and ``config`` (the resolved, JSON-serialisable build arguments).
    """

    encoder: InputEncoder
    name: str = ""
    config: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.config = {}

    @property
    def T(self) -> int:
        """Steps a static image is repeated for (frame input brings its own T)."""
        return self.encoder.T

    @T.setter
    def T(self, value: int) -> None:
        # Simulating longer or shorter than trained is a legitimate experiment; keep config in step so that
        # a run directory written afterwards describes the model as it now runs.
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"T (time steps) must be an integer >= 1, got {value!r}")
        self.encoder.T = value
        if "T" in self.config:
            self.config["T"] = value
