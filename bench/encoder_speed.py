"""User encoder latency: onnxruntime against PyTorch eager, in the same run, on the CPU.

    .venv/bin/python bench/encoder_speed.py --run runs/bench/beauty/sine/seed0

Exports the run (or uses --bundle), then times both at batch 1 and batch 64 on real
validation sequences, alternating the two in rounds so that machine noise hits both
alike; both get the same thread count. With a CUDA GPU visible, also times the
onnxruntime CUDA provider and PyTorch on CUDA. Writes bench/results/encoder_speed.json/.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sine.bundle import read_bundle  # noqa: E402
from sine.encoder import OnnxEncoder  # noqa: E402
from trainer.export import export_bundle  # noqa: E402
from trainer.run import load_run  # noqa: E402


def per_user_ms(fn, batches: list[np.ndarray], repeats: int) -> float:
    fn(batches[0])
    best = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            fn(batch)
        best.append((time.perf_counter() - start) / sum(len(b) for b in batches))
    return min(best) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoder_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = read_bundle(args.bundle) if args.bundle else export_bundle(args.run, Path(tmp) / "b")
        queries = bundle.sample_queries()
        queries = queries[queries[:, -1] > 0]
        encoder = run.encoder.eval()
        onnx_cpu = OnnxEncoder(bundle.encoder_path, threads=args.threads, gpu="off")
        systems = {"onnxruntime-cpu": onnx_cpu.encode}

        def eager(batch: np.ndarray, device: str = "cpu") -> np.ndarray:
            with torch.inference_mode():
                return encoder(torch.as_tensor(batch, device=device)).user_vector.cpu().numpy()

        systems["pytorch-eager-cpu"] = eager
        if torch.cuda.is_available():
            cuda_model = load_run(args.run, "cuda").encoder.eval()

            def eager_cuda(batch: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    out = cuda_model(torch.as_tensor(batch, device="cuda")).user_vector
                    return out.cpu().numpy()

            systems["pytorch-eager-cuda"] = eager_cuda
            gpu = OnnxEncoder(bundle.encoder_path, gpu="on")
            if gpu.provider == "CUDAExecutionProvider":
                systems["onnxruntime-cuda"] = gpu.encode
        results: dict[str, dict[str, list[float]]] = {name: {"1": [], "64": []} for name in systems}
        for _ in range(args.rounds):
            for size in (1, 64):
                batches = [queries[i : i + size] for i in range(0, min(len(queries), 200 * size), size)]
                batches = [b for b in batches if len(b) == size][:200]
                for name, fn in systems.items():
                    results[name][str(size)].append(per_user_ms(fn, batches, 1))
    report = {"threads": args.threads, "model": run.config.model, "dim": run.config.dim,
              "max_len": run.config.max_len, "ms_per_user": {
                  name: {size: statistics.median(v) for size, v in by_size.items()}
                  for name, by_size in results.items()}, "rounds": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = ["| encoder | batch 1: ms per user | batch 64: ms per user |", "| --- | ---: | ---: |"]
    for name, by_size in report["ms_per_user"].items():
        lines.append(f"| {name} | {by_size['1']:.4f} | {by_size['64']:.4f} |")
    text = f"{run.config.model}, D={run.config.dim}, n={run.config.max_len}, {args.threads} thread(s)\n\n" + \
        "\n".join(lines) + "\n"
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
