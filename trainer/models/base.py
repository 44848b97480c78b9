"""Plumbing every sequence encoder shares: the item table, padding masks, positions.

An encoder maps left-padded item indices ``[batch, seq]`` (int64, 0 = padding, most
recent click in the last column) to a user vector ``[batch, D]``; an item's score is
the inner product of the user vector with its row of the item table ``H``, which is
also the input embedding (tied, as in SASRec and in the paper's eq. (9)).
"""

from __future__ import annotations

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

    def regularization(self) -> torch.Tensor:
        """A model's extra loss term (already weighted); zero unless a model adds one."""
        return self.item_embedding.weight.new_zeros(())

    def training_vector(self, out: EncoderOutput, targets: torch.Tensor) -> torch.Tensor:
        """The vector the training loss scores the catalog with (the user vector, unless a
        model's training differs from its inference, as SINE-label's does)."""
        return out.user_vector

    def score_items(self, clicks: torch.Tensor) -> torch.Tensor:
        """Scores over all item indices (padding column included) for evaluation."""
        return self(clicks).user_vector @ self.item_table().T

    def item_table(self) -> torch.Tensor:
        """The table user vectors are scored against, padding row included: ``[M + 1, D]``."""
        table = self.output_embedding if self.output_embedding is not None else self.item_embedding
        return table.weight

    def item_vectors(self) -> torch.Tensor:
        """Item table without the padding row: ``[M, D]``, row i is item index i + 1."""
        return self.item_table()[1:]
