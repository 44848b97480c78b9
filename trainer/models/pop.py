"""Most-popular baseline: every user gets the items with the most training clicks.

It has no parameters to learn; it exists so that every report shows how much a
sequence model adds over popularity on the same split and the same ranking protocol.
"""

from __future__ import annotations

import numpy as np
import torch


class MostPopular:
    """Scores each item by its click count in the training parts of the split."""

    def __init__(self, train_item_counts: np.ndarray):
        self.counts = torch.as_tensor(train_item_counts, dtype=torch.float32)

    def scores(self, clicks: torch.Tensor) -> torch.Tensor:
        """``[B, M + 1]`` scores, the same row for every user."""
        return self.counts.to(clicks.device).expand(clicks.shape[0], -1)
