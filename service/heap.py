"""Keep Python's cyclic garbage collector off the request path.

A loaded model and the libraries behind it (FastAPI, pydantic, numpy, onnxruntime) are
many long-lived objects, and every full collection walks them all with the event loop
stalled. With coalesced requests a stall delays a whole batch, and it was the p99: 3.3x
the p50 in bench/serve_bench.py, 1.2x with this and nothing else changed. So after each
model load we collect once and freeze what survives (`gc.freeze`): later collections
only look at what requests create.
"""

from __future__ import annotations

import gc
import time


def settle_after_load() -> float:
    """Release the previous model's cycles, then freeze the survivors; returns seconds spent.

    Objects frozen at the previous load are unfrozen first, so a swapped-out model is
    collected instead of being kept forever.
    """
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started
