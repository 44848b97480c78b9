"""Collapse diagnostics for SINE's concept pool.

The known failure of this model family is collapse: every user activates the same few
prototypes, the interests become indistinguishable and accuracy falls to that of a
single-vector model or worse. These statistics, logged every epoch and plotted, make it
visible: how many of the L prototypes any user activates, and the entropy of their use.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainer.models.sine import SINE


@torch.no_grad()
def concept_usage(model: SINE, inputs: np.ndarray, device: torch.device | str = "cpu",
                  batch_size: int = 2048) -> dict[str, float | list[int]]:
    """Prototype activation counts over the users in `inputs` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    L = model.config.prototypes
    counts = torch.zeros(L, dtype=torch.int64)
    peak = []
    for start in range(0, len(inputs), batch_size):
        clicks = torch.as_tensor(inputs[start : start + batch_size], device=device)
        out = model(clicks)
        counts += torch.bincount(out.extras["concepts"].flatten().cpu(), minlength=L)
        peak.append(out.extras["interest_weights"].max(dim=1).values.cpu())
    model.train(was_training)
    p = counts.double() / counts.sum()
    nonzero = p[p > 0]
    entropy = float(-(nonzero * nonzero.log()).sum())
    return {
        "distinct_concepts": int((counts > 0).sum()),
        "concept_entropy": entropy,
        # 1.0 when all L prototypes are used equally, 0.0 when one is used by everyone
        "concept_entropy_normalized": entropy / math.log(L) if L > 1 else 0.0,
        "top_interest_weight": float(torch.cat(peak).mean()),
        "concept_counts": counts.tolist(),
    }
