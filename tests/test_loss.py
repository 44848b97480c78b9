from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.loss import SampledSoftmax, full_softmax_loss


def setup(seed=0, M=300, D=16, B=32):
    g = torch.Generator().manual_seed(seed)
    H = torch.nn.Parameter(torch.randn(M + 1, D, generator=g) * 0.3)
    v = (torch.randn(B, D, generator=g) * 2).requires_grad_()
    targets = torch.randint(1, M + 1, (B,), generator=g)
    return H, v, targets


def test_full_softmax_is_cross_entropy_over_all_items():
    H, v, targets = setup()
    loss = full_softmax_loss(v, H, targets)
    expected = F.cross_entropy(v @ H[1:].T, targets - 1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_full_softmax_loss_and_gradients_match_the_formula_in_float64():
    H, v, targets = setup()
    loss = full_softmax_loss(v, H, targets)
    loss.backward()
    H64 = H.detach().double().requires_grad_()
    v64 = v.detach().double().requires_grad_()
    literal = []
    for b in range(len(targets)):  # -log( exp(l_t) / sum over real items j of exp(l_j) )
        logits = [v64[b] @ H64[j] for j in range(1, len(H64))]
        literal.append(-(logits[targets[b] - 1] - torch.log(sum(torch.exp(x) for x in logits))))
    expected = torch.stack(literal).mean()
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(v.grad.double(), v64.grad, atol=1e-6)
    assert torch.allclose(H.grad.double(), H64.grad, atol=1e-6)
    assert H.grad[0].abs().sum() == 0  # padding row gets no gradient


def test_bf16_products_match_fp32_loss_and_gradients():
    H, v, targets = setup()
    exact = full_softmax_loss(v, H, targets)
    exact.backward()
    grads = v.grad.clone(), H.grad.clone()
    v.grad = None
    H.grad = None
    low = full_softmax_loss(v, H, targets, low_precision=True)
    low.backward()
    assert low.item() == pytest.approx(exact.item(), rel=2e-2)
    for exact_grad, low_grad in zip(grads, (v.grad, H.grad), strict=True):
        cos = F.cosine_similarity(exact_grad.flatten(), low_grad.flatten(), dim=0)
        assert cos > 0.999
    assert H.grad[0].abs().sum() == 0  # padding row gets no gradient


def test_sampled_softmax_masks_accidental_hits_and_tracks_the_full_loss():
    H, v, targets = setup(M=200)
    counts = np.r_[0, np.random.default_rng(0).integers(1, 50, 200)]
    sampled = SampledSoftmax(counts, negatives=4000, generator=torch.Generator().manual_seed(0))
    approx = sampled(v, H, targets)
    full = full_softmax_loss(v, H, targets)
    assert torch.isfinite(approx)
    # with many negatives and the log-Q correction the sampled loss estimates the full one
    assert approx.item() == pytest.approx(full.item(), rel=0.1)
