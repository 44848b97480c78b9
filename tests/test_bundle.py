"""The bundle format: written atomically, verified on read, refused when wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sine import bundle_store
from sine.bundle import (
    CONCEPTS,
    ENCODER,
    ITEM_EMBEDDINGS,
    MANIFEST,
    Bundle,
    add_to_bundle,
    read_bundle,
    sha256_of,
    write_bundle,
)
from sine.bundle_store import publish, rollback
from sine.errors import BundleError


def make(path, num_items=5, dim=4, **overrides) -> Bundle:
    rng = np.random.default_rng(0)
    args = dict(
        model="sine", hyperparameters={"interests": 2}, max_len=3,
        items=[f"item{i}" for i in range(num_items)],
        item_embeddings=rng.normal(size=(num_items, dim)).astype(np.float32),
        popularity=np.arange(num_items), encoder_onnx=b"not really onnx",
        sample_queries=np.array([[0, 1, 2], [3, 4, 5]]), data_fingerprint="sha256:abc",
        metrics={"test": {"hr@10": 0.5}},
    )
    args.update(overrides)
    return write_bundle(path, **args)


def test_round_trip(tmp_path):
    written = make(tmp_path / "b")
    loaded = read_bundle(tmp_path / "b")
    assert loaded.version == written.version
    assert loaded.items == [f"item{i}" for i in range(5)]
    assert loaded.item_embeddings.dtype == np.float32 and loaded.item_embeddings.shape == (5, 4)
    assert loaded.manifest["metrics"]["test"]["hr@10"] == 0.5
    assert set(loaded.manifest["files"]) == {"items.json", "item_embeddings.npy", "popularity.npy",
                                             "user_encoder.onnx", "sample_queries.npy"}
    assert not loaded.item_embeddings.flags.writeable


def test_refuses_bundle_with_bad_checksum(tmp_path):
    make(tmp_path / "b")
    path = tmp_path / "b" / ENCODER
    path.write_bytes(b"not really onnY")  # same size, different content
    with pytest.raises(BundleError, match="checksum mismatch for user_encoder.onnx"):
        read_bundle(tmp_path / "b")


def test_refuses_truncated_file(tmp_path):
    make(tmp_path / "b")
    path = tmp_path / "b" / ITEM_EMBEDDINGS
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(BundleError, match="truncated"):
        read_bundle(tmp_path / "b")


def test_refuses_missing_file(tmp_path):
    make(tmp_path / "b")
    (tmp_path / "b" / ENCODER).unlink()
    with pytest.raises(BundleError, match="user_encoder.onnx is missing"):
        read_bundle(tmp_path / "b")


def test_refuses_unknown_format_version(tmp_path):
    make(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["format_version"] = 99
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="unknown bundle format version 99"):
        read_bundle(tmp_path / "b")


def test_refuses_dimension_that_disagrees_with_manifest(tmp_path):
    make(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["dim"] = 8
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"is \(5, 4\), the manifest says \(5, 8\)"):
        read_bundle(tmp_path / "b")


def test_refuses_pickled_arrays(tmp_path):
    make(tmp_path / "b")
    evil = np.array([{"a": 1}], dtype=object)
    path = tmp_path / "b" / ITEM_EMBEDDINGS
    np.save(path, evil, allow_pickle=True)
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["files"][ITEM_EMBEDDINGS] = {"sha256": sha256_of(path),
                                          "bytes": path.stat().st_size}
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a plain numeric"):
        read_bundle(tmp_path / "b")


def test_refuses_inconsistent_input_and_leaves_nothing(tmp_path):
    with pytest.raises(BundleError):
        make(tmp_path / "b", popularity=np.arange(3))
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_the_old_bundle_whole(tmp_path):
    first = make(tmp_path / "b")
    second = make(tmp_path / "b", num_items=7)
    assert read_bundle(tmp_path / "b").version == second.version != first.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_publish_keeps_versions_and_rolls_back(tmp_path):
    store = tmp_path / "store"
    names = []
    for i in range(4):
        b = make(store / f"v{i}")
        names.append(publish(store, b.path, keep=2))
    assert bundle_store.current_version_name(store) == "v3"
    assert bundle_store.versions(store) == ["v2", "v3"]  # pruned, live + previous kept
    assert rollback(store) == "v2"
    assert bundle_store.current_bundle_path(store) == store / "v2"
    assert rollback(store) == "v3"  # and forward again


def test_publish_refuses_a_broken_bundle(tmp_path):
    store = tmp_path / "store"
    good = make(store / "v1")
    publish(store, good.path)
    bad = make(store / "v2")
    (bad.path / ENCODER).write_bytes(b"x")
    with pytest.raises(BundleError):
        publish(store, bad.path)
    assert bundle_store.current_version_name(store) == "v1"


def test_not_a_bundle(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        read_bundle(tmp_path / "empty")
    shutil.rmtree(tmp_path / "empty")
    with pytest.raises(BundleError, match="not a directory"):
        read_bundle(tmp_path / "empty")


def test_an_empty_store_has_no_live_bundle_yet(tmp_path):
    store = tmp_path / "store"
    assert bundle_store.live_bundle_path(store) is None
    store.mkdir()
    assert bundle_store.live_bundle_path(store) is None
    with pytest.raises(BundleError, match="nothing published yet"):
        bundle_store.current_bundle_path(store)
    single = make(tmp_path / "single")
    assert bundle_store.live_bundle_path(single.path) == single.path


def test_rollback_target_moves_nothing(tmp_path):
    store = tmp_path / "store"
    for i in range(2):
        publish(store, make(store / f"v{i}").path)
    assert bundle_store.rollback_target(store) == store / "v0"
    assert bundle_store.current_version_name(store) == "v1"
    assert bundle_store.previous_version_name(store) == "v0"


def test_publish_everywhere_sets_the_redis_key_and_announces(tmp_path, redis_url):
    import redis

    store = tmp_path / "store"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    listener = client.pubsub()
    listener.subscribe(bundle_store.reload_channel("sine:"))
    listener.get_message(timeout=1)  # the subscribe confirmation
    first = make(store / "v1")
    bundle_store.publish_everywhere(store, first.path, redis_url=redis_url)
    assert client.get(bundle_store.redis_key("sine:")) == str(store / "v1")
    assert listener.get_message(timeout=2)["data"] == str(store / "v1")
    second = make(store / "v2")
    bundle_store.publish_everywhere(store, second.path, redis_url=redis_url)
    assert bundle_store.rollback_everywhere(store, redis_url) == "v1"
    assert client.get(bundle_store.redis_key("sine:")) == str(store / "v1")
    assert [listener.get_message(timeout=2)["data"] for _ in range(2)] == [str(store / "v2"), str(store / "v1")]
    listener.close()


def test_reconcile_makes_current_agree_with_the_redis_key(tmp_path, redis_url):
    import redis

    store = tmp_path / "store"
    for i in (1, 2):
        publish(store, make(store / f"v{i}").path)
    assert bundle_store.reconcile(store, redis_url) == "v2"  # no key: the file pointer stands
    client = redis.Redis.from_url(redis_url)
    client.set(bundle_store.redis_key("sine:"), str(store / "v1"))  # moved by a read-only replica
    assert bundle_store.reconcile(store, redis_url) == "v1"
    assert bundle_store.current_version_name(store) == "v1"
    assert bundle_store.previous_version_name(store) == "v2"
    client.set(bundle_store.redis_key("sine:"), str(tmp_path / "elsewhere"))  # not a store version
    assert bundle_store.reconcile(store, redis_url) == "v1"


def test_the_concept_pool_round_trips_listed_and_checksummed(tmp_path):
    pool = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    written = make(tmp_path / "b", concepts=pool)
    loaded = read_bundle(tmp_path / "b")
    np.testing.assert_array_equal(loaded.concepts, pool)
    assert loaded.concept_items is None and loaded.concept_item_table is loaded.item_embeddings
    assert loaded.manifest["files"][CONCEPTS]["sha256"] == sha256_of(written.path / CONCEPTS)
    assert not loaded.concepts.flags.writeable
    copied = add_to_bundle(tmp_path / "b", tmp_path / "c", {"extra.bin": b"x"}, {})  # as build-index does
    np.testing.assert_array_equal(copied.concepts, pool)


def test_a_tampered_concept_pool_is_refused(tmp_path):
    make(tmp_path / "b", concepts=np.ones((3, 4), np.float32))
    path = tmp_path / "b" / CONCEPTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size, one bit of the last prototype changed
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch for concepts.npy"):
        read_bundle(tmp_path / "b")


def test_a_bundle_without_a_concept_pool_still_loads_and_says_so(tmp_path):
    from sine.concepts import NoConceptPool, analyse_bundle

    loaded = make(tmp_path / "b")
    assert loaded.concepts is None and CONCEPTS not in loaded.manifest["files"]
    with pytest.raises(NoConceptPool, match="this SINE bundle has no concept pool.*re-export"):
        analyse_bundle(loaded)
    with pytest.raises(NoConceptPool, match="the sasrec model has no concept pool"):
        analyse_bundle(make(tmp_path / "s", model="sasrec"))


def test_untied_input_items_travel_with_the_pool_and_bad_shapes_are_refused(tmp_path):
    inputs = np.full((5, 4), 2.0, np.float32)
    loaded = make(tmp_path / "b", concepts=np.ones((3, 4), np.float32), concept_items=inputs)
    np.testing.assert_array_equal(loaded.concept_item_table, inputs)
    with pytest.raises(BundleError, match=r"concepts.npy must be a finite \[L, 4\]"):
        make(tmp_path / "wide", concepts=np.ones((3, 5), np.float32))
    with pytest.raises(BundleError, match=r"concept_items.npy must be a finite \(5, 4\)"):
        make(tmp_path / "short", concepts=np.ones((3, 4), np.float32), concept_items=inputs[:4])
    with pytest.raises(BundleError, match="concept_items without concepts"):
        make(tmp_path / "alone", concept_items=inputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_sine_cate_concept_labels_round_trip_and_must_match_the_pool(tmp_path):
    loaded = make(tmp_path / "b", concepts=np.ones((3, 4), np.float32), concept_labels=["a", "b", "é"])
    assert read_bundle(loaded.path).concept_labels == ["a", "b", "é"]
    with pytest.raises(BundleError, match="one label per prototype"):
        make(tmp_path / "short", concepts=np.ones((3, 4), np.float32), concept_labels=["a", "b"])
    # a hand-edited file that no longer matches the pool is refused on reading
    (loaded.path / "concept_labels.json").write_text('["a", "b"]')
    manifest = json.loads((loaded.path / "manifest.json").read_text())
    manifest["files"]["concept_labels.json"] = {"sha256": sha256_of(loaded.path / "concept_labels.json"),
                                                "bytes": (loaded.path / "concept_labels.json").stat().st_size}
    (loaded.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="concept_labels.json must list one string per row"):
        read_bundle(loaded.path)
