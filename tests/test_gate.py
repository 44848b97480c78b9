"""The promotion gate scores bundles as served, without torch, exactly as the trainer would."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from deploy.gate import decide, evaluate_bundle, in_vocabulary_of
from sine.bundle import read_bundle
from sine.data.logs import filter_min_counts, read_log
from sine.data.split import leave_one_out
from sine.encoder import OnnxEncoder, has_clicks
from sine.metrics import ranking_metrics
from trainer.evaluate import rank_targets


def torch_reference(bundle, data, split="valid") -> dict[str, float]:
    """The gate as it was written with torch and the trainer's ranking (the reference)."""
    evalset = data.evaluation_set(split, bundle.max_len)
    mapped, known = in_vocabulary_of(bundle, data, evalset)
    encoder = OnnxEncoder(bundle.encoder_path, gpu="off")
    table = torch.as_tensor(np.vstack([np.zeros((1, bundle.dim), np.float32), bundle.item_embeddings]))
    popularity = torch.as_tensor(np.concatenate([[0.0], bundle.popularity]).astype(np.float32))

    def score(clicks: torch.Tensor) -> torch.Tensor:
        clicks_np = clicks.numpy()
        out = popularity.expand(len(clicks_np), -1).clone()
        rows = has_clicks(clicks_np)
        if rows.any():
            out[torch.as_tensor(rows)] = torch.as_tensor(encoder.encode(clicks_np[rows])) @ table.T
        return out

    ranks = np.where(known, rank_targets(score, mapped), bundle.num_items + 1)
    return ranking_metrics(ranks)


def test_gate_metrics_equal_the_trainers_ranking(flat_bundle, other_bundle, synthetic_csv):
    data = leave_one_out(filter_min_counts(read_log(synthetic_csv), 1, 1))
    for path in (flat_bundle, other_bundle):
        bundle = read_bundle(path)
        got, want = evaluate_bundle(bundle, data), torch_reference(bundle, data)
        assert got.keys() == want.keys()
        for name in want:
            assert abs(got[name] - want[name]) < 1e-6, (path, name, got[name], want[name])
    assert decide(got, want, "ndcg@10", 0.0).promote


def test_the_gate_does_not_import_torch():
    code = "import sys, deploy.gate; assert 'torch' not in sys.modules, 'deploy.gate imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
