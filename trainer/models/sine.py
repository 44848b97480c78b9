"""SINE: Sparse-Interest Network for sequential recommendation (Tan et al., WSDM 2021).

One class, read top to bottom like the paper's section 3. Each step names the equation
it implements, so ``grep "eq. (3)"`` finds it. Notation: B batch, S sequence length
(<= n), D embedding size, L prototypes (concept pool), K activated interests.

Choices where the paper is ambiguous or silent (also listed in docs/model.md):

* **Padding.** Inputs are left-padded with item 0. Every softmax over positions
  (eqs. 1, 4, 6) gives padded positions exactly zero weight, so padding never changes
  the output (the paper has no padding; RecBole's SINE attends to it).
* **Positions (eq. 4).** Learned positional embeddings indexed by recency (0 = most
  recent click), added to the item embeddings for the per-interest attention only; the
  interest embeddings of eq. (5) sum the plain item embeddings X_t.
* **W_{k|1}, W_{k|2} (eq. 4)** are separate for each of the K interest slots (K x D x D
  and K x D), as the superscript k reads. Slot k holds the k-th best-scoring prototype.
* **W3 in eqs. (3) and (6)** is one shared matrix, as the paper writes it (same symbol,
  same shape; RecBole makes the same choice).
* **"Cosine" (eq. 3).** The paper says eq. (3) compares LayerNorm'd vectors and
  calls that cosine similarity. A dot product of two LayerNorm outputs is D times a
  correlation (range +-D), which would make the softmax one-hot from the first step.
  We take the cosine literally: the LayerNorm outputs
  are L2-normalised before the dot product in eq. (3). A cosine caps the assignment
  logits at +-1, so `assignment_tau` (default 1.0: no temperature, as printed) divides
  them to let P(k|t) sharpen: with tau_3 = 1 and K = 4 no weight exceeds about 0.71.
* **Eq. (7)** prints an inner product C_apt^T phi^k / tau (`aggregation="dot"`); both
  sides are LayerNorm outputs, so that is about D times a correlation. The default,
  `aggregation="cosine"`, compares them by cosine, so that tau = 0.1 acts on a [-1, 1]
  scale. docs/model.md lists both with their measured effect.
* **Eq. (10).** C-bar is each prototype's mean over its D coordinates: M is the L x L
  covariance between prototypes with the D coordinates as samples (DeCov, ref. [5]).

The two ablations of the paper's section 4.5 (Table 6), both off by default:

* **SINE-label** (`label_aware`): "adopting label-aware attention in [24] (MIND) for
  training". The loss of eq. (9) scores the catalog with MIND's label-aware user vector
  v^u = sum_k softmax_k(pow(phi^k . H_target, p)) phi^k (MIND's label-aware attention
  layer, Li et al. CIKM 2019; p = `label_power`) instead of eqs. (7)-(8), which then take
  no part in training. At inference there is no label: "SINE-label first independently retrieves K*N candidate
  items based on K embedding vectors and then outputs the final top-N recommendation
  list by sorting K*N items" -- `score_items` scores an item by its best inner product
  over the K interests, whose top-N is exactly that merge (an item in the merged top-N
  is in the top-N of the interest that scores it best).
* **SINE-cate** (`category_pairs` > 0): "using the category attributes as prototypes".
  The paper says no more; we read it as: the concept pool C of eq. (2) has one row per
  category, row c the mean of the item embeddings H_i of the items labelled c. The
  pool is a fixed function of H (set by `set_categories`, stored as buffers): there is
  no free prototype parameter to learn, so the clustering of items into concepts is the
  categories' and never changes, while the rows move with H as the items do. The
  covariance regulariser of eqs. (10)-(11), which decorrelates *learned* prototypes, is
  off (applied to category means it would push the item embeddings apart instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.base import (
    EncoderOutput,
    SequenceEncoder,
    best_interest_scores,
    label_aware_attention,
    padding_mask,
    recency_positions,
)

LAYER_NORM_EPS = 1e-8
AGGREGATIONS = ("cosine", "dot")
"""Eq. (7)'s similarity between C_apt and phi^k: cosine (default) or the printed inner product."""


def attention_scores(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Self-attentive scores tanh(x W1) W2 (eqs. 1, 4, 6), up to a constant per column of W2.

    tanh(y) = 2 sigmoid(2y) - 1, so tanh(x W1) W2 = sigmoid(x 2W1) 2W2 - sum(W2). The
    constant -sum(W2) is the same for every position and cancels in the softmax over
    positions that always follows, so the scores are computed as sigmoid(x 2W1) 2W2:
    the same attention weights with two fewer passes over the widest activation, and
    PyTorch's CPU sigmoid kernel is several times faster than its tanh.
    """
    return torch.sigmoid(x @ (2.0 * w1)) @ (2.0 * w2)


@dataclass
class SINEConfig:
    num_items: int  # M
    dim: int = 128  # D
    max_len: int = 20  # n
    interests: int = 4  # K
    prototypes: int = 500  # L
    tau: float = 0.1  # temperature of eq. (7)
    aggregation: str = "cosine"  # eq. (7): cosine(C_apt, phi^k) / tau, or "dot" as printed
    assignment_tau: float = 1.0  # temperature of eq. (3)'s cosine (1.0: none)
    reg_weight: float = 0.5  # lambda of eq. (11)
    dropout: float = 0.0  # on item embeddings during training (not in the paper; off)
    tied: bool = True  # the input embedding table is H, the table of eq. (9)
    label_aware: bool = False  # SINE-label: MIND's label-aware attention in the loss
    label_power: int = 1  # p of MIND's pow(phi^k . H_target, p)
    category_pairs: int = 0  # SINE-cate: (item, category) pairs defining C; 0: learned C


class SINE(SequenceEncoder):
    def __init__(self, config: SINEConfig):
        super().__init__(config.num_items, config.dim, config.tied)
        if not 1 <= config.interests <= config.prototypes:
            raise ValueError(f"need 1 <= K ({config.interests}) <= L ({config.prototypes})")
        if config.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {config.aggregation!r}")
        if config.tau <= 0 or config.assignment_tau <= 0:
            raise ValueError("the temperatures tau and assignment_tau must be positive")
        if config.label_power < 0 or config.category_pairs < 0:
            raise ValueError("label_power and category_pairs must not be negative")
        self.config = config
        D, K, L = config.dim, config.interests, config.prototypes
        self.dropout = nn.Dropout(config.dropout)
        # eq. (1): self-attentive pooling of the sequence into a concept query z_u
        self.w1 = nn.Linear(D, D, bias=False)
        self.w2 = nn.Linear(D, 1, bias=False)
        # eq. (2): the concept pool C (L prototypes): learned, or SINE-cate's category means
        if config.category_pairs:
            self.prototypes = None
            P = config.category_pairs
            self.register_buffer("category_items", torch.zeros(P, dtype=torch.long))
            self.register_buffer("category_ids", torch.zeros(P, dtype=torch.long))
            self.register_buffer("category_sizes", torch.ones(L))
        else:
            self.prototypes = nn.Parameter(torch.empty(L, D))
        # eq. (3): intention assignment
        self.w3 = nn.Linear(D, D, bias=False)  # shared with eq. (6)
        self.ln1 = nn.LayerNorm(D, eps=LAYER_NORM_EPS)
        self.ln2 = nn.LayerNorm(D, eps=LAYER_NORM_EPS)
        # eq. (4): per-interest, position-aware attention
        self.position_embedding = nn.Embedding(config.max_len, D)
        # the K matrices W_{k|1} (each D x D) side by side: one product applies all
        self.wk1 = nn.Parameter(torch.empty(D, K * D))
        self.wk2 = nn.Parameter(torch.empty(K, D))
        # eq. (5)
        self.ln3 = nn.LayerNorm(D, eps=LAYER_NORM_EPS)
        # eq. (6): next-intention prediction
        self.w4 = nn.Linear(D, 1, bias=False)
        self.ln4 = nn.LayerNorm(D, eps=LAYER_NORM_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 0.02
        if self.output_embedding is not None:
            nn.init.normal_(self.output_embedding.weight, std=std)
            with torch.no_grad():
                self.output_embedding.weight[0].zero_()
        for weight in (
            self.item_embedding.weight,
            self.position_embedding.weight,
            self.w1.weight,
            self.w2.weight,
            self.w3.weight,
            self.w4.weight,
            self.wk1,
            self.wk2,
        ):
            nn.init.normal_(weight, std=std)
        if self.prototypes is not None:
            nn.init.normal_(self.prototypes, std=1.0 / math.sqrt(self.config.dim))
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def set_categories(self, items: torch.Tensor, categories: torch.Tensor) -> None:
        """SINE-cate: item index `items[j]` carries category `categories[j]` (0..L-1).

        Every category must have an item (an empty one would have no prototype).
        """
        L, P = self.config.prototypes, self.config.category_pairs
        if not P or len(items) != P or len(categories) != P:
            raise ValueError(f"expected {P} (item, category) pairs, got {len(items)}")
        sizes = torch.bincount(categories, minlength=L).to(self.category_sizes)
        if len(sizes) != L or bool((sizes == 0).any()):
            raise ValueError(f"every one of the {L} categories needs at least one item")
        with torch.no_grad():
            self.category_items.copy_(items)
            self.category_ids.copy_(categories)
            self.category_sizes.copy_(sizes)

    def concept_pool(self) -> torch.Tensor:
        """C of eq. (2), [L, D]: the learned prototypes, or (SINE-cate) each category's mean
        item embedding, sum over its items of H_i divided by their number."""
        if self.prototypes is not None:
            return self.prototypes
        H = self.item_embedding.weight
        sums = H.new_zeros(self.config.prototypes, H.shape[1]).index_add(
            0, self.category_ids, H[self.category_items])
        return sums / self.category_sizes.unsqueeze(-1)

    def training_vector(self, out: EncoderOutput, targets: torch.Tensor) -> torch.Tensor:
        """The vector the loss scores the catalog with: v^u of eq. (8), or (SINE-label)
        MIND's label-aware attention sum_k softmax_k(pow(phi^k . H_target, p)) phi^k."""
        if not self.config.label_aware:
            return out.user_vector
        return label_aware_attention(out.extras["interest_vectors"], self.item_table()[targets],
                                     self.config.label_power)

    def score_items(self, out: EncoderOutput) -> torch.Tensor:
        """Scores over all item indices; SINE-label: an item's best inner product over the
        K interests, so that the top-N is the K*N per-interest candidates merged by score."""
        if not self.config.label_aware:
            return super().score_items(out)
        return best_interest_scores(out.extras["interest_vectors"], self.item_table())

    def forward(self, clicks: torch.Tensor) -> EncoderOutput:
        cfg = self.config
        B, S = clicks.shape
        D, K = cfg.dim, cfg.interests
        padded = ~padding_mask(clicks).unsqueeze(-1)  # [B, S, 1]
        X = self.item_embedding(clicks)  # [B, S, D]
        if self.training and cfg.dropout > 0:
            X = self.dropout(X)
        # eq. (1) concept activation, step 1: a = softmax(tanh(X W1) W2), z_u = a^T X
        a = attention_scores(X, self.w1.weight.T, self.w2.weight.T)  # [B, S, 1]
        a = torch.softmax(a.masked_fill(padded, -math.inf), dim=1)
        z = (a.transpose(1, 2) @ X).squeeze(1)  # [B, D]

        # eq. (2) s^u = <C, z_u>; idx = rank(s^u, K); C^u = C(idx,:) * sigmoid(s^u(idx))
        C = self.concept_pool()  # [L, D]
        s = z @ C.T  # [B, L]
        top_scores, idx = torch.topk(s, K, dim=1)  # [B, K], K distinct indices
        Cu = C[idx] * torch.sigmoid(top_scores).unsqueeze(-1)  # [B, K, D]

        # eq. (3) intention assignment P_{k|t} = softmax_k(cos(LN_1(X_t W3), LN_2(C^u_k)) / tau_3)
        items_side = F.normalize(self.ln1(self.w3(X)), dim=-1)  # [B, S, D]
        concept_side = F.normalize(self.ln2(Cu), dim=-1)  # [B, K, D]
        assignment = items_side @ concept_side.transpose(1, 2) / cfg.assignment_tau  # [B, S, K]
        P_kt = torch.softmax(assignment, dim=-1)

        # eq. (4) attention weighting P_{t|k} = a^k_t, a^k = softmax(tanh(X W_{k|1}) W_{k|2}),
        # positional embeddings added to X; all K slots at once (see attention_scores)
        Xp = X + self.position_embedding(recency_positions(S, clicks.device))
        hidden = torch.sigmoid(Xp @ (2.0 * self.wk1)).view(B, S, K, D)
        scores_tk = (hidden * (2.0 * self.wk2)).sum(-1)  # [B, S, K]
        P_tk = torch.softmax(scores_tk.masked_fill(padded, -math.inf), dim=1)  # [B, S, K]

        # eq. (5) phi^k = LayerNorm_3(sum_t P_{k|t} P_{t|k} X_t)
        weights = P_kt * P_tk  # [B, S, K]; zero at padding through P_tk
        interests = self.ln3(weights.transpose(1, 2) @ X)  # [B, K, D]

        # eq. (6) intention sequence X^ = P^u C^u; C_apt = LN_4(softmax(tanh(X^ W3) W4)^T X^)
        X_hat = P_kt @ Cu  # [B, S, D]
        b = attention_scores(X_hat, self.w3.weight.T, self.w4.weight.T)  # [B, S, 1]
        b = torch.softmax(b.masked_fill(padded, -math.inf), dim=1)
        C_apt = self.ln4((b.transpose(1, 2) @ X_hat).squeeze(1))  # [B, D]

        # eq. (7) e_k = softmax_k(sim(C_apt, phi^k) / tau), sim = cosine or C_apt^T phi^k
        if cfg.aggregation == "cosine":
            similarity = F.normalize(interests, dim=-1) @ F.normalize(C_apt, dim=-1).unsqueeze(-1)
        else:
            similarity = interests @ C_apt.unsqueeze(-1)  # [B, K, 1]
        e = torch.softmax(similarity.squeeze(-1) / cfg.tau, dim=-1)  # [B, K]

        # eq. (8) v^u = sum_k e_k phi^k
        user_vector = (e.unsqueeze(1) @ interests).squeeze(1)  # [B, D]
        return EncoderOutput(
            user_vector,
            {
                "interest_vectors": interests,
                "interest_weights": e,
                "concepts": idx,
                "concept_attention": a.squeeze(-1),
                "intention_assignment": P_kt,
                "position_attention": P_tk.transpose(1, 2),
            },
        )

    def covariance_loss(self) -> torch.Tensor:
        """eq. (10): L_c = 1/2 (||M||_F^2 - ||diag(M)||_F^2), M = (C - C_bar)(C - C_bar)^T / D."""
        # Computed without forming the L x L matrix M: ||A A^T||_F = ||A^T A||_F, so
        # ||M||_F^2 = ||A^T A||_F^2 / D^2 with A = C - C_bar (a D x D product, L/D times
        # cheaper), and diag(M)_i = ||A_i||^2 / D.
        D = self.config.dim
        C = self.concept_pool()
        centred = C - C.mean(dim=1, keepdim=True)
        frobenius = (centred.T @ centred).pow(2).sum() / D**2
        diagonal = (centred.pow(2).sum(dim=1) / D).pow(2).sum()
        return 0.5 * (frobenius - diagonal)

    def regularization(self) -> torch.Tensor:
        """eq. (11): the lambda-weighted covariance term added to the likelihood loss
        (none for SINE-cate, whose prototypes are not learned: module docstring)."""
        if self.prototypes is None:
            return super().regularization()
        return self.config.reg_weight * self.covariance_loss()
