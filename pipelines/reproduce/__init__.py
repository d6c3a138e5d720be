"""Reproduction pipelines of the paper's tables and figures (``evrobust reproduce NAME``).

:mod:`.specs` declares each experiment (runs, attacks, analyses, table layout) per scale, :mod:`.tables`
holds the published numbers, :mod:`.runner` executes a spec and writes ``results.json``.
"""

from evrobust.pipelines.reproduce.runner import execute, load_results, run_reproduction
from evrobust.pipelines.reproduce.specs import SCALES, PipelineSpec, build_spec, list_pipelines

__all__ = ["SCALES", "PipelineSpec", "build_spec", "execute", "list_pipelines", "load_results",
           "run_reproduction"]
