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


def bf16_setup(seed=0, M=2000, D=32, B=64):
    """Trained-model scales: logits of several units, where bf16 rounding of logits shows."""
    g = torch.Generator().manual_seed(seed)
    H = torch.nn.Parameter(torch.randn(M + 1, D, generator=g))
    v = (torch.randn(B, D, generator=g) * 0.8).requires_grad_()
    targets = torch.randint(1, M + 1, (B,), generator=g)
    return H, v, targets


def test_bf16_softmax_and_loss_take_float32_logits(monkeypatch):
    """Products in bf16, the softmax over the catalog in float32 (docs/model.md)."""
    seen = []

    def spy(function):
        def wrapped(x, *args, **kwargs):
            seen.append((function.__name__, x.dtype))
            return function(x, *args, **kwargs)
        return wrapped

    for name in ("softmax", "log_softmax"):
        monkeypatch.setattr(torch, name, spy(getattr(torch, name)))
        monkeypatch.setattr(F, name, spy(getattr(F, name)))
    monkeypatch.setattr(F, "cross_entropy", spy(F.cross_entropy))
    H, v, targets = bf16_setup()
    full_softmax_loss(v, H, targets, low_precision=True).backward()
    assert seen, "the bf16 loss computes no softmax"
    assert all(dtype == torch.float32 for _, dtype in seen), seen


@pytest.mark.parametrize("native", [True, False], ids=["bf16-cpu", "other-cpu"])
def test_bf16_loss_is_the_float32_softmax_of_the_bf16_products(monkeypatch, native):
    """The only rounding is the products' (inputs in bf16, and on a CPU with bf16 hardware
    its bf16 output): the loss is a float32 softmax cross-entropy of those logits, not of
    bf16 probabilities (off by ~1e-3 at this scale). Without bf16 hardware the product is
    a GPU's: exact products of the bf16 inputs, summed in float32, no output rounding."""
    import trainer.loss

    monkeypatch.setattr(trainer.loss, "cpu_native_bf16", lambda: native)
    H, v, targets = bf16_setup()
    low = full_softmax_loss(v, H, targets, low_precision=True)
    v16, H16 = v.detach().bfloat16(), H.detach().bfloat16()
    # with bf16 hardware: a bf16 product; without: exact products of the bf16 inputs
    logits = (v16 @ H16.T).float() if native else (v16.double() @ H16.double().T).float()
    logits[:, 0] = float("-inf")
    reference = F.cross_entropy(logits, targets)
    assert low.item() == pytest.approx(reference.item(), abs=2e-6)
    exact = full_softmax_loss(v, H, targets)  # and within bf16-product error of fp32
    assert low.item() == pytest.approx(exact.item(), rel=1e-2)


def test_bf16_product_without_bf16_hardware_is_the_exact_product_summed_in_float32(monkeypatch):
    """What a bf16 matrix unit with a float32 accumulator computes (CUDA's out_dtype), not
    a product rounded to bf16 on the way out, which is ~1e-1 off at these scales."""
    import trainer.loss

    monkeypatch.setattr(trainer.loss, "cpu_native_bf16", lambda: False)
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(64, 32, generator=g).bfloat16(), torch.randn(32, 500, generator=g).bfloat16()
    out = trainer.loss.bf16_product(a, b)
    exact = a.double() @ b.double()
    assert out.dtype == torch.float32
    assert (out.double() - exact).abs().max() < 1e-5
    assert ((a @ b).double() - exact).abs().max() > 1e-3  # the rounding this avoids is visible


def test_bf16_gradients_match_fp32_at_trained_scales():
    H, v, targets = bf16_setup()
    full_softmax_loss(v, H, targets).backward()
    exact = v.grad.clone(), H.grad.clone()
    v.grad = H.grad = None
    full_softmax_loss(v, H, targets, low_precision=True).backward()
    for e, low in zip(exact, (v.grad, H.grad), strict=True):
        assert low.dtype == torch.float32
        assert (low - e).norm() / e.norm() < 1e-2


def test_sampled_softmax_tracks_the_full_loss():
    H, v, targets = setup(M=200)
    counts = np.r_[0, np.random.default_rng(0).integers(1, 50, 200)]
    sampled = SampledSoftmax(counts, negatives=4000, generator=torch.Generator().manual_seed(0))
    approx = sampled(v, H, targets)
    full = full_softmax_loss(v, H, targets)
    assert torch.isfinite(approx)
    # with many negatives and the log-Q correction the sampled loss estimates the full one
    assert approx.item() == pytest.approx(full.item(), rel=0.1)
