"""Bytes per item of each index type `sine build-index` builds, from faiss serialize.

    nice -n 10 .venv/bin/python bench/index_bytes.py [--dim 128]

Each type (index_builder.indexes.TYPES: flat, hnsw, ivf, ivfpq, ivfsq8, with the parameters `default_spec` gives a
1M-item catalog) is built over N and over 2N clustered vectors with the same parameters;
the marginal cost (bytes(2N) - bytes(N)) / N is the memory an item adds, free of the fixed
parts (IVF centroids, PQ codebooks, headers) that a small build would spread over few
items. The fixed part is reported too. bench/capacity.py multiplies these by catalog
sizes. Writes bench/results/index_bytes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index_builder import indexes  # noqa: E402


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    return (centres[rng.integers(0, 200, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--items", type=int, default=20_000, help="N (and 2N)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "index_bytes.json")
    args = parser.parse_args()
    faiss = indexes.faiss_module()
    faiss.omp_set_num_threads(1)
    big = clustered(2 * args.items, args.dim, 0)
    out = {"dim": args.dim, "items": [args.items, 2 * args.items], "faiss": faiss.__version__, "types": {}}
    for kind in indexes.TYPES:
        spec = indexes.default_spec(kind, 1_000_000, args.dim)  # what auto gives a 1M catalog
        if kind in indexes.IVF_TYPES:  # as many lists as N can train (>= 39 points each), same for N and 2N
            spec.build["nlist"] = min(spec.build["nlist"], args.items // 39)
        sizes = []
        for n in (args.items, 2 * args.items):
            index = indexes.build_index(spec, big[:n])
            sizes.append(len(indexes.serialize(index)))
        per_item = (sizes[1] - sizes[0]) / args.items
        out["types"][kind] = {"params": spec.to_dict(), "bytes": sizes, "bytes_per_item": per_item,
                              "fixed_bytes": sizes[0] - per_item * args.items}
        print(kind, out["types"][kind])
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
