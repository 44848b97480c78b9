"""MIND: Multi-Interest Network with Dynamic Routing (Li et al., CIKM 2019).

A multi-embedding baseline of the paper's Table 1: K interest vectors per user from
behaviour-to-interest (B2I) dynamic routing, trained with label-aware attention and
served as K vectors whose K*N candidates are merged by score. Section numbers and
equations are those of the MIND paper (arXiv 1904.08030). Notation: B batch, S sequence
length, D embedding size, K interest capsules, e_i the embedding of behaviour i.

* **Eq. (8), dynamic interest number** (optional, ``dynamic_interests``):
  K'_u = max(1, min(K, floor(log2 |I_u|))) capsules for a user with |I_u| clicks (the
  clicks the model sees: the last n). The other K - K'_u slots are empty: zero vector,
  zero weight, no routing mass, never scored.
* **Algorithm 1, B2I dynamic routing** with one bilinear map S shared by all pairs:
  b_ij ~ N(0, sigma^2) (line 2), then r times (lines 3-8):
  w_ij = softmax_j(b_ij) (eq. 3: over the interest capsules, for each behaviour i),
  z_j = sum_i w_ij S e_i (eq. 4), u_j = squash(z_j) = |z_j|^2 / (1 + |z_j|^2) z_j / |z_j|
  (eq. 5), b_ij <- b_ij + u_j^T S e_i (eq. 6). Padded positions are no behaviours: they
  get no routing weight.
* **Random initial logits (line 2).** With S shared, equal initial logits would give K
  equal capsules, so the paper draws them at random. Training draws them afresh each
  forward pass (sigma = 1); evaluation and the exported encoder use one fixed draw kept
  with the weights (the buffer ``routing_init``, one row per recency position, so a
  click's logits do not depend on how much padding precedes it). Serving is therefore
  deterministic, which the ONNX parity check and a cache need.
* **H-layers (section 4.3, Figure 2).** "the interest capsules ... are transformed via
  several ReLU layers": v_j = W_2 ReLU(W_1 u_j) with a hidden width of 4D. We have no
  user-profile features to concatenate. The last layer is linear (no ReLU), so interest
  vectors can point anywhere an item embedding does. No biases: with them the layers
  start as a constant (the small squashed capsules barely move it) and the model settled
  on that constant, a popularity vector (synthetic log of tests/conftest.py, 10 epochs,
  D = 32: test HR@20 0.10 with biases, 0.61 without, 0.58 without any H-layer).
  Bias-free, v_j scales with u_j, and an empty capsule (u_j = 0) gives v_j = 0.
* **Eq. (9), label-aware attention (training only).**
  v_u = V_u softmax(pow(V_u^T e_target, p)). `pow` is applied sign-preserving,
  sign(x)|x|^p: the same as the printed formula for positive scores and odd p, and still
  monotone for the negative scores an inner product can take (an even power would give
  the interest pointing *away* from the label the most weight). p = inf is the hard
  argmax the paper discusses as its limit. Default p = 2 (our choice; the paper studies
  p rather than fixing one value). The likelihood of eq. (10) is the harness's softmax
  over the catalog (full or sampled), the same for every model here.
* **Serving (section 4.5).** "user's multiple interest vectors ... each retrieves top-N
  items, ... K*N candidates" ranked by inner product: an item's score is
  max_k <v_k, e_i> (`score_items`; the harness ranks with it, which is exactly the top-N
  of the merged K*N candidate lists by score).

What the per-interest outputs mean for MIND (sine.bundle.INTEREST_OUTPUTS):
``interest_vectors`` the v_j above; ``interest_weights`` each capsule's length |u_j|
(a capsule's length is its "existence probability" in capsule networks, Sabour et al.
2017) normalised to sum 1 over the active capsules: MIND defines no weight at serving
time, this is the closest label-free quantity it computes; ``concept_ids`` the slot
index j (MIND has no concept pool: capsules are per user, slot j of two users are
unrelated); ``intention_assignment`` the routing coefficients w_ij of the last
iteration, the weights that built the returned capsules.

``user_vector`` (the "aggregate" retrieval) is sum_j weight_j v_j. It is not MIND's
inference (label-aware attention needs the label); the bundle says so and makes
"interests" with the merge by score its default (trainer/export.py, `SERVED_BY_INTERESTS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trainer.models.base import (
    EncoderOutput,
    SequenceEncoder,
    best_interest_scores,
    label_aware_attention,
    padding_mask,
    recency_positions,
)

ROUTING_SIGMA = 1.0
"""Standard deviation of Algorithm 1's initial routing logits (the paper gives none)."""
SQUASH_EPS = 1e-12


@dataclass
class MINDConfig:
    num_items: int  # M
    dim: int = 128  # D
    max_len: int = 20  # n
    interests: int = 4  # K
    routing_iterations: int = 3  # r of Algorithm 1
    dynamic_interests: bool = False  # eq. (8): K'_u capsules for short histories
    attention_power: float = 2.0  # p of eq. (9); math.inf: hard attention
    dropout: float = 0.0
    tied: bool = True


def squash(z: torch.Tensor) -> torch.Tensor:
    """Eq. (5): |z|^2 / (1 + |z|^2) * z / |z|, written as z |z| / (1 + |z|^2) (0 at z = 0)."""
    squared = z.pow(2).sum(-1, keepdim=True)
    return z * torch.sqrt(squared + SQUASH_EPS) / (1.0 + squared)


def active_capsules(clicks: torch.Tensor, interests: int, dynamic: bool) -> torch.Tensor:
    """[B, K] bool: eq. (8)'s K'_u = max(1, min(K, floor(log2 |I_u|))) first slots, or all."""
    B = clicks.shape[0]
    slots = torch.arange(interests, device=clicks.device).expand(B, interests)
    if not dynamic:
        return slots >= 0
    count = padding_mask(clicks).sum(1, keepdim=True).clamp(min=1).float()
    k_user = torch.floor(torch.log2(count)).clamp(min=1, max=interests)
    return slots < k_user


class MIND(SequenceEncoder):
    def __init__(self, config: MINDConfig):
        super().__init__(config.num_items, config.dim, config.tied)
        if config.interests < 1 or config.routing_iterations < 1:
            raise ValueError("MIND needs at least one interest and one routing iteration")
        if not config.attention_power >= 0:
            raise ValueError("the attention power p must be >= 0")
        self.config = config
        D, K = config.dim, config.interests
        self.dropout = nn.Dropout(config.dropout)
        self.bilinear = nn.Linear(D, D, bias=False)  # S, shared by every behaviour/interest pair
        self.hidden = nn.Linear(D, 4 * D, bias=False)  # H-layers (no biases: module docstring)
        self.out = nn.Linear(4 * D, D, bias=False)
        self.register_buffer("routing_init", torch.randn(config.max_len, K) * ROUTING_SIGMA)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        # S keeps the scale of e_i (std 1/sqrt(D)): squash maps |z| to |z|^2 / (1 + |z|^2), so
        # capsules built from S e_i much smaller than e_i would start near 0, with vanishing
        # gradients and K near-identical interests (measured: no better than popularity)
        nn.init.normal_(self.bilinear.weight, std=self.config.dim ** -0.5)
        if self.output_embedding is not None:
            nn.init.normal_(self.output_embedding.weight, std=0.02)
            with torch.no_grad():
                self.output_embedding.weight[0].zero_()
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        cfg = self.config
        B, S = clicks.shape
        K = cfg.interests
        real = padding_mask(clicks).unsqueeze(-1)  # [B, S, 1]
        active = active_capsules(clicks, K, cfg.dynamic_interests)  # [B, K]
        X = self.item_embedding(clicks)
        if self.training and cfg.dropout > 0:
            X = self.dropout(X)
        SX = self.bilinear(X)  # S e_i, [B, S, D]
        # Algorithm 1, line 2: initial logits (fresh in training, the fixed draw otherwise)
        if self.training:
            b = torch.randn(B, S, K, device=clicks.device, dtype=SX.dtype) * ROUTING_SIGMA
        else:
            b = self.routing_init[recency_positions(S, clicks.device)].expand(B, S, K)
        closed = ~active.unsqueeze(1)  # [B, 1, K] slots beyond K'_u
        for iteration in range(cfg.routing_iterations):
            # eq. (3) w_ij = softmax over the (active) capsules j; padding routes nothing
            w = torch.softmax(b.masked_fill(closed, -math.inf), dim=-1) * real  # [B, S, K]
            z = w.transpose(1, 2) @ SX  # eq. (4) z_j = sum_i w_ij S e_i, [B, K, D]
            u = squash(z)  # eq. (5)
            if iteration < cfg.routing_iterations - 1:
                b = b + SX @ u.transpose(1, 2)  # eq. (6) b_ij += u_j^T S e_i
        V = self.out(torch.relu(self.hidden(u))) * active.unsqueeze(-1)  # H-layers; empty slots 0
        squared = z.pow(2).sum(-1)
        length = squared / (1.0 + squared) * active  # [B, K], |u_j| = |squash(z_j)| (eq. 5)
        weights = length / length.sum(-1, keepdim=True)
        user_vector = (weights.unsqueeze(1) @ V).squeeze(1)
        slots = torch.arange(K, device=clicks.device).expand(B, K)
        return EncoderOutput(user_vector, {
            "interest_vectors": V,
            "interest_weights": weights,
            "concepts": slots,
            "intention_assignment": w,
            "active": active,
        })

    def training_vector(self, out: EncoderOutput, targets: torch.Tensor) -> torch.Tensor:
        """Eq. (9): v_u = V_u softmax(pow(V_u^T e_target, p)) over the active capsules."""
        return label_aware_attention(out.extras["interest_vectors"], self.item_table()[targets],
                                     self.config.attention_power, out.extras["active"])

    def score_items(self, out: EncoderOutput) -> torch.Tensor:
        """Section 4.5: max_k <v_k, e_i> over the active interests, [B, M + 1]."""
        return best_interest_scores(out.extras["interest_vectors"], self.item_table(), out.extras["active"])
