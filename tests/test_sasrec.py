from __future__ import annotations

import torch

from trainer.models.sasrec import SASRec, SASRecConfig


def make():
    torch.manual_seed(0)
    return SASRec(SASRecConfig(num_items=30, dim=16, max_len=6, heads=2, inner_dim=32)).eval()


def test_padding_does_not_change_user_vector():
    m = make()
    seq = torch.tensor([[4, 8, 15]])
    padded = torch.tensor([[0, 0, 0, 4, 8, 15]])
    assert torch.allclose(m(seq).user_vector, m(padded).user_vector, atol=1e-5)


def test_user_vector_depends_on_every_click():
    m = make()
    base = m(torch.tensor([[0, 4, 8, 15, 16, 23]])).user_vector
    changed = m(torch.tensor([[0, 5, 8, 15, 16, 23]])).user_vector
    assert not torch.allclose(base, changed)


def test_gradients_reach_every_parameter():
    m = make().train()
    m(torch.tensor([[0, 4, 8, 15, 16, 23]])).user_vector.square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
