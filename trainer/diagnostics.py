"""Collapse diagnostics for SINE's concept pool.

The known failure of this model family is collapse: every user activates the same few
prototypes, the interests become indistinguishable and accuracy falls to that of a
single-vector model or worse. These statistics, logged every epoch and plotted, make it
visible: how many of the L prototypes any user activates, and the entropy of their use.
Two more say how sharp the interests are: the mean top aggregation weight max_k e_k
(eq. 7; 1/K when the K interests are mixed uniformly) and the assignment sharpness, the
mean over real clicks of max_k P(k|t) (eq. 3; 1/K when no click belongs to one interest).
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
    peak, sharpness, clicks_seen = [], 0.0, 0
    for start in range(0, len(inputs), batch_size):
        clicks = torch.as_tensor(inputs[start : start + batch_size], device=device)
        out = model(clicks)
        counts += torch.bincount(out.extras["concepts"].flatten().cpu(), minlength=L)
        peak.append(out.extras["interest_weights"].max(dim=1).values.cpu())
        real = clicks > 0
        top_assignment = out.extras["intention_assignment"].max(dim=-1).values  # [B, S]
        sharpness += float(top_assignment[real].sum())
        clicks_seen += int(real.sum())
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
        "assignment_sharpness": sharpness / max(clicks_seen, 1),
        "concept_counts": counts.tolist(),
    }
