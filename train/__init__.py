"""edgelight training: one package per model family (``train/<family>/``), the model and family registries,
the checkpoint contract, and shared metrics, plots and synthetic data."""
