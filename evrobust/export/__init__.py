"""Export trained evrobust models to the Neuromorphic Intermediate Representation (NIR) and back.

- :func:`to_nir_graph` / :func:`write_nir`: an evrobust VGG or WRN (IF neurons, average pooling, mean readout)
  as a ``nir.NIRGraph`` of ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Affine``, ``Scale`` and ``IF`` nodes,
  with
  BatchNorm folded into convolutions and the input normalisation as an exact 1x1 ``Conv2d`` in front;
- :func:`load_nir`: such a graph back as an evrobust model (:class:`NIRModel`) that runs it with evrobust's IF
  neurons, so attacks and gradient specs work on it;
- :func:`norse_from_nir` / :func:`run_norse`: the same graph in norse 1.1.0 (its ``from_nir`` node map,
  plus the
  three maps it lacks) for spike-for-spike comparison.

See ``docs/architecture.md`` ("Export to NIR") for the exact node semantics.
"""

from __future__ import annotations

from evrobust.export.nir_export import EXPORT_FORMAT, check_exportable, to_nir_graph, write_nir
from evrobust.export.nir_model import NIRModel, load_nir, read_nir
from evrobust.export.norse_bridge import norse_from_nir, norse_parity, run_norse

__all__ = [
    "EXPORT_FORMAT",
    "NIRModel",
    "check_exportable",
    "load_nir",
    "norse_from_nir",
    "norse_parity",
    "read_nir",
    "run_norse",
    "to_nir_graph",
    "write_nir",
]
