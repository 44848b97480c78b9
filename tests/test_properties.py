"""Property-based tests (hypothesis): whatever a user throws at ingestion, and whatever
happens to a bundle on disk, the result is a model or a clear error, never a crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sine.bundle import MANIFEST, read_bundle, sha256_of, write_bundle
from sine.data.logs import read_log
from sine.data.split import leave_one_out
from sine.errors import BundleError, DataError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

cell = st.one_of(
    st.text(max_size=12),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "NaN", "null", "2024-01-01", "2024-13-45", "1e400", '"', "a,b", "x\ny", "\t"]),
)


def ingest(path: Path) -> None:
    """read + split: must give data or a DataError."""
    try:
        frame = read_log(path)
    except DataError:
        return
    assert list(frame.columns[:3]) == ["user_id", "item_id", "timestamp"]
    assert frame["timestamp"].dtype == np.float64 and np.isfinite(frame["timestamp"]).all()
    try:
        data = leave_one_out(frame)
    except DataError:
        return
    assert len(data.items) <= len(frame)
    inputs, targets = data.training_examples(5)
    assert inputs.shape[1] == 5 and (targets > 0).all()


@SETTINGS
@given(header=st.lists(st.sampled_from(["user_id", "item_id", "timestamp", "category", "x", ""]),
                       min_size=0, max_size=5),
       rows=st.lists(st.lists(cell, min_size=0, max_size=6), max_size=30))
def test_any_csv_gives_data_or_a_clear_error(tmp_path_factory, header, rows):
    path = tmp_path_factory.mktemp("csv") / "log.csv"
    width = len(header)
    text = ",".join(header) + "\n" + "\n".join(",".join(r[:width] if width else r) for r in rows)
    path.write_text(text)
    ingest(path)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_clear_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("bytes")
    for name in ("log.csv", "log.tsv.gz", "log.parquet"):
        (folder / name).write_bytes(data)
        ingest(folder / name)


@SETTINGS
@given(users=st.lists(st.one_of(st.text(max_size=5), st.integers(0, 9)), min_size=1, max_size=40),
       items=st.lists(st.one_of(st.text(max_size=5), st.integers(0, 9), st.none()), min_size=1, max_size=40),
       times=st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.text(max_size=4)),
                      min_size=1, max_size=40))
def test_any_parquet_gives_data_or_a_clear_error(tmp_path_factory, users, items, times):
    n = min(len(users), len(items), len(times))
    frame = pd.DataFrame({"user_id": users[:n], "item_id": items[:n], "timestamp": times[:n]})
    path = tmp_path_factory.mktemp("pq") / "log.parquet"
    try:
        frame.astype({"user_id": str, "timestamp": str}).to_parquet(path)
    except Exception:
        assume(False)
    ingest(path)


# ----------------------------------------------------------------- bundle reader


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("bundle") / "b"
    write_bundle(path, model="sine", hyperparameters={}, max_len=4, items=[f"i{k}" for k in range(6)],
                 item_embeddings=rng.normal(size=(6, 3)).astype(np.float32), popularity=np.arange(6),
                 encoder_onnx=b"onnx bytes", sample_queries=np.array([[0, 0, 1, 2]]),
                 data_fingerprint="sha256:x", metrics={})
    return path


FILES = ["items.json", "item_embeddings.npy", "popularity.npy", "user_encoder.onnx", "sample_queries.npy",
         MANIFEST]


@SETTINGS
@given(name=st.sampled_from(FILES),
       action=st.sampled_from(["truncate", "flip", "replace", "delete", "append"]),
       position=st.floats(0, 1), payload=st.binary(min_size=1, max_size=64))
def test_damaged_bundle_is_refused_never_loaded(pristine, tmp_path_factory, name, action, position, payload):
    copy = tmp_path_factory.mktemp("damaged") / "b"
    shutil.copytree(pristine, copy)
    target = copy / name
    data = target.read_bytes()
    at = int(position * max(len(data) - 1, 0))
    if action == "truncate":
        changed = data[:at]
    elif action == "flip":
        changed = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    elif action == "replace":
        changed = payload
    elif action == "append":
        changed = data + payload
    else:
        target.unlink()
        changed = None
    assume(changed != data)
    if changed is not None:
        target.write_bytes(changed)
    if name == MANIFEST and changed is not None:
        # a damaged manifest may still parse and agree with the files; if it loads, it is intact
        try:
            bundle = read_bundle(copy)
        except BundleError:
            return
        assert bundle.item_embeddings.shape == (6, 3)
        return
    with pytest.raises(BundleError):
        read_bundle(copy)


@SETTINGS
@given(name=st.sampled_from(["item_embeddings.npy", "popularity.npy", "sample_queries.npy"]),
       shape=st.lists(st.integers(0, 7), min_size=0, max_size=3),
       dtype=st.sampled_from(["float32", "float64", "int64", "int8", "object", "U3"]))
def test_tampered_arrays_with_matching_checksums_are_checked_not_trusted(pristine, tmp_path_factory, name,
                                                                         shape, dtype):
    copy = tmp_path_factory.mktemp("tampered") / "b"
    shutil.copytree(pristine, copy)
    array = np.zeros(shape, dtype=dtype) if dtype != "object" else np.array([{"evil": 1}] * 2, dtype=object)
    np.save(copy / name, array, allow_pickle=True)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"][name] = {"sha256": sha256_of(copy / name), "bytes": (copy / name).stat().st_size}
    (copy / MANIFEST).write_text(json.dumps(manifest))
    try:
        bundle = read_bundle(copy)
    except BundleError:
        return
    # accepted only if it really is what the format says
    assert bundle.item_embeddings.dtype == np.float32 and bundle.item_embeddings.shape == (6, 3)
    assert bundle.popularity.shape == (6,)
