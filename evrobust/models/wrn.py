"""Spiking wide residual networks (WRN-16-4 of the paper and a small CPU variant).

Layout of the reference code (SNN-RAT / gradient_reg_defense ``WideResNet.py``), depth ``d`` with
``n = (d - 4) / 6`` blocks per group and widen factor ``k``:

    stem   conv3x3(C -> 16, no bias)
    group1 n blocks, 16k channels, stride 1
    group2 n blocks, 32k channels, first block stride 2
    group3 n blocks, 64k channels, first block stride 2
    head   BN -> IF -> global average pool -> Linear(64k, K)

A pre-activation block computes ``a = IF(BN(x))``, ``r = conv3x3(IF(BN(conv3x3(a, stride))))`` and returns
``c0 * s + c1 * r`` where ``(c0, c1)`` is a learnable pair initialised to 0.5/0.5 (see
:class:`ConvexCombination`) and ``s`` is ``x`` itself when shapes match, else ``conv1x1(a, stride)`` (the
shortcut taps the activated input, as in the reference). Convs have no bias; no dropout.

Deviation, for sizes other than 32 px: the head pools globally (the reference's ``avg_pool2d(8)`` is
the same thing at 32 px, where the last map is 8x8).

Tensors: input ``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]``; internally ``[T,N,...]``; output ``[N,K]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.models.base import SpikingModel
from evrobust.models.encoders import InputEncoder
from evrobust.models.layers import POOLS, ConvexCombination, NeuronFactory, Readout, TimeDistributed
from evrobust.models.registry import ModelArgs, register_model
from evrobust.models.vgg import init_weights, scale_channels


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BN follows or a residual sum does)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """Pre-activation residual block on time-major ``[T, N, C_in, H, W] -> [T, N, C_out, H', W']``."""

    def __init__(self, c_in: int, c_out: int, stride: int, neurons: NeuronFactory) -> None:
        super().__init__()
        self.bn1 = TimeDistributed(nn.BatchNorm2d(c_in))
        self.act1 = neurons()
        self.conv1 = TimeDistributed(conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out))
        self.act2 = neurons()
        self.conv2 = TimeDistributed(conv3x3(c_out, c_out))
        # The reference tests only channel equality; a stride-2 block with equal channels needs the
        # projection too, otherwise the two branches differ in size.
        self.shortcut = (
            TimeDistributed(nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False))
            if c_in != c_out or stride != 1
            else None
        )
        self.convex = ConvexCombination(2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.act1(self.bn1(x))
        residual = self.conv2(self.act2(self.conv1(a)))
        skip = x if self.shortcut is None else self.shortcut(a)
        return self.convex(skip, residual)


def wrn_channels(depth: int, widen: int, width: float) -> tuple[int, int, tuple[int, int, int]]:
    """``(blocks per group, stem channels, group channels)`` of a WRN-depth-widen scaled by ``width``."""
    if depth < 10 or (depth - 4) % 6 != 0:
        raise UserInputError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
    if widen < 1:
        raise UserInputError(f"WRN widen factor must be a positive integer, got {widen}")
    n = (depth - 4) // 6
    groups = tuple(scale_channels(c * widen, width) for c in (16, 32, 64))
    return n, scale_channels(16, width), (groups[0], groups[1], groups[2])


class WideResNet(SpikingModel):
    """Spiking pre-activation WRN: ``encoder -> stem -> 3 groups -> BN-IF-pool -> fc -> readout``.

    Args:
        num_classes: ``K``.
        in_channels, T, input_size, mean, std: see :class:`InputEncoder`.
        neurons: builds every IF neuron (backend, gradient spec, tau, theta).
        depth, widen, width: WRN depth (6n+4), widen factor k, and the channel multiplier.
        pool: ``"avg"`` (reference) or ``"max"`` for the final global pooling.
        readout: how the fc's ``[T,N,K]`` output becomes logits (see :class:`Readout`).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        T: int,
        input_size: int,
        neurons: NeuronFactory,
        depth: int = 16,
        widen: int = 4,
        width: float = 1.0,
        pool: str = "avg",
        readout: str = "mean",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        n, stem, groups = wrn_channels(depth, widen, width)
        self.encoder = InputEncoder(in_channels, T, input_size, mean, std)
        self.stem = TimeDistributed(conv3x3(in_channels, stem))
        blocks: list[nn.Module] = []
        c_in = stem
        for g, c_out in enumerate(groups):
            for i in range(n):
                stride = 2 if (g > 0 and i == 0) else 1
                blocks.append(PreActBlock(c_in, c_out, stride, neurons))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_bn = TimeDistributed(nn.BatchNorm2d(c_in))
        self.head_act = neurons()
        if pool not in POOLS:
            raise UserInputError(f"unknown pool {pool!r}; choose one of: {', '.join(POOLS)}")
        global_pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.pool = TimeDistributed(global_pool, nn.Flatten(1))
        self.fc = TimeDistributed(nn.Linear(c_in, num_classes))
        self.readout = Readout(readout, neurons.tau, neurons() if readout == "rate" else None)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        """``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]`` -> logits ``[N,K]``."""
        h = self.blocks(self.stem(self.encoder(x)))  # [T, N, 64k, h, w]
        h = self.pool(self.head_act(self.head_bn(h)))  # [T, N, 64k]
        return self.readout(self.fc(h))  # fc: [T, N, K]


def build_wrn(args: ModelArgs, depth: int, widen: int) -> WideResNet:
    """A :class:`WideResNet` from validated common arguments."""
    return WideResNet(
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        T=args.T,
        input_size=args.input_size,
        neurons=args.neurons(),
        depth=depth,
        widen=widen,
        width=args.width,
        pool=args.pool,
        readout=args.readout,
        mean=args.mean,
        std=args.std,
    )


@register_model("wrn16", "WRN-16-4 of the paper (pre-activation, channels 16/64/128/256)")
def wrn16(args: ModelArgs, depth: int = 16, widen: int = 4) -> WideResNet:
    """WRN-16-4 (overrides ``depth`` = 6n+4 and ``widen`` give other members of the family)."""
    return build_wrn(args, depth, widen)


@register_model("wrn_small", "small CPU WRN-10-1 (one block per group, channels 16/16/32/64)")
def wrn_small(args: ModelArgs, depth: int = 10, widen: int = 1) -> WideResNet:
    """WRN-10-1: the smallest member of the family, for CPU tests and demos."""
    return build_wrn(args, depth, widen)
