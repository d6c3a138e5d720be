"""The report (``evrobust report``): entry point :func:`evrobust.pipelines.report.pipeline.write_report`.

``runs`` loads run directories, ``figures`` draws the paper's figures from them, ``plots`` holds the
matplotlib helpers (``analyze`` draws with them too), ``tradeoff`` summarises the trade-off study.
"""
