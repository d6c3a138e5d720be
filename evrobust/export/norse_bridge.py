"""Run an exported NIR graph in norse 1.1.0, for spike-for-spike comparison with evrobust.

What norse 1.1.0 offers, read from its source (``norse/torch/utils/import_nir.py``):

- ``norse.torch.from_nir(graph)`` maps each node with ``_import_norse_module``: ``IF`` -> ``IAFCell`` (``v
  += I``,
  spike when ``v - v_th > 0`` strictly, reset to ``v_reset = 0``; ``dt`` unused), ``Conv2d`` -> ``nn.Conv2d``,
  ``Affine``/``Linear`` -> ``nn.Linear``, ``Flatten`` -> ``nn.Flatten(start_dim, end_dim)``,
  ``LIF``/``CubaLIF``,
  ``SumPool2d``. It returns nothing for ``AvgPool2d`` and ``Scale``.
- It wires the modules with ``nirtorch.load`` (deprecated), whose executor orders nodes depth-first from the
  input. In a graph where two branches meet (WRN's residual sum) it can run the meeting node before one branch
  has produced its value for this step and then silently uses that branch's value from the previous step.
- Its ``Flatten`` applies NIR's batch-free ``start_dim`` to batched tensors (folding the batch into features).

So :func:`norse_from_nir` takes norse's own modules for every node norse maps (IF, Conv2d, Affine, Linear),
adds
``AvgPool2d``, ``Scale`` and a batch-aware ``Flatten`` (stateless, the same modules :class:`NIRModel` uses),
and
wires them with nirtorch's current interpreter (``nirtorch.nir_to_torch``), which runs a node only when all
its
inputs exist. The spiking dynamics compared are norse's.
"""

from __future__ import annotations

from typing import Any

import nir
import torch
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.export.nir_model import stateless_module

__all__ = ["NORSE_MAPPED", "norse_from_nir", "norse_parity", "run_norse"]

NORSE_MAPPED = (nir.IF, nir.Conv2d, nir.Affine, nir.Linear)
"""Node types whose torch module comes from norse's own NIR import."""


class _RecordSpikes(nn.Module):
    """Wraps a norse ``IAFCell``: forwards unchanged and keeps the last step's spikes in ``self.spikes``."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell
        self.spikes: Tensor | None = None

    def forward(self, input_tensor: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        z, new_state = self.cell(input_tensor, state)
        self.spikes = z
        return z, new_state


def norse_from_nir(graph: nir.NIRGraph) -> torch.fx.GraphModule:
    """The graph as a norse network: ``out, state = net(x_t, state)`` per time step (``state=None`` first).

    ``x_t`` is ``[N, C, H, W]``; ``out`` is the output node's value ``[N, K]`` at that step.
    """
    try:
        import nirtorch
        from norse.torch.utils.import_nir import _import_norse_module
    except ImportError as exc:  # pragma: no cover - norse and nirtorch come with `make venv`
        raise UserInputError(f"running a NIR graph in norse needs norse and nirtorch ({exc})") from None

    def from_norse(node: Any) -> nn.Module:
        module = _import_norse_module(node, dt=1.0)
        if module is None:
            raise UserInputError(f"norse returned no module for NIR node type {type(node).__name__}")
        return _RecordSpikes(module) if isinstance(node, nir.IF) else module

    node_map = {t: from_norse for t in NORSE_MAPPED}
    for t in (nir.AvgPool2d, nir.Scale, nir.Flatten):
        node_map[t] = lambda node: stateless_module(node, type(node).__name__)
    return nirtorch.nir_to_torch(graph, node_map)


@torch.no_grad()
def run_norse(net: torch.fx.GraphModule, x: Tensor, T: int | None = None) -> dict[str, Any]:
    """Run ``net`` (from :func:`norse_from_nir`) over time.

    Args:
        x: ``[N, C, H, W]`` (fed at each of ``T`` steps) or ``[N, T, C, H, W]`` frames (frame ``t`` at step
        ``t``).
        T: steps for a static image.

    Returns:
        ``{"logits": [N, K] (mean over T), "output": [T, N, K], "spikes": {node: [T, N, ...]}}``.
    """
    if x.ndim == 4:
        if T is None:
            raise UserInputError("give T (time steps) for a static image input")
        steps = [x] * T
    else:
        steps = list(x.unbind(1))
    recorders = {name: m for name, m in net.named_modules() if isinstance(m, _RecordSpikes)}
    spikes: dict[str, list[Tensor]] = {name: [] for name in recorders}
    outputs = []
    state = None
    for x_t in steps:
        out, state = net(x_t, state)
        outputs.append(out)
        for name, rec in recorders.items():
            assert rec.spikes is not None
            spikes[name].append(rec.spikes)
    output = torch.stack(outputs)
    return {
        "logits": output.mean(0),
        "output": output,
        "spikes": {name: torch.stack(v) for name, v in spikes.items()},
    }


@torch.no_grad()
def norse_parity(model: Any, x: Tensor, batch_size: int = 256) -> dict[str, Any]:
    """Compare a :class:`~evrobust.export.NIRModel` with the same graph in norse, spike for spike.

    Args:
        model: a ``NIRModel`` (e.g. from :func:`~evrobust.export.load_nir`).
        x: ``[N, C, H, W]`` images or ``[N, T, C, H, W]`` frames in ``[0, 1]``.

    Returns:
        Counts over the ``N`` samples: ``samples``; ``tie_samples`` (samples where some evrobust potential
        equals its threshold exactly); ``ties`` per IF node (neuron-steps at a tie); ``spike_mismatches`` per
        IF node; ``logit_mismatch_samples`` (logits not bit-identical); ``mismatch_outside_ties`` (such
        samples
        without any tie -- 0 means every difference comes from a tie); ``argmax_changes`` (predicted class
        differs).
    """
    net = norse_from_nir(model.to_nir_graph())
    totals: dict[str, Any] = {
        "samples": 0,
        "tie_samples": 0,
        "ties": {},
        "spike_mismatches": {},
        "logit_mismatch_samples": 0,
        "mismatch_outside_ties": 0,
        "argmax_changes": 0,
    }
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        ours = model.trace(xb)
        theirs = run_norse(net, xb, T=model.T)
        differ = (ours["logits"] != theirs["logits"]).any(1)
        totals["samples"] += xb.shape[0]
        totals["tie_samples"] += int(ours["tie_samples"].sum())
        totals["logit_mismatch_samples"] += int(differ.sum())
        totals["mismatch_outside_ties"] += int((differ & ~ours["tie_samples"]).sum())
        totals["argmax_changes"] += int((ours["logits"].argmax(1) != theirs["logits"].argmax(1)).sum())
        for name, spikes in ours["spikes"].items():
            totals["ties"][name] = totals["ties"].get(name, 0) + ours["ties"][name]
            mismatch = int((spikes != theirs["spikes"][name]).sum())
            totals["spike_mismatches"][name] = totals["spike_mismatches"].get(name, 0) + mismatch
    return totals
