"""edgelight training: models, synthetic data, losses, metrics and Lightning training loops."""

__version__ = "0.1.0"
