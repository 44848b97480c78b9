"""Per-interest encoder outputs, retrieval and explanations (service.interests, issue 12).

The merge rule is compared with a literal, slow transcription of its documented steps;
the encoder's outputs with PyTorch, one by one; the service's answers with the encoder's
outputs and with the item table.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from service import interests
from service.recommender import LoadedModel, Query
from sine.bundle import (
    CONCEPT_IDS,
    ENCODER_OUTPUT,
    INTENTION_ASSIGNMENT,
    INTEREST_OUTPUTS,
    INTEREST_VECTORS,
    INTEREST_WEIGHTS,
    read_bundle,
)
from sine.encoder import OnnxEncoder, prepare_clicks
from tests import sine_reference
from tests.bundles import planted_two_interest_bundle, with_encoder_outputs
from tests.test_service import client_for, sample_sequences
from trainer.export import output_differences, parity_failures
from trainer.run import load_run

# ---------------------------------------------------------------- the merge rule, literally


def literal_apportion(total: int, weights: list[float]) -> list[int]:
    """Largest remainders (Hamilton): floors of the exact shares, then one more slot to each
    of the largest fractional parts, the earlier slot first on a tie."""
    shares = [w / sum(weights) * total for w in weights]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda k: (-(shares[k] - counts[k]), k))
    for k in by_remainder[: total - sum(counts)]:
        counts[k] += 1
    return counts


def literal_merge(rows, scores, shares, excluded, top_n, by_share=1.0) -> list[int]:
    """Module docstring of service.interests, step 3, one candidate at a time (`by_share`
    < 1: only that part of the list divided by the shares, the rest merged by score)."""
    slots = literal_apportion(math.floor(by_share * top_n + 0.5), list(shares))
    chosen: list[int] = []
    for k in sorted(range(len(shares)), key=lambda k: (-shares[k], k)):
        taken_here = 0
        for row in rows[k]:
            if taken_here == slots[k]:
                break
            if row >= 0 and row not in excluded and row not in chosen:
                chosen.append(row)
                taken_here += 1
    candidates = sorted(((scores[k][d], k, d) for k in range(len(rows)) for d in range(len(rows[k]))),
                        key=lambda c: (-c[0], c[1], c[2]))
    for _, k, d in candidates:
        if len(chosen) == top_n:
            break
        row = rows[k][d]
        if row >= 0 and row not in excluded and row not in chosen:
            chosen.append(row)
    return chosen


def literal_shares(weights, assignment, length, diversity) -> list[float]:
    """Step 2: s_k = (1 - d) e_k + d m_k, m_k the mean of P(k|t) over the user's clicks
    (the last `length` rows of the left-padded assignment)."""
    clicks = assignment[len(assignment) - length:]
    return [(1 - diversity) * weights[k] + diversity * sum(row[k] for row in clicks) / length
            for k in range(len(weights))]


@pytest.mark.parametrize("seed", range(40))
def test_apportion_is_largest_remainders(seed):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(rng.integers(1, 9), 0.5))
    total = int(rng.integers(0, 60))
    got = interests.apportion(total, weights.tolist())
    assert got == literal_apportion(total, weights.tolist())
    assert sum(got) == total


@pytest.mark.parametrize("seed", range(60))
def test_merge_follows_the_documented_rule(seed):
    rng = np.random.default_rng(seed)
    k, depth, catalog = int(rng.integers(1, 6)), int(rng.integers(5, 30)), 40
    # per-interest rankings that overlap (shared items), as real interests' do
    scores = -np.sort(-rng.normal(size=(k, depth)).astype(np.float32), axis=1)
    rows = [rng.choice(catalog, depth, replace=False).tolist() for _ in range(k)]
    weights = rng.dirichlet(np.ones(k)).astype(np.float32)
    excluded = set(rng.choice(catalog, int(rng.integers(0, 10)), replace=False).tolist())
    top_n, by_share = int(rng.integers(1, 25)), float(rng.choice([0.0, 0.3, 0.5, 1.0, 1.0, rng.random()]))
    got = interests.merge(rows, scores, weights, excluded, top_n, by_share)
    assert got == literal_merge(rows, scores.tolist(), weights.tolist(), excluded, top_n, by_share)
    assert len(set(got)) == len(got) and not set(got) & excluded


@pytest.mark.parametrize("seed", range(10))
def test_shares_mix_weights_and_click_shares(seed):
    rng = np.random.default_rng(seed)
    batch, width, k = 5, 7, 4
    weights = rng.dirichlet(np.ones(k), batch)
    assignment = rng.dirichlet(np.ones(k), (batch, width))
    lengths = rng.integers(1, width + 1, batch).tolist()
    diversity = rng.random(batch).tolist()
    got = interests.shares_of(weights, assignment, lengths, diversity)
    for j in range(batch):
        expected = literal_shares(weights[j].tolist(), assignment[j].tolist(), lengths[j], diversity[j])
        assert np.allclose(got[j], expected, atol=1e-12)


def test_each_interest_fills_its_slots_and_leftovers_merge_by_score():
    rows = [[0, 1, 2, 3, 4, 5], [10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25]]
    scores = np.array([[9, 8, 7, 6, 5, 4], [3, 2, 1, 0, -1, -2], [2.5, 1.5, 0.5, -0.5, -1.5, -2.5]])
    shares = [0.2, 0.5, 0.3]
    assert interests.merge(rows, scores, shares, set(), 10) == [10, 11, 12, 13, 14, 20, 21, 22, 0, 1]
    # a ranking used up by exclusions: its last slot goes to the best remaining candidate
    assert interests.merge(rows, scores, [0.0, 1.0, 0.0], set(range(11, 16)), 2) == [10, 0]
    assert interests.merge(rows, scores, shares, set(), 8, by_share=0.0) == [0, 1, 2, 3, 4, 5, 10, 20]
    assert interests.merge(rows, scores, shares, {0, 10}, 3, by_share=0.0) == [1, 2, 3]


@pytest.mark.parametrize("seed", range(30))
def test_score_merge_is_the_kn_candidates_sorted_by_score(seed):
    """interest_merge "score" (MIND, SINE-label): a brute-force sort of the K*N candidates,
    each item once at its best score, excluded items and the index's -1 padding dropped."""
    rng = np.random.default_rng(seed)
    k, depth, catalog = int(rng.integers(1, 6)), int(rng.integers(5, 30)), 40
    scores = -np.sort(-rng.normal(size=(k, depth)).astype(np.float32), axis=1)
    rows = [rng.choice(catalog, depth, replace=False).tolist() for _ in range(k)]
    rows[0][-1] = -1  # a short result from the index
    shares = rng.dirichlet(np.ones(k)).tolist()  # ignored by this rule
    excluded = set(rng.choice(catalog, int(rng.integers(0, 10)), replace=False).tolist())
    top_n = int(rng.integers(1, 25))
    got = interests.merge(rows, scores, shares, excluded, top_n, interests.share_of_list("score"))
    rankings = [[(r, float(s)) for r, s in zip(rows[j], scores[j], strict=True) if r >= 0] for j in range(k)]
    assert got == sine_reference.merge_by_score(rankings, top_n, frozenset(excluded))
    assert interests.share_of_list("shares") == 1.0
    with pytest.raises(ValueError, match="interest_merge must be one of"):
        interests.share_of_list("best")


# ---------------------------------------------------------------- encoder outputs, parity


def torch_extras(run, clicks: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = run.encoder(torch.as_tensor(np.array(clicks)))
    extras = {k: v.numpy() for k, v in out.extras.items()}
    return {ENCODER_OUTPUT: out.user_vector.numpy(), INTEREST_VECTORS: extras["interest_vectors"],
            INTEREST_WEIGHTS: extras["interest_weights"], CONCEPT_IDS: extras["concepts"],
            INTENTION_ASSIGNMENT: extras["intention_assignment"]}


@pytest.mark.parametrize("name", [ENCODER_OUTPUT, *INTEREST_OUTPUTS])
def test_each_encoder_output_matches_pytorch(trained_run, flat_bundle, name):
    run, bundle = load_run(trained_run), read_bundle(flat_bundle)
    encoder = OnnxEncoder(bundle.encoder_path)
    assert encoder.outputs == [ENCODER_OUTPUT, *INTEREST_OUTPUTS]
    rng = np.random.default_rng(1)
    batches = [bundle.sample_queries()[:64]]
    batches += [rng.integers(1, bundle.num_items + 1, size=(b, s)) for b in (1, 5) for s in (1, 3, bundle.max_len)]
    for clicks in batches:
        got, expected = encoder.encode_all(clicks)[name], torch_extras(run, clicks)[name]
        assert got.shape == expected.shape
        if name == CONCEPT_IDS:
            assert got.dtype == np.int64 and np.array_equal(got, expected)
        else:
            assert np.abs(got - expected).max() <= 1e-4, clicks.shape


def test_export_parity_ignores_the_order_of_near_tied_slots_but_not_other_concepts():
    rng = np.random.default_rng(0)
    outputs = {ENCODER_OUTPUT: rng.normal(size=(3, 8)), INTEREST_VECTORS: rng.normal(size=(3, 4, 8)),
               INTEREST_WEIGHTS: rng.dirichlet(np.ones(4), 3), CONCEPT_IDS: np.array([[5, 2, 9, 1]] * 3),
               INTENTION_ASSIGNMENT: rng.dirichlet(np.ones(4), (3, 6))}
    swapped = {name: value.copy() for name, value in outputs.items()}
    for name, axis in ((INTEREST_VECTORS, 1), (INTEREST_WEIGHTS, 1), (CONCEPT_IDS, 1), (INTENTION_ASSIGNMENT, 2)):
        index = [slice(None)] * swapped[name].ndim
        index[axis] = [1, 0, 2, 3]
        swapped[name][0] = swapped[name][tuple(index)][0]  # row 0: slots 0 and 1 swapped
    assert parity_failures(output_differences(outputs, swapped)) == []
    other = {name: value.copy() for name, value in outputs.items()}
    other[CONCEPT_IDS][2, 3] = 7
    assert "concept_ids in 1 rows" in parity_failures(output_differences(outputs, other))
    other = {name: value.copy() for name, value in outputs.items()}
    other[INTENTION_ASSIGNMENT][1, 2, 0] += 1e-3
    assert parity_failures(output_differences(outputs, other))[0].startswith("intention_assignment by 1.00e-03")


# ---------------------------------------------------------------- the recommender


@pytest.fixture(scope="module")
def model(flat_bundle) -> LoadedModel:
    return LoadedModel.load(flat_bundle)


def known_clicks(model: LoadedModel, count: int = 6) -> list[list[str]]:
    return [[model.item_list[i - 1] for i in row if i > 0] for row in model.bundle.sample_queries()[:count]]


def test_one_search_for_every_user_and_interest(model, monkeypatch):
    calls = []
    search = model.index.search
    monkeypatch.setattr(model.index, "search", lambda q, k: calls.append(q.shape) or search(q, k))
    users = known_clicks(model, 5)
    queries = [Query(c, top_n=10, retrieval="interests") for c in users]
    queries.insert(2, Query(users[0], top_n=10))  # an aggregate user in the same batch
    queries.append(Query(["unknown"], top_n=3, retrieval="interests"))  # no click: popular items
    answers = model.recommend(queries)
    assert sorted(calls) == [(1, model.bundle.dim), (5 * 4, model.bundle.dim)]
    assert answers[-1].fallback and not any(a.fallback for a in answers[:-1])
    assert all(len(a.item_ids) == q.top_n for a, q in zip(answers, queries, strict=True))


def test_score_merge_answers_the_kn_candidates_sorted_by_score(model):
    for clicks in known_clicks(model):
        (answer,) = model.recommend([Query(clicks, top_n=20, retrieval="interests", interest_merge="score")])
        rows = [model.row_of[i] for i in clicks][-model.max_len:]
        outputs = model.encoder.encode_all(prepare_clicks([[r + 1 for r in rows]], model.max_len))
        products = model.index.items @ outputs[INTEREST_VECTORS][0].T  # [M, K]
        rankings = [sorted(enumerate(products[:, k].tolist()), key=lambda p: -p[1])
                    for k in range(products.shape[1])]
        clicked = frozenset(model.row_of[i] for i in clicks)
        expected = sine_reference.merge_by_score(rankings, 20, clicked)
        assert [model.row_of[i] for i in answer.item_ids] == expected
        assert np.allclose(answer.scores, products[expected].max(axis=1), atol=1e-5)


def test_interest_scores_are_best_inner_products_and_clicks_never_return(model):
    for clicks in known_clicks(model):
        (answer,) = model.recommend([Query(clicks, top_n=30, retrieval="interests", interest_diversity=0.7)])
        rows = [model.row_of[i] for i in clicks][-model.max_len:]
        outputs = model.encoder.encode_all(prepare_clicks([[r + 1 for r in rows]], model.max_len))
        products = model.index.items @ outputs[INTEREST_VECTORS][0].T  # [M, K]
        got = [model.row_of[i] for i in answer.item_ids]
        assert np.allclose(answer.scores, products[got].max(axis=1), atol=1e-5)
        assert answer.scores == sorted(answer.scores, reverse=True)
        assert len(got) == 30 and not set(answer.item_ids) & set(clicks)


def test_explanation_agrees_with_the_encoder_outputs(model):
    users = [["unknown-id", *clicks] for clicks in known_clicks(model, 8)]
    assert len({len(u) for u in users}) > 1  # one batch, padded to its longest row
    for retrieval in ("aggregate", "interests"):
        answers = model.recommend([Query(c, top_n=12, retrieval=retrieval, explain=True) for c in users])
        for clicks, answer in zip(users, answers, strict=True):
            seen = clicks[1:][-model.max_len:]
            outputs = model.encoder.encode_all(
                prepare_clicks([[model.row_of[i] + 1 for i in seen]], model.max_len))
            explanation = answer.explanation
            owner = outputs[INTENTION_ASSIGNMENT][0].argmax(axis=1)
            for k, interest in enumerate(explanation.interests):
                assert interest.index == k
                assert interest.concept_id == outputs[CONCEPT_IDS][0, k]
                assert interest.weight == pytest.approx(float(outputs[INTEREST_WEIGHTS][0, k]), abs=1e-5)
                assert interest.clicks == [c for c, o in zip(seen, owner, strict=True) if o == k]
            assert sorted(c for i in explanation.interests for c in i.clicks) == sorted(seen)
            products = model.index.items[[model.row_of[i] for i in answer.item_ids]] @ outputs[INTEREST_VECTORS][0].T
            assert explanation.item_interest == products.argmax(axis=1).tolist()
            assert explanation.item_concept == [int(outputs[CONCEPT_IDS][0, k]) for k in products.argmax(axis=1)]
            assert np.allclose(explanation.item_score, products.max(axis=1), atol=1e-5)


# ---------------------------------------------------------------- through the app


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_two_interest_bundle(tmp_path_factory.mktemp("planted") / "bundle")


@pytest.fixture(scope="module")
def legacy_bundles(tmp_path_factory, planted):
    root = tmp_path_factory.mktemp("legacy")
    return {"baseline": with_encoder_outputs(planted[0], root / "baseline", (ENCODER_OUTPUT,)),
            "sine-before": with_encoder_outputs(planted[0], root / "sine-before",
                                                (ENCODER_OUTPUT, INTEREST_VECTORS, INTEREST_WEIGHTS))}


@pytest.fixture(scope="module")
def client(flat_bundle):
    with client_for(flat_bundle) as c:
        yield c


def post(client, body, path="/recommend"):
    response = client.post(path, json=body)
    return response.status_code, response.json()


def test_a_user_of_two_planted_groups_gets_both_only_under_interests(planted):
    path, group = planted
    clicks = ["b3", "b7", *(f"a{i}" for i in range(7))]  # 2 clicks in B, then 7 in A
    with client_for(path) as client:
        _, aggregate = post(client, {"clicks": clicks, "top_n": 10})
        _, mixed = post(client, {"clicks": clicks, "top_n": 10, "retrieval": "interests", "explain": True})
        by_diversity = {d: post(client, {"clicks": clicks, "top_n": 10, "retrieval": "interests",
                                         "interest_diversity": d})[1] for d in (0.0, 1.0)}
    assert {group[i["item_id"]] for i in aggregate["items"]} == {"A"}
    got = [group[i["item_id"]] for i in mixed["items"]]
    assert got.count("B") >= 1 and got.count("A") >= 5, got
    # e = (1.00, 0.00): by the weights alone, the list is the aggregate's; by the click shares
    # m = (0.71, 0.29) (P(k|t) = 0.88 for a click's own group): 7 A and 3 B
    assert [i["item_id"] for i in by_diversity[0.0]["items"]] == [i["item_id"] for i in aggregate["items"]]
    assert sorted(group[i["item_id"]] for i in by_diversity[1.0]["items"]) == ["A"] * 7 + ["B"] * 3
    # the explanation: one interest per group, each with its own clicks, and each item's interest
    by_slot = {i["index"]: i for i in mixed["interests"]}
    assert by_slot[0]["clicks"] == [f"a{i}" for i in range(7)] and by_slot[1]["clicks"] == ["b3", "b7"]
    assert (by_slot[0]["concept_id"], by_slot[1]["concept_id"]) == (0, 1)
    assert by_slot[0]["weight"] > 0.99  # eq. (7) predicts the majority group next
    for item in mixed["items"]:
        assert item["interest"]["index"] == (0 if group[item["item_id"]] == "A" else 1)
        assert item["interest"]["score"] == pytest.approx(item["score"])


def test_the_model_says_which_outputs_its_encoder_has(planted, legacy_bundles):
    before = [ENCODER_OUTPUT, INTEREST_VECTORS, INTEREST_WEIGHTS]  # a SINE export of an earlier release
    expected = {
        planted[0]: {"outputs": [ENCODER_OUTPUT, *INTEREST_OUTPUTS], "retrieval": ["aggregate", "interests"],
                      "explain": True, "default_retrieval": "aggregate", "default_interest_merge": "shares"},
        legacy_bundles["baseline"]: {"outputs": [ENCODER_OUTPUT], "retrieval": ["aggregate"], "explain": False,
                                     "default_retrieval": "aggregate", "default_interest_merge": "shares"},
        # the quotas are divided by click shares, which need P(k|t): "interests" needs a re-export too
        legacy_bundles["sine-before"]: {"outputs": before, "retrieval": ["aggregate"], "explain": False,
                                        "default_retrieval": "aggregate", "default_interest_merge": "shares"},
    }
    for path, encoder in expected.items():
        with client_for(path) as client:
            assert client.get("/model").json()["encoder"] == encoder


def test_older_bundles_serve_aggregate_and_refuse_what_they_cannot_answer(legacy_bundles):
    clicks = ["a1", "b2", "a3"]
    for path in legacy_bundles.values():
        with client_for(path) as client:
            status, body = post(client, {"clicks": clicks, "top_n": 5})
            assert status == 200 and len(body["items"]) == 5 and "interests" not in body
            status, body = post(client, {"clicks": clicks, "explain": True})
            assert status == 422 and "explain needs the encoder outputs" in body["error"]
            assert "intention_assignment" in body["error"] and "sine export" in body["error"], body
            assert "(SINE, MIND or MCPRN)" in body["error"], body  # every model that has them
            status, body = post(client, {"requests": [{"clicks": clicks},
                                                      {"clicks": clicks, "retrieval": "interests"}]},
                                "/recommend/batch")
            assert status == 422 and body["error"].startswith('requests[1]: retrieval "interests" needs')
            assert "GET /model" in body["error"]


def test_bad_options_are_refused_with_what_to_fix(client, flat_bundle):
    clicks = sample_sequences(flat_bundle, 1)[0]
    cases = [({"retrieval": "both"}, "retrieval: Input should be 'aggregate' or 'interests'"),
             ({"retrieval": "interests", "interest_diversity": 1.5},
              "interest_diversity: Input should be less than or equal to 1"),
             ({"retrieval": "interests", "interest_diversity": -0.1},
              "interest_diversity: Input should be greater than or equal to 0"),
             ({"interest_diversity": 0.3}, 'interest_diversity applies to retrieval "interests" only'),
             ({"interest_merge": "score"}, 'interest_merge applies to retrieval "interests" only'),
             ({"retrieval": "interests", "interest_merge": "best"},
              "interest_merge: Input should be 'shares' or 'score'"),
             ({"retrieval": "interests", "interest_merge": "score", "interest_diversity": 0.3},
              'interest_diversity does not apply to interest_merge "score"'),
             ({"explain": "maybe"}, "explain: Input should be a valid boolean")]
    for extra, message in cases:
        status, body = post(client, {"clicks": clicks, **extra})
        assert status == 422 and message in body["error"], (extra, body)
    status, body = post(client, {"requests": [{"clicks": clicks}, {"clicks": clicks, "interest_diversity": 0.2}]},
                        "/recommend/batch")
    # (retrieval unset: the live model's default, "aggregate" here, checked by the route)
    assert status == 422 and "requests[1]" in body["error"] and "interest_diversity applies" in body["error"]


def test_interests_and_explanations_in_a_batch_equal_one_by_one(client, flat_bundle):
    sequences = sample_sequences(flat_bundle, 4)
    requests = [{"clicks": c, "top_n": 8, "retrieval": r, "explain": e}
                for c, (r, e) in zip(sequences, [("interests", True), ("aggregate", True),
                                                 ("interests", False), ("aggregate", False)], strict=True)]
    requests.append({"clicks": ["unknown"], "top_n": 3, "retrieval": "interests", "explain": True})
    status, batch = post(client, {"requests": requests}, "/recommend/batch")
    assert status == 200
    for together, request in zip(batch["results"], requests, strict=True):
        alone = post(client, request)[1]
        assert [i["item_id"] for i in together["items"]] == [i["item_id"] for i in alone["items"]]
        assert ("interests" in together) == request["explain"] == ("interests" in alone)
        if request["explain"]:
            assert [i["clicks"] for i in together["interests"]] == [i["clicks"] for i in alone["interests"]]
            assert [i["interest"] and i["interest"]["index"] for i in together["items"]] == \
                [i["interest"] and i["interest"]["index"] for i in alone["items"]]
    fallback = batch["results"][-1]
    assert fallback["fallback"] and fallback["interests"] == []
    assert all(item["interest"] is None for item in fallback["items"])


def test_openapi_documents_retrieval_and_explanations(client):
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["RecommendRequest"]
    for field in ("retrieval", "interest_diversity", "interest_merge", "explain"):
        assert len(request["properties"][field]["description"]) > 80, field
    assert request["properties"]["interest_merge"]["enum"] == ["shares", "score"]
    assert "K*N" in request["properties"]["interest_merge"]["description"]
    retrieval = request["properties"]["retrieval"]  # nullable: unset is the model's default
    assert next(a["enum"] for a in retrieval["anyOf"] if "enum" in a) == ["aggregate", "interests"]
    assert any(e.get("retrieval") == "interests" and e.get("explain") for e in request["examples"])
    body = schema["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "retrieval" in body["properties"]
    response = schema["components"]["schemas"]["RecommendResponse"]
    assert "interests" in response["properties"] and response["examples"][0]["interests"]
    assert "interest" in schema["components"]["schemas"]["ScoredItem"]["properties"]
    for name in ("UserInterest", "ItemInterest"):
        fields = schema["components"]["schemas"][name]["properties"]
        assert all(f.get("description") for f in fields.values()), name


def test_the_demo_shows_a_planted_user_under_both_modes(synthetic_frame, model, capsys):
    from sine_cli.demo import planted_user, show_multi_interest_user

    group = dict(zip(synthetic_frame["item_id"], synthetic_frame["category"], strict=True))
    clicks = planted_user(synthetic_frame, group)
    assert sorted(Counter(group[i] for i in clicks).values()) == [1, 2, 7]
    show_multi_interest_user(model, synthetic_frame, group)
    out = capsys.readouterr().out
    assert "retrieval 'aggregate'" in out and "retrieval 'interests'" in out
    assert out.count("  interest ") == 4 and "mean cosine between its 4 interest vectors" in out


@pytest.mark.parametrize("body, expected", [
    ({}, ("interests", "score")),  # all from the model (a MIND or SINE-label bundle)
    ({"retrieval": "interests"}, ("interests", "score")),
    ({"retrieval": "interests", "interest_merge": "shares"}, ("interests", "shares")),
    ({"retrieval": "interests", "interest_diversity": 0.3}, ("interests", "shares")),  # a shares parameter
    ({"interest_diversity": 0.3}, ("interests", "shares")),
])
def test_unset_retrieval_and_merge_are_the_models_defaults(body, expected):
    from types import SimpleNamespace

    from service.api.routes.recommend import check_outputs
    from service.schemas import RecommendRequest

    model = SimpleNamespace(default_retrieval="interests", default_interest_merge="score",
                            missing_outputs=lambda retrieval, explain: [])
    request = RecommendRequest.model_validate({"clicks": ["a"], **body})
    check_outputs(request, model)
    assert (request.retrieval, request.interest_merge) == expected
