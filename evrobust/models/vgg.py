"""Spiking VGG networks (VGG-11 of the paper and small CPU variants).

Layout of the reference code (putshua/gradient_reg_defense, ``snn_models/VGG.py``): every conv is
``Conv2d(3x3, padding 1, bias) -> BatchNorm2d -> IF``; ``"A"`` is a 2x2 pooling (average by default); the
classifier is ``Linear(C*S, H) -> IF -> Linear(H, H) -> IF -> Linear(H, K)`` with ``S`` the number of
spatial positions left after pooling (``(input_size/8)^2`` for VGG-11: 16 at 32 px, 36 at 48 px). No
dropout. With 3 input channels, 32 px and 10 classes VGG-11 has 61,377,034 parameters.

Tensors: input ``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]``; internally ``[T,N,...]``; output ``[N,K]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.models.base import SpikingModel
from evrobust.models.encoders import InputEncoder
from evrobust.models.layers import NeuronFactory, Readout, TimeDistributed, make_pool
from evrobust.models.registry import ModelArgs, register_model

# One entry per stage, as in the reference: ints are conv output channels, "A" a 2x2 pooling.
VGG11_STAGES: tuple[tuple[int | str, ...], ...] = (
    (64, "A"),
    (128, 256, "A"),
    (512, 512, 512, "A"),
    (512, 512),
)
VGG11_HIDDEN: tuple[int, ...] = (4096, 4096)

# CPU variant for 8..16 px inputs (sklearn digits): two conv stages, one hidden layer.
VGG_SMALL_STAGES: tuple[tuple[int | str, ...], ...] = ((32, "A"), (64, "A"))
VGG_SMALL_HIDDEN: tuple[int, ...] = (256,)


def scale_channels(c: int, width: float) -> int:
    """``round(c * width)``, at least 1: the width multiplier applied to one layer's channel count."""
    return max(1, int(round(c * width)))


@dataclass(frozen=True)
class VGGLayout:
    """Resolved sizes of one VGG: conv stages (scaled), hidden widths (scaled), final feature map side."""

    stages: tuple[tuple[int | str, ...], ...]
    hidden: tuple[int, ...]
    last_channels: int
    final_side: int

    @property
    def flat_features(self) -> int:
        """Input size of the first classifier Linear: ``last_channels * final_side**2``."""
        return self.last_channels * self.final_side**2


def vgg_layout(
    stages: Sequence[Sequence[int | str]], hidden: Sequence[int], width: float, input_size: int, name: str
) -> VGGLayout:
    """Scale a stage/hidden spec by ``width`` and check that ``input_size`` survives the pooling.

    Each pooling halves the side with floor (as ``AvgPool2d(2)`` does), so any ``input_size`` whose
    side stays >= 1 works; multiples of ``2**pools`` lose no border pixels.
    """
    scaled = tuple(tuple(c if c == "A" else scale_channels(int(c), width) for c in stage) for stage in stages)
    convs = [c for stage in scaled for c in stage if c != "A"]
    if not convs:
        raise ValueError("a VGG needs at least one conv layer")
    pools = sum(1 for stage in stages for c in stage if c == "A")
    side = input_size
    for _ in range(pools):
        side //= 2
    if side < 1:
        raise UserInputError(
            f"input_size={input_size} is too small for {name} ({pools} 2x2 poolings); "
            f"use input_size >= {2**pools}"
        )
    return VGGLayout(
        stages=scaled,
        hidden=tuple(scale_channels(h, width) for h in hidden),
        last_channels=int(convs[-1]),
        final_side=side,
    )


class VGG(SpikingModel):
    """Spiking VGG: ``encoder -> features -> classifier -> readout``.

    Args:
        layout: resolved channel/hidden sizes (see :func:`vgg_layout`).
        num_classes: ``K``.
        in_channels, T, input_size, mean, std: see :class:`InputEncoder`.
        neurons: builds every IF neuron (backend, gradient spec, tau, theta).
        pool: ``"avg"`` (reference) or ``"max"`` for the ``"A"`` layers.
        readout: how the last Linear's ``[T,N,K]`` output becomes logits (see :class:`Readout`).
    """

    def __init__(
        self,
        layout: VGGLayout,
        num_classes: int,
        in_channels: int,
        T: int,
        input_size: int,
        neurons: NeuronFactory,
        pool: str = "avg",
        readout: str = "mean",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.encoder = InputEncoder(in_channels, T, input_size, mean, std)
        features: list[nn.Module] = []
        c_in = in_channels
        for stage in layout.stages:
            for c in stage:
                if c == "A":
                    features.append(TimeDistributed(make_pool(pool, 2)))
                else:
                    c_out = int(c)
                    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
                    features.append(TimeDistributed(conv, nn.BatchNorm2d(c_out)))
                    features.append(neurons())
                    c_in = c_out
        self.features = nn.Sequential(*features)
        classifier: list[nn.Module] = [nn.Flatten(2)]
        f_in = layout.flat_features
        for h in layout.hidden:
            classifier += [TimeDistributed(nn.Linear(f_in, h)), neurons()]
            f_in = h
        classifier.append(TimeDistributed(nn.Linear(f_in, num_classes)))
        self.classifier = nn.Sequential(*classifier)
        self.readout = Readout(readout, neurons.tau, neurons() if readout == "rate" else None)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        """``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]`` -> logits ``[N,K]``."""
        h = self.features(self.encoder(x))  # [T, N, C', h, w]
        return self.readout(self.classifier(h))  # classifier: [T, N, K]


def init_weights(model: nn.Module) -> None:
    """Initialisation of the reference code: conv weights Kaiming-normal (fan_out, ReLU gain), BN (1, 0),
    Linear bias 0; conv biases and Linear weights keep PyTorch's defaults."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def build_vgg(
    args: ModelArgs, stages: Sequence[Sequence[int | str]], hidden: Sequence[int], name: str
) -> VGG:
    """A :class:`VGG` from validated common arguments and an unscaled stage/hidden spec."""
    layout = vgg_layout(stages, hidden, args.width, args.input_size, name)
    return VGG(
        layout,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        T=args.T,
        input_size=args.input_size,
        neurons=args.neurons(),
        pool=args.pool,
        readout=args.readout,
        mean=args.mean,
        std=args.std,
    )


@register_model("vgg11", "VGG-11 of the paper (61.4 M parameters at 32 px, 3 channels, 10 classes)")
def vgg11(args: ModelArgs) -> VGG:
    """VGG-11: stages [64,A] [128,256,A] [512,512,512,A] [512,512]; classifier 4096-4096-K."""
    return build_vgg(args, VGG11_STAGES, VGG11_HIDDEN, "vgg11")


@register_model("vgg_small", "small CPU VGG for 8..16 px inputs: [32,A] [64,A], classifier 256-K")
def vgg_small(args: ModelArgs) -> VGG:
    """Two conv stages (32, 64 channels at width 1) and one hidden layer of 256: digits in seconds."""
    return build_vgg(args, VGG_SMALL_STAGES, VGG_SMALL_HIDDEN, "vgg_small")
