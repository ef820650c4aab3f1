"""Training utilities for the embedded default model (data preparation, trainer)."""
