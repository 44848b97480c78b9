"""The promotion gate: the candidate and the live model, scored on the same split.

Torch-free: both models are scored as served, through their bundles' ONNX encoders and
item tables, with numpy doing the full ranking (the same rule as trainer.evaluate: the
history is removed, the target never, and ties count against the target).

The live model is evaluated as it is served: its bundle's ONNX encoder and item table,
on the new log's validation split, expressed in its own vocabulary (clicks on items it
does not know are dropped, and a target it does not know counts as a miss). The
candidate is promoted only if its metric is not worse than the live one's by more than
the margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sine.bundle import Bundle
from sine.data.split import EvalSet, SplitData
from sine.encoder import OnnxEncoder, has_clicks, prepare_clicks
from sine.metrics import ranking_metrics

BATCH = 512


@dataclass
class GateDecision:
    promote: bool
    metric: str
    candidate: float
    live: float | None
    margin: float
    reason: str


def in_vocabulary_of(bundle: Bundle, data: SplitData, evalset: EvalSet) -> tuple[EvalSet, np.ndarray]:
    """`evalset` re-expressed in the bundle's item indices, and which targets it knows."""
    live_index = {item: i + 1 for i, item in enumerate(bundle.items)}
    mapping = np.array([0] + [live_index.get(item, 0) for item in data.vocabulary.ids], dtype=np.int64)
    inputs = prepare_clicks([[int(i) for i in row if i] for row in mapping[evalset.inputs]], bundle.max_len)
    if inputs.shape[1] < bundle.max_len:
        inputs = np.pad(inputs, ((0, 0), (bundle.max_len - inputs.shape[1], 0)))
    targets = mapping[evalset.targets]
    history = mapping[evalset.history]
    known = targets > 0
    mapped = EvalSet(evalset.users, inputs, np.where(known, targets, 1), history, evalset.history_offsets)
    return mapped, known


def evaluate_bundle(bundle: Bundle, data: SplitData, split: str = "valid") -> dict[str, float]:
    """HR / NDCG of a served bundle on `data`'s split (history removed), as served."""
    evalset = data.evaluation_set(split, bundle.max_len)  # type: ignore[arg-type]
    mapped, known = in_vocabulary_of(bundle, data, evalset)
    encoder = OnnxEncoder(bundle.encoder_path, gpu="off")
    table = np.vstack([np.zeros((1, bundle.dim), np.float32), bundle.item_embeddings])
    popularity = np.concatenate([[0.0], bundle.popularity]).astype(np.float32)
    ranks = np.empty(len(mapped), dtype=np.int64)
    offsets = mapped.history_offsets
    for start in range(0, len(mapped), BATCH):
        stop = min(start + BATCH, len(mapped))
        clicks = mapped.inputs[start:stop]
        scores = np.repeat(popularity[None, :], stop - start, axis=0)  # no known click: popularity
        rows = has_clicks(clicks)
        if rows.any():
            scores[rows] = encoder.encode(clicks[rows]) @ table.T
        ranks[start:stop] = _target_ranks(scores, mapped.targets[start:stop],
                                          mapped.history[offsets[start]:offsets[stop]],
                                          np.diff(offsets[start:stop + 1]))
    ranks = np.where(known, ranks, bundle.num_items + 1)  # an unknown target is a miss
    return ranking_metrics(ranks)


def _target_ranks(scores: np.ndarray, targets: np.ndarray, history: np.ndarray,
                  lengths: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target: padding and history out, ties against the target."""
    rows = np.arange(len(scores))
    target_scores = scores[rows, targets].copy()
    scores[:, 0] = -np.inf
    scores[np.repeat(rows, lengths), history] = -np.inf
    scores[rows, targets] = target_scores  # the target is never removed
    return (scores >= target_scores[:, None]).sum(axis=1)


def decide(candidate: dict[str, float], live: dict[str, float] | None, metric: str,
           margin: float) -> GateDecision:
    new = candidate[metric]
    if live is None:
        return GateDecision(True, metric, new, None, margin, "no live model: the first one is promoted")
    old = live[metric]
    if new >= old - margin:
        return GateDecision(True, metric, new, old, margin,
                            f"candidate {metric} {new:.4f} >= live {old:.4f} - margin {margin}")
    return GateDecision(False, metric, new, old, margin,
                        f"candidate {metric} {new:.4f} < live {old:.4f} - margin {margin}")
