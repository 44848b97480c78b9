"""Is the generated catalog as hard for IVF as the real one? Checked at the real size.

    .venv/bin/python bench/calibration_check.py --bundle BUNDLE_DIR

Fits bench/calibrated_catalog.py to a bundle's item table and its validation users,
generates a catalog of the same size, and prints IVF-Flat recall@50 (nlist = sqrt(N),
inner product, one thread) against exact search at the same probed fractions for both:
if the generated table needs the same fraction of lists probed as the real one for a
recall, its 1M-item sibling (bench/index_1m.py) is a fair stand-in for a real 1M catalog.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import calibrated_catalog  # noqa: E402

from index_builder.build import query_vectors  # noqa: E402
from index_builder.quality import recall_at  # noqa: E402
from sine.bundle import read_bundle  # noqa: E402
from sine.search import faiss_module  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    faiss = faiss_module()
    faiss.omp_set_num_threads(1)
    bundle = read_bundle(args.bundle)
    items = np.asarray(bundle.item_embeddings, np.float32)
    users = query_vectors(bundle)[: args.queries]
    model = calibrated_catalog.fit(items, users)
    generated, generated_users = calibrated_catalog.generate(model, len(items), len(users), seed=1)
    for name, table, queries in (("real", items, users), ("generated", generated, generated_users)):
        exact = faiss.IndexFlatIP(table.shape[1])
        exact.add(table)
        _, truth = exact.search(queries, 50)
        nlist = int(np.sqrt(len(table)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(table.shape[1]), table.shape[1], nlist,
                                 faiss.METRIC_INNER_PRODUCT)
        ivf.train(table)
        ivf.add(table)
        for fraction in (1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4):
            ivf.nprobe = max(1, round(nlist * fraction))
            _, ids = ivf.search(queries, 50)
            print(f"{name} {len(table)} items, nlist {nlist}, nprobe {ivf.nprobe} ({fraction:.4f} of the lists): "
                  f"recall@50 {recall_at(ids, truth, 50):.3f}", flush=True)


if __name__ == "__main__":
    main()
