"""The attack pipeline (``evrobust attack``).

Entry point: :func:`evrobust.pipelines.attack.pipeline.run_attack`.

``inputs`` opens a run's test split and source model (shared with ``analyze``), ``reliable`` keeps the
bookkeeping of the ``reliable`` cascade (who enters each stage, the per-sample verdict).
"""
