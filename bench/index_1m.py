"""1M-item index benchmark, one query per call as the service searches.

    nice -n 10 .venv/bin/python bench/index_1m.py --run video=/tmp/runs/video --run beauty=/tmp/runs/beauty

For each catalog: exact search (IndexFlatIP) against HNSW (M=32, efSearch sweep) and IVF
(nlist 4096, nprobe sweep) with flat lists, SQ8 codes or PQ codes, the quantised two
re-ranked exactly (IndexRefineFlat, k_factor sweep). Latency: one query per
`index.search` call on ONE faiss thread (the service's SINE_FAISS_THREADS=1), p50 over
--singles held-out queries; the exact index is timed in the same round right before each
configuration and the speed-up is the ratio of the two (interleaved, so load drift
cancels). Recall@50 against exact search on the held-out half; the configuration
reported for a recall target is the fastest that meets it on the *tuning* half.

Catalogs:
- calibrated-<name>-1m: bench/calibrated_catalog.py fitted to the item table of a
  trained run (RUN is a `sine train` output directory); queries are its validation users
  mapped into the generated space (held out: not items of the index). The neighbour
  profile of real vs generated tables (at the real size and at 1M) is reported with it.
- synthetic-1m: today's harder generator (bench/index_bench.py: 2,000 clusters, D=128,
  queries mixing 1-3 random clusters), kept as the worst case.

Built indexes and vectors are cached under --cache (rebuilding 1M x D takes minutes).
Writes bench/results/index_1m.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import calibrated_catalog  # noqa: E402
from index_bench import synthetic_catalog  # noqa: E402

from index_builder.quality import recall_at  # noqa: E402
from sine.search import faiss_module  # noqa: E402

log = logging.getLogger("sine.bench")
K = 50
# `auto`'s 4 sqrt(N) lists at 1M (index_builder.indexes.default_spec); --nlist 1024 (sqrt N) is
# the cheaper build an earlier, loaded run used
NLIST = 4096
EF_CONSTRUCTION = 200  # what `sine build-index` builds (index_builder.indexes.default_spec)
NPROBES = (8, 16, 32, 64, 128, 256, 512)
SWEEPS = {
    "hnsw32": [{"efSearch": v} for v in (64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024)],
    "ivf-flat": [{"nprobe": v} for v in NPROBES],
    "ivf-sq8+refine": [{"nprobe": p, "k_factor": 2} for p in NPROBES],
    "ivf-pq32+refine": [{"nprobe": p, "k_factor": 4} for p in NPROBES],
}


def load_run(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(item table, validation users' vectors) of a trained run (exported to a bundle), or of a bundle."""
    import tempfile

    from index_builder.build import query_vectors
    from sine.bundle import read_bundle
    from trainer.export import export_bundle

    if not (run / "checkpoint.pt").exists():  # already a bundle (`sine export` output)
        bundle = read_bundle(run)
        return np.asarray(bundle.item_embeddings, dtype=np.float32), query_vectors(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = export_bundle(run, Path(tmp) / "bundle")
        items = np.asarray(read_bundle(bundle.path).item_embeddings, dtype=np.float32)
        return items, query_vectors(bundle)


def cached(path: Path, make):
    if path.exists():
        return np.load(path)
    value = np.ascontiguousarray(make(), dtype=np.float32)
    np.save(path, value)
    return value


def build(name: str, vectors: np.ndarray, cache: Path, tag: str, nlist: int = NLIST,
          ef_construction: int = EF_CONSTRUCTION):
    """Build (or load from the cache) index `name` over `vectors`; (index, build seconds)."""
    faiss = faiss_module()
    path = cache / (f"{tag}-{name}-ef{ef_construction}.faiss" if name == "hnsw32" else f"{tag}-{name}-{nlist}.faiss")
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return faiss.read_index(str(path)), json.loads(meta.read_text())["build_seconds"]
    dim = vectors.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    start = time.perf_counter()
    if name == "hnsw32":
        index = faiss.IndexHNSWFlat(dim, 32, ip)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
    else:
        quantizer = _quantizer(vectors, cache, tag, nlist)
        if name == "ivf-flat":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, ip)
        elif name == "ivf-sq8+refine":
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, 32, 8, ip)
        # no own_fields: faiss's Python wrappers keep the quantiser (and below the wrapped
        # index) referenced, and ownership on both sides freed the base index twice
        sample = vectors[np.random.default_rng(0).permutation(len(vectors))[:256_000]]
        index.train(sample)  # the coarse quantiser is trained already: codes only
        if name != "ivf-flat":
            index = faiss.IndexRefineFlat(index)
        index.add(vectors)
    seconds = time.perf_counter() - start
    faiss.write_index(index, str(path))
    meta.write_text(json.dumps({"build_seconds": seconds}))
    return index, seconds


def _quantizer(vectors: np.ndarray, cache: Path, tag: str, nlist: int):
    """The IVF coarse quantiser (k-means, nlist centroids, on a 256k sample), shared by the IVF
    variants of a catalog and cached: the build seconds reported exclude this k-means."""
    faiss = faiss_module()
    path = cache / f"{tag}-centroids-{nlist}.npy"
    if path.exists():
        centroids = np.load(path)
    else:
        sample = vectors[np.random.default_rng(0).permutation(len(vectors))[:256_000]]
        km = faiss.Kmeans(vectors.shape[1], nlist, niter=10, seed=0, spherical=False,
                          max_points_per_centroid=64)
        km.train(sample)
        centroids = km.centroids
        np.save(path, centroids)
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    quantizer.add(centroids)
    return quantizer


def set_params(index, params: dict) -> None:
    faiss = faiss_module()
    if "efSearch" in params:
        index.hnsw.efSearch = params["efSearch"]
        return
    inner = faiss.downcast_index(index.base_index) if hasattr(index, "base_index") else index
    faiss.extract_index_ivf(inner).nprobe = params["nprobe"]
    if "k_factor" in params:
        index.k_factor = params["k_factor"]


def single_p50(index, queries: np.ndarray, k: int) -> tuple[float, float]:
    """Median milliseconds of one `search` call per query: (thread CPU time, wall time).

    On a loaded machine a long call (exact search) is preempted more often than a short one,
    which would inflate the wall-clock speed-up; the CPU time of the calling thread (faiss runs
    a one-thread search in it) is not, so it is the figure the speed-ups use.
    """
    index.search(queries[:4], k)
    cpu, wall = [], []
    for q in queries:
        c, w = time.thread_time(), time.perf_counter()
        index.search(q[None, :], k)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return float(np.median(cpu) * 1e3), float(np.median(wall) * 1e3)


def measure_catalog(tag: str, vectors: np.ndarray, queries: np.ndarray, cache: Path, kinds: list[str],
                    singles: int, exact_singles: int, on_kind=None, nlist: int = NLIST,
                    ef_construction: int = EF_CONSTRUCTION) -> dict:
    faiss = faiss_module()
    order = np.random.default_rng(1).permutation(len(queries))
    tuning, held = queries[order[: len(queries) // 2]], queries[order[len(queries) // 2:]]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    faiss.omp_set_num_threads(2)
    truth_path = cache / f"{tag}-truth-{len(queries)}.npy"
    if not truth_path.exists():
        np.save(truth_path, exact.search(np.concatenate([tuning, held]), K)[1])
    truth = np.load(truth_path)
    tuning_truth, held_truth = truth[: len(tuning)], truth[len(tuning):]
    out: dict = {"items": len(vectors), "dim": int(vectors.shape[1]), "queries_tuning": len(tuning),
                 "queries_held_out": len(held), "exact_bytes_per_item": vectors.shape[1] * 4, "indexes": {}}
    for kind in kinds:
        faiss.omp_set_num_threads(2)
        index, seconds = build(kind, vectors, cache, tag, nlist, ef_construction)
        nbytes = len(faiss.serialize_index(index))
        rows = []
        for params in SWEEPS[kind]:
            set_params(index, params)
            faiss.omp_set_num_threads(2)
            _, ids_t = index.search(tuning, K)
            _, ids_h = index.search(held, K)
            faiss.omp_set_num_threads(1)  # latency as the service runs it
            exact_ms, exact_wall = single_p50(exact, held[:exact_singles], K)
            index_ms, index_wall = single_p50(index, held[:singles], K)
            row = {**params, "recall50_tuning": recall_at(ids_t, tuning_truth, K),
                   "recall50_held_out": recall_at(ids_h, held_truth, K),
                   "p50_ms": index_ms, "exact_p50_ms": exact_ms, "speedup": exact_ms / index_ms,
                   "p50_wall_ms": index_wall, "exact_p50_wall_ms": exact_wall,
                   "speedup_wall": exact_wall / index_wall, "load1": os.getloadavg()[0]}
            log.info("%s %s %s: recall@50 %.4f, %.3f ms vs exact %.2f ms: %.1fx (load %.1f)", tag, kind,
                     params, row["recall50_held_out"], index_ms, exact_ms, row["speedup"], row["load1"])
            rows.append(row)
        out["indexes"][kind] = {"build_seconds": seconds, "bytes": nbytes, "bytes_per_item": nbytes / len(vectors),
                                "sweep": rows}
        del index
        if on_kind is not None:
            on_kind(out)
    return out


def best(entry: dict, target: float) -> tuple[str, dict] | None:
    """The fastest configuration whose *tuning-half* recall@50 meets `target`."""
    found = [(kind, row) for kind, section in entry["indexes"].items() for row in section["sweep"]
             if row["recall50_tuning"] >= target]
    return max(found, key=lambda kr: kr[1]["speedup"]) if found else None


def measure_cached(report: dict, args, tag: str, make) -> np.ndarray:
    """The catalog `tag` (built by `make` once, then read from the cache) and, unless
    --profiles-only, its sweep written into `report` (and to disk after every index)."""
    items = cached(args.cache / f"{tag}-items.npy", make)
    queries = np.load(args.cache / f"{tag}-queries.npy")[: args.queries]
    if not args.profiles_only:
        # kinds not measured this time keep their earlier rows (re-measure one kind alone)
        earlier = report["catalogs"].get(tag, {}).get("indexes", {})

        def merged(entry: dict) -> dict:
            return {**entry, "indexes": {**earlier, **entry["indexes"]}}

        entry = measure_catalog(
            tag, items, queries, args.cache, args.kinds, args.singles, args.exact_singles,
            lambda entry: _write({**report, "catalogs": {**report["catalogs"], tag: merged(entry)}}, args.out),
            nlist=args.nlist, ef_construction=args.ef_construction)
        report["catalogs"][tag] = merged(entry)
        _write(report, args.out)
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                        help="a trained run to calibrate a catalog to (repeatable)")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--worst-case", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure today's synthetic-1m (D=128)")
    parser.add_argument("--kinds", nargs="+", default=list(SWEEPS))
    parser.add_argument("--ef-construction", type=int, default=EF_CONSTRUCTION,
                        help="HNSW efConstruction (default: what sine build-index builds)")
    parser.add_argument("--nlist", type=int, default=NLIST, help="IVF lists (default: auto's 4 sqrt(N) at 1M)")
    parser.add_argument("--singles", type=int, default=200, help="queries timed per configuration")
    parser.add_argument("--exact-singles", type=int, default=30, help="exact queries timed per configuration")
    parser.add_argument("--profiles-only", action="store_true",
                        help="only (re)compute the neighbour profiles of the (cached) catalogs")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/sine-index-1m"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "index_1m.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.cache.mkdir(parents=True, exist_ok=True)
    report = json.loads(args.out.read_text()) if args.out.exists() else {"catalogs": {}, "profiles": {}}
    report["settings"] = {"k": K, "nlist": args.nlist, "hnsw": f"M=32, efConstruction={args.ef_construction}",
                          "latency_threads": 1, "recall_threads": 2, "singles": args.singles,
                          "exact_singles": args.exact_singles, "faiss": faiss_module().__version__}
    from sine.neighbours import neighbour_profile

    def item_profile(table: np.ndarray) -> dict:
        # the searched metric (inner product), 500 sampled items, chunks small enough for 1M rows
        return neighbour_profile(table, queries=500, metric="ip", chunk=32)

    for spec in args.run:
        name, run = spec.split("=", 1)
        real_items, users = load_run(Path(run))
        model = calibrated_catalog.fit(real_items, users)  # deterministic: the same model as the cached catalog
        small, _ = calibrated_catalog.generate(model, len(real_items), len(users), seed=1)
        tag = f"calibrated-{name}-{args.items // 1000}k"

        def make(model=model, tag=tag):
            items, queries = calibrated_catalog.generate(model, args.items, args.queries, seed=0)
            np.save(args.cache / f"{tag}-queries.npy", queries)
            return items

        items = measure_cached(report, args, tag, make)
        # after the measurement (profiling 1M rows is slow on a loaded machine)
        report["profiles"][name] = {
            f"real ({len(real_items):,} items)": item_profile(real_items),
            f"generated ({len(small):,} items)": item_profile(small),
            f"generated ({len(items):,} items)": item_profile(items),
        }
        _write(report, args.out)
    if args.worst_case:
        tag = f"synthetic-{args.items // 1000}k"

        def make_synth():
            items, queries = synthetic_catalog(args.items, queries=args.queries)
            np.save(args.cache / f"{tag}-queries.npy", queries.astype(np.float32))
            return items

        items = measure_cached(report, args, tag, make_synth)
        report["profiles"]["synthetic (worst case)"] = {f"synthetic ({len(items):,} items)": item_profile(items)}
        _write(report, args.out)


def _write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    plot(report, out.with_suffix(".png"))


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"recall@{s['k']} on held-out queries against exact search; latency = p50 of one query per "
             f"`search` call on {s['latency_threads']} faiss thread (as the service runs), measured as the "
             "calling thread's CPU time (the machine is shared and loaded: wall time would charge "
             "preemption to the long exact calls; wall-clock figures are in the JSON), exact search "
             "(IndexFlatIP) timed in the same round before each configuration; speed-up = their ratio. "
             f"HNSW {s['hnsw']}; IVF nlist={s['nlist']}. faiss {s['faiss']}. Load average (1 min) per row.",
             *[f"\n**Note:** {n}" for n in report.get("notes", [])],
             "", "## Best configuration per recall target (chosen on the tuning half)", "",
             "| catalog | target | index | params | recall@50 held out | p50 ms | exact p50 ms | speed-up | "
             "bytes/item |", "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for tag, entry in report["catalogs"].items():
        if not entry.get("indexes"):
            continue
        for target in (0.8, 0.9, 0.95, 0.99):
            found = best(entry, target)
            if found is None:
                lines.append(f"| {tag} | {target} | none reached it | | | | | | |")
                continue
            kind, row = found
            params = ", ".join(f"{k}={row[k]}" for k in ("efSearch", "nprobe", "k_factor") if k in row)
            lines.append(f"| {tag} | {target} | {kind} | {params} | {row['recall50_held_out']:.4f} | "
                         f"{row['p50_ms']:.3f} | {row['exact_p50_ms']:.2f} | **{row['speedup']:.1f}x** | "
                         f"{entry['indexes'][kind]['bytes_per_item']:.0f} |")
    lines += ["", "## Indexes: build time and size (IVF: without the shared coarse k-means)", "",
              "| catalog | index | build s (2 threads) | MB | bytes/item |", "| --- | --- | ---: | ---: | ---: |"]
    for tag, entry in report["catalogs"].items():
        lines.append(f"| {tag} | exact (flat) | 0 | {entry['items'] * entry['exact_bytes_per_item'] / 1e6:.0f} | "
                     f"{entry['exact_bytes_per_item']} |")
        for kind, sec in entry["indexes"].items():
            lines.append(f"| {tag} | {kind} | {sec['build_seconds']:.0f} | {sec['bytes'] / 1e6:.0f} | "
                         f"{sec['bytes_per_item']:.0f} |")
    lines += ["", "## Neighbour profiles (real vs generated)", "",
              "sine.neighbours.neighbour_profile, inner product (the searched score), 500 sampled items "
              "each against the whole table (itself excluded); medians over the items. s_k: the k-th "
              "neighbour's score; gap: s_1 - s_k, also as a fraction of s_1; relative contrast: mean "
              "Euclidean distance to the table / distance to the nearest item.", "",
              "| catalog | table | s_1 | s_10 | s_50 | gap 1-10 | gap 1-50 | gap 1-50 / s_1 | relative contrast |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, rows in report["profiles"].items():
        for label, p in rows.items():
            s1, s10, s50 = (p["kth_similarity"][k]["p50"] for k in ("1", "10", "50"))
            lines.append(f"| {name} | {label} | {s1:.3f} | {s10:.3f} | {s50:.3f} | "
                         f"{p['gap_from_first']['10']['p50']:.3f} | {p['gap_from_first']['50']['p50']:.3f} | "
                         f"{(s1 - s50) / abs(s1):.3f} | {p['relative_contrast']['p50']:.3f} |")
    lines.append("")
    lines += ["## Full sweeps", "", "| catalog | index | params | recall@50 tuning | recall@50 held out | p50 ms | "
              "exact p50 ms | speed-up | load |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for tag, entry in report["catalogs"].items():
        for kind, sec in entry["indexes"].items():
            for row in sec["sweep"]:
                params = ", ".join(f"{k}={row[k]}" for k in ("efSearch", "nprobe", "k_factor") if k in row)
                lines.append(f"| {tag} | {kind} | {params} | {row['recall50_tuning']:.4f} | "
                             f"{row['recall50_held_out']:.4f} | {row['p50_ms']:.3f} | {row['exact_p50_ms']:.2f} | "
                             f"{row['speedup']:.1f}x | {row['load1']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = list(report["catalogs"])
    fig, axes = plt.subplots(1, len(tags), figsize=(5.5 * len(tags), 4.2), squeeze=False)
    for ax, tag in zip(axes[0], tags, strict=True):
        for kind, sec in report["catalogs"][tag]["indexes"].items():
            rows = sorted(sec["sweep"], key=lambda r: r["recall50_held_out"])
            ax.plot([r["recall50_held_out"] for r in rows], [r["speedup"] for r in rows], "o-", ms=3, label=kind)
        ax.axvline(0.95, color="grey", lw=0.8, ls="--")
        ax.axhline(20, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("recall@50 (held-out queries)")
        ax.set_ylabel("speed-up vs exact, 1 query/call, 1 thread")
        ax.set_title(tag)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
