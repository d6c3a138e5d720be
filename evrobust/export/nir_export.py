"""An evrobust VGG or WRN as a NIR graph (``nir`` 1.0.8), and the file writer.

Node semantics (per time step, shapes without the batch axis, discretisation ``dt = 1``):

- ``input`` ``[C, H, W]``: the image in ``[0, 1]`` at every step (direct encoding), or frame ``t`` at step
  ``t``;
- ``normalize``: a 1x1 ``Conv2d`` with weight ``diag(1/std)`` and bias ``-mean/std``. It runs *before* the
  first
  convolution pads its input, so the zero padding sits in normalised space exactly as in the model. (Folding
  the normalisation into the first conv's weights would be wrong at the border: there the padded zeros would
  stand for raw pixels of value 0 instead of normalised zeros.) Omitted for models without normalisation;
- every convolution that BatchNorm follows is one ``Conv2d`` with the BatchNorm folded in (eval-mode running
  statistics: ``W' = W * g``, ``b' = (b - mu) * g + beta``, ``g = gamma / sqrt(var + eps)``); a BatchNorm
  with no
  convolution in front (WRN's pre-activation ``bn1`` and head BN, which follow a residual sum) becomes a 1x1
  ``Conv2d`` with weight ``diag(g)`` (a dense diagonal kernel: norse 1.1.0 mis-sizes grouped convolutions);
- ``IF`` nodes with ``r = 1``, ``v_threshold = theta`` and ``v_reset = 0``: ``v[t] = v[t-1] + I[t]``, hard
  reset
  to 0 after a spike. evrobust fires when ``v >= theta`` (``H(0) = 1``); NIR's IF and norse fire when
  ``v > theta``, so the two differ only where ``v`` equals ``theta`` exactly (a tie);
- 2x2 average pooling and WRN's global average pooling are ``AvgPool2d`` nodes; ``Flatten`` uses NIR's
  batch-free dimensions (``start_dim = 0``); Linear layers are ``Affine`` nodes;
- WRN's convex residual ``c0 * skip + c1 * residual`` is two ``Scale`` nodes whose outputs both feed the next
  node: NIR sums the inputs a node receives over several edges;
- ``output`` ``[K]``: the last Linear's output at each step; the logits are its **mean over T** (recorded in
  the graph metadata, ``readout``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from evrobust.errors import UserInputError
from evrobust.models.layers import ConvexCombination, Readout, TimeDistributed
from evrobust.models.vgg import VGG
from evrobust.models.wrn import PreActBlock, WideResNet
from evrobust.neurons import IFNeuron
from evrobust.safeio.atomic import write_bytes_atomic

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "check_exportable", "to_nir_graph", "write_nir"]

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "evrobust-nir"
EXPORT_VERSION = 1
READOUT_TEXT = (
    "logits = mean over the T time steps of the output node (the last Linear layer, an Affine node)"
)
NEURON_TEXT = (
    "IF (tau = 1): v[t] = v[t-1] + I[t] (dt = 1, r = 1); spike when v >= theta (evrobust, H(0) = 1); "
    "hard reset to v_reset = 0. NIR's IF and norse fire when v > theta: "
    "they differ only at exact ties v == theta"
)


def _f32(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of a tensor (detached, on CPU)."""
    return t.detach().to("cpu", torch.float64).to(torch.float32).numpy().copy()


def check_exportable(model: nn.Module) -> None:
    """Raise one UserInputError naming everything in ``model`` that NIR export cannot represent.

    Exportable: evrobust VGG and WRN models (any width/depth) with IF neurons (``tau = 1``, any threshold),
    average pooling and the mean readout. A :class:`NIRModel` (a graph read back) is always exportable.
    """
    from evrobust.export.nir_model import NIRModel

    if isinstance(model, NIRModel):
        return
    if not isinstance(model, VGG | WideResNet):
        raise UserInputError(
            f"cannot export a {type(model).__name__} to NIR: only evrobust VGG and WRN models are supported"
        )
    problems: list[str] = []
    taus = sorted({m.tau for m in model.modules() if isinstance(m, IFNeuron)})
    if any(t != 1.0 for t in taus):
        leaky = ", ".join(f"{t:g}" for t in taus if t != 1.0)
        problems.append(f"leaky neurons (tau={leaky}; the export writes NIR IF nodes, which need tau=1)")
    if any(isinstance(m, nn.MaxPool2d | nn.AdaptiveMaxPool2d) for m in model.modules()):
        problems.append("max pooling (pool='max'; NIR has no max-pooling node)")
    readout = model.readout.kind if isinstance(model.readout, Readout) else "?"
    if readout != "mean":
        problems.append(
            f"readout={readout!r} (only the mean over T of the last Linear, readout='mean', is exported)"
        )
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d) and (m.running_mean is None or m.running_var is None):
            problems.append(f"BatchNorm {name} without running statistics (cannot be folded)")
    if problems:
        raise UserInputError(
            f"cannot export {model.name or type(model).__name__} to NIR: " + "; ".join(problems)
        )


def _conv_out(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


class _GraphBuilder:
    """Collects NIR nodes in topological order with their per-step output shapes."""

    def __init__(self, in_shape: tuple[int, int, int]) -> None:
        self.nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": in_shape}

    def add(self, name: str, node: Any, inputs: list[str], shape: tuple[int, ...]) -> str:
        if name in self.nodes:
            raise ValueError(f"duplicate NIR node name {name!r}")
        self.nodes[name] = node
        self.edges += [(src, name) for src in inputs]
        self.shapes[name] = shape
        return name

    def shape(self, inputs: list[str]) -> tuple[int, ...]:
        shapes = {self.shapes[i] for i in inputs}
        if len(shapes) != 1:
            raise ValueError(f"inputs {inputs} of one node have different shapes {shapes}")
        return shapes.pop()

    # ---- node helpers ------------------------------------------------------------------------------------
    def conv(
        self,
        name: str,
        inputs: list[str],
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
    ) -> str:
        c_in, h, w = self.shape(inputs)
        c_out, _, k, _ = weight.shape
        b = torch.zeros(c_out, dtype=torch.float64) if bias is None else bias
        node = nir.Conv2d(
            input_shape=(h, w),
            weight=_f32(weight),
            stride=stride,
            padding=padding,
            dilation=1,
            groups=1,
            bias=_f32(b),
        )
        out = (c_out, _conv_out(h, k, stride, padding), _conv_out(w, k, stride, padding))
        return self.add(name, node, inputs, out)

    def channel_affine(self, name: str, inputs: list[str], gain: torch.Tensor, shift: torch.Tensor) -> str:
        """``x * gain[c] + shift[c]`` as a 1x1 Conv2d with a diagonal kernel (exact at borders: no
        padding)."""
        weight = torch.diag(gain.to(torch.float64)).reshape(len(gain), len(gain), 1, 1)
        return self.conv(name, inputs, weight, shift.to(torch.float64), stride=1, padding=0)

    def neuron(self, name: str, inputs: list[str], neuron: IFNeuron) -> str:
        shape = self.shape(inputs)
        node = nir.IF(
            r=np.ones(shape, np.float32),
            v_threshold=np.full(shape, neuron.theta, np.float32),
            v_reset=np.zeros(shape, np.float32),
        )
        return self.add(name, node, inputs, shape)

    def avgpool(self, name: str, inputs: list[str], kernel: tuple[int, int]) -> str:
        c, h, w = self.shape(inputs)
        node = nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(kernel), padding=np.array([0, 0]))
        return self.add(name, node, inputs, (c, h // kernel[0], w // kernel[1]))

    def flatten(self, name: str, inputs: list[str]) -> str:
        shape = self.shape(inputs)
        node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        return self.add(name, node, inputs, (math.prod(shape),))

    def affine(self, name: str, inputs: list[str], linear: nn.Linear) -> str:
        (features,) = self.shape(inputs)
        if features != linear.in_features:
            raise ValueError(
                f"{name}: {features} features reach a Linear with in_features={linear.in_features}"
            )
        bias = torch.zeros(linear.out_features) if linear.bias is None else linear.bias
        node = nir.Affine(weight=_f32(linear.weight), bias=_f32(bias))
        return self.add(name, node, inputs, (linear.out_features,))

    def scale(self, name: str, inputs: list[str], factor: torch.Tensor) -> str:
        shape = self.shape(inputs)
        node = nir.Scale(scale=np.full(shape, float(factor.detach().to(torch.float32)), np.float32))
        return self.add(name, node, inputs, shape)

    def output(self, inputs: list[str]) -> None:
        shape = self.shape(inputs)
        self.add("output", nir.Output(output_type={"output": np.array(shape)}), inputs, shape)


def _bn_gain_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * gain + shift`` per channel, in float64."""
    assert bn.running_mean is not None and bn.running_var is not None  # checked by check_exportable
    mean = bn.running_mean.detach().to(torch.float64)
    var = bn.running_var.detach().to(torch.float64)
    gamma = torch.ones_like(mean) if bn.weight is None else bn.weight.detach().to(torch.float64)
    beta = torch.zeros_like(mean) if bn.bias is None else bn.bias.detach().to(torch.float64)
    gain = gamma / torch.sqrt(var + bn.eps)
    return gain, beta - mean * gain


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias (float64) of ``bn(conv(x))`` as one convolution; ``bn=None`` returns the conv's own."""
    weight = conv.weight.detach().to(torch.float64)
    bias = None if conv.bias is None else conv.bias.detach().to(torch.float64)
    if bn is None:
        return weight, bias
    gain, shift = _bn_gain_shift(bn)
    base = torch.zeros_like(gain) if bias is None else bias
    return weight * gain.view(-1, 1, 1, 1), base * gain + shift


def _check_conv(conv: nn.Conv2d, where: str) -> tuple[int, int]:
    """(stride, padding) of a square, undilated, ungrouped, zero-padded conv; anything else is refused."""
    ok = (
        conv.kernel_size[0] == conv.kernel_size[1]
        and conv.stride[0] == conv.stride[1]
        and isinstance(conv.padding, tuple)
        and conv.padding[0] == conv.padding[1]
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )
    if not ok:
        raise UserInputError(
            f"cannot export {where} to NIR: only square, zero-padded, ungrouped convolutions"
        )
    return int(conv.stride[0]), int(conv.padding[0])


def _encoder(b: _GraphBuilder, model: VGG | WideResNet) -> list[str]:
    norm = model.encoder.normalize
    if not norm.enabled:
        return ["input"]
    std = norm.std.detach().flatten().to(torch.float64)
    mean = norm.mean.detach().flatten().to(torch.float64)
    return [b.channel_affine("normalize", ["input"], 1.0 / std, -mean / std)]


def _vgg(b: _GraphBuilder, model: VGG) -> list[str]:
    h = _encoder(b, model)
    for i, layer in enumerate(model.features):
        if isinstance(layer, IFNeuron):
            h = [b.neuron(f"features_{i}", h, layer)]
        elif isinstance(layer, TimeDistributed) and isinstance(layer[0], nn.Conv2d):
            bn = layer[1] if len(layer) > 1 else None
            stride, padding = _check_conv(layer[0], f"features.{i}")
            weight, bias = fold_conv_bn(layer[0], bn)
            h = [b.conv(f"features_{i}", h, weight, bias, stride, padding)]
        elif isinstance(layer, TimeDistributed) and isinstance(layer[0], nn.AvgPool2d):
            k = layer[0].kernel_size
            kernel = (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))
            h = [b.avgpool(f"features_{i}", h, kernel)]
        else:
            raise UserInputError(f"cannot export VGG layer features.{i} ({type(layer).__name__}) to NIR")
    for i, layer in enumerate(model.classifier):
        if isinstance(layer, nn.Flatten):
            h = [b.flatten(f"classifier_{i}", h)]
        elif isinstance(layer, TimeDistributed) and isinstance(layer[0], nn.Linear):
            h = [b.affine(f"classifier_{i}", h, layer[0])]
        elif isinstance(layer, IFNeuron):
            h = [b.neuron(f"classifier_{i}", h, layer)]
        else:
            raise UserInputError(f"cannot export VGG layer classifier.{i} ({type(layer).__name__}) to NIR")
    return h


def _block(b: _GraphBuilder, name: str, block: PreActBlock, x: list[str]) -> list[str]:
    gain, shift = _bn_gain_shift(block.bn1[0])
    a = b.neuron(f"{name}_act1", [b.channel_affine(f"{name}_bn1", x, gain, shift)], block.act1)
    conv1 = block.conv1[0]
    stride, padding = _check_conv(conv1, f"{name}.conv1")
    weight, bias = fold_conv_bn(conv1, block.conv1[1])
    r = b.conv(f"{name}_conv1", [a], weight, bias, stride, padding)
    r = b.neuron(f"{name}_act2", [r], block.act2)
    stride2, padding2 = _check_conv(block.conv2[0], f"{name}.conv2")
    weight2, bias2 = fold_conv_bn(block.conv2[0], None)
    r = b.conv(f"{name}_conv2", [r], weight2, bias2, stride2, padding2)
    convex: ConvexCombination = block.convex
    if block.shortcut is None:
        skip = x
    else:
        s_stride, s_padding = _check_conv(block.shortcut[0], f"{name}.shortcut")
        s_weight, s_bias = fold_conv_bn(block.shortcut[0], None)
        skip = [b.conv(f"{name}_shortcut", [a], s_weight, s_bias, s_stride, s_padding)]
    # Both scaled branches feed the next node(s); NIR sums a node's inputs.
    return [b.scale(f"{name}_skip", skip, convex.comb[0]), b.scale(f"{name}_residual", [r], convex.comb[1])]


def _wrn(b: _GraphBuilder, model: WideResNet) -> list[str]:
    h = _encoder(b, model)
    stride, padding = _check_conv(model.stem[0], "stem")
    weight, bias = fold_conv_bn(model.stem[0], None)
    h = [b.conv("stem", h, weight, bias, stride, padding)]
    for i, block in enumerate(model.blocks):
        h = _block(b, f"blocks_{i}", block, h)
    gain, shift = _bn_gain_shift(model.head_bn[0])
    h = [b.neuron("head_act", [b.channel_affine("head_bn", h, gain, shift)], model.head_act)]
    _, side_h, side_w = b.shape(h)
    h = [b.avgpool("pool", h, (side_h, side_w))]  # global average pooling (AdaptiveAvgPool2d(1))
    h = [b.flatten("pool_flatten", h)]
    return [b.affine("fc", h, model.fc[0])]


def _metadata_value(value: Any) -> Any:
    """NIR metadata goes to HDF5: strings, numbers and bools; None and containers become text."""
    if isinstance(value, bool | int | float | str):
        return value
    if value is None:
        return "none"
    return json.dumps(value, sort_keys=True)


def model_metadata(model: nn.Module) -> dict[str, Any]:
    """Graph metadata every export carries: format, model config, readout, time and neuron semantics."""
    config = dict(getattr(model, "config", {}))
    encoder = model.encoder
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "model": json.dumps(config, sort_keys=True),
        "model_name": str(config.get("name", type(model).__name__)),
        "readout": READOUT_TEXT,
        "time_steps": int(encoder.T),
        "dt": 1.0,
        "neuron": NEURON_TEXT,
        "threshold_rule": "evrobust: v >= theta; NIR IF / norse: v > theta",
        "input": (
            f"[C, H, W] = [{encoder.in_channels}, {encoder.input_size}, {encoder.input_size}] "
            "floats in [0, 1] "
            f"per step: a static image is fed at each of the T = {encoder.T} steps (direct encoding); "
            "event frames are fed one per step (frame t at step t, T = number of frames)"
        ),
        "normalization": (
            "none"
            if not encoder.normalize.enabled
            else "node 'normalize' (1x1 Conv2d: x / std - mean / std) before the first conv's zero padding"
        ),
    }


def to_nir_graph(model: nn.Module, metadata: Mapping[str, Any] | None = None) -> nir.NIRGraph:
    """The NIR graph of an evrobust VGG or WRN (see the module docstring for the node semantics).

    Args:
        model: a VGG or WRN (eval-mode semantics: BatchNorm uses its running statistics), or a
            :class:`~evrobust.export.NIRModel` (returns its graph with updated metadata).
        metadata: extra graph metadata (defense, lambda, eps, robust accuracy, ...); values that are not
            strings, numbers or bools are stored as JSON text.

    Raises:
        UserInputError: the model has something NIR cannot represent (one line naming all of it).
    """
    from evrobust.export.nir_model import NIRModel

    check_exportable(model)
    extra = {k: _metadata_value(v) for k, v in (metadata or {}).items()}
    if isinstance(model, NIRModel):
        graph = model.to_nir_graph()
        graph.metadata = {**graph.metadata, **extra}
        return graph
    enc = model.encoder
    builder = _GraphBuilder((enc.in_channels, enc.input_size, enc.input_size))
    out = _vgg(builder, model) if isinstance(model, VGG) else _wrn(builder, model)
    builder.output(out)
    meta = {**model_metadata(model), **extra}
    return nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=meta)


def graph_bytes(graph: nir.NIRGraph) -> bytes:
    """The NIR file (HDF5, gzip-compressed arrays) of ``graph`` as bytes."""
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return buffer.getvalue()


def write_nir(
    graph_or_model: nir.NIRGraph | nn.Module,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a NIR file atomically (temporary file + rename): a failure leaves no partial file.

    Raises:
        UserInputError: the directory of ``path`` does not exist, ``path`` is a directory, or the write fails.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UserInputError(f"cannot write {path}: directory {path.parent} does not exist; create it first")
    if path.is_dir():
        raise UserInputError(f"cannot write {path}: it is a directory; give a file name such as model.nir")
    graph = (
        graph_or_model if isinstance(graph_or_model, nir.NIRGraph) else to_nir_graph(graph_or_model, metadata)
    )
    payload = graph_bytes(graph)
    try:
        write_bytes_atomic(path, payload)
    except OSError as exc:
        raise UserInputError(f"cannot write {path} ({exc.strerror or exc}); nothing was written") from None
    logger.debug("wrote NIR graph %s (%d nodes, %d bytes)", path, len(graph.nodes), len(payload))
    return path
