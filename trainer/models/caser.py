"""Caser (Tang & Wang, WSDM 2018): convolutions over the "image" of the last L clicks.

The last L clicks' embeddings form an L x D matrix E (eq. 1); horizontal filters slide
over it in time to catch union-level sequential patterns, vertical filters take
position-weighted sums of its rows (point-level patterns), and a fully connected layer
turns both into the user vector z. Notation: B batch, L window (= n, `max_len`), D
embedding size, n_h horizontal filters per height, n_v vertical filters.

* eq. (1)  E = [Q_{S_{t-L}}; ...; Q_{S_{t-1}}]                   L x D, oldest row first
* eq. (2)  c^k_i = phi_c(E_{i:i+h-1} (*) F^k)       horizontal filter F^k of h x D, for
           every height h in 1..L (n_h filters each), i = 1..L-h+1
* eq. (3)  o^k = max(c^k_1, ..., c^k_{L-h+1})                     max pooling over time
* eq. (4)  o = [o^1, ..., o^{n_h L}]
* eq. (5)  tilde{o}^k = sum_l tilde{F}^k_l E_l                    vertical filter, L x 1
* eq. (6)  tilde{o} = [tilde{o}^1, ..., tilde{o}^{n_v}]           n_v D values
* eq. (7)  z = phi_a(W [o; tilde{o}] + b)                         D
* eq. (8)  y = W' [z; P_u] + b'                                   scores of all items

phi_c and phi_a are ReLU and the convolutions carry biases, as in the authors' released
code and RecBole 1.2.1's Caser. n_h = 16 and n_v = 4 are the authors' defaults (RecBole's
n_h is 8), dropout 0.4 on [o; tilde{o}] is RecBole's (the authors' 0.5), L = n (the
harness's `max_len`, 20), and W' is tied to the input item table (`tied_embeddings`;
False gives the paper's separate output table).

Deviations, and why:

* **No user embedding P_u (eq. 8).** Caser concatenates a learned per-user vector P_u
  to z. A matching service encodes any click sequence, including those of users it has
  never trained on (new users, anonymous sessions, users after the model was trained),
  for whom no P_u exists; so the user vector is z alone and eq. (8) becomes y = W' z.
  The per-item bias b' is dropped too: retrieval is by inner product (a flat or ANN
  index over the item table), which has no per-item term.
* **Loss.** The paper trains with binary cross-entropy on T next items and sampled
  negatives; here, as for every model of the harness (and RecBole's CE setting), the
  softmax over the whole catalog on the next click.
* **Short sequences.** Windows with fewer than L clicks are left-padded with item 0,
  whose embedding is the zero vector, as the authors' code pads. The model pads its
  input to L itself, so a sequence passed unpadded (the service may, and the ONNX input
  has a dynamic sequence axis of 1..n) gives the same vector as the same sequence padded
  to n: the window is always the L most recent positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.base import EncoderOutput, SequenceEncoder


@dataclass
class CaserConfig:
    num_items: int
    dim: int = 64
    max_len: int = 20
    horizontal: int = 16
    vertical: int = 4
    dropout: float = 0.4
    tied: bool = True


class Caser(SequenceEncoder):
    def __init__(self, config: CaserConfig):
        super().__init__(config.num_items, config.dim, tied=config.tied)
        self.config = config
        L, D = config.max_len, config.dim
        # eq. (2): n_h filters of height h x D for every h in 1..L. A filter spans all D
        # columns, so it is a 1-d convolution over time with the D columns as channels
        # (the same function as a 2-d h x D filter, about 2x faster on CPU).
        self.horizontal = nn.ModuleList(
            nn.Conv1d(D, config.horizontal, h) for h in range(1, L + 1)
        )
        # eq. (5): n_v filters of L x 1, the same weights for each of the D columns
        self.vertical = nn.Linear(L, config.vertical)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.horizontal * L + config.vertical * D, D)  # W, b of eq. (7)
        self._init()

    def _init(self) -> None:
        """RecBole's: N(0, 1/D) embeddings, Xavier-normal fully connected weights."""
        for table in filter(None, (self.item_embedding, self.output_embedding)):
            nn.init.normal_(table.weight, std=1.0 / self.config.dim)
            with torch.no_grad():
                table.weight[0].zero_()
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)  # (convolutions: PyTorch's default, as RecBole leaves them)

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        L = self.config.max_len
        # the window of the L most recent positions, zero (padding) rows first
        clicks = F.pad(clicks, (L - clicks.shape[1], 0))
        E = self.item_embedding(clicks)  # eq. (1): [B, L, D]
        columns = E.transpose(1, 2)  # [B, D, L]
        o = torch.cat(
            [F.relu(conv(columns)).amax(dim=2) for conv in self.horizontal], dim=1
        )  # eqs. (2)-(4): [B, n_h L]
        o_tilde = self.vertical(columns).transpose(1, 2).flatten(1)  # eqs. (5)-(6): [B, n_v D]
        z = F.relu(self.fc(self.dropout(torch.cat([o, o_tilde], dim=1))))  # eq. (7)
        return EncoderOutput(z)  # eq. (8) without P_u: y = W' z
