"""The model bundle: the one versioned artifact between training and serving.

This module is its only reader and writer (../shared/DESIGN.md, section 3); the
exporter, the index builder, the service and the retrain job all go through it. It is
torch-free: numpy and the standard library only.

A bundle is a directory:

===================== =================================================================
manifest.json         format version, bundle version, model and hyper-parameters, D, n,
                      item count, training-data fingerprint, metrics, creation time, the
                      sha256 and size of every other file, and the index section once built
items.json            raw item ids; row r of every item-shaped array is item index r + 1
item_embeddings.npy   float32 [M, D], the table scores are inner products with
popularity.npy        int64 [M], training clicks per item (cold-start fallback)
user_encoder.onnx     clicks [batch, seq] int64, left-padded with 0 -> user_vector [batch, D]
                      and, for SINE, the per-interest outputs (`INTEREST_OUTPUTS`)
sample_queries.npy    int64 [Q, n], validation click windows: recall checks and smoke tests
concepts.npy          (SINE, optional) float32 [L, D], the concept pool C of eq. (2): what
                      `sine inspect` and GET /model/concepts read (`sine.concepts`)
concept_items.npy     (SINE with untied tables, optional) float32 [M, D], the input item
                      embeddings X that eqs. (1)-(2) compare with C; with tied tables (the
                      default) they are item_embeddings.npy itself and are not written twice
concept_labels.json   (SINE-cate, optional) JSON list of L strings: the attribute value
                      (--prototypes-from) prototype l is the mean of; absent: not SINE-cate,
                      or exported before bundles carried them
item_attributes.json  (optional) labels per item row: {"format": 1, "columns": {name:
                      {"values": [distinct labels, sorted], "rows": [[label codes of row 0],
                      ...]}}}; several codes in a row: a multi-valued attribute (genres);
                      none: no label (`sine.attributes`, from `--attributes FILE`)
index.faiss           (after `sine build-index`) the faiss index over item_embeddings
===================== =================================================================

Optional files are listed and checksummed in the manifest like every other file; a bundle
without them still loads (its `concepts` is None: a SASRec bundle, or a SINE bundle
exported before the concept pool was).

Reading verifies everything before anything is used: the format version is known,
every listed file exists with its checksum and size, shapes agree with the manifest,
and arrays load with ``allow_pickle=False``. Writing is atomic: a bundle is built in a
temporary directory beside its target, verified by reading it back, then renamed.
Which bundle is live (the store of versions and its pointers) is `sine.bundle_store`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sine import attributes as item_attributes
from sine.atomic import staging_directory
from sine.errors import BundleError
from sine.metrics import ordered_by_cutoff

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ITEMS = "items.json"
ITEM_EMBEDDINGS = "item_embeddings.npy"
POPULARITY = "popularity.npy"
ENCODER = "user_encoder.onnx"
SAMPLE_QUERIES = "sample_queries.npy"
CONCEPTS = "concepts.npy"
CONCEPT_ITEMS = "concept_items.npy"
CONCEPT_LABELS = "concept_labels.json"
INDEX = "index.faiss"
ATTRIBUTES = "item_attributes.json"
REQUIRED_FILES = (ITEMS, ITEM_EMBEDDINGS, POPULARITY, ENCODER, SAMPLE_QUERIES)

ENCODER_INPUT = "clicks"
ENCODER_OUTPUT = "user_vector"
# A SINE encoder's optional outputs beside the user vector (eqs. 2, 3, 5 and 7). Bundles
# exported before they existed lack some or all of them; the service reads which ones an
# encoder has from the ONNX graph itself and refuses only the requests that need them.
INTEREST_VECTORS = "interest_vectors"  # [batch, K, D] float32, phi^k of eq. (5)
INTEREST_WEIGHTS = "interest_weights"  # [batch, K] float32, e_k of eq. (7), sum to 1
CONCEPT_IDS = "concept_ids"  # [batch, K] int64, the activated prototypes of eq. (2), slot order
INTENTION_ASSIGNMENT = "intention_assignment"  # [batch, seq, K] float32, P(k|t) of eq. (3)
INTEREST_OUTPUTS = (INTEREST_VECTORS, INTEREST_WEIGHTS, CONCEPT_IDS, INTENTION_ASSIGNMENT)
PADDING = 0


def model_variant(model: str, training: Mapping[str, Any] | None) -> str:
    """The paper's name for what was trained (section 4.5): "SINE", "SINE-label" (MIND's
    label-aware attention in the loss, --label-aware), "SINE-cate" (the concept pool is an
    attribute's labels, --prototypes-from), both joined when both were set; other models
    by their --model name. `training` is the run's configuration (the manifest's
    "training", a run's config.json "train"); without it a SINE model counts as plain.
    """
    if model != "sine":
        return model
    training = training or {}
    parts = [name for name, on in (("label", training.get("label_aware")),
                                    ("cate", training.get("prototypes_from"))) if on]
    return "-".join(["SINE", "+".join(parts)]) if parts else "SINE"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version(created: datetime) -> str:
    """A sortable, unique bundle version: creation time plus a random suffix."""
    return f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class Bundle:
    """A verified bundle, loaded. Arrays are read-only views of what is on disk."""

    path: Path
    manifest: dict[str, Any]
    items: list[str]
    item_embeddings: np.ndarray  # [M, D] float32
    popularity: np.ndarray  # [M] int64
    concepts: np.ndarray | None = None  # [L, D] float32, the concept pool C (SINE), when exported
    concept_items: np.ndarray | None = None  # [M, D] float32 input table, when untied from the above
    concept_labels: list[str] | None = None  # [L], SINE-cate: the attribute value of each prototype
    attributes: item_attributes.ItemAttributes | None = None  # item_attributes.json, when exported with one

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def max_len(self) -> int:
        return int(self.manifest["max_len"])

    @property
    def num_items(self) -> int:
        return int(self.manifest["num_items"])

    @property
    def encoder_path(self) -> Path:
        return self.path / ENCODER

    @property
    def index_path(self) -> Path | None:
        return self.path / INDEX if INDEX in self.manifest["files"] else None

    def sample_queries(self) -> np.ndarray:
        return _load_array(self.path / SAMPLE_QUERIES, np.int64, 2)

    @property
    def concept_item_table(self) -> np.ndarray:
        """The item vectors the concept pool is compared with (X of eqs. 1-2): [M, D]."""
        return self.item_embeddings if self.concept_items is None else self.concept_items


def write_bundle(
    target: str | Path,
    *,
    model: str,
    hyperparameters: Mapping[str, Any],
    max_len: int,
    items: list[str],
    item_embeddings: np.ndarray,
    popularity: np.ndarray,
    encoder_onnx: bytes,
    sample_queries: np.ndarray,
    data_fingerprint: str,
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    concepts: np.ndarray | None = None,
    concept_items: np.ndarray | None = None,
    attributes: item_attributes.ItemAttributes | None = None,
    concept_labels: list[str] | None = None,
) -> Bundle:
    """Write a complete bundle to `target` atomically and return it, read back and verified.

    `concepts` is SINE's concept pool [L, D]; `concept_items` the input item table [M, D],
    given only when it is not `item_embeddings` (untied tables); `concept_labels` SINE-cate's
    label of each prototype (L strings).
    """
    item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
    if item_embeddings.ndim != 2 or len(item_embeddings) != len(items):
        raise BundleError(f"item_embeddings must be [{len(items)}, D], got {item_embeddings.shape}")
    popularity = np.asarray(popularity, dtype=np.int64)
    if popularity.shape != (len(items),):
        raise BundleError(f"popularity must have {len(items)} entries, got {popularity.shape}")
    sample_queries = np.asarray(sample_queries, dtype=np.int64)
    if concept_items is not None and concepts is None:
        raise BundleError("concept_items without concepts: the input table serves the concept pool only")
    if concept_labels is not None and (concepts is None or len(concept_labels) != len(concepts)):
        raise BundleError("concept_labels need concepts, one label per prototype")
    created = datetime.now(UTC).replace(microsecond=0)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "version": new_version(created),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "model": model,
        "hyperparameters": dict(hyperparameters),
        "dim": int(item_embeddings.shape[1]),
        "max_len": int(max_len),
        "num_items": len(items),
        "padding": "left",
        "data_fingerprint": data_fingerprint,
        "metrics": dict(metrics),
        "encoder": {"input": ENCODER_INPUT, "output": ENCODER_OUTPUT},
        **(dict(extra) if extra else {}),
    }
    with staging_directory(target) as staged:
        (staged / ITEMS).write_text(json.dumps(items, ensure_ascii=False))
        np.save(staged / ITEM_EMBEDDINGS, item_embeddings, allow_pickle=False)
        np.save(staged / POPULARITY, popularity, allow_pickle=False)
        (staged / ENCODER).write_bytes(encoder_onnx)
        np.save(staged / SAMPLE_QUERIES, sample_queries, allow_pickle=False)
        for name, array in ((CONCEPTS, concepts), (CONCEPT_ITEMS, concept_items)):
            if array is not None:
                np.save(staged / name, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
        if concept_labels is not None:
            (staged / CONCEPT_LABELS).write_text(json.dumps(list(concept_labels), ensure_ascii=False))
        if attributes is not None:
            (staged / ATTRIBUTES).write_bytes(item_attributes.to_json(attributes))
        _seal(staged, manifest)
        read_bundle(staged)  # verify before publishing
    return read_bundle(target)


def add_to_bundle(source: str | Path, target: str | Path, files: Mapping[str, bytes],
                  manifest_updates: Mapping[str, Any]) -> Bundle:
    """Copy bundle `source` to `target` (may be the same path) with extra files and manifest keys.

    Used by the index builder: the bundle is verified first, the copy gets a new version
    (its content differs), and the result replaces `target` atomically.
    """
    bundle = read_bundle(source)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest.update(manifest_updates)
    manifest["parent_version"] = bundle.version
    created = datetime.now(UTC).replace(microsecond=0)
    manifest["version"] = new_version(created)
    with staging_directory(target) as staged:
        for name in manifest["files"]:
            if name not in files:
                shutil.copy2(bundle.path / name, staged / name)
        for name, content in files.items():
            (staged / name).write_bytes(content)
        manifest["files"] = {}
        _seal(staged, manifest)
        read_bundle(staged)
    return read_bundle(target)


def _seal(directory: Path, manifest: dict[str, Any]) -> None:
    """Record size and sha256 of every file in `directory`, then write the manifest."""
    manifest["files"] = {
        f.name: {"sha256": sha256_of(f), "bytes": f.stat().st_size}
        for f in sorted(directory.iterdir())
        if f.is_file() and f.name != MANIFEST
    }
    # keys sorted (a stable file), @k keys by the number k (sine.metrics.cutoff_order)
    (directory / MANIFEST).write_text(json.dumps(ordered_by_cutoff(manifest), indent=2))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest alone, checked for format version and the keys every bundle has."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no bundle here (not a directory)")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: not a bundle, {MANIFEST} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: {MANIFEST} is not a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: unknown bundle format version {version!r}; this release reads version "
            f"{FORMAT_VERSION} (re-export the model with this release)"
        )
    for key in ("version", "model", "dim", "max_len", "num_items", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: {MANIFEST} lacks {key!r}")
    return manifest


def verify_files(path: Path, manifest: Mapping[str, Any]) -> None:
    """Every required and listed file exists with the recorded size and sha256."""
    listed = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in listed:
            raise BundleError(f"{path}: {MANIFEST} does not list the required file {name}")
    for name, meta in listed.items():
        if Path(name).name != name:
            raise BundleError(f"{path}: file name {name!r} in {MANIFEST} is not a plain name")
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if file.stat().st_size != meta.get("bytes"):
            raise BundleError(f"{path}: {name} has {file.stat().st_size} bytes, the manifest says "
                              f"{meta.get('bytes')} (truncated or replaced?)")
        if sha256_of(file) != meta.get("sha256"):
            raise BundleError(f"{path}: checksum mismatch for {name} (corrupted or tampered with)")


def read_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle; any problem raises `BundleError` naming it."""
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    dim, num_items = int(manifest["dim"]), int(manifest["num_items"])
    try:
        items = json.loads((path / ITEMS).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {ITEMS} is not valid JSON ({exc})") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BundleError(f"{path}: {ITEMS} must be a JSON list of strings")
    if len(items) != num_items:
        raise BundleError(f"{path}: {ITEMS} has {len(items)} ids, the manifest says {num_items}")
    if len(set(items)) != len(items):
        raise BundleError(f"{path}: {ITEMS} has duplicate ids")
    embeddings = _load_array(path / ITEM_EMBEDDINGS, np.float32, 2)
    if embeddings.shape != (num_items, dim):
        raise BundleError(f"{path}: {ITEM_EMBEDDINGS} is {embeddings.shape}, the manifest says "
                          f"({num_items}, {dim})")
    if not np.isfinite(embeddings).all():
        raise BundleError(f"{path}: {ITEM_EMBEDDINGS} holds NaN or infinite values")
    popularity = _load_array(path / POPULARITY, np.int64, 1)
    if popularity.shape != (num_items,):
        raise BundleError(f"{path}: {POPULARITY} has {popularity.shape[0]} entries, expected {num_items}")
    queries = _load_array(path / SAMPLE_QUERIES, np.int64, 2)
    if queries.size and (queries.shape[1] != int(manifest["max_len"]) or queries.min() < 0
                         or queries.max() > num_items):
        raise BundleError(f"{path}: {SAMPLE_QUERIES} does not match max_len / item count")
    concepts, concept_items = _read_concepts(path, manifest["files"], dim, num_items)
    concept_labels = _read_concept_labels(path, manifest["files"], concepts)
    attributes = None
    if ATTRIBUTES in manifest["files"]:
        attributes = item_attributes.from_json((path / ATTRIBUTES).read_bytes(), num_items,
                                               f"{path}: {ATTRIBUTES}")
    return Bundle(path=path, manifest=manifest, items=items, item_embeddings=embeddings,
                  popularity=popularity, concepts=concepts, concept_items=concept_items,
                  concept_labels=concept_labels, attributes=attributes)


def _read_concepts(path: Path, listed: Mapping[str, Any], dim: int,
                   num_items: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The optional concept pool [L, D] and untied input table [M, D], checked (None if absent)."""
    if CONCEPTS not in listed:
        if CONCEPT_ITEMS in listed:
            raise BundleError(f"{path}: {CONCEPT_ITEMS} is listed without {CONCEPTS}")
        return None, None
    concepts = _load_array(path / CONCEPTS, np.float32, 2)
    if len(concepts) < 1 or concepts.shape[1] != dim or not np.isfinite(concepts).all():
        raise BundleError(f"{path}: {CONCEPTS} must be a finite [L, {dim}] array with L >= 1, "
                          f"got {concepts.shape}")
    concept_items = None
    if CONCEPT_ITEMS in listed:
        concept_items = _load_array(path / CONCEPT_ITEMS, np.float32, 2)
        if concept_items.shape != (num_items, dim) or not np.isfinite(concept_items).all():
            raise BundleError(f"{path}: {CONCEPT_ITEMS} must be a finite ({num_items}, {dim}) array, "
                              f"got {concept_items.shape}")
    return concepts, concept_items


def _read_concept_labels(path: Path, listed: Mapping[str, Any],
                         concepts: np.ndarray | None) -> list[str] | None:
    """SINE-cate's optional label per prototype, checked against the pool (None if absent)."""
    if CONCEPT_LABELS not in listed:
        return None
    try:
        labels = json.loads((path / CONCEPT_LABELS).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {CONCEPT_LABELS} is not valid JSON ({exc})") from None
    if (concepts is None or not isinstance(labels, list) or len(labels) != len(concepts)
            or not all(isinstance(label, str) for label in labels)):
        raise BundleError(f"{path}: {CONCEPT_LABELS} must list one string per row of {CONCEPTS}")
    return labels


def _load_array(file: Path, dtype: type, ndim: int) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False, mmap_mode=None)
    except ValueError as exc:  # includes "Object arrays cannot be loaded when allow_pickle=False"
        raise BundleError(f"{file}: not a plain numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise BundleError(f"{file}: unreadable ({exc})") from None
    if array.dtype != dtype or array.ndim != ndim:
        raise BundleError(f"{file}: expected {np.dtype(dtype).name} with {ndim} dimensions, got "
                          f"{array.dtype} with {array.ndim}")
    array.setflags(write=False)
    return array
