"""SINE against a literal transcription of the paper's equations (tests/sine_reference.py).

Random weights at a scale where every nonlinearity is exercised (tanh saturating,
LayerNorm gains and biases away from 1 and 0, softmaxes neither uniform nor one-hot),
float64, every output compared: a transcription bug in any equation shows as a
difference far above rounding. bench/seeded_bugs.py plants such bugs to prove it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import sine_reference as ref
from trainer.loss import SampledSoftmax, full_softmax_loss
from trainer.models.sine import SINE, SINEConfig

TOLERANCE = 1e-9  # float64: the model and the reference differ only by rounding

# (aggregation, tau, assignment_tau): tau is chosen per similarity so that eq. (7)'s
# weights stay away from one-hot and a changed input still changes them measurably
VARIANTS = [
    ("cosine", 0.5, 1.0),
    ("cosine", 0.5, 0.3),
    ("dot", 4.0, 1.0),
    ("dot", 4.0, 0.3),
]


def random_sine(aggregation: str, tau: float, assignment_tau: float, seed: int = 0,
                **options) -> SINE:
    """`options`: more SINEConfig fields (the ablations of tests/test_sine_ablations.py)."""
    torch.manual_seed(seed)
    model = SINE(SINEConfig(**{"num_items": 30, "dim": 8, "max_len": 6, "interests": 3, "prototypes": 12,
                               "tau": tau, "aggregation": aggregation, "assignment_tau": assignment_tau,
                               **options}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and name.startswith("ln"):
                p.copy_(1.0 + 0.5 * torch.randn_like(p))  # LayerNorm gains
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p))
        model.item_embedding.weight[0] = 5.0  # padding row: must never matter
    return model.double().eval()


@pytest.fixture(scope="module")
def clicks() -> torch.Tensor:
    return ref.padded_clicks()


def compare(model: SINE, clicks: torch.Tensor) -> None:
    out = model(clicks)
    w = ref.weights_of(model)
    for b, row in enumerate(clicks.tolist()):
        real = [c for c in row if c > 0]
        pad = len(row) - len(real)
        expected = ref.forward_user(w, real)
        got = {
            "user_vector": out.user_vector[b],
            "interest_vectors": out.extras["interest_vectors"][b],
            "interest_weights": out.extras["interest_weights"][b],
            "concept_attention": out.extras["concept_attention"][b, pad:],
            "intention_assignment": out.extras["intention_assignment"][b, pad:],
            "position_attention": out.extras["position_attention"][b, :, pad:],
        }
        for name, value in got.items():
            torch.testing.assert_close(value, expected[name], rtol=TOLERANCE, atol=TOLERANCE,
                                       msg=lambda m, n=name, r=b: f"user {r}, {n}: {m}")
        assert out.extras["concepts"][b].tolist() == expected["concepts"], f"user {b}, concepts"
        # padding: exactly zero weight in every softmax over positions
        assert torch.all(out.extras["concept_attention"][b, :pad] == 0)
        assert torch.all(out.extras["position_attention"][b, :, :pad] == 0)


@pytest.mark.parametrize(("aggregation", "tau", "assignment_tau"), VARIANTS)
def test_forward_equals_the_literal_equations(aggregation, tau, assignment_tau, clicks):
    model = random_sine(aggregation, tau, assignment_tau)
    e = model(clicks).extras["interest_weights"][(clicks > 0).sum(1) > 1]
    assert e.min() > 1e-3 and e.max() < 0.999, "eq. (7) saturated: the comparison would be blind"
    P = model(clicks).extras["intention_assignment"][clicks > 0]
    assert P.max(-1).values.mean() > 0.4, "eq. (3) nearly uniform: the comparison would be blind"
    compare(model, clicks)


def test_forward_equals_the_literal_equations_in_training_mode_without_dropout(clicks):
    model = random_sine("cosine", 0.5, 1.0, seed=3).train()  # dropout 0: same function
    compare(model, clicks)


def test_assignment_temperature_sharpens_eq3(clicks):
    sharpness = []
    for assignment_tau in (1.0, 0.3, 0.05):
        model = random_sine("cosine", 0.5, assignment_tau)
        P = model(clicks).extras["intention_assignment"][clicks > 0]
        sharpness.append(P.max(-1).values.mean().item())
    assert sharpness == sorted(sharpness) and sharpness[-1] > 0.9
    # without a temperature a cosine caps P(k|t) at e / (e + (K - 1) / e): 0.79 for K = 3
    assert sharpness[0] < np.e / (np.e + 2 / np.e)


def test_eq9_full_softmax_equals_the_literal_sum():
    g = torch.Generator().manual_seed(0)
    H = torch.randn(41, 8, generator=g)
    v = torch.randn(5, 8, generator=g) * 2
    targets = [3, 40, 1, 17, 17]
    loss = full_softmax_loss(v, H, torch.tensor(targets))
    assert loss.item() == pytest.approx(ref.full_softmax_loss(H, v, targets), rel=1e-5)


def test_eq10_covariance_loss_equals_the_literal_sum():
    model = random_sine("cosine", 0.5, 1.0)
    expected = ref.covariance_loss(model.prototypes.detach())
    assert model.covariance_loss().item() == pytest.approx(expected, rel=1e-9)


def test_eq11_adds_the_lambda_weighted_covariance_loss():
    torch.manual_seed(0)
    model = SINE(SINEConfig(num_items=5, dim=8, interests=2, prototypes=6, reg_weight=0.3))
    with torch.no_grad():
        model.prototypes.normal_()
    expected = 0.3 * ref.covariance_loss(model.prototypes.detach())
    assert model.regularization().item() == pytest.approx(expected, rel=1e-5)


def confident_batch(M: int = 20, D: int = 8, B: int = 16, seed: int = 0):
    """User vectors that give their targets most of the probability (p ~ 0.5-0.99)."""
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(M + 1, D, generator=g)
    targets = torch.randint(1, M + 1, (B,), generator=g)
    v = 1.5 * H[targets] + 0.3 * torch.randn(B, D, generator=g)
    return H, v, targets


def test_sampled_softmax_masks_accidental_hits():
    """A negative that is the target must not count: with confident targets and few items
    the target is drawn often, and counting it inflates Z by about p_target (the loss by
    log(1 + p_target), ~0.5 here)."""
    H, v, targets = confident_batch()
    counts = np.r_[0, np.full(20, 10)]
    sampled = SampledSoftmax(counts, negatives=20_000, generator=torch.Generator().manual_seed(0))
    full = full_softmax_loss(v, H, targets).item()
    p_target = torch.softmax(v @ H[1:].T, 1)[torch.arange(16), targets - 1]
    assert p_target.mean() > 0.5  # the regime where the masking matters
    assert sampled(v, H, targets).item() == pytest.approx(full, abs=0.05)


def test_sampled_softmax_corrects_for_a_skewed_proposal():
    """log-Q: with q far from uniform, only -log(S q_j) makes sum exp(l_j)/(S q_j) estimate Z."""
    H, v, targets = confident_batch(seed=1)
    v = v * 0.3  # moderate confidence: Z spread over many items
    counts = np.r_[0, np.geomspace(2000, 1, 20).round()]  # q spans ~300x (power 0.75)
    sampled = SampledSoftmax(counts, negatives=20_000, generator=torch.Generator().manual_seed(0))
    full = full_softmax_loss(v, H, targets).item()
    assert sampled(v, H, targets).item() == pytest.approx(full, abs=0.05)
