"""One test per property the paper's equations promise (section 3, eqs. 1-11)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.models.sine import SINE, SINEConfig, attention_scores


@pytest.fixture()
def model() -> SINE:
    torch.manual_seed(0)
    m = SINE(SINEConfig(num_items=50, dim=16, max_len=8, interests=3, prototypes=10))
    return m.eval()


@pytest.fixture()
def clicks() -> torch.Tensor:
    torch.manual_seed(1)
    batch = torch.randint(1, 51, (6, 8))
    for row, pad in enumerate([0, 1, 3, 5, 7, 2]):
        batch[row, :pad] = 0  # left padding of various lengths
    return batch


def test_eq1_concept_attention_sums_to_one_over_real_clicks(model, clicks):
    a = model(clicks).extras["concept_attention"]
    assert torch.allclose(a.sum(1), torch.ones(len(clicks)), atol=1e-6)
    assert torch.all(a[clicks == 0] == 0)


def test_eq2_top_k_picks_k_distinct_best_scoring_prototypes(model, clicks):
    out = model(clicks)
    idx = out.extras["concepts"]
    assert idx.shape == (len(clicks), 3)
    assert all(len(set(row.tolist())) == 3 for row in idx)
    # they are the K prototypes with the highest s = <C, z>
    X = model.item_embedding(clicks)
    z = torch.einsum("bs,bsd->bd", out.extras["concept_attention"], X)
    s = z @ model.prototypes.T
    assert torch.equal(torch.sort(idx, 1).values, torch.sort(s.topk(3, 1).indices, 1).values)


def test_eq3_intention_assignment_sums_to_one_over_interests(model, clicks):
    P_kt = model(clicks).extras["intention_assignment"]
    assert P_kt.shape == (6, 8, 3)
    assert torch.allclose(P_kt.sum(-1), torch.ones(6, 8), atol=1e-6)


def test_eq4_position_attention_sums_to_one_over_real_clicks_per_interest(model, clicks):
    P_tk = model(clicks).extras["position_attention"]  # [B, K, S]
    assert torch.allclose(P_tk.sum(-1), torch.ones(6, 3), atol=1e-6)
    assert torch.all(P_tk.transpose(1, 2)[clicks == 0] == 0)


def test_eq4_scores_equal_the_tanh_form_up_to_softmax():
    torch.manual_seed(2)
    x, w1, w2 = torch.randn(4, 7, 16), torch.randn(16, 16), torch.randn(16, 3)
    paper = torch.softmax(torch.tanh(x @ w1) @ w2, dim=1)
    ours = torch.softmax(attention_scores(x, w1, w2), dim=1)
    assert torch.allclose(paper, ours, atol=1e-6)


def test_eq5_interest_vectors_are_layer_normalised(model, clicks):
    phi = model(clicks).extras["interest_vectors"]
    assert phi.shape == (6, 3, 16)
    ln = model.ln3
    # undo the affine part: a LayerNorm output has zero mean and unit variance
    normed = (phi - ln.bias) / ln.weight
    assert torch.allclose(normed.mean(-1), torch.zeros(6, 3), atol=1e-5)
    # (at initialisation the inputs are tiny, so LayerNorm's epsilon shows in the 3rd digit)
    assert torch.allclose(normed.var(-1, unbiased=False), torch.ones(6, 3), atol=1e-2)


def test_eq7_aggregation_weights_sum_to_one_and_sharpen_as_tau_shrinks(model, clicks):
    peaks = []
    for tau in (10.0, 1.0, 0.1, 0.01, 1e-4, 1e-6):
        model.config.tau = tau
        e = model(clicks).extras["interest_weights"]
        assert torch.allclose(e.sum(1), torch.ones(6), atol=1e-5)
        # a one-click sequence has K identical (LayerNorm'd) interests: a tie, never one-hot
        several = (clicks > 0).sum(1) > 1
        peaks.append(e[several].max(1).values.mean().item())
    assert peaks == sorted(peaks)  # monotone: one-hot in the limit
    assert peaks[-1] > 0.99
    assert peaks[0] < 1 / 3 + 0.05  # nearly uniform for a large tau


def test_eq8_user_vector_is_the_weighted_sum_of_interests(model, clicks):
    out = model(clicks)
    expected = torch.einsum("bk,bkd->bd", out.extras["interest_weights"], out.extras["interest_vectors"])
    assert torch.allclose(out.user_vector, expected, atol=1e-6)


def test_padding_does_not_change_user_vector(model):
    seq = torch.tensor([[5, 9, 2, 31]])
    short = model(seq).user_vector
    for pad in (1, 4, 16):
        padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), seq], dim=1)[:, -8:]
        if padded.shape[1] < 4 + pad:  # the window only holds 8
            continue
        assert torch.allclose(model(padded).user_vector, short, atol=1e-5)
    padded8 = torch.cat([torch.zeros(1, 4, dtype=torch.long), seq], dim=1)
    assert torch.allclose(model(padded8).user_vector, short, atol=1e-5)


def test_padding_embedding_row_has_no_influence(model):
    seq = torch.tensor([[0, 0, 0, 5, 9, 2, 31, 7]])
    before = model(seq).user_vector
    with torch.no_grad():
        model.item_embedding.weight[0] = torch.randn(16) * 10
    assert torch.allclose(model(seq).user_vector, before, atol=1e-5)


def test_batch_rows_are_independent(model, clicks):
    together = model(clicks).user_vector
    alone = torch.cat([model(clicks[i : i + 1]).user_vector for i in range(len(clicks))])
    assert torch.allclose(together, alone, atol=1e-5)


def test_eq10_regulariser_is_zero_for_decorrelated_prototypes():
    m = SINE(SINEConfig(num_items=5, dim=16, interests=2, prototypes=6)).double()
    # rows orthogonal to each other and to the all-ones vector (zero mean each); float64,
    # so that "zero" means rounding of 1e-16, not float32's 1e-7
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(16, 1, dtype=torch.float64)
    noise = torch.randn(16, 6, generator=g, dtype=torch.float64)
    basis = torch.linalg.qr(torch.cat([ones, noise], 1)).Q[:, 1:7].T
    with torch.no_grad():
        m.prototypes.copy_(basis * 3.0)
    assert m.covariance_loss().item() == pytest.approx(0.0, abs=1e-10)


def test_eq10_regulariser_matches_the_definition_and_penalises_correlation():
    torch.manual_seed(4)
    m = SINE(SINEConfig(num_items=5, dim=16, interests=2, prototypes=6))
    C = m.prototypes.detach()
    centred = C - C.mean(1, keepdim=True)
    M = centred @ centred.T / 16
    direct = 0.5 * (M.pow(2).sum() - torch.diagonal(M).pow(2).sum())
    assert m.covariance_loss().item() == pytest.approx(direct.item(), rel=1e-5)
    with torch.no_grad():
        m.prototypes[1] = m.prototypes[0] * 2  # perfectly correlated pair
    assert m.covariance_loss().item() > direct.item()


def test_eq11_regularisation_is_lambda_weighted():
    m = SINE(SINEConfig(num_items=5, dim=8, interests=2, prototypes=4, reg_weight=0.5))
    assert m.regularization().item() == pytest.approx(0.5 * m.covariance_loss().item())


def test_gradients_reach_every_parameter(clicks):
    torch.manual_seed(0)
    m = SINE(SINEConfig(num_items=50, dim=16, max_len=8, interests=3, prototypes=3))
    (m(clicks).user_vector.square().sum() + m.regularization()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_k_larger_than_l_is_refused():
    with pytest.raises(ValueError):
        SINE(SINEConfig(num_items=5, dim=8, interests=5, prototypes=4))


def test_one_click_sequence_is_finite(model):
    out = model(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3]]))
    assert torch.isfinite(out.user_vector).all()
    assert not math.isnan(out.extras["interest_weights"].sum().item())
