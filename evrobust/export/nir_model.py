"""Read a NIR graph back as an evrobust model: :func:`read_nir`, :func:`load_nir` and :class:`NIRModel`.

:class:`NIRModel` runs the graph node by node with the same torch operations norse's import uses (``Conv2d``,
``AvgPool2d``, ``Linear``, elementwise ``Scale``) and evrobust's :class:`~evrobust.neurons.IFNeuron` for the
IF
nodes, so its membrane potentials are bit-identical to norse's and the two differ only at exact threshold ties
(evrobust fires at ``v == theta``, norse does not). It is a :class:`~evrobust.models.base.SpikingModel`: it
takes ``[N, C, H, W]`` images (repeated over ``T``) or ``[N, T, C, H, W]`` frames in ``[0, 1]``, returns
logits
``[N, K]`` (mean over T of the output node) and works with every attack and gradient spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.models.base import SpikingModel
from evrobust.models.encoders import InputEncoder
from evrobust.models.layers import Readout, merge_time, split_time
from evrobust.neurons import DEFAULT_SPEC, GradSpec, IFNeuron, if_membrane
from evrobust.safeio import open_read, parse_json
from evrobust.safeio.schemas import validate

__all__ = ["NIRModel", "load_nir", "read_nir", "SUPPORTED_NODES"]

SUPPORTED_NODES = ("Input", "Output", "Conv2d", "AvgPool2d", "Flatten", "Affine", "Linear", "Scale", "IF")


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """``nir.read`` with one-line UserInputErrors for a missing, unreadable, damaged or non-finite graph.

    The file is opened through :mod:`evrobust.safeio` (a regular file, never a link or FIFO, within the
    ``nir_graph`` cap) and h5py reads that open file. The metadata must match the ``nir_metadata`` schema, and
    every parameter array of every node must be finite (NaN weights are refused, as for checkpoints).
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise UserInputError(f"NIR file not found: {path}")
    try:
        with open_read(path, "nir_graph") as raw:
            graph = nir.read(raw)
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError, AssertionError, ...
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(f"cannot read NIR file {path} ({type(exc).__name__}: {message})") from None
    # HDF5 hands numbers back as numpy scalars: validate their Python values.
    metadata = {k: v.item() if isinstance(v, np.generic) else v for k, v in (graph.metadata or {}).items()}
    validate(metadata, "nir_metadata", f"the metadata of NIR file {path}")
    for name, node in graph.nodes.items():
        for field, value in vars(node).items():
            if isinstance(value, np.ndarray) and value.dtype.kind in "fc" and not np.isfinite(value).all():
                raise UserInputError(
                    f"NIR file {path}: node {name!r} holds non-finite values (NaN or infinity) in {field!r}; "
                    "these weights cannot be evaluated"
                )
    return graph


def _uniform(values: Any, what: str, name: str) -> float:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or not np.all(array == array.flat[0]):
        raise UserInputError(
            f"IF node {name!r} has non-uniform {what}; evrobust's IF runs one value per layer"
        )
    return float(array.flat[0])


def _pair(value: Any) -> tuple[int, int]:
    array = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(array[0]), int(array[0])) if array.size == 1 else (int(array[0]), int(array[1]))


class _Scale(nn.Module):
    """NIR ``Scale``: elementwise ``x * scale`` (``scale`` shaped like one sample, broadcast over the
    batch)."""

    def __init__(self, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(np.asarray(scale, dtype=np.float32).copy()))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class _Flatten(nn.Module):
    """NIR ``Flatten``: its dims exclude the batch axis, so they are shifted by one here."""

    def __init__(self, start_dim: int, end_dim: int) -> None:
        super().__init__()
        self.start_dim = start_dim + 1 if start_dim >= 0 else start_dim
        self.end_dim = end_dim + 1 if end_dim >= 0 else end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


def stateless_module(node: Any, name: str) -> nn.Module:
    """The torch module of one stateless NIR node (shared with the norse bridge for the nodes norse lacks)."""
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight, dtype=np.float32)
        padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
        conv = nn.Conv2d(
            weight.shape[1] * int(node.groups),
            weight.shape[0],
            tuple(weight.shape[-2:]),
            stride=_pair(node.stride),
            padding=padding,
            dilation=_pair(node.dilation),
            groups=int(node.groups),
        )
        conv.weight.data = torch.from_numpy(weight.copy())
        conv.bias.data = torch.from_numpy(np.asarray(node.bias, dtype=np.float32).copy())
        return conv
    if isinstance(node, nir.AvgPool2d):
        return nn.AvgPool2d(_pair(node.kernel_size), stride=_pair(node.stride), padding=_pair(node.padding))
    if isinstance(node, nir.Flatten):
        return _Flatten(int(node.start_dim), int(node.end_dim))
    if isinstance(node, nir.Affine | nir.Linear):
        weight = np.asarray(node.weight, dtype=np.float32)
        has_bias = isinstance(node, nir.Affine)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
        linear.weight.data = torch.from_numpy(weight.copy())
        if has_bias:
            linear.bias.data = torch.from_numpy(np.asarray(node.bias, dtype=np.float32).copy())
        return linear
    if isinstance(node, nir.Scale):
        return _Scale(node.scale)
    raise UserInputError(
        f"NIR node {name!r} has type {type(node).__name__}; evrobust reads {', '.join(SUPPORTED_NODES)}"
    )


def _topological(graph: nir.NIRGraph) -> tuple[list[str], dict[str, list[str]]]:
    """Node names in an order where every node follows its inputs, and each node's inputs in edge order."""
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        if src not in preds or dst not in preds:
            raise UserInputError(f"NIR edge ({src!r}, {dst!r}) names a node that is not in the graph")
        preds[dst].append(src)
    order: list[str] = []
    placed: set[str] = set()
    pending = list(graph.nodes)
    while pending:
        ready = [n for n in pending if all(p in placed for p in preds[n])]
        if not ready:
            raise UserInputError(
                f"the NIR graph has a cycle through {', '.join(pending[:3])}; "
                "evrobust reads feed-forward graphs"
            )
        for n in ready:
            order.append(n)
            placed.add(n)
        pending = [n for n in pending if n not in placed]
    return order, preds


class NIRModel(SpikingModel):
    """A feed-forward NIR graph run with evrobust IF neurons (see the module docstring).

    Args:
        graph: a ``nir.NIRGraph`` with one ``Input`` (``[C, H, H]``), one ``Output`` and nodes among
            :data:`SUPPORTED_NODES`.
        T: steps a static image is repeated for (frames bring their own); default: the graph's ``time_steps``
            metadata.
        neuron_backend, spec: of every IF neuron (as in :func:`evrobust.models.create_model`).
    """

    def __init__(
        self,
        graph: nir.NIRGraph,
        T: int | None = None,
        neuron_backend: str = "native",
        spec: GradSpec | str = DEFAULT_SPEC,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.metadata: dict[str, Any] = dict(graph.metadata or {})
        inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserInputError(
                f"the NIR graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                "evrobust reads one of each"
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        shape = [int(v) for v in np.asarray(graph.nodes[self.input_name].input_type["input"]).ravel()]
        if len(shape) != 3 or shape[1] != shape[2]:
            raise UserInputError(
                f"the NIR graph's input shape is {shape}; evrobust reads square [C, H, H] inputs"
            )
        if T is None:
            T = int(self.metadata.get("time_steps", 0)) or None
        if T is None:
            raise UserInputError("the NIR graph records no time_steps; pass T= (steps per static image)")
        self.encoder = InputEncoder(shape[0], int(T), shape[1])
        self.order, self.preds = _topological(graph)
        self.layers = nn.ModuleDict()
        self.keys: dict[str, str] = {}
        for name in self.order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input | nir.Output):
                continue
            key = name.replace(".", "_")
            if hasattr(nn.ModuleDict, key) or key in self.keys.values():
                key = f"node_{len(self.keys)}_{key}"  # a name such as "half" or "eval" would shadow a method
            self.keys[name] = key
            if isinstance(node, nir.IF):
                if (
                    _uniform(node.r, "r (resistance)", name) != 1.0
                    or _uniform(node.v_reset, "v_reset", name) != 0.0
                ):
                    raise UserInputError(
                        f"IF node {name!r} needs r = 1 and v_reset = 0 for evrobust's IF neuron"
                    )
                theta = _uniform(node.v_threshold, "v_threshold", name)
                self.layers[key] = IFNeuron(backend=neuron_backend, spec=spec, tau=1.0, theta=theta)
            else:
                self.layers[key] = stateless_module(node, name)
        self.readout = Readout("mean", 1.0)
        model_config = self.metadata.get("model")
        source = (
            parse_json(model_config, "the NIR graph's model metadata")
            if isinstance(model_config, str) and model_config.startswith("{")
            else {}
        )
        self.name = "nir"
        self.config = {"name": "nir", "T": int(T), "source_model": source}

    def to_nir_graph(self) -> nir.NIRGraph:
        """The graph this model runs (a fresh ``NIRGraph`` over the same nodes, edges and metadata)."""
        metadata = {**self.metadata, "time_steps": int(self.T)}
        return nir.NIRGraph(nodes=dict(self.graph.nodes), edges=list(self.graph.edges), metadata=metadata)

    def _run(self, x: Tensor, keep: bool) -> tuple[Tensor, dict[str, Tensor]]:
        h = self.encoder(x)  # [T, N, C, H, W]
        T = h.shape[0]
        values: dict[str, Tensor] = {self.input_name: h}
        kept: dict[str, Tensor] = {}
        for name in self.order:
            if name == self.input_name:
                continue
            parts = [values[p] for p in self.preds[name]]
            if not parts:
                raise UserInputError(f"NIR node {name!r} has no input edge")
            current = parts[0]
            for part in parts[1:]:
                current = current + part  # NIR sums a node's inputs
            if name == self.output_name:
                values[name] = current
                continue
            layer = self.layers[self.keys[name]]
            if isinstance(layer, IFNeuron):
                if keep:
                    kept[name] = current.detach()
                values[name] = layer(current)
            else:
                values[name] = split_time(layer(merge_time(current)), T)
        return values[self.output_name], kept

    def forward(self, x: Tensor) -> Tensor:
        """``[N,C,H,W]`` or ``[N,T,C,H,W]`` in ``[0,1]`` -> logits ``[N,K]`` (mean over T of the output
        node)."""
        out, _ = self._run(x, keep=False)
        return self.readout(out)

    @torch.no_grad()
    def trace(self, x: Tensor) -> dict[str, Any]:
        """Logits, per-step output, and for every IF node its input current, potentials, spikes and ties.

        Returns:
            ``{"logits": [N,K], "output": [T,N,K], "spikes": {node: [T,N,...]}, "ties": {node: count},
            "tie_samples": bool [N], "margin": {node: min |v - theta|}, "sample_margin": [N]}`` where a
            tie is a step at which the
            potential before reset equals the threshold exactly (evrobust fires, NIR/norse do not).
        """
        out, currents = self._run(x, keep=True)
        spikes: dict[str, Tensor] = {}
        ties: dict[str, int] = {}
        margin: dict[str, float] = {}
        tie_samples = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
        sample_margin = torch.full((out.shape[1],), float("inf"), device=out.device)
        for name, current in currents.items():
            theta = self.layers[self.keys[name]].theta
            u = if_membrane(current, 1.0, theta)
            spikes[name] = (u >= theta).to(current.dtype)
            equal = u == theta
            ties[name] = int(equal.sum())
            tie_samples |= equal.flatten(2).any(2).any(0)
            distance = (u - theta).abs()
            margin[name] = float(distance.min()) if u.numel() else float("inf")
            if u.numel():
                sample_margin = torch.minimum(sample_margin, distance.transpose(0, 1).flatten(1).amin(1))
        return {
            "logits": self.readout(out),
            "output": out,
            "spikes": spikes,
            "ties": ties,
            "tie_samples": tie_samples,
            "margin": margin,
            "sample_margin": sample_margin,
        }


def load_nir(
    path: str | os.PathLike[str] | nir.NIRGraph,
    T: int | None = None,
    neuron_backend: str = "native",
    spec: GradSpec | str = DEFAULT_SPEC,
) -> NIRModel:
    """A NIR file (or graph) as an evrobust model in eval mode; see :class:`NIRModel`.

    The graph's metadata stays on ``model.metadata`` (for an evrobust export: defense, lambda, eps, robust
    accuracy, the source model's config and the readout).
    """
    graph = path if isinstance(path, nir.NIRGraph) else read_nir(path)
    return NIRModel(graph, T=T, neuron_backend=neuron_backend, spec=spec).eval()


def metadata_json(model: NIRModel, key: str) -> Mapping[str, Any] | None:
    """A metadata entry stored as JSON text, parsed; None when absent or not JSON."""
    value = model.metadata.get(key)
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_json(value, f"the NIR graph's {key!r} metadata")
    except UserInputError:
        return None
    return parsed if isinstance(parsed, dict) else None
