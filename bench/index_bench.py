"""Index benchmark: every `sine build-index` type (flat / HNSW / IVF / IVF-PQ / IVF-SQ8) on real and
synthetic catalogs.

    .venv/bin/python bench/index_bench.py                          # everything
    .venv/bin/python bench/index_bench.py --catalogs synthetic-100k --types flat hnsw

For every catalog and index type: build time, index size, per-query latency at batch 1
(p50, p99) and batch 64, and recall@10/50/100 against exact search, after the search
parameter is tuned to recall@50 >= --target-recall (as `sine build-index` does); plus
which type `auto` picks and its speed-up over exact search at batch 1.

Real catalogs are the item tables of SINE models trained on ../shared/data (a run of
bench/accuracy.py, exported here; queries are its validation users encoded through the
ONNX encoder). Synthetic catalogs (100k and 1M items, D = 128) have the cluster
structure of real embeddings: items are drawn around 2,000 Gaussian cluster centres with
popularity-like norms, and a query mixes one to three clusters, as a user mixes
interests (on uniform random vectors no ANN index reaches useful recall). Writes
bench/results/index.json and .md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index_builder import indexes  # noqa: E402
from index_builder.build import build_and_measure, query_vectors  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402
from sine_cli.app import setup_logging  # noqa: E402

log = logging.getLogger("sine.bench")
REAL = ("beauty", "toys", "video", "ml-100k")


def synthetic_catalog(num_items: int, dim: int = 128, clusters: int = 2000, queries: int = 2000,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8  # some clusters are much bigger
    member = rng.choice(clusters, size=num_items, p=weights / weights.sum())
    noise = rng.normal(scale=0.35, size=(num_items, dim)).astype(np.float32) / np.sqrt(dim) * 4
    items = centres[member] + noise
    items *= rng.lognormal(mean=0.0, sigma=0.25, size=(num_items, 1)).astype(np.float32)
    mix = rng.integers(1, 4, size=queries)
    q = np.zeros((queries, dim), np.float32)
    for row, n in enumerate(mix):
        chosen = rng.choice(clusters, size=n, p=weights / weights.sum())
        q[row] = centres[chosen].mean(axis=0)
    q += rng.normal(scale=0.2, size=q.shape).astype(np.float32) / np.sqrt(dim) * 4
    return np.ascontiguousarray(items), np.ascontiguousarray(q)


def real_catalog(dataset: str, runs: Path, run_name: str, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    from trainer.export import export_bundle

    run = runs / dataset / run_name
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: train it first (bench/accuracy.py --datasets {dataset} "
                                "--models sine --seeds 0, or sine train --data ... --out <that path>)")
    bundle = export_bundle(run, workdir / dataset)
    return np.asarray(read_bundle(bundle.path).item_embeddings), query_vectors(bundle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogs", nargs="+",
                        default=[*REAL, "synthetic-100k", "synthetic-1m"])
    parser.add_argument("--types", nargs="+", default=list(indexes.TYPES))
    parser.add_argument("--target-recall", type=float, default=0.99)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--run-name", default="sine/seed0",
                        help="the trained run of a real catalog: RUNS/<dataset>/<run-name>")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "index.json")
    args = parser.parse_args()
    setup_logging()
    indexes.faiss_module().omp_set_num_threads(args.threads)
    report = json.loads(args.out.read_text()) if args.out.exists() else {"results": {}}
    for entry in report["results"].values():
        # `auto` is a rule of the size, not a measurement: follow the current rule
        entry["auto"], entry["auto_reason"] = indexes.choose_type(entry["items"], gpu=False, dim=entry["dim"])
    report["settings"] = {"target_recall": args.target_recall, "threads": args.threads,
                          "gpu": indexes.gpu_count() > 0}
    with tempfile.TemporaryDirectory() as tmp:
        for catalog in args.catalogs:
            if catalog.startswith("synthetic-"):
                size = {"synthetic-100k": 100_000, "synthetic-1m": 1_000_000}[catalog]
                vectors, queries = synthetic_catalog(size)
            else:
                vectors, queries = real_catalog(catalog, args.runs, args.run_name, Path(tmp))
            auto, reason = indexes.choose_type(len(vectors), gpu=False, dim=int(vectors.shape[1]))
            entry = report["results"].setdefault(catalog, {})
            entry.update({"items": len(vectors), "dim": int(vectors.shape[1]), "queries": len(queries),
                          "auto": auto, "auto_reason": reason, "target_recall": args.target_recall})
            for kind in args.types:
                started = time.perf_counter()
                index, section = build_and_measure(vectors, queries, kind, False, args.target_recall)
                section["index_bytes"] = len(indexes.serialize(index))
                section["wall_seconds"] = round(time.perf_counter() - started, 1)
                entry[kind] = section
                del index
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = ["Search parameters tuned to the smallest rung with recall@50 >= the target; latency on one "
             "faiss thread (as the service runs); speed-up = exact batch-1 latency / this index's.", "",
             "| catalog | items | type | auto? | target | params | build s | size MB | recall@10 | recall@50 | "
             "recall@100 | batch-1 p50 ms | batch-1 p99 ms | batch-64 ms/query | speed-up vs exact |",
             "|" + "|".join([" --- ", " ---: ", " --- ", " --- ", " ---: ", " --- "] + [" ---: "] * 9) + "|"]
    for catalog, entry in report["results"].items():
        exact = entry.get("flat", {}).get("latency", {}).get("batch1_p50_ms")
        for kind in indexes.TYPES:
            if kind not in entry:
                continue
            s = entry[kind]
            r, lat = s["recall"], s["latency"]
            up = f"{exact / lat['batch1_p50_ms']:.1f}x" if exact else ""
            params = ", ".join(f"{k}={v}" for k, v in {**s["build"], **s["search"]}.items())
            lines.append(
                f"| {catalog} | {entry['items']:,} | {kind} | {'auto' if entry['auto'] == kind else ''} | "
                f"{entry['target_recall']} | {params} | "
                f"{s['build_seconds']:.1f} | {s['index_bytes'] / 1e6:.1f} | "
                f"{r.get('recall@10', 0):.4f} | {r.get('recall@50', 0):.4f} | "
                f"{r.get('recall@100', 0):.4f} | "
                f"{lat['batch1_p50_ms']:.3f} | {lat['batch1_p99_ms']:.3f} | "
                f"{lat['batch64_per_query_ms']:.4f} | "
                f"{up} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
