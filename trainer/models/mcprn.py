"""MCPRN: Mixture-Channel Purpose Routing Networks (Wang et al., IJCAI 2019).

A multi-embedding baseline of the paper's Table 1: K channels, one per latent purpose;
a purpose router sends each click (softly) to the channels, and a purpose-specific
recurrent unit (PSRU) per channel models the transitions among that purpose's clicks
only. Notation: B batch, S sequence length, D embedding size, K channels, x_t the
embedding of click t, h^k_t channel k's state after click t.

* **Purpose router (section 3.2).** w_{t,k} = exp(x_t^T c_k / tau) / sum_j exp(x_t^T c_j / tau):
  a softmax with temperature tau over the K purpose embeddings c_k (learned); a small
  tau approaches a hard (one-hot) routing while staying differentiable. Default
  tau = 0.1 (``purpose_tau``; our choice).
* **PSRU (section 3.3, Figure 2b).** A GRU per channel (its own weights) with a
  concentration gate driven by the purpose weight:
  r_t = sigma(W_r x_t + U_r h_{t-1} + b_r),  z_t = sigma(W_z x_t + U_z h_{t-1} + b_z),
  h~_t = tanh(W_h x_t + U_h (r_t * h_{t-1}) + b_h),
  h_t = (1 - w_{t,k} z_t) * h_{t-1} + w_{t,k} z_t * h~_t.
  The last line is the gated GRU update h'_t = (1 - z_t) h_{t-1} + z_t h~_t passed through
  the concentration gate h_t = w_{t,k} h'_t + (1 - w_{t,k}) h_{t-1} (the two are equal):
  a click with purpose weight ~0 leaves the channel as it was, so unrelated clicks create
  no false transitions. h^k_0 = 0, and padding (left, item 0) has weight 0 in every
  channel, so it changes nothing.
* **Mixture (section 3.4).** The session's representation mixes the channels' final
  states by the purpose weights of the last click, o = sum_k w_{n,k} h^k_n, and an
  item's score is o^T e_i, normalised by a softmax over the catalog (the harness's
  likelihood, eq. 9 of the SINE paper, the same for every model here). This is our
  reading of the paper's mixture; its full text was not at hand to check the exact
  weights, so they are named here to be checked.
* **Exportable recurrence.** The recurrence always runs over n steps: shorter inputs are
  left-padded to n inside the model (padding changes no state, see above), so the loop
  is static and exports to ONNX with a dynamic sequence axis.

What the per-interest outputs mean for MCPRN (sine.bundle.INTEREST_OUTPUTS):
``interest_vectors`` the channels' final states h^k_n; ``interest_weights`` the last
click's purpose weights w_{n,k} (the mixture weights of o); ``concept_ids`` the channel
index k, a purpose shared by all users (channel k of two users is the same purpose
embedding c_k, though not a concept pool of item prototypes as in SINE);
``intention_assignment`` the router's w_{t,k} per click (0 at padding). ``user_vector``
is o, the paper's own inference, so "aggregate" retrieval stays this model's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.models.base import EncoderOutput, SequenceEncoder, padding_mask


@dataclass
class MCPRNConfig:
    num_items: int  # M
    dim: int = 128  # D, also the PSRU state size (states are scored against items)
    max_len: int = 20  # n
    interests: int = 4  # K channels
    purpose_tau: float = 0.1  # tau of the purpose router
    dropout: float = 0.0
    tied: bool = True


class MCPRN(SequenceEncoder):
    def __init__(self, config: MCPRNConfig):
        super().__init__(config.num_items, config.dim, config.tied)
        if config.interests < 1 or config.purpose_tau <= 0:
            raise ValueError("MCPRN needs at least one channel and a positive purpose temperature")
        self.config = config
        D, K = config.dim, config.interests
        self.dropout = nn.Dropout(config.dropout)
        self.purposes = nn.Parameter(torch.empty(K, D))  # c_k
        # per channel: [W_r | W_z | W_h] (input) and [U_r | U_z] , U_h (state), biases
        self.w_input = nn.Parameter(torch.empty(K, D, 3 * D))
        self.u_gates = nn.Parameter(torch.empty(K, D, 2 * D))
        self.u_candidate = nn.Parameter(torch.empty(K, D, D))
        self.bias = nn.Parameter(torch.zeros(K, 3 * D))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        if self.output_embedding is not None:
            nn.init.normal_(self.output_embedding.weight, std=0.02)
            with torch.no_grad():
                self.output_embedding.weight[0].zero_()
        bound = 1.0 / self.config.dim ** 0.5  # torch.nn.GRU's initialisation
        for weight in (self.w_input, self.u_gates, self.u_candidate):
            nn.init.uniform_(weight, -bound, bound)
        nn.init.normal_(self.purposes, std=1.0 / self.config.dim ** 0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        cfg = self.config
        B, S = clicks.shape
        D, K, n = cfg.dim, cfg.interests, cfg.max_len
        # left-pad to n steps (no-op at full width): a static loop (see the docstring)
        padded = torch.cat([clicks.new_zeros(B, n - S), clicks], dim=1)
        X = self.item_embedding(padded)  # [B, n, D]
        if self.training and cfg.dropout > 0:
            X = self.dropout(X)
        # purpose router: w_{t,k} = softmax_k(x_t^T c_k / tau), 0 at padding
        w = torch.softmax(X @ self.purposes.T / cfg.purpose_tau, dim=-1)
        w = w * padding_mask(padded).unsqueeze(-1)  # [B, n, K]
        # input terms of every step and channel in one product: [B, n, K, 3D]
        w_input = self.w_input.permute(1, 0, 2).reshape(D, K * 3 * D)
        inputs = (X.reshape(B * n, D) @ w_input).view(B, n, K, 3 * D) + self.bias
        # one step's slices by unbind: its backward stacks the gradients once (slicing in the
        # loop would allocate a full-size gradient per step); channels first for torch.bmm
        steps = [step.transpose(0, 1) for step in inputs.unbind(1)]  # n x [K, B, 3D]
        step_weights = w.permute(2, 0, 1).unsqueeze(-1).unbind(2)  # n x [K, B, 1]
        h = X.new_zeros(K, B, D)
        for t in range(n):  # PSRU, channels side by side
            x_r, x_z, x_h = steps[t].split(D, dim=-1)  # [K, B, D] each
            h_r, h_z = torch.bmm(h, self.u_gates).split(D, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            candidate = torch.tanh(x_h + torch.bmm(r * h, self.u_candidate))
            gate = step_weights[t] * z  # concentration gate: w_{t,k} z_t
            h = h + gate * (candidate - h)  # = (1 - gate) h + gate h~
        h = h.transpose(0, 1)  # [B, K, D]
        last = w[:, -1]  # [B, K], the last click's purpose weights
        user_vector = (last.unsqueeze(1) @ h).squeeze(1)  # o = sum_k w_{n,k} h^k_n
        return EncoderOutput(user_vector, {
            "interest_vectors": h,
            "interest_weights": last,
            "concepts": torch.arange(K, device=clicks.device).expand(B, K),
            "intention_assignment": w[:, n - S:],
        })
