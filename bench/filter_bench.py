"""Filtered retrieval: filters keeping 1%, 10% and 50% of a catalog, against the unfiltered request.

    .venv/bin/python bench/filter_bench.py --bundle bundles/video

The filter labels are synthetic: for each share s a random s x N subset of the bundle's
catalog gets the label ``in`` of an attribute ``keep_<s>`` (seeded), written into a copy
of the bundle as its item attribute file, which is then loaded the way the service loads
it (`service.recommender.LoadedModel`). For each of the bundle's sample queries (real
validation click windows, top_n 50) it measures, interleaved in rotating order within
each round:

A last variant has no filter but 1,000 random items marked unavailable, the common case
once `POST /admin/items` is in use: every request is then constrained.

* CPU time of one whole request (encode + search + selection; `time.process_time`, one
  onnxruntime and one faiss thread as the service runs) filtered and unfiltered;
* CPU time of the search alone: the strategy the cost model chose, the exact filtered
  scan and the index with the selector (both forced), and the unfiltered index search;
* recall@50 of the answer against exact filtered search (a numpy scan of the allowed,
  unclicked rows with the same user vector), and whether the list holds top_n items
  (or every allowed unclicked item, when fewer exist).

Writes bench/results/filter.json and filter.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.recommender import LoadedModel, Query  # noqa: E402
from sine import attributes, filters  # noqa: E402
from sine.bundle import ATTRIBUTES, add_to_bundle, read_bundle  # noqa: E402
from sine.encoder import prepare_clicks  # noqa: E402

TOP_N = 50


def labelled_copy(source: Path, target: Path, shares: list[float], seed: int) -> Path:
    bundle = read_bundle(source)
    rng = np.random.default_rng(seed)
    table = {}
    for share in shares:
        chosen = rng.choice(bundle.num_items, max(1, round(share * bundle.num_items)), replace=False)
        table[f"keep_{share:g}"] = {bundle.items[r]: ("in",) for r in chosen}
    data = attributes.to_json(attributes.align(table, bundle.items))
    add_to_bundle(source, target, {ATTRIBUTES: data}, {})
    return target


def cpu_ms(call) -> tuple[float, object]:
    started = time.process_time()
    result = call()
    return (time.process_time() - started) * 1e3, result


def forced(searcher: filters.FilteredSearch, strategy: str):
    clone = filters.FilteredSearch(searcher.item_search, searcher.spec, searcher.section)
    clone.strategy = lambda constraint, k: strategy  # type: ignore[method-assign]
    return clone


def run(bundle_path: Path, shares: list[float], queries: int, rounds: int, seed: int,
        unavailable: int = 1000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        copy = labelled_copy(bundle_path, Path(tmp) / "labelled", shares, seed)
        model = LoadedModel.load(copy, onnx_threads=1, faiss_threads=1, gpu="off")
        sample = model.bundle.sample_queries()
    items = np.asarray(model.index.items)
    sample = sample[(sample > 0).any(axis=1)][:queries]
    clicks = [[model.item_list[i - 1] for i in row if i > 0] for row in sample]
    vectors = model.encoder.encode(prepare_clicks([[i for i in row if i > 0] for row in sample], model.max_len))
    variants = ["none"] + [f"keep_{s:g}" for s in shares]
    constraints = {name: None if name == "none" else model.constraints.get(filters.filter_key({name: ["in"]}, None))
                   for name in variants}
    # no filter, but items marked unavailable (POST /admin/items): every request is constrained
    marked = np.sort(np.random.default_rng(seed + 1).choice(model.num_items, unavailable, replace=False))
    variants.append(f"{unavailable} unavailable")
    constraints[variants[-1]] = model.constraints.get(None, (1, marked))
    exact_searcher = forced(model.filtered, "exact")
    index_searcher = forced(model.filtered, "index")
    request = {name: [] for name in variants}
    search = {name: {"chosen": [], "exact": [], "index": []} for name in variants}
    recall = {name: [] for name in variants}
    index_recall = {name: [] for name in variants}  # the index with the selector, forced
    full = {name: 0 for name in variants}
    rng = np.random.default_rng(seed)
    for round_number in range(rounds):
        for q in range(len(clicks)):
            for name in rng.permutation(variants).tolist():  # a fresh order for each query
                constraint = constraints[name]
                query = Query(clicks[q], TOP_N, constraint=constraint)
                elapsed, (answer,) = cpu_ms(lambda query=query: model.recommend([query]))
                request[name].append(elapsed)
                vector = vectors[q:q + 1]
                excluded = {model.row_of[c] for c in clicks[q]}
                k = min(TOP_N + len(excluded), model.num_items)
                if constraint is None:
                    search[name]["chosen"].append(cpu_ms(lambda v=vector, k=k: model.index.search(v, k))[0])
                else:
                    three = [("chosen", model.filtered), ("exact", exact_searcher), ("index", index_searcher)]
                    for position in rng.permutation(3):  # shuffled too: none always follows another
                        label, searcher = three[position]
                        search[name][label].append(
                            cpu_ms(lambda s=searcher, v=vector, k=k, c=constraint: s.search(v, k, c))[0])
                if round_number == 0:  # correctness once per query
                    allowed = (constraint.allows(np.arange(model.num_items)) if constraint is not None
                               else np.ones(model.num_items, dtype=bool))
                    allowed[list(excluded)] = False
                    rows = np.flatnonzero(allowed)
                    scores = items[rows] @ vectors[q]
                    exact = rows[np.argsort(-scores, kind="stable")[:TOP_N]]
                    got = [model.row_of[i] for i in answer.item_ids]
                    want = min(TOP_N, len(rows))
                    full[name] += len(got) == want
                    recall[name].append(len(set(got) & set(exact.tolist())) / max(1, want))
                    if constraint is not None:
                        _, rows_by_index = index_searcher.search(vector, k, constraint)
                        forced_top = [r for r in rows_by_index[0].tolist() if r >= 0 and r not in excluded][:TOP_N]
                        index_recall[name].append(len(set(forced_top) & set(exact.tolist())) / max(1, want))
    base_request = statistics.mean(request["none"])
    base_search = statistics.mean(search["none"]["chosen"])
    results = []
    for name in variants:
        constraint = constraints[name]
        row = {
            "filter": name, "allowed_items": constraint.count if constraint else model.num_items,
            "share": (constraint.share if constraint else 1.0),
            "strategy": (model.filtered.strategy(constraint, TOP_N + 10) if constraint else "unfiltered index"),
            "full_lists": f"{full[name]}/{len(clicks)}",
            "recall@50_mean": float(np.mean(recall[name])), "recall@50_min": float(np.min(recall[name])),
            "request_cpu_ms": statistics.mean(request[name]),
            "request_cpu_ratio": statistics.mean(request[name]) / base_request,
            "search_cpu_ms": statistics.mean(search[name]["chosen"]),
            "search_cpu_ratio": statistics.mean(search[name]["chosen"]) / base_search,
        }
        if constraint is not None:
            row["search_exact_ms"] = statistics.mean(search[name]["exact"])
            row["search_index_ms"] = statistics.mean(search[name]["index"])
            row["index_recall@50_mean"] = float(np.mean(index_recall[name]))
        results.append(row)
    return {
        "bundle": str(bundle_path), "catalog": model.num_items, "dim": model.bundle.dim,
        "index": model.index_spec.to_dict(), "queries": len(clicks), "rounds": rounds, "top_n": TOP_N,
        "labels": "synthetic: a seeded random subset of the catalog per share", "seed": seed,
        "manifest_latency_ms": {"index": (model.bundle.manifest.get("index") or {}).get("latency", {})
                                .get("batch1_p50_ms"),
                                "exact": (model.bundle.manifest.get("index") or {}).get("exact_latency", {})
                                .get("batch1_p50_ms")},
        "training": training_of(model.bundle.manifest),
        "results": results,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
    }


def training_of(manifest: dict) -> dict:
    """How the model was trained: a capped run is an item table to search, not an accuracy figure."""
    training = manifest.get("training") or {}
    return {"model": manifest.get("model"), "dim": manifest.get("dim"), "epochs": training.get("epochs"),
            "best_epoch": (manifest.get("run") or {}).get("best_epoch"),
            "test_hr@10": ((manifest.get("metrics") or {}).get("test") or {}).get("hr@10")}


def _figure(row: dict, key: str, digits: int) -> str:
    return f"{row[key]:.{digits}f}" if key in row else "-"


def markdown(report: dict) -> str:
    capped = report["training"]["best_epoch"] == report["training"]["epochs"]
    lines = [
        f"Filtered retrieval on `{report['bundle']}`: {report['catalog']:,} items, D={report['dim']}, "
        f"{report['index']['type']} index {report['index']['search']}; {report['queries']} real validation "
        f"queries x {report['rounds']} rounds, the variants of each query in a random order, "
        f"top_n {report['top_n']}, one onnxruntime and one "
        f"faiss thread. Filter labels: {report['labels']} (seed {report['seed']}). Load average during the "
        f"run: {', '.join(f'{x:.1f}' for x in report['machine']['load_average'])} on "
        f"{report['machine']['cpus']} CPUs. Model: {report['training']['model']}, at most "
        f"{report['training']['epochs']} epochs (best {report['training']['best_epoch']}"
        f"{': capped, still improving; an item table to search, not an accuracy figure' if capped else ''}), "
        f"test HR@10 {report['training']['test_hr@10']:.4f}.",
        "",
        "CPU per request = encode + search + selection (`LoadedModel.recommend`, `time.process_time`); "
        "ratio = against the unfiltered request of the same run. Recall@50 = overlap with exact filtered "
        "search (numpy scan of the allowed, unclicked items); full lists = answers holding top_n items (or "
        "every allowed item when fewer exist). Search columns: the search call alone (chosen strategy, and "
        "both strategies forced, and the recall of the index with the selector when forced).",
        "",
        "| filter | items kept | strategy chosen | full lists | recall@50 mean | recall@50 min | CPU/request ms "
        "| ratio | search ms (chosen) | search ratio | exact scan ms | index+selector ms | index+selector "
        "recall@50 |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['filter']} | {r['allowed_items']:,} ({r['share']:.0%}) | {r['strategy']} | {r['full_lists']} "
            f"| {r['recall@50_mean']:.4f} | {r['recall@50_min']:.2f} | {r['request_cpu_ms']:.3f} "
            f"| {r['request_cpu_ratio']:.2f}x | {r['search_cpu_ms']:.3f} | {r['search_cpu_ratio']:.2f}x "
            f"| {_figure(r, 'search_exact_ms', 3)} | {_figure(r, 'search_index_ms', 3)} "
            f"| {_figure(r, 'index_recall@50_mean', 4)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="An indexed bundle (sine build-index).")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.1, 0.5])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unavailable", type=int, default=1000, help="Also: no filter, this many items "
                        "marked unavailable (random, seeded).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--name", default="filter", help="Result file name (filter.json / .md).")
    args = parser.parse_args()
    report = run(args.bundle, args.shares, args.queries, args.rounds, args.seed, args.unavailable)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
