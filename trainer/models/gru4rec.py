"""GRU4Rec (Hidasi et al., ICLR 2016): a recurrent network over the click sequence.

The user vector is a dense projection of the last GRU hidden state; items are scored by
inner product with the item table, as for every model of the harness. Notation: B batch,
S sequence length (<= n), D embedding size, H hidden size.

The GRU is the paper's section 3 (eqs. 1-4), transcribed as printed (no biases):

* eq. (1)  h_t = (1 - z_t) h_{t-1} + z_t hat{h}_t
* eq. (2)  z_t = sigma(W_z x_t + U_z h_{t-1})                   update gate
* eq. (3)  hat{h}_t = tanh(W x_t + U (r_t * h_{t-1}))           candidate
* eq. (4)  r_t = sigma(W_r x_t + U_r h_{t-1})                   reset gate

Note eq. (3) applies the reset gate *before* U, as Cho et al. (2014) do; torch.nn.GRU
(and so RecBole) applies it after (r_t * (U h_{t-1})), a different function. We keep the
paper's.

Configured like RecBole 1.2.1's GRU4Rec, which the paper's comparison and ours follow:
item embedding (the paper's optional embedding layer), dropout on it (default 0.3),
`gru_layers` stacked GRU layers (default 1) of hidden size `gru_hidden` (default 128),
then a dense layer from H to D (RecBole's `dense`) giving the user vector.

Deviations, and why:

* **Loss.** The paper trains with session-parallel mini-batches and a ranking loss
  (TOP1 / BPR) over in-batch negatives; here, as for every model of the harness (and
  RecBole's CE setting), the softmax over the whole catalog on the last click's target
  of each training window.
* **Padding.** Inputs are left-padded with item 0. The hidden state stays h_0 = 0 over
  padding (a padded step keeps h_{t-1}), so padding never changes the user vector: the
  same clicks padded to n or passed unpadded (as the service may) give the same vector.
* **Export.** The recurrence is a Python loop over positions; the ONNX graph unrolls it.
  Outside training the input is first left-padded to n, so the unrolled graph has a
  static length while the exported input keeps a dynamic sequence axis of 1..n (by the
  padding rule above, this changes no output).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.base import EncoderOutput, SequenceEncoder, padding_mask


@dataclass
class GRU4RecConfig:
    num_items: int
    dim: int = 64
    max_len: int = 20
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.3


class PaperGRU(nn.Module):
    """One GRU layer, eqs. (1)-(4) as printed (reset gate inside U, no biases)."""

    def __init__(self, input_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.input_gates = nn.Linear(input_dim, 3 * hidden, bias=False)  # [W_z; W_r; W]
        self.hidden_gates = nn.Linear(hidden, 2 * hidden, bias=False)  # [U_z; U_r]
        self.candidate = nn.Linear(hidden, hidden, bias=False)  # U of eq. (3)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x [B, S, in], real [B, S] -> hidden states [B, S, H] (h_0 = 0, kept over padding)."""
        B, S, _ = x.shape
        projected = self.input_gates(x)  # W_z x_t, W_r x_t, W x_t for every t at once
        h = x.new_zeros(B, self.hidden)
        states = []
        for t in range(S):
            wz, wr, wx = projected[:, t].chunk(3, dim=-1)
            uz, ur = self.hidden_gates(h).chunk(2, dim=-1)
            z = torch.sigmoid(wz + uz)  # eq. (2)
            r = torch.sigmoid(wr + ur)  # eq. (4)
            candidate = torch.tanh(wx + self.candidate(r * h))  # eq. (3)
            updated = (1 - z) * h + z * candidate  # eq. (1)
            h = torch.where(real[:, t : t + 1], updated, h)  # padding keeps h
            states.append(h)
        return torch.stack(states, dim=1)


class GRU4Rec(SequenceEncoder):
    def __init__(self, config: GRU4RecConfig):
        super().__init__(config.num_items, config.dim)
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.grus = nn.ModuleList(
            PaperGRU(config.dim if i == 0 else config.hidden, config.hidden)
            for i in range(config.layers)
        )
        self.dense = nn.Linear(config.hidden, config.dim)
        self._init()

    def _init(self) -> None:
        """RecBole's: Xavier-normal embeddings, Xavier-uniform GRU matrices."""
        nn.init.xavier_normal_(self.item_embedding.weight)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        for gru in self.grus:
            for linear in (gru.input_gates, gru.hidden_gates, gru.candidate):
                nn.init.xavier_uniform_(linear.weight)

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        if not self.training:  # a static length for the unrolled ONNX graph (see module doc)
            clicks = F.pad(clicks, (self.config.max_len - clicks.shape[1], 0))
        real = padding_mask(clicks)
        x = self.dropout(self.item_embedding(clicks))
        for gru in self.grus:
            x = gru(x, real)
        # the most recent click is the last column (left padding)
        return EncoderOutput(self.dense(x[:, -1]))
