"""`sine export`: a trained run -> a model bundle (ONNX user encoder + item table).

The encoder is exported with the dynamo-based exporter (``torch.onnx.export(...,
dynamo=True)``) at opset 18 (LayerNormalization needs 17+, TopK 11+), in eval mode,
with a dynamic batch axis and a dynamic sequence axis of 1..n clicks. Its input is
``clicks`` [batch, seq] int64, left-padded with 0; its outputs are ``user_vector``
[batch, D] and, for SINE, the per-interest outputs of `sine.bundle.INTEREST_OUTPUTS`:
``interest_vectors`` [batch, K, D], ``interest_weights`` [batch, K] (eq. 7),
``concept_ids`` [batch, K] (the prototypes eq. 2 activated) and ``intention_assignment``
[batch, seq, K] (P(k|t) of eq. 3). The service retrieves per interest and explains its
answers with them.

Without onnxscript (which that exporter needs) SINE falls back to the TorchScript
exporter. Before a bundle is written, onnxruntime and PyTorch encode the validation users and
must agree on every output: within 1e-4 for the float outputs, exactly for the concept
ids. An export that does not is refused.

Item attributes (`sine.attributes`) come from `attributes` (a file, or a table keyed by
raw item id, e.g. the live bundle's in a retrain), else from the run (`sine train
--attributes`); they are aligned with the bundle's item rows.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sine import attributes as item_attributes
from sine.bundle import (
    CONCEPT_IDS,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    INTENTION_ASSIGNMENT,
    INTEREST_OUTPUTS,
    INTEREST_VECTORS,
    INTEREST_WEIGHTS,
    Bundle,
    write_bundle,
)
from sine.errors import SineError
from trainer.config import TrainConfig
from trainer.models import MCPRN, MIND, SINE, SequenceEncoder
from trainer.run import load_run

log = logging.getLogger("sine.export")

OPSET = 18
PARITY_TOLERANCE = 1e-4

EXTRAS_OF_OUTPUT = {
    INTEREST_VECTORS: "interest_vectors",
    INTEREST_WEIGHTS: "interest_weights",
    CONCEPT_IDS: "concepts",
    INTENTION_ASSIGNMENT: "intention_assignment",
}
"""Which `EncoderOutput.extras` entry each per-interest ONNX output is (SINE, MIND, MCPRN)."""
MULTI_INTEREST = (SINE, MIND, MCPRN)
"""Encoders with K interest vectors per user: they export the per-interest outputs."""
SERVED_BY_INTERESTS = {"retrieval": "interests", "interest_merge": "score"}
"""How a model trained for the K*N merge is served by default (MIND, SINE-label): its K
vectors, the K rankings merged by score -- what its evaluation ranks by (`score_items`)
and what its paper serves; its aggregate vector is not its inference (MIND has none of
its own, SINE-label's eq. (8) vector is never trained). The manifest's
``default_retrieval`` / ``default_interest_merge`` tell the service
(`service.interests.default_retrieval`, `default_interest_merge`). Absent: "aggregate"."""


class ExportedEncoder(nn.Module):
    """The encoder as the bundle exposes it: plain tensors in, plain tensors out."""

    def __init__(self, encoder: SequenceEncoder):
        super().__init__()
        self.encoder = encoder
        self.with_interests = isinstance(encoder, MULTI_INTEREST)

    def forward(self, clicks: torch.Tensor):  # type: ignore[override]
        out = self.encoder(clicks)
        if self.with_interests:
            return (out.user_vector, *(out.extras[EXTRAS_OF_OUTPUT[name]] for name in INTEREST_OUTPUTS))
        return out.user_vector


def output_names(encoder: SequenceEncoder) -> list[str]:
    if isinstance(encoder, MULTI_INTEREST):
        return [ENCODER_OUTPUT, *INTEREST_OUTPUTS]
    return [ENCODER_OUTPUT]


def torch_outputs(encoder: SequenceEncoder, clicks: np.ndarray) -> dict[str, np.ndarray]:
    """What the ONNX encoder should output for `clicks`, computed by PyTorch."""
    with torch.no_grad():
        values = ExportedEncoder(encoder).eval()(torch.as_tensor(clicks))
    values = values if isinstance(values, tuple) else (values,)
    return {name: v.numpy() for name, v in zip(output_names(encoder), values, strict=True)}


def output_differences(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest absolute difference per output; for `concept_ids`, rows whose sets differ.

    Two runtimes may order two near-tied prototypes differently within the top K (eq. 2's
    ranking); the slots are then the same interests in another order, which changes no
    user vector, retrieval or explanation. So the per-interest outputs are compared with
    each row's slots sorted by concept id; a different *set* of concepts is a real
    disagreement and counts.
    """
    out = {}
    if CONCEPT_IDS in expected:
        order_e = np.argsort(expected[CONCEPT_IDS], axis=1, kind="stable")
        order_g = np.argsort(got[CONCEPT_IDS], axis=1, kind="stable")
        axis = {INTEREST_VECTORS: 1, INTEREST_WEIGHTS: 1, CONCEPT_IDS: 1, INTENTION_ASSIGNMENT: 2}
        expected, got = dict(expected), dict(got)
        for name, k_axis in axis.items():
            shape_e = [1] * expected[name].ndim
            shape_e[0], shape_e[k_axis] = order_e.shape
            expected[name] = np.take_along_axis(expected[name], order_e.reshape(shape_e), k_axis)
            got[name] = np.take_along_axis(got[name], order_g.reshape(shape_e), k_axis)
        out[CONCEPT_IDS] = float((expected[CONCEPT_IDS] != got[CONCEPT_IDS]).any(axis=1).sum())
    for name, value in expected.items():
        if name != CONCEPT_IDS:
            out[name] = float(np.abs(value - got[name]).max()) if value.size else 0.0
    return out


def export_onnx(encoder: SequenceEncoder, max_len: int) -> bytes:
    """The encoder as ONNX bytes (eval mode, dynamic batch and sequence axes)."""
    encoder = encoder.cpu().eval()
    wrapper = ExportedEncoder(encoder).eval()
    example = torch.randint(1, encoder.num_items + 1, (3, max_len), dtype=torch.int64)
    if importlib.util.find_spec("onnxscript") is None:
        if not isinstance(encoder, SINE):
            raise SineError(f"exporting {type(encoder).__name__} needs the onnxscript package "
                            "(pip install onnxscript)")
        return _export_torchscript(wrapper, example, output_names(encoder))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    seq = torch.export.Dim("seq", min=1, max=max_len)
    # the exporter warns about optional torchvision ops and deprecated pytree helpers
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[ENCODER_INPUT],
            output_names=output_names(encoder),
            dynamic_shapes={"clicks": {0: batch, 1: seq}},
            verbose=False,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        program.save(str(path), external_data=False)
        return path.read_bytes()


def _export_torchscript(wrapper: ExportedEncoder, example: torch.Tensor,
                        outputs: list[str]) -> bytes:
    """The older TorchScript exporter, for a machine without onnxscript (which the
    dynamo exporter needs), e.g. a GPU host with only torch and onnxruntime installed.
    It handles SINE (the parity check still guards the result); SASRec's attention
    mask becomes an EyeLike on booleans that onnxruntime cannot run."""
    log.warning("onnxscript is not installed: exporting with the TorchScript exporter")
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[ENCODER_INPUT], output_names=outputs,
                          dynamic_axes={ENCODER_INPUT: {0: "batch", 1: "seq"}})
    return buffer.getvalue()


def onnx_session(model: bytes | str | Path, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def parity(encoder: SequenceEncoder, onnx_model: bytes, clicks: np.ndarray) -> dict[str, float]:
    """PyTorch against onnxruntime on `clicks`, per output (see `output_differences`)."""
    session = onnx_session(onnx_model)
    names = output_names(encoder)
    worst = dict.fromkeys(names, 0.0)
    for start in range(0, len(clicks), 512):
        batch = clicks[start : start + 512]
        got = dict(zip(names, session.run(names, {ENCODER_INPUT: batch}), strict=True))
        for name, value in output_differences(torch_outputs(encoder, batch), got).items():
            worst[name] = max(worst[name], value) if name != CONCEPT_IDS else worst[name] + value
    return worst


def concept_pool(encoder: SequenceEncoder) -> dict[str, np.ndarray]:
    """SINE's concept pool C (eq. 2) for the bundle, and the input item table X it is compared
    with when that is not the exported item table (untied); nothing for other models."""
    if not isinstance(encoder, SINE):
        return {}
    pool = {"concepts": encoder.concept_pool().detach().cpu().numpy()}
    if encoder.output_embedding is not None:
        pool["concept_items"] = encoder.item_embedding.weight[1:].detach().cpu().numpy()
    return pool


def parity_failures(worst: dict[str, float]) -> list[str]:
    """The outputs that disagree: float outputs beyond the tolerance, any differing concept set."""
    return [f"{name} by {value:.2e}" if name != CONCEPT_IDS else f"{name} in {value:.0f} rows"
            for name, value in worst.items()
            if not (value == 0 if name == CONCEPT_IDS else value <= PARITY_TOLERANCE)]


def export_bundle(run_dir: str | Path, out: str | Path, extra: dict[str, Any] | None = None,
                  attributes: str | Path | item_attributes.AttributeTable | None = None) -> Bundle:
    """Export the run at `run_dir` as a bundle at `out` (atomically)."""
    run = load_run(run_dir)
    aligned = run_attributes(run_dir, run.vocabulary.ids, attributes)
    if run.encoder is None:
        raise SineError(
            f"{run_dir}: the {run.config.model} baseline has no user encoder to export; "
            "train a neural model (--model sine, sasrec, gru4rec, caser, mind or mcprn)"
        )
    encoder = run.encoder.cpu().eval()
    queries = run.sample_queries
    log.info("exporting %s encoder to ONNX (opset %d)", run.config.model, OPSET)
    onnx_model = export_onnx(encoder, run.config.max_len)
    if len(queries):
        worst = parity(encoder, onnx_model, queries)
        log.info("onnxruntime vs PyTorch on %d validation users: %s", len(queries),
                 ", ".join(f"{name} {value:.2e}" for name, value in worst.items()))
        failures = parity_failures(worst)
        if failures:
            raise SineError(f"exported encoder disagrees with PyTorch on {'; '.join(failures)} "
                            f"(tolerance {PARITY_TOLERANCE}); not writing a bundle")
    items = encoder.item_vectors().detach().cpu().numpy()
    hyper = dict(run.info.get("architecture", {}))
    hyper.pop("num_items", None)
    metrics = {k: run.metrics[k] for k in ("valid", "test", "test_history_kept") if k in run.metrics}
    bundle = write_bundle(
        out,
        model=run.config.model,
        hyperparameters=hyper,
        max_len=run.config.max_len,
        items=run.vocabulary.ids,
        item_embeddings=items,
        popularity=run.popularity[1:],
        encoder_onnx=onnx_model,
        sample_queries=queries,
        data_fingerprint=run.info["data"]["fingerprint"],
        metrics=metrics,
        extra={"run": {"path": str(Path(run_dir).resolve()), "seed": run.config.seed,
                       "best_epoch": run.metrics.get("best_epoch")},
               "training": run.config.to_dict(), **retrieval_section(run.config), **(extra or {})},
        **concept_pool(encoder),
        attributes=aligned,
        concept_labels=run.info.get("categories"),  # SINE-cate: prototype l is label l's items' mean
    )
    log.info("wrote bundle %s (version %s, %d items, D=%d)", out, bundle.version,
             bundle.num_items, bundle.dim)
    return bundle



def retrieval_section(config: TrainConfig) -> dict[str, Any]:
    """The manifest's serving defaults, for a model not served by its aggregate vector."""
    if config.model == "mind" or (config.model == "sine" and config.label_aware):
        return {f"default_{key}": value for key, value in SERVED_BY_INTERESTS.items()}
    return {}


def run_attributes(run_dir: str | Path, items: list[str],
                   source: str | Path | item_attributes.AttributeTable | None) -> item_attributes.ItemAttributes | None:
    """The attributes a bundle of this run carries: `source` if given, else the run's own."""
    if isinstance(source, str | Path):
        source = item_attributes.read_attribute_file(source)
    if source is not None:
        return item_attributes.align(source, items)
    saved = Path(run_dir) / item_attributes.RUN_FILE
    if saved.is_file():
        return item_attributes.from_json(saved.read_bytes(), len(items), str(saved))
    return None
