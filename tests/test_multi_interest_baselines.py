"""MIND and MCPRN, the multi-embedding baselines (trainer/models/mind.py, mcprn.py).

Each forward pass is compared with a literal, slow transcription of its paper's
equations (Python loops over behaviours, capsules, channels and steps, float64); the
exported encoder with PyTorch, output by output; the service's per-interest answers
with the trained model; and a short training with most-popular.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sine.bundle import CONCEPT_IDS, ENCODER_OUTPUT, INTEREST_OUTPUTS, read_bundle
from sine.errors import SineError
from tests.test_service import client_for, sample_sequences
from trainer.config import TrainConfig
from trainer.export import export_onnx, onnx_session, output_names, torch_outputs
from trainer.models import MCPRN, MIND, build_encoder, model_config
from trainer.models.base import EncoderOutput
from trainer.run import load_run, train_run

MODELS = ("mind", "mcprn")
NUM_ITEMS = 30


def tiny(name: str, dim: int = 4, max_len: int = 6, **settings) -> MIND | MCPRN:
    """A small encoder with weights large enough that routing and gates are far from uniform."""
    config = TrainConfig(model=name, dim=dim, max_len=max_len, interests=3, **settings)
    torch.manual_seed(7)
    model = build_encoder(name, model_config(config, NUM_ITEMS))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.6)
        model.item_embedding.weight[0].zero_()
    return model.double().eval()


def batch() -> torch.Tensor:
    """Left-padded rows of 6, 1, 2, 3, 4 and 5 clicks."""
    rng = np.random.default_rng(3)
    rows = []
    for length in (6, 1, 2, 3, 4, 5):
        row = [0] * (6 - length) + rng.integers(1, NUM_ITEMS + 1, length).tolist()
        rows.append(row)
    return torch.tensor(rows)


def vec(t: torch.Tensor) -> list[float]:
    return [float(x) for x in t]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def matvec(m: torch.Tensor, x: list[float]) -> list[float]:
    """m @ x for a [rows, cols] matrix, one inner product at a time."""
    return [dot(vec(row), x) for row in m]


# ---------------------------------------------------------------- MIND, literally


def literal_mind(model: MIND, row: list[int]):
    """Algorithm 1 and eqs. (3)-(8) of the MIND paper for one user, in scalars."""
    cfg = model.config
    E, S = model.item_embedding.weight.detach(), model.bilinear.weight.detach()
    W1, W2 = model.hidden.weight.detach(), model.out.weight.detach()
    n, K = len(row), cfg.interests
    behaviours = [i for i in range(n) if row[i] > 0]
    k_user = max(1, min(K, math.floor(math.log2(len(behaviours))))) if cfg.dynamic_interests else K
    Se = {i: matvec(S, vec(E[row[i]])) for i in behaviours}  # S c_i
    # line 2: b_ij from the fixed draw, by recency (n - 1 - i clicks after i)
    b = {(i, j): float(model.routing_init[n - 1 - i, j]) for i in behaviours for j in range(k_user)}
    for _ in range(cfg.routing_iterations):
        w = {}
        for i in behaviours:  # line 4 / eq. (3)
            denominator = sum(math.exp(b[i, k]) for k in range(k_user))
            for j in range(k_user):
                w[i, j] = math.exp(b[i, j]) / denominator
        u = []
        for j in range(k_user):
            z = [sum(w[i, j] * Se[i][d] for i in behaviours) for d in range(cfg.dim)]  # eq. (4)
            norm = math.sqrt(dot(z, z))
            u.append([norm**2 / (1 + norm**2) * x / norm for x in z])  # eq. (5)
        for i in behaviours:  # line 7 / eq. (6)
            for j in range(k_user):
                b[i, j] += dot(u[j], Se[i])
    V = [matvec(W2, [max(0.0, x) for x in matvec(W1, u[j])]) for j in range(k_user)]  # H-layers
    lengths = [math.sqrt(dot(u[j], u[j])) for j in range(k_user)]
    weights = [length / sum(lengths) for length in lengths]
    user = [sum(weights[j] * V[j][d] for j in range(k_user)) for d in range(cfg.dim)]
    assignment = [[w.get((i, j), 0.0) for j in range(K)] for i in range(n)]
    return V, weights, user, assignment, k_user


def label_aware(V: list[list[float]], target: list[float], p: float) -> list[float]:
    """Eq. (9): v_u = V softmax(pow(V^T e, p)), pow sign-preserving; p = inf: argmax."""
    scores = [dot(v, target) for v in V]
    if math.isinf(p):
        best = scores.index(max(scores))
        attention = [1.0 if k == best else 0.0 for k in range(len(V))]
    else:
        powered = [math.copysign(abs(s) ** p, s) for s in scores]
        top = max(powered)
        exps = [math.exp(x - top) for x in powered]
        attention = [e / sum(exps) for e in exps]
    return [sum(attention[k] * V[k][d] for k in range(len(V))) for d in range(len(target))]


@pytest.mark.parametrize("dynamic", [False, True])
def test_mind_forward_is_the_papers_routing(dynamic):
    model = tiny("mind", dynamic_interests=dynamic, routing_iterations=3)
    clicks = batch()
    with torch.no_grad():
        out = model(clicks)
    for j, row in enumerate(clicks.tolist()):
        V, weights, user, assignment, k_user = literal_mind(model, row)
        got = out.extras
        assert int(got["active"][j].sum()) == k_user
        for k in range(model.config.interests):
            expected = V[k] if k < k_user else [0.0] * model.config.dim
            assert np.allclose(got["interest_vectors"][j, k].numpy(), expected, atol=1e-9), (j, k)
            assert got["interest_weights"][j, k].item() == pytest.approx(weights[k] if k < k_user else 0.0, abs=1e-9)
        assert np.allclose(out.user_vector[j].numpy(), user, atol=1e-9)
        assert np.allclose(got["intention_assignment"][j].numpy(), assignment, atol=1e-9)
        assert got["concepts"][j].tolist() == list(range(model.config.interests))
    if dynamic:  # K' = floor(log2 clicks): 1 to 3 clicks one capsule, 4 to 6 two (K = 3)
        assert out.extras["active"].sum(1).tolist() == [2, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("power", [1.0, 2.0, math.inf])
def test_mind_trains_with_label_aware_attention_and_ranks_by_its_best_interest(power):
    model = tiny("mind", dynamic_interests=True, attention_power=power)
    clicks, targets = batch(), torch.tensor([3, 9, 14, 1, 27, 30])
    with torch.no_grad():
        out = model(clicks)
        trained = model.training_vector(out, targets)
        scores = model.score_items(out)
    table = model.item_table().detach()
    for j, row in enumerate(clicks.tolist()):
        V, *_, k_user = literal_mind(model, row)
        assert np.allclose(trained[j].numpy(), label_aware(V, vec(table[targets[j]]), power), atol=1e-9)
        best = [max(dot(V[k], vec(table[i])) for k in range(k_user)) for i in range(NUM_ITEMS + 1)]
        assert np.allclose(scores[j].numpy(), best, atol=1e-9)  # K*N merged by score (section 4.5)


def test_mind_draws_fresh_routing_logits_in_training_only():
    model = tiny("mind")
    clicks = batch()
    with torch.no_grad():
        first, second = model(clicks).user_vector, model(clicks).user_vector
        model.train()
        noisy = model(clicks).user_vector
    assert torch.equal(first, second)  # eval: the fixed draw, deterministic
    assert not torch.allclose(first, noisy)


# ---------------------------------------------------------------- MCPRN, literally


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def literal_mcprn(model: MCPRN, row: list[int]):
    """The purpose router and the PSRU recurrences, one channel and one step at a time."""
    cfg = model.config
    D, K = cfg.dim, cfg.interests
    E, C = model.item_embedding.weight.detach(), model.purposes.detach()
    Wx, Ug, Uc, bias = (model.w_input.detach(), model.u_gates.detach(), model.u_candidate.detach(),
                        model.bias.detach())
    h = [[0.0] * D for _ in range(K)]
    assignment = []
    for item in row:
        x = vec(E[item])
        if item == 0:
            w = [0.0] * K  # padding goes to no channel
        else:  # purpose router: softmax_k(x^T c_k / tau)
            logits = [dot(x, vec(C[k])) / cfg.purpose_tau for k in range(K)]
            top = max(logits)
            exps = [math.exp(v - top) for v in logits]
            w = [e / sum(exps) for e in exps]
        assignment.append(w)
        for k in range(K):
            prev = h[k]
            new = []
            r = [sigmoid(sum(x[a] * float(Wx[k, a, d]) for a in range(D))
                         + sum(prev[a] * float(Ug[k, a, d]) for a in range(D)) + float(bias[k, d]))
                 for d in range(D)]
            for d in range(D):
                z = sigmoid(sum(x[a] * float(Wx[k, a, D + d]) for a in range(D))
                            + sum(prev[a] * float(Ug[k, a, D + d]) for a in range(D)) + float(bias[k, D + d]))
                candidate = math.tanh(sum(x[a] * float(Wx[k, a, 2 * D + d]) for a in range(D))
                                      + sum(r[a] * prev[a] * float(Uc[k, a, d]) for a in range(D))
                                      + float(bias[k, 2 * D + d]))
                new.append((1 - w[k] * z) * prev[d] + w[k] * z * candidate)
            h[k] = new
    last = assignment[-1]
    user = [sum(last[k] * h[k][d] for k in range(K)) for d in range(D)]
    return h, last, user, assignment


def test_mcprn_forward_is_router_and_psru_step_by_step():
    model = tiny("mcprn", purpose_tau=0.5)
    clicks = batch()
    with torch.no_grad():
        out = model(clicks)
    for j, row in enumerate(clicks.tolist()):
        h, last, user, assignment = literal_mcprn(model, row)
        assert np.allclose(out.extras["interest_vectors"][j].numpy(), h, atol=1e-9), j
        assert np.allclose(out.extras["interest_weights"][j].numpy(), last, atol=1e-9)
        assert np.allclose(out.user_vector[j].numpy(), user, atol=1e-9)
        assert np.allclose(out.extras["intention_assignment"][j].numpy(), assignment, atol=1e-9)
        assert out.extras["concepts"][j].tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", MODELS)
def test_padding_changes_nothing(name):
    model = tiny(name)
    clicks = batch()
    with torch.no_grad():
        full = model(clicks)
        short = model(clicks[4:, 1:])  # rows of 4 and 5 clicks with one padding column fewer
    assert torch.allclose(full.user_vector[4:], short.user_vector, atol=1e-12)
    assert torch.allclose(full.extras["interest_vectors"][4:], short.extras["interest_vectors"], atol=1e-12)


def test_mcprn_padding_steps_change_no_state():
    """MCPRN left-pads to n inside the model, so the test above compares equal inputs; here a
    model with n = 8 (the same weights: none depends on n) runs two more padding steps."""
    short, long = tiny("mcprn"), tiny("mcprn", max_len=8)
    long.load_state_dict(short.state_dict())
    clicks = batch()
    with torch.no_grad():
        a, b = short(clicks), long(torch.nn.functional.pad(clicks, (2, 0)))
    assert torch.allclose(a.user_vector, b.user_vector, atol=1e-12)
    assert torch.allclose(a.extras["interest_vectors"], b.extras["interest_vectors"], atol=1e-12)


# ---------------------------------------------------------------- export


@pytest.fixture(scope="module", params=MODELS)
def exported(request):
    """A tiny float32 encoder and its ONNX export (dynamic batch and sequence axes)."""
    model = tiny(request.param, dynamic_interests=True).float().eval()
    return model, export_onnx(model, model.config.max_len)


@pytest.mark.parametrize("name", [ENCODER_OUTPUT, *INTEREST_OUTPUTS])
def test_export_parity_per_output(exported, name):
    model, onnx_model = exported
    assert output_names(model) == [ENCODER_OUTPUT, *INTEREST_OUTPUTS]
    session = onnx_session(onnx_model)
    rng = np.random.default_rng(5)
    for rows, width in ((1, 1), (4, 3), (6, 6)):
        clicks = rng.integers(1, NUM_ITEMS + 1, (rows, width))
        clicks[: rows // 2, : width // 2] = 0  # some rows left-padded
        got = session.run([name], {"clicks": clicks})[0]
        expected = torch_outputs(model, clicks)[name]
        assert got.shape == expected.shape
        if name == CONCEPT_IDS:
            assert got.dtype == np.int64 and np.array_equal(got, expected)
        else:
            assert np.abs(got - expected).max() <= 1e-5, (rows, width)


# ---------------------------------------------------------------- training and serving


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_csv) -> dict[str, tuple]:
    """MIND and MCPRN trained briefly on the synthetic log, exported with a flat index; pop."""
    from index_builder.build import build_for_bundle
    from trainer.export import export_bundle

    root = tmp_path_factory.mktemp("multi")
    out = {"pop": (train_run(synthetic_csv, root / "pop", TrainConfig(model="pop")), None, None)}
    for name in MODELS:
        metrics = train_run(synthetic_csv, root / name,
                            TrainConfig(model=name, dim=16, max_len=10, interests=4, epochs=2,
                                        batch_size=128, seed=0))
        export_bundle(root / name, root / f"{name}-bundle")
        build_for_bundle(root / f"{name}-bundle", kind="flat")
        out[name] = (metrics, root / name, root / f"{name}-bundle")
    return out


@pytest.mark.parametrize("name", MODELS)
def test_a_short_training_beats_most_popular(runs, name):
    pop, model = runs["pop"][0]["test"], runs[name][0]["test"]
    assert model["hr@20"] > 1.5 * pop["hr@20"] and model["ndcg@20"] > 1.5 * pop["ndcg@20"], (model, pop)


@pytest.mark.parametrize("name", MODELS)
def test_served_interests_are_the_models(runs, name):
    _, run_dir, bundle_path = runs[name]
    run, bundle = load_run(run_dir), read_bundle(bundle_path)
    clicks = sample_sequences(bundle_path, 3)
    with client_for(bundle_path) as client:
        info = client.get("/model").json()
        answers = [client.post("/recommend", json={"clicks": c, "top_n": 10, "retrieval": "interests",
                                                    "explain": True}) for c in clicks]
        by_score = client.post("/recommend", json={"clicks": clicks[0], "top_n": 10, "retrieval": "interests",
                                                   "interest_merge": "score"}).json()
        by_shares = client.post("/recommend", json={"clicks": clicks[0], "top_n": 10, "retrieval": "interests",
                                                    "interest_merge": "shares"}).json()
        concepts = client.get("/model/concepts")
        unset = client.post("/recommend", json={"clicks": clicks[0], "top_n": 10}).json()
        aggregate = client.post("/recommend", json={"clicks": clicks[0], "top_n": 10,
                                                    "retrieval": "aggregate"}).json()
    # MIND's paper serves its K vectors merged by score (no label, no single vector): its
    # bundle says so; the unset merge of an explicit "interests" request is the model's too
    default, merge = {"mind": ("interests", "score"), "mcprn": ("aggregate", "shares")}[name]
    assert bundle.manifest.get("default_retrieval", "aggregate") == default
    assert info["encoder"]["default_retrieval"] == default
    assert info["encoder"]["default_interest_merge"] == merge
    expected_default = {"interests": by_score, "aggregate": aggregate}[default]
    assert [i["item_id"] for i in unset["items"]] == [i["item_id"] for i in expected_default["items"]]
    expected_merge = {"score": by_score, "shares": by_shares}[merge]
    assert [i["item_id"] for i in answers[0].json()["items"]] == [i["item_id"] for i in expected_merge["items"]]
    assert info["model"] == name and info["encoder"]["outputs"] == [ENCODER_OUTPUT, *INTEREST_OUTPUTS]
    assert info["encoder"]["retrieval"] == ["aggregate", "interests"] and info["encoder"]["explain"]
    assert concepts.status_code == 404 and f"the {name} model has no concept pool" in concepts.json()["error"]
    items = np.asarray(bundle.item_embeddings)
    for sequence, response in zip(clicks, answers, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        rows = [bundle.items.index(c) + 1 for c in sequence][-bundle.max_len:]
        with torch.no_grad():
            out: EncoderOutput = run.encoder(torch.tensor([rows]))
        vectors = out.extras["interest_vectors"][0].numpy()
        weights = out.extras["interest_weights"][0].numpy()
        assert [i["index"] for i in body["interests"]] == [0, 1, 2, 3]
        assert [i["concept_id"] for i in body["interests"]] == [0, 1, 2, 3]  # slot / channel ids
        assert np.allclose([i["weight"] for i in body["interests"]], weights, atol=1e-5)
        assert len(body["items"]) == 10 and not {i["item_id"] for i in body["items"]} & set(sequence)
        for item in body["items"]:
            best = (items[bundle.items.index(item["item_id"])] @ vectors.T).max()
            assert item["score"] == pytest.approx(float(best), abs=1e-4)


def test_only_sine_bounds_its_interests_by_the_concept_pool():
    """K <= L is SINE's constraint (K of its L concepts are activated, eq. 2); MIND's K
    capsules and MCPRN's K channels have no concept pool, so --prototypes does not bound them."""
    for name in MODELS:
        assert TrainConfig(model=name, interests=8, prototypes=4).interests == 8
    with pytest.raises(SineError, match=r"--interests \(K=8\) cannot exceed --prototypes \(L=4\)"):
        TrainConfig(model="sine", interests=8, prototypes=4)
