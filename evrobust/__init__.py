"""evrobust: adversarially robust spiking neural networks with sparse input gradients."""

__version__ = "0.1.0"

__all__ = ["EvaluationResult", "__version__", "evaluate"]


def __getattr__(name: str) -> object:
    """``evrobust.evaluate`` and ``evrobust.EvaluationResult``, imported on first use: ``import evrobust``
    stays free of torch (the preprocessing path never imports it)."""
    if name in ("evaluate", "EvaluationResult"):
        from evrobust.pipelines.attack import evaluate as module

        return getattr(module, name)
    raise AttributeError(f"module 'evrobust' has no attribute {name!r}")
