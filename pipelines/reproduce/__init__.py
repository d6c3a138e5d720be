"""Reproduction pipelines of the paper's tables and figures (``evrobust reproduce NAME``).

:mod:`.specs` holds the data model of a spec (runs, attacks, analyses, table layout) and its builder,
:mod:`.scales` what each scale substitutes, :mod:`.experiments` one spec per table or figure (the published
numbers they are compared with are :mod:`evrobust.pipelines.common.paper`), :mod:`.runner` executes a spec and
writes ``results.json``, :mod:`.cost`
estimates its training time from a short warm-up, :mod:`.select` narrows a spec to some of its runs
(``--only``).
"""

from evrobust.pipelines.reproduce.cost import CostEstimate, estimate_cost
from evrobust.pipelines.reproduce.experiments import build_spec, list_pipelines
from evrobust.pipelines.reproduce.runner import (
    MixedProvenanceError,
    check_row_provenance,
    execute,
    load_results,
    run_reproduction,
)
from evrobust.pipelines.reproduce.scales import SCALES
from evrobust.pipelines.reproduce.select import select_runs
from evrobust.pipelines.reproduce.specs import PipelineSpec

__all__ = ["SCALES", "CostEstimate", "MixedProvenanceError", "PipelineSpec", "build_spec",
           "check_row_provenance", "estimate_cost", "execute", "list_pipelines", "load_results",
           "run_reproduction", "select_runs"]
