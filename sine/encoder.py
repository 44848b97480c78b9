"""The bundle's user encoder through onnxruntime (torch-free), and click preparation.

`prepare_clicks` is the one place where a click sequence becomes encoder input: unknown
items are dropped, the sequence is cut to its last n clicks, and the batch is
left-padded with 0 to its longest row (the encoder gives padded and unpadded inputs the
same vector, so padding to the batch's longest row instead of n is only faster).

`OnnxEncoder` picks the CUDA execution provider when onnxruntime has it (the
onnxruntime-gpu package on a machine with a GPU) and says which provider it runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sine.bundle import ENCODER_INPUT, ENCODER_OUTPUT
from sine.errors import BundleError

log = logging.getLogger("sine.encoder")

PADDING = 0


def prepare_clicks(sequences: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """Item-index sequences (oldest first, 0 = unknown) -> left-padded int64 [B, <= max_len].

    Indices of 0 (clicks on unknown items) are dropped before the cut, so every row keeps
    up to `max_len` known clicks. A row with no known click stays all padding: callers
    check `has_clicks` and answer such users without the encoder.
    """
    kept = [[i for i in seq if i != PADDING][-max_len:] for seq in sequences]
    width = max(1, max((len(k) for k in kept), default=1))
    out = np.zeros((len(kept), width), dtype=np.int64)
    for row, clicks in enumerate(kept):
        if clicks:
            out[row, width - len(clicks):] = clicks
    return out


def has_clicks(batch: np.ndarray) -> np.ndarray:
    """Rows with at least one real click (the last column is the most recent click)."""
    return batch[:, -1] != PADDING


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class OnnxEncoder:
    """Runs ``user_encoder.onnx``: clicks [B, S] int64 -> user vectors [B, D] float32."""

    def __init__(self, model: str | Path | bytes, threads: int = 0, gpu: str = "auto"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if gpu == "on" and not has_cuda:
            raise BundleError("GPU encoding was asked for, but onnxruntime has no CUDA provider "
                              "(install onnxruntime-gpu on a machine with a CUDA GPU)")
        if gpu in ("auto", "on") and has_cuda:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"cannot load the user encoder: {exc}") from None
        self.provider = self.session.get_providers()[0]
        self.outputs = [o.name for o in self.session.get_outputs()]
        if ENCODER_OUTPUT not in self.outputs or self.session.get_inputs()[0].name != ENCODER_INPUT:
            raise BundleError(f"the user encoder must map {ENCODER_INPUT!r} to {ENCODER_OUTPUT!r}; "
                              f"it has inputs {[i.name for i in self.session.get_inputs()]} and "
                              f"outputs {self.outputs}")
        log.info("user encoder runs on %s", self.provider)

    @property
    def dim(self) -> int:
        return int(self.session.get_outputs()[self.outputs.index(ENCODER_OUTPUT)].shape[-1])

    def encode(self, clicks: np.ndarray) -> np.ndarray:
        """User vectors for left-padded clicks; every row must hold at least one click."""
        return self.session.run([ENCODER_OUTPUT], {ENCODER_INPUT: clicks})[0]

    def encode_all(self, clicks: np.ndarray) -> dict[str, np.ndarray]:
        """Every output the encoder has (user vector, and interests for SINE)."""
        return dict(zip(self.outputs, self.session.run(None, {ENCODER_INPUT: clicks}), strict=True))

    def encode_many(self, clicks: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        parts = [self.encode(clicks[i : i + batch_size]) for i in range(0, len(clicks), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
