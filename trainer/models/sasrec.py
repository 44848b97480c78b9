"""SASRec (Kang & McAuley, ICDM 2018): the paper's strongest single-vector competitor.

A stack of causal self-attention blocks over the click sequence; the user vector is the
output at the most recent click. Configured like RecBole's SASRec so the comparison is
fair: post-LayerNorm blocks, GELU feed-forward, dropout on embeddings, attention and
block outputs, learned positional embeddings, N(0, 0.02) initialisation. Positions are
counted back from the most recent click (see `recency_positions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.base import EncoderOutput, SequenceEncoder, padding_mask, recency_positions

LAYER_NORM_EPS = 1e-12


@dataclass
class SASRecConfig:
    num_items: int
    dim: int = 128
    max_len: int = 20
    layers: int = 2
    heads: int = 2
    inner_dim: int = 256
    dropout: float = 0.5
    attention_dropout: float = 0.5


class SelfAttentionBlock(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        if config.dim % config.heads:
            raise ValueError(f"dim ({config.dim}) must be divisible by heads ({config.heads})")
        self.heads = config.heads
        self.attention_dropout = config.attention_dropout
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.ln_attention = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.ffn_in = nn.Linear(config.dim, config.inner_dim)
        self.ffn_out = nn.Linear(config.inner_dim, config.dim)
        self.ln_ffn = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attention_dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(B, S, D)
        x = self.ln_attention(x + self.dropout(self.out(attended)))
        return self.ln_ffn(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class SASRec(SequenceEncoder):
    def __init__(self, config: SASRecConfig):
        super().__init__(config.num_items, config.dim)
        self.config = config
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        self.ln_embedding = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(config) for _ in range(config.layers))
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        S = clicks.shape[1]
        real = padding_mask(clicks)  # [B, S]
        positions = self.position_embedding(recency_positions(S, clicks.device))
        x = self.dropout(self.ln_embedding(self.item_embedding(clicks) + positions))
        # causal: a query attends to earlier real clicks, and to itself so that padded
        # queries (whose outputs are never used) still have one key and no NaN
        causal = torch.ones(S, S, dtype=torch.bool, device=clicks.device).tril()
        allowed = causal & (real.unsqueeze(1) | torch.eye(S, dtype=torch.bool, device=clicks.device))
        allowed = allowed.unsqueeze(1)  # [B, 1, S, S]
        for block in self.blocks:
            x = block(x, allowed)
        return EncoderOutput(x[:, -1])
