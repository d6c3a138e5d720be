"""evrobust: adversarially robust spiking neural networks with sparse input gradients."""

__version__ = "0.1.0"
