"""The training pipeline (``evrobust train``): entry point :func:`evrobust.pipelines.train.pipeline.train`.

``config`` resolves the options, ``data`` batches the store, ``checkpoints`` saves and resumes,
``distributed`` launches several processes, ``progress`` logs the steps; ``run_dir`` is the run directory
that every later command reads (``load_run``).
"""
