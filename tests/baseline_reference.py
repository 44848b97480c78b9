"""Literal, slow transcriptions of GRU4Rec's and Caser's equations, to check the models against.

Written from the papers, not from trainer/models/: Python loops over users, time steps,
filters and positions, column-vector algebra as printed (W x), padding absent (a user is
the list of their real clicks). Where the papers are silent they follow the choices the
model modules document:

* GRU4Rec (Hidasi et al. 2016, eqs. 1-4, the GRU of Cho et al.): no biases, h_0 = 0, the
  reset gate inside U in eq. (3); an embedding layer before the GRU and a dense layer
  (weight and bias) to D after the last layer's last hidden state (RecBole's layout).
* Caser (Tang & Wang 2018, eqs. 1-7): E holds the L most recent clicks, oldest first,
  with zero rows where a user has fewer than L clicks; phi_c = phi_a = ReLU; every filter
  has a bias; the user vector is z (eq. 8 without P_u).
"""

from __future__ import annotations

import math

import torch


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def matvec(W: torch.Tensor, x: list[float]) -> list[float]:
    """W x, one inner product per row."""
    return [sum(float(W[i, j]) * x[j] for j in range(W.shape[1])) for i in range(W.shape[0])]


@torch.no_grad()
def gru4rec_user_vector(model, clicks: list[int]) -> torch.Tensor:
    """GRU4Rec's user vector for one user's real clicks (oldest first)."""
    xs = [[float(v) for v in model.item_embedding.weight[item]] for item in clicks]
    for gru in model.grus:
        H = gru.hidden
        Wz, Wr, W = gru.input_gates.weight.split(H)  # rows of [W_z; W_r; W]
        Uz, Ur = gru.hidden_gates.weight.split(H)
        U = gru.candidate.weight
        h = [0.0] * H
        outputs = []
        for x in xs:
            z = [sigmoid(a + b) for a, b in zip(matvec(Wz, x), matvec(Uz, h), strict=True)]  # eq. (2)
            r = [sigmoid(a + b) for a, b in zip(matvec(Wr, x), matvec(Ur, h), strict=True)]  # eq. (4)
            reset = [r[i] * h[i] for i in range(H)]
            cand = [math.tanh(a + b) for a, b in zip(matvec(W, x), matvec(U, reset), strict=True)]  # eq. (3)
            h = [(1 - z[i]) * h[i] + z[i] * cand[i] for i in range(H)]  # eq. (1)
            outputs.append(h)
        xs = outputs
    dense = matvec(model.dense.weight, xs[-1])
    return torch.tensor([d + float(b) for d, b in zip(dense, model.dense.bias, strict=True)])


@torch.no_grad()
def caser_user_vector(model, clicks: list[int]) -> torch.Tensor:
    """Caser's user vector z for one user's real clicks (oldest first)."""
    L, D = model.config.max_len, model.config.dim
    window = clicks[-L:]
    zero = [0.0] * D
    # eq. (1): L rows, zero rows first when the user has fewer than L clicks
    E = [zero] * (L - len(window)) + [[float(v) for v in model.item_embedding.weight[i]]
                                      for i in window]
    o = []
    for h, conv in zip(range(1, L + 1), model.horizontal, strict=True):  # heights 1..L
        for k in range(conv.out_channels):
            F = conv.weight[k].T  # [h, D]: row a multiplies E's row i + a
            c = []
            for i in range(L - h + 1):  # eq. (2): the filter over rows i..i+h-1
                total = float(conv.bias[k])
                for a in range(h):
                    for d in range(D):
                        total += E[i + a][d] * float(F[a, d])
                c.append(max(total, 0.0))  # phi_c = ReLU
            o.append(max(c))  # eq. (3)
    o_tilde = []
    for k in range(model.vertical.out_features):  # eq. (5): one D-vector per filter
        Ft = model.vertical.weight[k]  # [L]
        for d in range(D):
            o_tilde.append(float(model.vertical.bias[k])
                           + sum(float(Ft[p]) * E[p][d] for p in range(L)))
    features = o + o_tilde  # [o; o~]
    z = matvec(model.fc.weight, features)
    return torch.tensor([max(v + float(b), 0.0) for v, b in zip(z, model.fc.bias, strict=True)])  # eq. (7)
