"""Input side of every model: validation, normalisation and the switch to time-major layout.

A model accepts either

- a static image batch ``[N, C, H, W]``, float in ``[0, 1]``; it is repeated over the model's ``T`` steps
  (direct encoding: the same analog current enters the first layer at every step), or
- a frame batch ``[N, T', C, H, W]``, float in ``[0, 1]``; frame ``t`` enters at step ``t``, and the number
  of steps is ``T'`` (taken from the input, not from the model).

Normalisation ``(x - mean) / std`` (per channel) happens here, inside the model, so attacks work in
``[0, 1]`` pixel space. The output is always time-major ``[T, N, C, H, W]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on the channel axis ``-3`` of ``[..., C, H, W]``.

    ``mean``/``std`` are non-persistent buffers: they follow ``.to(device)`` but are not part of the state
    dict (``model.config`` records them, and ``create_model(**model.config)`` restores them). With both
    ``None`` the module is the identity.
    """

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        super().__init__()
        self.enabled = mean is not None or std is not None
        if self.enabled:
            if mean is None or std is None:
                raise UserInputError("give both mean and std for input normalisation, or neither")
            m = torch.as_tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
            s = torch.as_tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
            if m.numel() != s.numel():
                raise UserInputError(
                    f"mean has {m.numel()} values but std has {s.numel()}; give one per channel"
                )
            if not bool(torch.all(s > 0)):
                raise UserInputError(f"std must be positive in every channel, got {s.flatten().tolist()}")
        else:
            m = torch.zeros(0)
            s = torch.ones(0)
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        if not self.enabled:
            return "identity"
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class InputEncoder(nn.Module):
    """Validate a static ``[N,C,H,W]`` or frame ``[N,T,C,H,W]`` batch and return normalised ``[T,N,C,H,W]``.

    Args:
        in_channels: expected ``C``.
        T: number of steps a static image is repeated for.
        input_size: expected ``H == W`` (the classifier's size depends on it).
        mean, std: per-channel normalisation constants (length ``in_channels``) or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        T: int,
        input_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.T = T
        self.input_size = input_size
        self.normalize = Normalize(mean, std)
        if self.normalize.enabled and self.normalize.mean.numel() != in_channels:
            raise UserInputError(
                f"mean/std have {self.normalize.mean.numel()} values but the model has {in_channels} input "
                "channels; give one value per channel"
            )

    def _check(self, x: Tensor) -> None:
        expect = (
            f"[N,{self.in_channels},{self.input_size},{self.input_size}] (images) or "
            f"[N,T,{self.in_channels},{self.input_size},{self.input_size}] (frames)"
        )
        if not isinstance(x, Tensor):
            raise UserInputError(
                f"model input must be a torch.Tensor shaped {expect}, got {type(x).__name__}"
            )
        if x.ndim not in (4, 5):
            raise UserInputError(f"model input has rank {x.ndim} (shape {list(x.shape)}); expected {expect}")
        if not x.is_floating_point():
            raise UserInputError(f"model input must be floating point in [0, 1], got dtype {x.dtype}")
        C, H, W = x.shape[-3:]
        if C != self.in_channels:
            raise UserInputError(
                f"model input has {C} channels (shape {list(x.shape)}) but the model was built for "
                f"in_channels={self.in_channels}; expected {expect}"
            )
        if H != self.input_size or W != self.input_size:
            raise UserInputError(
                f"model input is {H}x{W} but the model was built for input_size={self.input_size}; "
                f"resize the input or rebuild the model with input_size={H}"
            )
        if x.ndim == 5 and x.shape[1] < 1:
            raise UserInputError(
                f"frame input has T={x.shape[1]} frames (shape {list(x.shape)}); need T >= 1"
            )
        if x.shape[0] < 1:
            raise UserInputError(f"model input has an empty batch (shape {list(x.shape)})")

    def forward(self, x: Tensor) -> Tensor:
        """``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]`` -> normalised time-major ``[T,N,C,H,W]``."""
        self._check(x)
        # Follow the model's floating dtype (the buffers track .double()/.half()), so float64 input from a
        # numpy pipeline works on a float32 model.
        x = self.normalize(x.to(dtype=self.normalize.std.dtype))
        if x.ndim == 4:
            # Direct encoding: a broadcast view; the first layer's fold to [T*N, ...] materialises it.
            return x.unsqueeze(0).expand(self.T, *x.shape)
        return x.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, T={self.T}, input_size={self.input_size}"
