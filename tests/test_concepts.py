"""SINE's concepts made inspectable: the capture rule against a literal transcription and
against the model itself, NMI against its formula, GET /model/concepts through the real
app and `sine inspect` on a small trained bundle."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import sine.concepts as concepts
from service.core.config import Settings
from service.main import create_app
from sine.bundle import read_bundle, write_bundle
from sine.bundle_store import publish
from sine.concepts import analyse, analyse_bundle, normalized_mutual_information, shuffled_nmi
from sine_cli.app import app
from trainer.models.sine import SINE, SINEConfig

runner = CliRunner()


# ----------------------------------------------------------------- literal references


def literal_captures(prototypes: np.ndarray, items: np.ndarray) -> list[int]:
    """Item i goes to argmax_l sum_d C[l, d] x_i[d] (first maximum on ties), in loops."""
    out = []
    for x in items.tolist():
        best, best_score = 0, -math.inf
        for p, c in enumerate(prototypes.tolist()):
            score = sum(cd * xd for cd, xd in zip(c, x, strict=True))
            if score > best_score:
                best, best_score = p, score
        out.append(best)
    return out


def literal_nearest(prototypes: np.ndarray, items: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    out = []
    for c in prototypes.tolist():
        norm_c = math.sqrt(sum(v * v for v in c))
        cosines = []
        for row, x in enumerate(items.tolist()):
            norm_x = math.sqrt(sum(v * v for v in x))
            cosines.append((row, sum(a * b for a, b in zip(c, x, strict=True)) / (norm_c * norm_x)))
        out.append(sorted(cosines, key=lambda rc: (-rc[1], rc[0]))[:k])
    return out


def literal_nmi(a: list, b: list) -> float:
    """I(A;B) = sum_ij p_ij log(p_ij / (p_i p_j)); NMI = I / ((H(A) + H(B)) / 2)."""
    n = len(a)
    pa, pb, pab = Counter(a), Counter(b), Counter(zip(a, b, strict=True))
    mutual = sum(c / n * math.log((c / n) / ((pa[i] / n) * (pb[j] / n))) for (i, j), c in pab.items())
    h_a = -sum(c / n * math.log(c / n) for c in pa.values())
    h_b = -sum(c / n * math.log(c / n) for c in pb.values())
    return mutual / ((h_a + h_b) / 2)


# ----------------------------------------------------------------------- the math


@pytest.mark.parametrize("chunk", [concepts.CHUNK_SCORES, 7 * 5])  # one chunk, and 5 items at a time
def test_captures_and_nearest_items_equal_the_literal_formulas(monkeypatch, chunk):
    monkeypatch.setattr(concepts, "CHUNK_SCORES", chunk)
    rng = np.random.default_rng(4)
    prototypes = (rng.normal(size=(7, 6)) * rng.uniform(0.2, 3, size=(7, 1))).astype(np.float32)
    items = rng.normal(size=(53, 6)).astype(np.float32)
    result = analyse(prototypes, items, nearest=5)
    expected = literal_captures(prototypes, items)
    assert result.assignment.tolist() == expected
    assert result.counts.tolist() == [expected.count(p) for p in range(7)]
    for p, nearest in enumerate(literal_nearest(prototypes, items, 5)):
        assert result.nearest_rows[p].tolist() == [row for row, _ in nearest]
        np.testing.assert_allclose(result.nearest_cosine[p], [cos for _, cos in nearest], rtol=1e-5)
    summary = result.summary()
    shares = [expected.count(p) / 53 for p in range(7) if expected.count(p)]
    assert summary["active_prototypes"] == len(shares)
    assert summary["entropy"] == pytest.approx(-sum(p * math.log(p) for p in shares), abs=1e-6)
    assert summary["entropy_normalized"] == pytest.approx(summary["entropy"] / math.log(7), abs=1e-6)
    assert result.ranked().tolist() == sorted(range(7), key=lambda p: (-expected.count(p), p))


def test_an_item_is_captured_by_the_concept_it_activates_first_alone(tmp_path):
    """The docstring's claim: with one click, eq. (1) pools to x_i and eq. (2)'s top-1
    prototype is argmax <C, x_i>. Checked on the model's own forward pass."""
    torch.manual_seed(0)
    model = SINE(SINEConfig(num_items=40, dim=16, prototypes=12, interests=3)).eval()
    with torch.no_grad():
        model.item_embedding.weight.normal_()  # spread the items so that ties cannot occur
        first = model(torch.arange(1, 41).unsqueeze(1)).extras["concepts"][:, 0].numpy()
    captured = analyse(model.prototypes.detach().numpy(), model.item_embedding.weight[1:].detach().numpy())
    assert captured.assignment.tolist() == first.tolist()


def test_nmi_equals_the_formula_and_its_edge_cases():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a, b = rng.integers(0, 6, 200), rng.integers(0, 4, 200)
        b[:100] = a[:100] % 4  # some shared structure
        assert normalized_mutual_information(a, b) == pytest.approx(literal_nmi(a.tolist(), b.tolist()), abs=1e-12)
    a = rng.integers(0, 5, 50)
    assert normalized_mutual_information(a, (a + 3) * 7) == pytest.approx(1.0)  # renamed labels
    assert normalized_mutual_information(a, np.array([f"g{v}" for v in a])) == pytest.approx(1.0)
    assert normalized_mutual_information(a, np.zeros(50)) == 0.0
    assert normalized_mutual_information(np.zeros(5), np.ones(5)) == 1.0
    draws = shuffled_nmi(a, a, 10, seed=1)
    assert len(set(draws.tolist())) > 1 and draws.max() < 1.0  # same sizes, shuffled members


def planted_categories(frame: pd.DataFrame, items: list[str]) -> np.ndarray:
    category = frame.drop_duplicates("item_id").set_index("item_id")["category"]
    return np.array([str(category[i]) for i in items])


def test_trained_concepts_recover_the_planted_groups_far_above_chance(flat_bundle, synthetic_frame):
    """The end-to-end point of the feature: on a log with planted item groups, the concepts a
    briefly trained SINE captures agree with the groups far more than random assignments of
    the same sizes do."""
    bundle = read_bundle(flat_bundle)
    assignment = analyse_bundle(bundle).assignment
    labels = planted_categories(synthetic_frame.astype({"item_id": str}), bundle.items)
    chance = shuffled_nmi(assignment, labels, 20)
    assert normalized_mutual_information(assignment, labels) > chance.mean() + 0.3


# ----------------------------------------------------------------------- the service


def without_concepts(source, target, model="sine"):
    """The same bundle exported as before concepts.npy existed (or as another model)."""
    b = read_bundle(source)
    return write_bundle(target, model=model, hyperparameters={}, max_len=b.max_len, items=b.items,
                        item_embeddings=b.item_embeddings, popularity=b.popularity,
                        encoder_onnx=b.encoder_path.read_bytes(), sample_queries=b.sample_queries(),
                        data_fingerprint="sha256:x", metrics={}).path


def test_model_concepts_endpoint_lists_the_largest_concepts_computed_once(flat_bundle, monkeypatch):
    import service.recommender

    calls = []

    def counting(bundle):
        calls.append(bundle.version)
        return analyse_bundle(bundle)

    monkeypatch.setattr(service.recommender, "analyse_bundle", counting)
    expected = analyse_bundle(read_bundle(flat_bundle))
    items = read_bundle(flat_bundle).items
    with TestClient(create_app(Settings(bundle=flat_bundle))) as client:
        body = client.get("/model/concepts", params={"top": 5, "nearest": 3}).json()
        again = client.get("/model/concepts").json()
        chosen = client.get("/model/concepts", params=[("id", 3), ("id", 0)]).json()
        assert len(calls) == 1  # once per loaded bundle, not per request
        assert body["summary"] == expected.summary() == again["summary"]
        assert [c["id"] for c in body["concepts"]] == expected.ranked()[:5].tolist()
        assert len(again["concepts"]) == 20  # the default top
        for concept in body["concepts"]:
            assert concept["captured"] == int(expected.counts[concept["id"]])
            assert [n["item_id"] for n in concept["nearest"]] == [
                items[r] for r in expected.nearest_rows[concept["id"], :3]]
            for n in concept["nearest"]:
                assert n["captured"] == (expected.assignment[items.index(n["item_id"])] == concept["id"])
        assert [c["id"] for c in chosen["concepts"]] == [3, 0]
        assert body["model_version"] == read_bundle(flat_bundle).version
        for params, message in [({"top": 0}, "top"), ({"top": 1001}, "top"), ({"nearest": 51}, "nearest"),
                                ({"id": 24}, "no prototype 24: the concept pool has 24 (ids 0..23)")]:
            response = client.get("/model/concepts", params=params)
            assert response.status_code == 422 and message in response.json()["error"], params
        schema = client.get("/openapi.json").json()
        operation = schema["paths"]["/model/concepts"]["get"]
        assert {p["name"] for p in operation["parameters"]} == {"top", "nearest", "id"}
        assert "404" in operation["responses"] and "ConceptsResponse" in schema["components"]["schemas"]


@pytest.mark.parametrize("model, message", [
    ("sine", "this SINE bundle has no concept pool"),
    ("sasrec", "the sasrec model has no concept pool"),
])
def test_model_concepts_is_404_when_the_bundle_has_no_pool(flat_bundle, tmp_path, model, message):
    bundle = without_concepts(flat_bundle, tmp_path / "b", model)
    with TestClient(create_app(Settings(bundle=bundle))) as client:
        assert client.post("/recommend", json={"clicks": [read_bundle(bundle).items[0]]}).status_code == 200
        response = client.get("/model/concepts")
    assert response.status_code == 404
    assert message in response.json()["error"] and str(tmp_path) not in response.json()["error"]


# ---------------------------------------------------------------------------- the CLI


def test_inspect_reports_the_largest_concepts_with_named_items(flat_bundle, trained_run, synthetic_frame,
                                                              tmp_path):
    frame = synthetic_frame.astype({"item_id": str}).drop_duplicates("item_id")
    items_file = tmp_path / "items.csv"
    pd.DataFrame({"item_id": frame["item_id"], "title": "Title of " + frame["item_id"],
                  "categories": "g" + frame["category"].astype(str)}).to_csv(items_file, index=False)
    plot = tmp_path / "concepts.png"
    result = runner.invoke(app, ["inspect", str(flat_bundle), "--top", "3", "--nearest", "4",
                                 "--items-file", str(items_file), "--plot", str(plot)])
    assert result.exit_code == 0, result.output + result.stderr
    bundle = read_bundle(flat_bundle)
    expected = analyse_bundle(bundle)
    summary = expected.summary()
    out = result.output
    assert f"active prototypes: {summary['active_prototypes']} of 24" in out
    heads = [line for line in out.splitlines() if line.startswith("concept ")]
    assert [h.split(":")[0] for h in heads] == [f"concept {c}" for c in expected.ranked()[:3]]
    top = int(expected.ranked()[0])
    assert heads[0].startswith(f"concept {top}: {expected.counts[top]} items")
    assert "genres of its items: g" in heads[0]
    first_item = bundle.items[expected.nearest_rows[top, 0]]
    assert f"{first_item}  Title of {first_item}  [g" in out
    assert sum(1 for line in out.splitlines() if line.startswith("  ")) == 3 * 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from_run = runner.invoke(app, ["inspect", str(trained_run), "--top", "3"])  # same weights
    assert from_run.exit_code == 0, from_run.stderr
    assert f"active prototypes: {summary['active_prototypes']} of 24" in from_run.output
    store = tmp_path / "store"
    publish(store, without_concepts(flat_bundle, store / "v1"))  # a store: its live version is read
    from_store = runner.invoke(app, ["inspect", str(store)])
    assert from_store.exit_code == 2 and "store/v1: this SINE bundle has no concept pool" in from_store.stderr


def test_inspect_errors_are_one_line(flat_bundle, tmp_path, synthetic_csv):
    (tmp_path / "empty").mkdir()
    pop = tmp_path / "pop"
    assert runner.invoke(app, ["train", "-d", str(synthetic_csv), "-o", str(pop), "--model", "pop"]).exit_code == 0
    cases = [
        ([str(tmp_path / "nope")], "no such file or directory"),
        ([str(tmp_path / "empty")], "neither a bundle"),
        ([str(without_concepts(flat_bundle, tmp_path / "old"))], "re-export its run with `sine export`"),
        ([str(without_concepts(flat_bundle, tmp_path / "sasrec", "sasrec"))], "the sasrec model has no concept pool"),
        ([str(pop)], "the pop model has no concept pool"),
        ([str(flat_bundle), "--nearest", "0"], "--nearest must be between 1 and 50"),
        ([str(flat_bundle), "--plot", str(tmp_path / "c.jpg")], "give a .png file name"),
        ([str(flat_bundle), "--items-file", str(tmp_path / "none.csv")], "no such file"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["inspect", *args])
        assert result.exit_code == 2, (args, result.output, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
