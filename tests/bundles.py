"""Bundles made broken on purpose, for the tests that must see them refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sine.bundle import read_bundle, write_bundle


def mismatched_encoder(good: Path, other: Path, target: Path) -> Path:
    """A bundle that passes file verification but cannot be loaded: its encoder outputs
    another width than its item table."""
    source, donor = read_bundle(good), read_bundle(other)
    table = np.random.default_rng(0).normal(size=(source.num_items, donor.dim + 8)).astype(np.float32)
    write_bundle(target, model="sine", hyperparameters={}, max_len=source.max_len, items=source.items,
                 item_embeddings=table, popularity=source.popularity,
                 encoder_onnx=source.encoder_path.read_bytes(), sample_queries=source.sample_queries(),
                 data_fingerprint="sha256:x", metrics={})
    return target
