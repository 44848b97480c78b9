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


def with_encoder_outputs(good: Path, target: Path, keep: tuple[str, ...]) -> Path:
    """The bundle at `good` with an encoder that has only the outputs `keep`: what a bundle
    exported before the per-interest outputs existed looks like (a baseline's encoder, or
    a SINE export of an earlier release)."""
    import onnx

    source = read_bundle(good)
    graph = onnx.load_from_string(source.encoder_path.read_bytes())
    kept = [output for output in graph.graph.output if output.name in keep]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    write_bundle(target, model=source.manifest["model"], hyperparameters={}, max_len=source.max_len,
                 items=source.items, item_embeddings=source.item_embeddings, popularity=source.popularity,
                 encoder_onnx=graph.SerializeToString(), sample_queries=source.sample_queries(),
                 data_fingerprint="sha256:x", metrics={})
    return target


def planted_two_interest_bundle(target: Path, per_group: int = 20, dim: int = 8) -> tuple[Path, dict[str, str]]:
    """A real SINE module, weights set by hand, exported by the real exporter: two planted
    item groups whose interests it separates. Returns the bundle and each item's group.

    Group "A" items lie along +v, group "B" along -v (v zero-mean, so LayerNorm keeps its
    direction), with a little noise to rank items within a group. The two prototypes are
    +v and -v; attention weights (eqs. 1, 4, 6) are zero, so attention is uniform over the
    clicks, and W3 is the identity. Eq. (3)'s cosine is then +-1, P(k|t) = 0.88 for the
    click's own group: the most eq. (3) allows with K = 2 (without a temperature it cannot
    be sharper; trained models on the small test logs keep nearly uniform assignments and
    identical interests, see the issue). A user's interests then point at A and at B, and
    eq. (7) puts nearly all weight on the group of most of the clicks.
    """
    import torch

    from trainer.export import export_onnx, parity, parity_failures
    from trainer.models.sine import SINE, SINEConfig

    rng = np.random.default_rng(0)
    v = np.tile([1.0, -1.0], dim // 2) / np.sqrt(dim)
    noise = rng.normal(scale=0.3, size=(2 * per_group, dim))
    table = np.concatenate([3 * v + noise[:per_group], -3 * v + noise[per_group:]]).astype(np.float32)
    items = [f"a{i}" for i in range(per_group)] + [f"b{i}" for i in range(per_group)]
    model = SINE(SINEConfig(num_items=len(items), dim=dim, max_len=20, interests=2, prototypes=2))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for norm in (model.ln1, model.ln2, model.ln3, model.ln4):
            norm.weight.fill_(1.0)
        model.item_embedding.weight[1:] = torch.from_numpy(table)
        model.w3.weight.copy_(torch.eye(dim))
        model.prototypes.copy_(torch.from_numpy(np.stack([v, -v]).astype(np.float32)))
    model.eval()
    queries = rng.integers(1, len(items) + 1, size=(16, 20))
    onnx_model = export_onnx(model, 20)
    failures = parity_failures(parity(model, onnx_model, queries))
    assert not failures, failures
    write_bundle(target, model="sine", hyperparameters={"interests": 2, "prototypes": 2}, max_len=20,
                 items=items, item_embeddings=table, popularity=np.ones(len(items), np.int64),
                 encoder_onnx=onnx_model, sample_queries=queries, data_fingerprint="sha256:planted",
                 metrics={})
    return target, {item: item[0].upper() for item in items}
