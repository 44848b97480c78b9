"""Plumbing every sequence encoder shares: the item table, padding masks, positions.

An encoder maps left-padded item indices ``[batch, seq]`` (int64, 0 = padding, most
recent click in the last column) to a user vector ``[batch, D]``; an item's score is
the inner product of the user vector with its row of the item table ``H``, which is
also the input embedding (tied, as in SASRec and in the paper's eq. (9)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """What an encoder returns; `extras` carries model-specific diagnostics."""

    user_vector: torch.Tensor  # [B, D]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def padding_mask(clicks: torch.Tensor) -> torch.Tensor:
    """True where a position holds a real click."""
    return clicks > 0


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over `dim` that gives padded positions exactly zero weight."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=dim)


def recency_positions(seq_len: int, device: torch.device) -> torch.Tensor:
    """Position ids counted back from the most recent click (0 = last column).

    With left padding, counting from the end gives a click the same position id
    whatever the length of the padded input, so a sequence padded to 20 and the same
    sequence passed unpadded (as the service may) produce the same user vector.
    """
    # (written as n - 1 - arange(n): a descending arange exports to an empty ONNX Range)
    return (seq_len - 1) - torch.arange(seq_len, device=device)


def signed_power(x: torch.Tensor, p: float) -> torch.Tensor:
    """sign(x) |x|^p: MIND's pow(., p) (its eq. 9) kept monotone for the negative inner
    products a dot product can take; the printed formula for positive x and for p = 1."""
    return torch.sign(x) * x.abs().pow(p)


def label_aware_attention(interests: torch.Tensor, label: torch.Tensor, power: float,
                          active: torch.Tensor | None = None) -> torch.Tensor:
    """MIND's label-aware attention (Li et al., CIKM 2019, eq. 9), the training vector of
    MIND and of the paper's SINE-label: v = sum_k softmax_k(pow(v_k . e_label, p)) v_k.

    `interests` [B, K, D], `label` [B, D] (the target item's embedding), `active` [B, K]
    (MIND's dynamic interest number; all by default); p = inf is hard attention (argmax).
    """
    scores = (interests @ label.unsqueeze(-1)).squeeze(-1)  # [B, K]
    if active is None:
        active = torch.ones_like(scores, dtype=torch.bool)
    if math.isinf(power):
        best = scores.masked_fill(~active, -math.inf).argmax(-1)
        attention = nn.functional.one_hot(best, interests.shape[1]).to(interests.dtype)
    else:
        attention = torch.softmax(signed_power(scores, power).masked_fill(~active, -math.inf), dim=-1)
    return (attention.unsqueeze(1) @ interests).squeeze(1)


def best_interest_scores(interests: torch.Tensor, table: torch.Tensor,
                         active: torch.Tensor | None = None) -> torch.Tensor:
    """max_k <v_k, e_i> over the (active) interests for every item, [B, M + 1]: the ranking
    whose top-N is the K*N per-interest candidates merged by score (MIND, SINE-label).
    One [B, M + 1] product at a time, so memory stays that of one list."""
    best = None
    for k in range(interests.shape[1]):
        scores = interests[:, k] @ table.T
        if active is not None:
            scores = scores.masked_fill(~active[:, k : k + 1], -math.inf)
        best = scores if best is None else torch.maximum(best, scores)
    assert best is not None
    return best


class SequenceEncoder(nn.Module):
    """Base class: the item table and the scoring every model shares."""

    def __init__(self, num_items: int, dim: int, tied: bool = True):
        super().__init__()
        self.num_items = num_items
        self.dim = dim
        # H (paper section 3.2): row 0 is padding and stays zero.
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=0)
        # untied: a separate output table scores items (the input table only embeds clicks)
        self.output_embedding = None if tied else nn.Embedding(num_items + 1, dim, padding_idx=0)

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError

    def training_vector(self, out: EncoderOutput, targets: torch.Tensor) -> torch.Tensor:
        """The user vector the likelihood scores during training ([B, D]); a model whose
        training vector depends on the label (MIND's label-aware attention, SINE-label)
        overrides it."""
        return out.user_vector

    def score_items(self, out: EncoderOutput) -> torch.Tensor:
        """Scores over all item indices, padding column included ([B, M + 1]), as the model
        ranks at inference; a model served by several vectors (MIND, SINE-label) overrides it."""
        return out.user_vector @ self.item_table().T

    def regularization(self) -> torch.Tensor:
        """A model's extra loss term (already weighted); zero unless a model adds one."""
        return self.item_embedding.weight.new_zeros(())

    def item_table(self) -> torch.Tensor:
        """The table user vectors are scored against, padding row included: ``[M + 1, D]``."""
        table = self.output_embedding if self.output_embedding is not None else self.item_embedding
        return table.weight

    def item_vectors(self) -> torch.Tensor:
        """Item table without the padding row: ``[M, D]``, row i is item index i + 1."""
        return self.item_table()[1:]
