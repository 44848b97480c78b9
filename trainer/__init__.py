"""Training and offline evaluation of SINE and its baselines (PyTorch)."""
