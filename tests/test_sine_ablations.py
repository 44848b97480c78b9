"""The paper's Table 6 ablations (section 4.5) against literal transcriptions.

SINE-label: MIND's label-aware attention in the training loss, and the K*N per-interest
candidates merged by score at evaluation. SINE-cate: the concept pool is the item
categories (each row the mean embedding of a category's items), fixed in definition
through training. Both are off by default, and the default model is unchanged by them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sine.errors import SineError
from tests import sine_reference as ref
from tests.test_sine_equations import TOLERANCE, random_sine
from trainer.config import TrainConfig
from trainer.fit import train_step
from trainer.loss import full_softmax_loss
from trainer.models.sine import SINEConfig


@pytest.fixture(scope="module")
def clicks() -> torch.Tensor:
    return ref.padded_clicks()


TARGETS = torch.tensor([3, 30, 7, 7, 12, 1])


def label_model(power: int, seed: int = 0):
    model = random_sine("cosine", 0.5, 1.0, seed=seed, label_aware=True, label_power=power)
    with torch.no_grad():  # dot products phi^k . h of order 1: pow(., p) leaves softmax unsaturated
        model.item_embedding.weight.mul_(0.25)
    return model


def literal_label_vectors(model, clicks, targets) -> torch.Tensor:
    w = ref.weights_of(model)
    rows = []
    for row, target in zip(clicks.tolist(), targets.tolist(), strict=True):
        phi = ref.forward_user(w, [c for c in row if c > 0])["interest_vectors"]
        rows.append(ref.label_aware_vector(phi, w.H[target], model.config.label_power))
    return torch.stack(rows)


# ------------------------------------------------------------------------------ SINE-label


@pytest.mark.parametrize("power", [1, 2, 3])
def test_label_aware_vector_equals_mind_attention_literally(power, clicks):
    model = label_model(power)
    out = model(clicks)
    expected = literal_label_vectors(model, clicks, TARGETS)
    torch.testing.assert_close(model.training_vector(out, TARGETS), expected, rtol=TOLERANCE, atol=TOLERANCE)
    # not blind: the label's attention is neither one-hot nor uniform over the interests
    phi, h = out.extras["interest_vectors"], model.item_table()[TARGETS]
    attention = torch.softmax((phi @ h.unsqueeze(-1)).squeeze(-1).pow(power), dim=-1)
    assert attention.max() < 0.99 and (attention.max(-1).values > 0.4).any()


def test_the_training_loss_scores_the_catalog_with_the_label_aware_vector(clicks):
    model = label_model(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, optimizer, full_softmax_loss, clicks, TARGETS, bf16=False).item()
    H = model.item_table().detach()
    expected = ref.full_softmax_loss(H, literal_label_vectors(model, clicks, TARGETS), TARGETS.tolist())
    expected += model.regularization().item()
    assert loss == pytest.approx(expected, rel=1e-9)
    plain = ref.full_softmax_loss(H, model(clicks).user_vector.detach(), TARGETS.tolist())
    assert abs(plain + model.regularization().item() - loss) > 1e-5  # far above rel=1e-9: eq. (8) differs


def test_label_aware_scores_are_the_kn_candidates_merged_by_score(clicks):
    model = label_model(1)
    top_n = 5
    scores = model.score_items(model(clicks))  # [B, M + 1]
    phi = model(clicks).extras["interest_vectors"].detach()
    H = model.item_table().detach()
    for b in range(len(clicks)):
        rankings = []
        for k in range(model.config.interests):  # N candidates from each interest, by phi^k . H_i
            products = [(i, float(torch.dot(phi[b, k], H[i]))) for i in range(1, len(H))]
            rankings.append(sorted(products, key=lambda p: -p[1])[:top_n])
        got = torch.topk(scores[b, 1:], top_n).indices + 1
        assert got.tolist() == ref.merge_by_score(rankings, top_n), f"user {b}"


def test_defaults_are_unchanged_by_the_ablation_options(clicks):
    assert not SINEConfig(num_items=3).label_aware and SINEConfig(num_items=3).category_pairs == 0
    config = TrainConfig()
    assert not config.label_aware and config.prototypes_from is None and config.attributes is None
    model = random_sine("cosine", 0.5, 1.0)
    out = model(clicks)
    assert torch.equal(model.training_vector(out, TARGETS), out.user_vector)
    torch.testing.assert_close(model.score_items(out), out.user_vector @ model.item_table().T)


# ------------------------------------------------------------------------------ SINE-cate

LABELS = {i: sorted({i % 5, (i * 7) % 5}) for i in range(1, 31)}  # item -> 1 or 2 of 5 categories


def cate_model():
    pairs = [(item, c) for item, cats in LABELS.items() for c in cats]
    model = random_sine("cosine", 0.5, 1.0, prototypes=5, category_pairs=len(pairs), reg_weight=0.5)
    model.set_categories(torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]))
    return model


def test_category_prototypes_are_the_category_means_and_the_forward_pass_uses_them(clicks):
    model = cate_model()
    assert model.prototypes is None and "prototypes" not in dict(model.named_parameters())
    H = model.item_embedding.weight.detach()
    C = ref.category_pool(H, LABELS, 5)
    torch.testing.assert_close(model.concept_pool(), C, rtol=TOLERANCE, atol=TOLERANCE)
    w = ref.weights_of(model, C=C)
    out = model(clicks)
    for b, row in enumerate(clicks.tolist()):
        expected = ref.forward_user(w, [c for c in row if c > 0])
        torch.testing.assert_close(out.user_vector[b], expected["user_vector"], rtol=TOLERANCE, atol=TOLERANCE)
        assert out.extras["concepts"][b].tolist() == expected["concepts"]
    assert model.regularization().item() == 0.0  # no learned prototypes to decorrelate


def test_category_prototypes_stay_the_category_definition_through_training(clicks):
    model = cate_model()
    before = {name: buf.clone() for name, buf in model.named_buffers()}
    H0 = model.item_embedding.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(3):
        train_step(model, optimizer, full_softmax_loss, clicks, TARGETS, bf16=False)
    H = model.item_embedding.weight.detach()
    assert (H - H0).abs().max() > 1e-3  # the items moved ...
    for name, buf in model.named_buffers():  # ... the categories did not
        assert torch.equal(buf, before[name]), name
    torch.testing.assert_close(model.concept_pool(), ref.category_pool(H, LABELS, 5),
                               rtol=TOLERANCE, atol=TOLERANCE)


def test_set_categories_refuses_an_empty_category():
    model = random_sine("cosine", 0.5, 1.0, prototypes=4, category_pairs=3)
    with pytest.raises(ValueError, match="needs at least one item"):
        model.set_categories(torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2]))


def test_categories_come_from_the_attribute_file(tmp_path):
    from trainer.run import category_pairs

    path = tmp_path / "items.csv"
    path.write_text("item_id,genre,brand\na,x|y,p\nb,y,p\nc,,q\nd,z,q\n")
    config = TrainConfig(interests=2, prototypes_from="genre", attributes=str(path))
    rows, cats, names = category_pairs(config, ["a", "b", "c"])  # d is not in the catalog
    assert names == ["x", "y"]  # z labels no catalog item: no prototype
    assert sorted(zip(rows.tolist(), [names[c] for c in cats], strict=True)) == [(1, "x"), (1, "y"), (2, "y")]
    with pytest.raises(SineError, match="no attribute 'colour'.*brand, genre"):
        category_pairs(TrainConfig(interests=2, prototypes_from="colour", attributes=str(path)), ["a"])
    with pytest.raises(SineError, match="fewer than --interests"):
        category_pairs(TrainConfig(interests=3, prototypes_from="genre", attributes=str(path)), ["a", "b"])
    with pytest.raises(SineError, match="needs --attributes"):
        TrainConfig(prototypes_from="genre")
    with pytest.raises(SineError, match="options of --model sine"):
        TrainConfig(model="sasrec", label_aware=True)


def test_a_sine_cate_run_reloads_with_its_categories(tmp_path, synthetic_csv, attributes_csv):
    from trainer.run import load_run, train_run

    config = TrainConfig(model="sine", dim=8, interests=3, epochs=1, batch_size=256, seed=0,
                         prototypes_from="category", attributes=str(attributes_csv), threads=1)
    train_run(synthetic_csv, tmp_path / "run", config)
    run = load_run(tmp_path / "run")
    frame = __import__("pandas").read_csv(attributes_csv, dtype=str)
    names = sorted(frame["category"].unique())
    assert run.info["categories"] == names and run.encoder.config.prototypes == len(names)
    assert run.config.prototypes == len(names)  # the recorded L (config.json, a bundle's "training")
    assert run.metrics["variant"] == "SINE-cate"  # metrics.json, and sine train's summary, name it
    labels = {run.vocabulary.index_of(item): [names.index(c)]
              for item, c in zip(frame["item_id"], frame["category"], strict=True)
              if run.vocabulary.index_of(item) > 0}
    H = run.encoder.item_embedding.weight.detach()
    torch.testing.assert_close(run.encoder.concept_pool(), ref.category_pool(H, labels, len(names)))
    assert np.isfinite(run.metrics["test"]["hr@10"])


def test_cli_takes_the_ablation_options_as_text_and_explains_what_is_missing(tmp_path):
    """`--prototypes-from` (and `--init-from`) default to None: their type comes from the
    annotation (`str | None`), not from the default (it once parsed them as numbers)."""
    from typer.testing import CliRunner

    from sine_cli.app import app

    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3\n")
    result = CliRunner().invoke(app, ["train", "-d", str(log), "-o", str(tmp_path / "run"),
                                      "--prototypes-from", "categories"])
    assert result.exit_code == 2 and "--prototypes-from needs --attributes FILE" in result.output, result.output
    result = CliRunner().invoke(app, ["train", "-d", str(log), "-o", str(tmp_path / "run"),
                                      "--label-aware", "--model", "sasrec"])
    assert result.exit_code == 2 and "options of --model sine" in result.output, result.output


def test_a_warm_started_sine_cate_run_keeps_its_own_categories(tmp_path):
    """Warm start copies weights, never the old run's categories (same shapes, other labels)."""
    from sine.data.synthetic import SyntheticSpec, synthetic_items, synthetic_log
    from trainer.run import category_pairs, load_run, train_run

    spec = SyntheticSpec(num_users=80, num_items=40, num_groups=5, seed=2)
    log = tmp_path / "log.csv"
    synthetic_log(spec).to_csv(log, index=False)
    items = synthetic_items(spec)
    items.to_csv(tmp_path / "items.csv", index=False)
    names = sorted(items["category"].unique())
    items["category"] = items["category"].map(dict(zip(names, names[1:] + names[:1], strict=True)))
    items.to_csv(tmp_path / "relabelled.csv", index=False)
    options = {"model": "sine", "dim": 8, "interests": 3, "epochs": 1, "batch_size": 256, "threads": 1,
               "max_len": 5, "prototypes_from": "category"}
    train_run(log, tmp_path / "old", TrainConfig(**options, attributes=str(tmp_path / "items.csv")))
    config = TrainConfig(**options, attributes=str(tmp_path / "relabelled.csv"), init_from=str(tmp_path / "old"))
    train_run(log, tmp_path / "new", config)
    new = load_run(tmp_path / "new")
    rows, cats, _ = category_pairs(config, new.vocabulary.ids)
    assert new.encoder.category_items.tolist() == rows.tolist()
    assert new.encoder.category_ids.tolist() == cats.tolist()
    old = load_run(tmp_path / "old").encoder
    assert old.category_items.shape == new.encoder.category_items.shape  # the case that could copy
    assert old.category_ids.tolist() != new.encoder.category_ids.tolist()


def test_a_sine_label_bundle_is_served_as_it_is_evaluated():
    """SINE-label's eq. (8) vector is never trained: its bundle defaults to the K*N merge by
    score (what `score_items` evaluates), plain SINE to the aggregate vector."""
    from trainer.export import retrieval_section

    assert retrieval_section(TrainConfig(model="sine", label_aware=True)) == {
        "default_retrieval": "interests", "default_interest_merge": "score"}
    assert retrieval_section(TrainConfig(model="sine")) == {}
    assert retrieval_section(TrainConfig(model="mind"))["default_interest_merge"] == "score"


# ------------------------------------------------------------------- the variant, named


def test_the_variant_is_named_from_the_training_configuration():
    from sine.bundle import model_variant

    assert model_variant("sine", TrainConfig(model="sine").to_dict()) == "SINE"
    assert model_variant("sine", TrainConfig(model="sine", label_aware=True).to_dict()) == "SINE-label"
    cate = TrainConfig(model="sine", prototypes_from="category", attributes="items.csv")
    assert model_variant("sine", cate.to_dict()) == "SINE-cate"
    assert model_variant("sine", {"label_aware": True, "prototypes_from": "genre"}) == "SINE-label+cate"
    assert model_variant("sine", None) == "SINE"  # a manifest without its training section
    assert model_variant("mind", TrainConfig(model="mind").to_dict()) == "mind"


# Prototype 0 (Drama) has the largest norm and captures items of other labels: captured is
# not labelled. "Action" labels an item but no prototype; the pool's order is not the
# attribute's sorted order (Action, Comedy, Drama, Horror), so labels map by name.
HAND_LABELS = ["Drama", "Comedy", "Horror"]
HAND_PROTOTYPES = np.array([[10.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
HAND_ITEMS = [  # (vector, labels, the prototype that captures it: largest inner product)
    ((1.0, 0.1), "Drama", 0),  # Drama captured by Drama
    ((0.2, 1.0), "Comedy", 0),  # 2.0 beats Comedy's 1.0: Drama's norm wins
    ((0.05, 1.0), "Comedy", 1),
    ((-1.0, 0.2), "Horror", 2),
    ((0.3, 0.5), "Comedy|Horror", 0),  # captured by neither of its own labels
    ((-0.1, 1.0), "Drama|Comedy", 1),  # captured by one of its own labels
    ((-1.0, -1.0), "", 2),  # no label
    ((0.5, 0.0), "Action", 0),  # no label of the pool
]


def hand_made_cate():
    from sine import attributes as item_attributes
    from sine.concepts import analyse

    ids = [f"i{r}" for r in range(len(HAND_ITEMS))]
    table = {"genre": {i: tuple(labels.split("|")) for i, (_, labels, _) in zip(ids, HAND_ITEMS, strict=True)
                       if labels}}
    column = item_attributes.align(table, ids).columns["genre"]
    vectors = np.array([v for v, _, _ in HAND_ITEMS], np.float32)
    return ids, vectors, column, analyse(HAND_PROTOTYPES, vectors, labels=HAND_LABELS, label_column=column)


def test_sine_cate_concepts_count_the_items_of_their_label_beside_those_they_capture():
    """captured (argmax <C_l, x_i>), labelled (items carrying label l) and their agreement,
    counted by hand on the table above."""
    from sine.concepts import analyse

    ids, vectors, column, analysis = hand_made_cate()
    assert column.values == ["Action", "Comedy", "Drama", "Horror"]
    assert analysis.assignment.tolist() == [captor for _, _, captor in HAND_ITEMS]
    assert analysis.counts.tolist() == [4, 2, 2]  # Drama: i0 i1 i4 i7; Comedy: i2 i5; Horror: i3 i6
    assert analysis.agreement.labelled.tolist() == [2, 4, 2]  # Drama: i0 i5; Comedy: i1 i2 i4 i5; Horror: i3 i4
    assert analysis.agreement.captured_labelled.tolist() == [1, 2, 1]  # i0; i2 i5; i3
    summary = analysis.summary()
    # 6 items carry a pool label (not i6, i7); 4 of them (i0 i2 i3 i5) are captured by one of theirs
    assert summary["labelled_items"] == 6 and summary["captured_by_own_label"] == round(4 / 6, 6)
    drama = analysis.concept(0, ids, nearest=1, labels=HAND_LABELS)
    assert (drama["label"], drama["captured"], drama["labelled"], drama["captured_labelled"]) == ("Drama", 4, 2, 1)

    unknown = analyse(HAND_PROTOTYPES, vectors, labels=["Western", "Noir", "Musical"], label_column=column)
    assert unknown.agreement.labelled.tolist() == [0, 0, 0]  # no item carries a pool label:
    assert unknown.summary()["captured_by_own_label"] is None  # no share, not a share of 0

    plain = analyse(HAND_PROTOTYPES, vectors)  # no labels (plain SINE): nothing added
    assert plain.agreement is None
    assert not {"labelled_items", "captured_by_own_label"} & set(plain.summary())
    assert not {"labelled", "captured_labelled"} & set(plain.concept(0, ids, nearest=1))
    # labels without the attribute (a bundle exported without item_attributes.json): omitted
    assert analyse(HAND_PROTOTYPES, vectors, labels=HAND_LABELS).agreement is None


def test_inspect_explains_captured_and_labelled_once_for_sine_cate():
    from sine.concepts import analyse
    from sine_cli.concepts_report import ConceptSource, report

    ids, vectors, column, analysis = hand_made_cate()
    source = ConceptSource("bundle hand", "SINE-cate", HAND_PROTOTYPES, vectors, ids, HAND_LABELS, "genre", column)
    text = report(source, analysis, top=3, nearest=1)
    assert text.count("items = captured: the capture rule above") == 1 and "(the category's size)" in text
    assert "captured by a prototype of one of their own labels: 66.7% of the 6 labelled items" in text
    assert "concept 0 [genre=Drama]: 4 items (50.0%), labelled 2, captured and labelled 1, |C| 10.000" in text
    assert "concept 1 [genre=Comedy]: 2 items (25.0%), labelled 4, captured and labelled 2," in text
    missing = ConceptSource("bundle hand", "SINE-cate", HAND_PROTOTYPES, vectors, ids, HAND_LABELS, "genre",
                            no_label_column="the bundle carries no item attributes")
    text = report(missing, analyse(HAND_PROTOTYPES, vectors, labels=HAND_LABELS), top=3, nearest=1)
    assert text.count("labelled counts not shown: the bundle carries no item attributes") == 1
    assert "labelled 2" not in text and "own labels" not in text


def test_a_sine_cate_bundle_names_its_variant_and_each_concepts_label(tmp_path, synthetic_csv,
                                                                      attributes_csv):
    """`sine inspect` and GET /model(/concepts) say SINE-cate and which label each prototype
    is the mean of (the run's categories, carried into the bundle as concept_labels.json)."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from service.core.config import Settings
    from service.main import create_app
    from sine.bundle import CONCEPT_LABELS, read_bundle
    from sine.concepts import analyse_bundle
    from sine_cli.app import app
    from trainer.export import export_bundle
    from trainer.run import load_run, train_run

    config = TrainConfig(model="sine", dim=8, interests=3, epochs=1, batch_size=256, seed=0,
                         prototypes_from="category", attributes=str(attributes_csv), threads=1)
    train_run(synthetic_csv, tmp_path / "run", config)
    names = load_run(tmp_path / "run").info["categories"]
    bundle = export_bundle(tmp_path / "run", tmp_path / "bundle")
    assert bundle.concept_labels == names and CONCEPT_LABELS in bundle.manifest["files"]
    assert len(names) == len(bundle.concepts) == 12

    for source in (tmp_path / "bundle", tmp_path / "run"):
        result = CliRunner().invoke(app, ["inspect", str(source), "--top", "12", "--nearest", "1"])
        assert result.exit_code == 0, result.output + result.stderr
        assert "(SINE-cate: L=12 prototypes" in result.output
        heads = [line for line in result.output.splitlines() if line.startswith("concept ")]
        assert len(heads) == 12
        for head in heads:
            concept_id = int(head.split()[1])
            assert head.startswith(f"concept {concept_id} [category={names[concept_id]}]: "), head
        # train_run kept no item attributes beside the run, so neither run nor bundle has them
        assert result.output.count("labelled counts not shown: the ") == 1, result.output
        assert "captured and labelled" not in result.output

    with TestClient(create_app(Settings(bundle=tmp_path / "bundle"))) as client:
        assert client.get("/model").json()["variant"] == "SINE-cate"
        body = client.get("/model/concepts", params={"top": 12}).json()
        concepts = body["concepts"]
        assert sorted(c["id"] for c in concepts) == list(range(12))
        assert all(c["label"] == names[c["id"]] for c in concepts)
        assert all("labelled" not in c for c in concepts) and "label_rule" not in body
        assert "captured_by_own_label" not in body["summary"]

    # exported with the attributes: each concept counts its category's items, checked against the file
    frame = __import__("pandas").read_csv(attributes_csv, dtype=str).set_index("item_id")["category"]
    with_attributes = export_bundle(tmp_path / "run", tmp_path / "attributed", attributes=attributes_csv)
    category = [frame[item] for item in with_attributes.items]
    captor = [names[c] for c in analyse_bundle(with_attributes).assignment]
    with TestClient(create_app(Settings(bundle=with_attributes.path))) as client:
        body = client.get("/model/concepts", params={"top": 12}).json()
    assert "labelled" in body["label_rule"]
    for c in body["concepts"]:
        assert c["labelled"] == category.count(c["label"])
        assert c["captured_labelled"] == sum(1 for x, y in zip(captor, category, strict=True) if x == y == c["label"])
    agree = sum(1 for x, y in zip(captor, category, strict=True) if x == y)
    assert body["summary"]["labelled_items"] == len(category)  # every item has its one category
    assert body["summary"]["captured_by_own_label"] == round(agree / len(category), 6)
    # `sine train --attributes` keeps them beside the run: inspecting the run then counts them too
    from sine.attributes import read_attribute_file
    from sine_cli.app import _save_run_attributes

    _save_run_attributes(tmp_path / "run", read_attribute_file(attributes_csv))
    for source in (with_attributes.path, tmp_path / "run"):
        result = CliRunner().invoke(app, ["inspect", str(source), "--top", "12", "--nearest", "1"])
        assert result.exit_code == 0 and "labelled counts not shown" not in result.output, result.output
        assert f"{agree / len(category):.1%} of the {len(category):,} labelled items" in result.output

    # a bundle without the labels (exported before they were carried) loads and is served
    (tmp_path / "bundle" / CONCEPT_LABELS).unlink()
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    del manifest["files"][CONCEPT_LABELS]
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    assert read_bundle(tmp_path / "bundle").concept_labels is None
    with TestClient(create_app(Settings(bundle=tmp_path / "bundle"))) as client:
        assert all("label" not in c for c in client.get("/model/concepts").json()["concepts"])


def test_plain_and_label_aware_sine_are_named_by_get_model(flat_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from service.core.config import Settings
    from service.main import create_app
    from sine.bundle import add_to_bundle, read_bundle

    training = dict(read_bundle(flat_bundle).manifest["training"], label_aware=True)
    label = add_to_bundle(flat_bundle, tmp_path / "label", {}, {"training": training})
    for path, name in ((flat_bundle, "SINE"), (label.path, "SINE-label")):
        with TestClient(create_app(Settings(bundle=path))) as client:
            assert client.get("/model").json()["variant"] == name
