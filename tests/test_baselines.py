"""GRU4Rec and Caser: their papers' equations, padding, export parity, training, serving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.baseline_reference import caser_user_vector, gru4rec_user_vector
from trainer.config import TrainConfig
from trainer.models.caser import Caser, CaserConfig
from trainer.models.gru4rec import GRU4Rec, GRU4RecConfig
from trainer.run import train_run

USERS = [[3], [7, 2], [1, 4, 9, 4], [5, 6, 7, 8, 9, 10], [11, 2, 3, 11, 5, 1, 8]]
"""Real clicks, oldest first: lengths 1 to past the window (7 > max_len 5 / 6)."""


def left_padded(users: list[list[int]], width: int) -> torch.Tensor:
    rows = [[0] * (width - len(u[-width:])) + u[-width:] for u in users]
    return torch.tensor(rows, dtype=torch.int64)


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter N(0, 0.5): no zero biases or initialiser symmetry hiding a transposed
    or misplaced weight."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
        model.item_embedding.weight[0].zero_()
    return model.eval()


def gru4rec(layers: int = 2) -> GRU4Rec:
    return randomised(GRU4Rec(GRU4RecConfig(num_items=12, dim=4, max_len=6, hidden=3, layers=layers)))


def caser() -> Caser:
    return randomised(Caser(CaserConfig(num_items=12, dim=3, max_len=5, horizontal=2, vertical=2)))


@pytest.mark.parametrize("layers", [1, 2])
def test_gru4rec_matches_the_papers_equations(layers):
    model = gru4rec(layers)
    with torch.no_grad():
        got = model(left_padded(USERS, 6)).user_vector
    for row, clicks in enumerate(USERS):
        expected = gru4rec_user_vector(model, clicks[-6:])
        assert torch.allclose(got[row], expected, atol=1e-5), (clicks, got[row], expected)


def test_caser_matches_the_papers_equations():
    model = caser()
    with torch.no_grad():
        got = model(left_padded(USERS, 5)).user_vector
    for row, clicks in enumerate(USERS):
        expected = caser_user_vector(model, clicks)
        assert torch.allclose(got[row], expected, atol=1e-5), (clicks, got[row], expected)


@pytest.mark.parametrize("make", [gru4rec, caser], ids=["gru4rec", "caser"])
def test_padding_does_not_change_the_user_vector(make):
    model = make()
    n = model.config.max_len
    with torch.no_grad():
        for clicks in USERS:
            clicks = clicks[-n:]
            unpadded = model(torch.tensor([clicks])).user_vector
            padded = model(left_padded([clicks], n)).user_vector
            assert torch.allclose(unpadded, padded, atol=1e-6), clicks
    if isinstance(model, GRU4Rec):  # training does not pad to n: same vector without dropout
        model.train()
        model.dropout.p = 0.0
        with torch.no_grad():
            short = model(torch.tensor([[4, 9, 4]])).user_vector
        model.eval()
        with torch.no_grad():
            assert torch.allclose(short, model(torch.tensor([[4, 9, 4]])).user_vector, atol=1e-6)


@pytest.mark.parametrize("make", [gru4rec, caser], ids=["gru4rec", "caser"])
def test_user_vector_depends_on_every_click_in_the_window(make):
    model = make()
    n = model.config.max_len
    base = left_padded([list(range(1, n + 1))], n)
    with torch.no_grad():
        reference = model(base).user_vector
        for position in range(n):
            changed = base.clone()
            changed[0, position] = 11
            assert not torch.allclose(model(changed).user_vector, reference), position


@pytest.mark.parametrize("make", [gru4rec, caser], ids=["gru4rec", "caser"])
def test_gradients_reach_every_parameter(make):
    model = make().train()
    if isinstance(model, Caser):  # no dead ReLU (a filter below zero everywhere has no gradient)
        with torch.no_grad():
            for conv in model.horizontal:
                conv.bias.fill_(5.0)
    model(left_padded(USERS, model.config.max_len)).user_vector.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("make", [gru4rec, caser], ids=["gru4rec", "caser"])
def test_onnx_export_agrees_with_pytorch_on_every_length(make):
    from trainer.export import export_onnx, parity

    model = make()
    n = model.config.max_len
    onnx_model = export_onnx(model, n)
    rng = np.random.default_rng(0)
    for length in (1, 2, n - 1, n):
        clicks = rng.integers(1, 13, size=(5, length))
        clicks[:2, : length // 2] = 0  # some rows padded
        worst = parity(model, onnx_model, clicks)
        assert all(v <= 1e-5 for v in worst.values()), (length, worst)


@pytest.fixture(scope="module")
def pop_metrics(tmp_path_factory, synthetic_csv):
    return train_run(synthetic_csv, tmp_path_factory.mktemp("pop") / "run", TrainConfig(model="pop"))


@pytest.fixture(scope="module", params=["gru4rec", "caser"])
def trained(request, tmp_path_factory, synthetic_csv):
    root = tmp_path_factory.mktemp(request.param)
    config = TrainConfig(model=request.param, epochs=4, patience=4, dim=32, gru_hidden=32,
                         batch_size=128, seed=0)
    return root, train_run(synthetic_csv, root / "run", config)


def test_trains_in_the_same_harness_and_beats_most_popular(trained, pop_metrics):
    _, metrics = trained
    assert metrics["test"]["hr@10"] > 2 * pop_metrics["test"]["hr@10"]
    assert metrics["test"]["hr@50"] > pop_metrics["test"]["hr@50"] + 0.1


def test_exports_with_parity_and_serves_aggregate_retrieval(trained):
    from index_builder.build import build_for_bundle
    from service.recommender import LoadedModel, Query
    from trainer.export import export_bundle
    from trainer.run import load_run

    root, _ = trained
    bundle = export_bundle(root / "run", root / "bundle")  # refuses to write on a parity failure
    build_for_bundle(root / "bundle", kind="flat")
    model = LoadedModel.load(root / "bundle")
    run = load_run(root / "run")
    clicks = [int(i) for i in bundle.sample_queries()[0] if i > 0]
    ids = [run.vocabulary.ids[i - 1] for i in clicks]
    (answer,) = model.recommend([Query(ids, top_n=10)])
    with torch.no_grad():
        scores = run.encoder(torch.tensor([clicks])).user_vector @ run.encoder.item_vectors().T
    scores[0, [i - 1 for i in clicks]] = -torch.inf  # the service excludes clicked items
    expected = [run.vocabulary.ids[i] for i in scores[0].topk(10).indices.tolist()]
    assert answer.item_ids == expected
