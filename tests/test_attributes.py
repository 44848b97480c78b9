"""Item attributes: the file a user gives, the bundle file, the CLI and the retrain carrying them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sine import attributes
from sine.bundle import ATTRIBUTES, read_bundle
from sine.data.synthetic import SyntheticSpec, synthetic_items, synthetic_log
from sine.errors import BundleError, DataError
from sine_cli.app import app
from tests.conftest import SHARED_DATA


def test_ml100k_genres_are_multi_valued_labels():
    source = SHARED_DATA / "ml-100k.items.csv.gz"
    if not source.exists():
        pytest.skip(f"{source} not available")
    table = attributes.read_attribute_file(source, columns=["categories", "year"])
    assert table["categories"]["1"] == ("Animation", "Children's", "Comedy")  # Toy Story
    assert table["categories"]["2"] == ("Action", "Adventure", "Thriller")
    assert table["year"]["1"] == ("1995",)
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert len(table["categories"]) == (raw["categories"] != "").sum()
    items = raw["item_id"].tolist()
    aligned = attributes.align(table, items)
    again = attributes.from_json(attributes.to_json(aligned), len(items))
    for row in (0, 1, 500, len(items) - 1):  # every row's labels survive the bundle format
        assert again.columns["categories"].labels(row) == list(table["categories"].get(items[row], ()))
    assert again.to_table(items) == table


def test_cells_lists_numbers_and_the_stock_flag():
    assert attributes.labels_in("a| b |a||", "tag") == ("a", "b")
    assert attributes.labels_in(float("nan"), "tag") == ()
    assert attributes.labels_in(["x", "y"], "tag") == ("x", "y")  # a Parquet list column
    assert attributes.labels_in(1995.0, "year") == ("1995",)
    assert attributes.labels_in("Yes", "available") == ("true",)
    assert attributes.labels_in(0, "available") == ("false",)
    with pytest.raises(ValueError, match="available must be true or false"):
        attributes.labels_in("maybe", "available")


@pytest.mark.parametrize("text, fragment", [
    ("id,category\n1,a\n", "no item_id column; the file has: id, category"),
    ("item_id,category\n1,a\n1,b\n", "item '1' appears twice (again at line 3)"),
    ("item_id,available\n1,yes\n2,perhaps\n", "available must be true or false (or 1/0, yes/no), not "
     "'perhaps' at line 3"),
    ("item_id\n1\n", "only an item_id column"),
    ("item_id,category\n", "header but no rows"),
])
def test_bad_attribute_files_say_what_to_fix(tmp_path, text, fragment):
    path = tmp_path / "items.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=None) as caught:
        attributes.read_attribute_file(path)
    assert fragment in str(caught.value)


def test_parquet_with_a_list_column(tmp_path):
    path = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": ["1", "2"], "genres": [["a", "b"], []], "price": [9.5, 3.0]}).to_parquet(path)
    table = attributes.read_attribute_file(path)
    assert table == {"genres": {"1": ("a", "b")}, "price": {"1": ("9.5",), "2": ("3",)}}


def test_synthetic_items_are_the_logs_planted_groups():
    spec = SyntheticSpec(num_users=80, num_items=60, num_groups=6, seed=1)
    log, items = synthetic_log(spec), synthetic_items(spec)
    group = dict(zip(items["item_id"], items["category"], strict=True))
    assert len(items) == 60 and items["category"].nunique() == 6
    assert all(group[i] == c for i, c in zip(log["item_id"], log["category"], strict=True))


def test_the_bundle_carries_them_checksummed(attributed_bundle, flat_bundle, tmp_path):
    bundle = read_bundle(attributed_bundle)
    assert ATTRIBUTES in bundle.manifest["files"]
    assert set(bundle.attributes.names) == {"category", "tag", "rare", "available"}
    row = bundle.items.index("i7") if "i7" in bundle.items else None
    if row is not None:
        assert bundle.attributes.columns["rare"].labels(row) == ["yes"]
        assert bundle.attributes.columns["tag"].labels(row) == ["t2", "t5"]
    flagged = {bundle.items[r] for r in bundle.attributes.unavailable_rows()}
    assert flagged == {f"i{n}" for n in range(25, 300, 50)} & set(bundle.items)
    assert read_bundle(flat_bundle).attributes is None  # a bundle without them still loads

    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(attributed_bundle, tampered)
    document = json.loads((tampered / ATTRIBUTES).read_text())
    document["columns"]["category"]["rows"][0] = [0]
    (tampered / ATTRIBUTES).write_text(json.dumps(document))
    with pytest.raises(BundleError, match="item_attributes.json"):
        read_bundle(tampered)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["columns"]["category"]["rows"].pop(), "labels of each of the"),
    (lambda d: d["columns"]["category"]["rows"][0].append(99999), "outside"),
    (lambda d: d.update(format=7), "unknown format 7"),
])
def test_an_inconsistent_attribute_file_is_refused(attributed_bundle, change, fragment):
    bundle = read_bundle(attributed_bundle)
    document = json.loads((attributed_bundle / ATTRIBUTES).read_text())
    change(document)
    with pytest.raises(BundleError, match=fragment):
        attributes.from_json(json.dumps(document).encode(), bundle.num_items)


def test_cli_train_and_export_take_an_attribute_file(tmp_path, attributes_csv):
    spec = SyntheticSpec(num_users=120, num_items=60, num_groups=6, seed=2)
    log = tmp_path / "log.csv"
    synthetic_log(spec).to_csv(log, index=False)
    items = tmp_path / "log.items.csv"
    synthetic_items(spec).to_csv(items, index=False)
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "-d", str(log), "-o", str(tmp_path / "never"), "--attributes",
                              str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "no such attribute file" in bad.output
    assert not (tmp_path / "never").exists()  # refused before training
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", "-d", str(log), "-o", str(run), "--attributes", str(items),
                                  "--dim", "8", "--prototypes", "6", "--interests", "2", "--epochs", "1",
                                  "--max-len", "5"])
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "bundle")])
    assert exported.exit_code == 0, exported.output
    bundle = read_bundle(tmp_path / "bundle")
    group = dict(zip(synthetic_items(spec)["item_id"], synthetic_items(spec)["category"], strict=True))
    column = bundle.attributes.columns["category"]
    assert [column.labels(r) for r in range(bundle.num_items)] == [[group[i]] for i in bundle.items]
    # --attributes at export replaces the run's
    other = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "other"), "--attributes",
                                str(attributes_csv)])
    assert other.exit_code == 0, other.output
    assert set(read_bundle(tmp_path / "other").attributes.names) == {"category", "tag", "rare", "available"}


def test_synth_writes_the_item_categories(tmp_path):
    result = CliRunner().invoke(app, ["synth", "-o", str(tmp_path / "s.csv"), "--users", "20",
                                      "--items", "30", "--groups", "3"])
    assert result.exit_code == 0, result.output
    table = attributes.read_attribute_file(tmp_path / "s.items.csv")
    assert len(table["category"]) == 30 and {v for (v,) in table["category"].values()} == {"g0", "g1", "g2"}


def test_carry_forward_matches_items_by_raw_id():
    table = {"category": {"a": ("x",), "b": ("y", "z"), "c": ("x",)}}
    old = attributes.align(table, ["a", "b", "c"])
    new = attributes.carry_forward(old, ["a", "b", "c"], ["c", "new", "b"])
    column = new.columns["category"]
    assert [column.labels(r) for r in range(3)] == [["x"], [], ["y", "z"]]
    assert np.array_equal(column.rows_with(column.code_of("x")), [0])
