"""A literal, slow transcription of SINE's eqs. (1)-(11), to check `SINE` against.

Written from the paper (section 3), not from trainer/models/sine.py: Python loops over
users, positions and interests, one weight set per interest k (W_{k|1} is D x D, W_{k|2}
is D), tanh as printed (the model computes it through a sigmoid), LayerNorm written out.
Where the paper is silent it follows the choices docs/model.md documents:

* padding does not exist here: each user is the list of its real clicks (the model gives
  padded positions zero weight in every softmax over positions);
* positions are counted back from the most recent click (0 = last click) and added to X
  in eq. (4) only;
* slot k of eq. (2) holds the k-th best-scoring prototype;
* eq. (3) compares LayerNorm_1(X_t W3) and LayerNorm_2(C^u_k) by cosine, divided by the
  assignment temperature; eq. (7) by cosine or by inner product ("dot", as printed),
  divided by tau;
* C-bar of eq. (10) is each prototype's mean over its D coordinates.

Weights are plain tensors in the paper's orientation (x W, row vectors), taken from a
model by `weights_of`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Weights:
    H: torch.Tensor  # [M + 1, D] item embeddings (row 0 = padding, never used here)
    W1: torch.Tensor  # [D, D]  eq. (1)
    W2: torch.Tensor  # [D]     eq. (1)
    C: torch.Tensor  # [L, D]  eq. (2)
    W3: torch.Tensor  # [D, D]  eqs. (3) and (6)
    W4: torch.Tensor  # [D]     eq. (6)
    Wk1: list[torch.Tensor]  # K x [D, D]  eq. (4)
    Wk2: list[torch.Tensor]  # K x [D]     eq. (4)
    P: torch.Tensor  # [n, D] positional embeddings, row r = r-th most recent click
    ln: dict[int, tuple[torch.Tensor, torch.Tensor, float]]  # LayerNorm_l: gain, bias, eps
    K: int
    tau: float
    aggregation: str
    assignment_tau: float


def weights_of(model, C: torch.Tensor | None = None) -> Weights:
    """The model's parameters, rearranged as the paper writes them (`C`: a concept pool to
    use instead of the model's learned prototypes, e.g. `category_pool`'s for SINE-cate)."""
    cfg = model.config
    D, K = cfg.dim, cfg.interests
    ln = {}
    for number, module in ((1, model.ln1), (2, model.ln2), (3, model.ln3), (4, model.ln4)):
        ln[number] = (module.weight.detach(), module.bias.detach(), module.eps)
    return Weights(
        H=model.item_embedding.weight.detach(),
        W1=model.w1.weight.detach().T,
        W2=model.w2.weight.detach()[0],
        C=model.prototypes.detach() if C is None else C,
        W3=model.w3.weight.detach().T,
        W4=model.w4.weight.detach()[0],
        Wk1=[model.wk1.detach()[:, k * D : (k + 1) * D] for k in range(K)],
        Wk2=[model.wk2.detach()[k] for k in range(K)],
        P=model.position_embedding.weight.detach(),
        ln=ln,
        K=K,
        tau=cfg.tau,
        aggregation=cfg.aggregation,
        assignment_tau=cfg.assignment_tau,
    )


def layer_norm(x: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
    gain, bias, eps = params
    mean = sum(x) / len(x)
    var = sum((xi - mean) ** 2 for xi in x) / len(x)
    return (x - mean) / torch.sqrt(var + eps) * gain + bias


def softmax(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    top = max(float(s) for s in scores)
    exps = [torch.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def forward_user(w: Weights, clicks: list[int]) -> dict:
    """Eqs. (1)-(8) for one user whose real clicks are `clicks`, oldest first."""
    n = len(clicks)
    X = [w.H[item] for item in clicks]  # X^u_t, t = 0..n-1

    # eq. (1): a = softmax(tanh(X W1) W2), z_u = a^T X
    a = softmax([torch.dot(torch.tanh(X[t] @ w.W1), w.W2) for t in range(n)])
    z = sum(a[t] * X[t] for t in range(n))

    # eq. (2): s = <C, z>, idx = rank(s, K), C^u = C(idx) * sigmoid(s(idx))
    s = [torch.dot(w.C[p], z) for p in range(len(w.C))]  # p: a prototype, 0..L-1
    idx = sorted(range(len(s)), key=lambda p: -float(s[p]))[: w.K]
    Cu = [w.C[idx[k]] * sigmoid(s[idx[k]]) for k in range(w.K)]

    # eq. (3): P(k|t) = softmax_k(cos(LN_1(X_t W3), LN_2(C^u_k)) / assignment_tau)
    P_kt = []  # [n][K]
    for t in range(n):
        item_side = layer_norm(X[t] @ w.W3, w.ln[1])
        P_kt.append(softmax([cosine(item_side, layer_norm(Cu[k], w.ln[2])) / w.assignment_tau
                             for k in range(w.K)]))

    # eq. (4): P(t|k) = a^k_t, a^k = softmax_t(tanh((X_t + pos_t) W_{k|1}) W_{k|2})
    P_tk = []  # [K][n]
    for k in range(w.K):
        scores = []
        for t in range(n):
            x = X[t] + w.P[n - 1 - t]  # position = clicks after t (0 = the most recent)
            scores.append(torch.dot(torch.tanh(x @ w.Wk1[k]), w.Wk2[k]))
        P_tk.append(softmax(scores))

    # eq. (5): phi^k = LN_3(sum_t P(k|t) P(t|k) X_t)
    phi = [layer_norm(sum(P_kt[t][k] * P_tk[k][t] * X[t] for t in range(n)), w.ln[3])
           for k in range(w.K)]

    # eq. (6): X^_t = sum_k P(k|t) C^u_k; b = softmax_t(tanh(X^_t W3) W4); C_apt = LN_4(b^T X^)
    X_hat = [sum(P_kt[t][k] * Cu[k] for k in range(w.K)) for t in range(n)]
    b = softmax([torch.dot(torch.tanh(X_hat[t] @ w.W3), w.W4) for t in range(n)])
    C_apt = layer_norm(sum(b[t] * X_hat[t] for t in range(n)), w.ln[4])

    # eq. (7): e_k = softmax_k(sim(C_apt, phi^k) / tau)
    if w.aggregation == "cosine":
        e = softmax([cosine(C_apt, phi[k]) / w.tau for k in range(w.K)])
    else:
        e = softmax([torch.dot(C_apt, phi[k]) / w.tau for k in range(w.K)])

    # eq. (8): v^u = sum_k e_k phi^k
    v = sum(e[k] * phi[k] for k in range(w.K))
    return {
        "user_vector": v,
        "interest_vectors": torch.stack(phi),
        "interest_weights": torch.stack(e),
        "concepts": idx,
        "concept_attention": torch.stack(a),
        "intention_assignment": torch.stack([torch.stack(row) for row in P_kt]),  # [n, K]
        "position_attention": torch.stack([torch.stack(row) for row in P_tk]),  # [K, n]
    }


def full_softmax_loss(H: torch.Tensor, v: torch.Tensor, targets: list[int]) -> float:
    """eq. (9), mean over the batch: -log exp(H_t . v) / sum_j exp(H_j . v), j = 1..M."""
    total = 0.0
    for b, target in enumerate(targets):
        logits = [float(torch.dot(H[j], v[b])) for j in range(1, len(H))]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(logit - top) for logit in logits))
        total += log_z - logits[target - 1]
    return total / len(targets)


def covariance_loss(C: torch.Tensor) -> float:
    """eq. (10): 1/2 (||M||_F^2 - ||diag M||_F^2), M = (C - C_bar)(C - C_bar)^T / D."""
    L, D = C.shape
    centred = [[float(C[i, d]) - float(C[i].mean()) for d in range(D)] for i in range(L)]
    total = 0.0
    for i in range(L):
        for j in range(L):
            if i != j:
                m_ij = sum(centred[i][d] * centred[j][d] for d in range(D)) / D
                total += m_ij**2
    return 0.5 * total


def label_aware_vector(phi: torch.Tensor, h: torch.Tensor, p: int) -> torch.Tensor:
    """MIND's label-aware attention (Li et al., CIKM 2019), the training vector of the
    paper's SINE-label (section 4.5): v = sum_k softmax_k(pow(phi^k . h, p)) phi^k, with
    h the embedding of the target item (the label). pow is read sign-preserving,
    sign(x)|x|^p (the printed pow for p = 1, the default, and for positive x; an even p
    would otherwise rank a strongly negative interest first): MIND's reading too."""
    K = len(phi)

    def power(x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.abs(x) ** p

    attention = softmax([power(torch.dot(phi[k], h)) for k in range(K)])
    return sum(attention[k] * phi[k] for k in range(K))


def category_pool(H: torch.Tensor, labels: dict[int, list[int]], L: int) -> torch.Tensor:
    """SINE-cate's concept pool: row c = the mean of H_i over the items i labelled c
    (`labels`: item index -> its category ids)."""
    rows = []
    for c in range(L):
        members = [item for item, cats in labels.items() if c in cats]
        rows.append(sum(H[item] for item in members) / len(members))
    return torch.stack(rows)


def merge_by_score(rankings: list[list[tuple[int, float]]], top_n: int,
                   excluded: frozenset[int] = frozenset()) -> list[int]:
    """MIND / SINE-label retrieval: the K*N candidates (K rankings of (item, score)) sorted
    by score, each item once at its best score, excluded items dropped; the first top_n."""
    best: dict[int, float] = {}
    for ranking in rankings:
        for item, score in ranking:
            if item not in excluded and (item not in best or score > best[item]):
                best[item] = score
    return sorted(best, key=lambda item: -best[item])[:top_n]


def padded_clicks() -> torch.Tensor:
    """The equation tests' batch: 6 left-padded rows of items 1..30, lengths 6, 5, 4, 2, 1, 3
    (row 4: a single click)."""
    g = torch.Generator().manual_seed(1)
    batch = torch.randint(1, 31, (6, 6), generator=g)
    for row, pad in enumerate([0, 1, 2, 4, 5, 3]):
        batch[row, :pad] = 0
    return batch
