"""The capacity plan's tables (docs/scaling.md), computed from the measured benchmark files.

    .venv/bin/python bench/capacity.py            # writes bench/results/capacity.json and .md

Every number is either read from a measurement (the file is named in the output) or
derived from them by a formula written next to it here; the few planning choices that
are not measurements (a latency target, peak request rates, a memory budget per node,
utilisation) are in `ASSUMED`, named as such in the doc, and can be changed on the
command line of a fork of this file. The functions are pure so that tests can check the
arithmetic against a hand computation (tests/test_capacity.py).

Inputs (bench/results/):
- index_1m.json: bytes per item of each index type (faiss serialize) and the per-query
  search time at 1M items, one thread, at recall@50 >= 0.95 (bench/index_1m.py);
- train_speed.json: training examples/s of SINE on one CPU thread (bench/train_speed.py);
- gpu_check.json, when present: GPU examples/s (bench/gpu_check.sh on a GPU host); until
  then the GPU rows are formulas with G left open;
- redis_footprint.json: bytes per stored history (by length) and per stream entry;
- serve.json: /recommend requests/s of one API replica (bench/serve_bench.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# paper Table 2 (docs/paper: sine-wsdm2021.md); log span in days where the paper or the
# data's source gives one (ULarge: "daily logs ... from March 29 to April 4, 2020"; Taobao
# UserBehavior: 25 Nov - 3 Dec 2017); Amazon Books' reviews span years: no daily rate
DATASETS = {
    "Amazon Books": {"users": 8_026_324, "items": 2_330_066, "clicks": 22_507_155, "days": None},
    "Taobao": {"users": 987_994, "items": 4_162_024, "clicks": 100_150_807, "days": 9},
    "ULarge": {"users": 106_527_123, "items": 25_000_000, "clicks": 4_000_000_000, "days": 7},
}

# planning choices, not measurements (the doc says so wherever they are used)
ASSUMED = {
    "dim": 128,  # TrainConfig.dim default: the item table's D
    "shard_items": 1_000_000,  # index shard size = the measured size (latency is measured there)
    "peak_qps": {"Amazon Books": 1_000, "Taobao": 5_000, "ULarge": 50_000},  # /recommend requests/s
    "utilisation": 0.5,  # plan cores at 50% busy at peak (headroom for p99 and a lost node)
    "cores_per_index_pod": 4,
    "min_replicas": 2,  # survive one pod loss
    "gpu_efficiency": 0.9,  # DDP scaling efficiency across GPUs (not measured here)
    "epoch_hours_target": 1.0,
    "redis_node_gib": 64,  # memory of one Redis node; the stream may use a quarter
    "stream_share": 0.25,
    "retrain_interval_days": 1,  # the stream holds one interval of clicks before export
    "trainer_bytes_per_param": 16,  # fp32 weight + gradient + two Adam moments
    "recall_target": 0.95,
}


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------- formulas


def index_memory_gib(items: int, bytes_per_item: float) -> float:
    """Index memory = items x bytes per item (faiss serialize, measured at 1M)."""
    return items * bytes_per_item / 2**30


def shards(items: int, shard_items: int) -> int:
    return math.ceil(items / shard_items)


def search_cores(qps: float, num_shards: int, ms_per_query: float, utilisation: float) -> float:
    """Cores the index tier needs: every request searches every shard (fan-out)."""
    return qps * num_shards * ms_per_query / 1e3 / utilisation


def replicas_per_shard(qps: float, ms_per_query: float, cores_per_pod: int, utilisation: float,
                       minimum: int) -> int:
    return max(minimum, math.ceil(qps * ms_per_query / 1e3 / utilisation / cores_per_pod))


def api_replicas(qps: float, replica_rps: float, utilisation: float, minimum: int) -> int:
    return max(minimum, math.ceil(qps / (replica_rps * utilisation)))


def cpu_core_hours_per_epoch(examples: float, examples_per_second_per_core: float) -> float:
    return examples / examples_per_second_per_core / 3600


def gpus_for_epoch(examples: float, gpu_examples_per_second: float, efficiency: float, hours: float) -> int:
    """GPUs so that one epoch takes at most `hours`: examples / (G x efficiency x 3600 x hours)."""
    return math.ceil(examples / (gpu_examples_per_second * efficiency * 3600 * hours))


def trainer_table_gib(items: int, dim: int, bytes_per_param: int) -> float:
    """The item table on each DDP rank (replicated): items x D x (weight, grad, 2 Adam moments)."""
    return items * dim * bytes_per_param / 2**30


def history_bytes_per_user(entries: float, measured: dict[int, float]) -> float:
    """Bytes of one history list holding `entries` ids: linear between measured lengths;
    below the shortest measured the shortest's bytes (a floor: small lists cost at least it)."""
    points = sorted(measured.items())
    if entries <= points[0][0]:
        return points[0][1]
    for (n0, b0), (n1, b1) in itertools.pairwise(points):
        if entries <= n1:
            return b0 + (b1 - b0) * (entries - n0) / (n1 - n0)
    (n0, b0), (n1, b1) = points[-2], points[-1]
    return b1 + (b1 - b0) / (n1 - n0) * (entries - n1)


# ------------------------------------------------------------------------------- plan


def measured_inputs() -> dict:
    """Everything the plan reads from bench/results, with where it came from."""
    out: dict = {"sources": {}}
    index = load("index_1m.json")
    if index:
        calibrated = [t for t in index["catalogs"] if t.startswith("calibrated-")]
        tag = calibrated[0] if calibrated else next(iter(index["catalogs"]))
        entry = index["catalogs"][tag]
        out["index_catalog"] = tag
        out["index_dim"] = entry["dim"]
        out["bytes_per_item"] = {"flat": entry["exact_bytes_per_item"],
                                 **{k: s["bytes_per_item"] for k, s in entry["indexes"].items()}}
        best = {}
        for kind, sec in entry["indexes"].items():
            ok = [r for r in sec["sweep"] if r["recall50_tuning"] >= ASSUMED["recall_target"]]
            # none reached the target: the most accurate configuration measured, flagged
            r = min(ok, key=lambda r: r["p50_ms"]) if ok else max(sec["sweep"], key=lambda r: r["recall50_tuning"])
            best[kind] = {"p50_ms": r["p50_ms"], "recall50": r["recall50_held_out"],
                          "exact_p50_ms": r["exact_p50_ms"], "speedup": r["speedup"], "meets_target": bool(ok)}
        rows = [r for sec in entry["indexes"].values() for r in sec["sweep"]]
        exact_ms = sorted(r["exact_p50_ms"] for r in rows)[len(rows) // 2]
        best["flat (exact)"] = {"p50_ms": exact_ms, "recall50": 1.0, "exact_p50_ms": exact_ms, "speedup": 1.0,
                                "meets_target": True}
        out["search"] = best
        out["sources"]["index"] = f"bench/results/index_1m.json ({tag})"
    sizes = load("index_bytes.json")
    if sizes:
        # the types `sine build-index` builds, marginal bytes per item (rescaled to the 1M catalog's D)
        dim = out.setdefault("index_dim", sizes["dim"])
        out.setdefault("bytes_per_item", {}).update(
            {f"{k} (build-index)": t["bytes_per_item"] * dim / sizes["dim"] for k, t in sizes["types"].items()})
        out["sources"]["index_bytes"] = f"bench/results/index_bytes.json (D={sizes['dim']})"
    speed = load("train_speed.json")
    if speed:
        rates = sorted(r["ours_fp32"]["examples_per_second"] for r in speed["rounds"] if "ours_fp32" in r)
        out["cpu_examples_per_second_per_thread"] = rates[len(rates) // 2]
        out["cpu_throughput_setting"] = f"{speed['settings']}, {speed['threads']} thread (median of rounds)"
        out["sources"]["cpu"] = "bench/results/train_speed.json"
    gpu = load("gpu_check.json")
    rates = [t["examples_per_second"] for t in (gpu or {}).get("throughput", [])
             if t.get("model") == "sine" and str(t.get("device", "")).startswith("cuda")
             and "examples_per_second" in t]
    out["gpu_examples_per_second"] = max(rates) if rates else None
    out["sources"]["gpu"] = "bench/results/gpu_check.json" if rates else "not measured (bench/gpu_check.sh)"
    redis = load("redis_footprint.json")
    if redis:
        out["history_bytes"] = {h["entries_per_history"]: h["memory_usage_bytes_per_key"]
                                for h in redis["histories"].values()}
        out["history_cap"] = redis["history_cap"]
        out["stream_bytes_per_entry"] = redis["stream"]["bytes_per_entry_memory_usage"]
        out["sources"]["redis"] = f"bench/results/redis_footprint.json (Redis {redis['redis_version']})"
    serve = load("serve.json")
    if serve:
        out["api_rps_per_replica"] = serve["variants"]["batching"]["recommend"]["requests_per_second"]
        out["sources"]["api"] = (f"bench/results/serve.json (batching, {serve['items']:,}-item bundle, "
                                 "one replica on a 2-core machine)")
    return out


def plan(m: dict, a: dict = ASSUMED) -> dict:
    """The plan per dataset from measured inputs `m` and planning choices `a`."""
    rows = {}
    for name, d in DATASETS.items():
        row: dict = {**d}
        qps = a["peak_qps"][name]
        n_shards = shards(d["items"], a["shard_items"])
        row["index_shards"] = n_shards
        # memory scales with D: bytes/item measured at index_dim, rescaled to the plan's D where
        # the index stores vectors (all types here keep a full vector or a code per dimension)
        scale = a["dim"] / m["index_dim"] if "index_dim" in m else 1.0
        row["index_gib"] = {k: index_memory_gib(d["items"], b * scale) for k, b in m.get("bytes_per_item", {}).items()}
        row["shard_gib"] = {k: index_memory_gib(a["shard_items"], b * scale)
                            for k, b in m.get("bytes_per_item", {}).items()}
        row["search"] = {}
        for kind, s in m.get("search", {}).items():
            row["search"][kind] = {
                "ms_per_shard": s["p50_ms"],
                "cores": search_cores(qps, n_shards, s["p50_ms"], a["utilisation"]),
                "replicas_per_shard": replicas_per_shard(qps, s["p50_ms"], a["cores_per_index_pod"],
                                                         a["utilisation"], a["min_replicas"]),
            }
        if "api_rps_per_replica" in m:
            row["api_replicas"] = api_replicas(qps, m["api_rps_per_replica"], a["utilisation"], a["min_replicas"])
        examples = d["clicks"]  # upper bound: every click a training target
        row["examples_per_epoch"] = examples
        if "cpu_examples_per_second_per_thread" in m:
            rate = m["cpu_examples_per_second_per_thread"]
            row["cpu_core_hours_per_epoch"] = cpu_core_hours_per_epoch(examples, rate)
        g = m.get("gpu_examples_per_second")
        row["gpus_for_target"] = (gpus_for_epoch(examples, g, a["gpu_efficiency"], a["epoch_hours_target"])
                                  if g else None)
        row["trainer_table_gib"] = trainer_table_gib(d["items"], a["dim"], a["trainer_bytes_per_param"])
        if "history_bytes" in m:
            per_user = min(d["clicks"] / d["users"], m["history_cap"])
            row["history_entries_per_user"] = per_user
            row["history_gib"] = d["users"] * history_bytes_per_user(per_user, m["history_bytes"]) / 2**30
            per_interval = (d["clicks"] / d["days"] * a["retrain_interval_days"]) if d["days"] else d["clicks"]
            row["stream_entries_per_interval"] = per_interval
            row["stream_entries_per_interval_basis"] = ("clicks / days x interval" if d["days"]
                                                        else "whole log (no daily rate known): a bound")
            row["stream_gib"] = per_interval * m["stream_bytes_per_entry"] / 2**30
            budget = a["redis_node_gib"] * a["stream_share"] * 2**30
            row["stream_entries_limit"] = budget / m["stream_bytes_per_entry"]
            row["kafka"] = per_interval > row["stream_entries_limit"]
        rows[name] = row
    return rows


def markdown(m: dict, rows: dict, a: dict = ASSUMED) -> str:
    def gib(x: float) -> str:
        return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"

    kinds = list(m.get("bytes_per_item", {}))
    lines = ["Generated by bench/capacity.py from: " + "; ".join(f"{k}: {v}" for k, v in m["sources"].items()) + ".",
             "", f"Assumed (planning choices, not measurements): {json.dumps(a)}", "",
             "### Measured inputs", "", "| quantity | value | source |", "| --- | --- | --- |"]
    for kind, b in m.get("bytes_per_item", {}).items():
        where = m["sources"].get("index_bytes" if "build-index" in kind else "index")
        lines.append(f"| index bytes/item, {kind}, D={m.get('index_dim')} | {b:,.1f} | {where} |")
    for kind, s in m.get("search", {}).items():
        short = "" if s["meets_target"] else f", BELOW the {ASSUMED['recall_target']} target"
        lines.append(f"| search ms/query at 1M items, {kind}, 1 thread (CPU time) | {s['p50_ms']:.3f} "
                     f"(recall@50 {s['recall50']:.3f}{short}; exact {s['exact_p50_ms']:.2f} ms, "
                     f"{s['speedup']:.1f}x) | {m['sources'].get('index')} |")
    if "cpu_examples_per_second_per_thread" in m:
        lines.append(f"| SINE training examples/s, 1 CPU thread | {m['cpu_examples_per_second_per_thread']:,.0f} | "
                     f"{m['sources']['cpu']} ({m['cpu_throughput_setting']}) |")
    lines.append(f"| SINE training examples/s, 1 GPU | {m.get('gpu_examples_per_second') or 'G (not measured)'} | "
                 f"{m['sources']['gpu']} |")
    for n, b in sorted(m.get("history_bytes", {}).items()):
        lines.append(f"| Redis history list of {n} entries, bytes | {b:,.0f} | {m['sources']['redis']} |")
    if "stream_bytes_per_entry" in m:
        lines.append(f"| Redis stream entry, bytes | {m['stream_bytes_per_entry']:.1f} | {m['sources']['redis']} |")
    if "api_rps_per_replica" in m:
        lines.append(f"| /recommend req/s, one API replica | {m['api_rps_per_replica']:,.0f} | {m['sources']['api']} |")
    lines += ["",
             "### Index memory (bytes/item measured at 1M items, D=" + str(m.get("index_dim")) +
             f", scaled to D={a['dim']})", "",
             "| dataset | items | shards of " + f"{a['shard_items']:,}" + " | " +
             " | ".join(f"{k} GiB (per shard)" for k in kinds) + " |",
             "|---|---:|---:|" + "---:|" * len(kinds)]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['items']:,} | {r['index_shards']} | " + " | ".join(
            f"{gib(r['index_gib'][k])} ({gib(r['shard_gib'][k])})" for k in kinds) + " |")
    lines += ["", "### Search tier at peak load (ms/query per shard: CPU time at 1M items, 1 thread; the fastest "
              f"configuration with recall@50 >= {a['recall_target']}, or where none reached it the most accurate "
              "one measured: its held-out recall is in brackets)", "",
              "| dataset | peak req/s (assumed) | index (recall@50 held out) | ms/shard | cores (all shards) | "
              "replicas per shard | API replicas |", "|---|---:|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        for kind, s in r["search"].items():
            rec = m["search"][kind]["recall50"]
            lines.append(f"| {name} | {a['peak_qps'][name]:,} | {kind} ({rec:.3f}) | {s['ms_per_shard']:.3f} | "
                         f"{s['cores']:,.0f} | {s['replicas_per_shard']} | {r.get('api_replicas', '')} |")
    g = m.get("gpu_examples_per_second")
    lines += ["", "### Training per epoch (examples = clicks, an upper bound)", "",
              f"CPU: {m.get('cpu_examples_per_second_per_thread')} examples/s per thread "
              f"({m.get('cpu_throughput_setting')}). GPU: "
              + (f"{g:,.0f} examples/s ({m['sources']['gpu']})" if g else
                 "G not measured here: GPUs = ceil(clicks / (G x efficiency x 3600 x hours))"), "",
              "| dataset | clicks | CPU core-hours / epoch | GPUs for a " + f"{a['epoch_hours_target']:g} h epoch | "
              "item table per rank GiB (weights+grad+Adam) |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        gp = r["gpus_for_target"] if r["gpus_for_target"] is not None else \
            f"ceil({r['clicks']:.3g} / (G x {a['gpu_efficiency']} x 3600 x {a['epoch_hours_target']:g}))"
        lines.append(f"| {name} | {r['clicks']:,} | {r.get('cpu_core_hours_per_epoch', 0):,.0f} | {gp} | "
                     f"{r['trainer_table_gib']:.1f} |")
    lines += ["", "### Redis", "",
              "| dataset | users | history entries/user (avg, cap " + str(m.get("history_cap")) + ") | histories GiB | "
              "stream entries per interval | basis | stream GiB | limit (entries) | Kafka? |",
              "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for name, r in rows.items():
        if "history_gib" in r:
            lines.append(f"| {name} | {r['users']:,} | {r['history_entries_per_user']:.1f} | {gib(r['history_gib'])} | "
                         f"{r['stream_entries_per_interval']:,.0f} | {r['stream_entries_per_interval_basis']} | "
                         f"{gib(r['stream_gib'])} | {r['stream_entries_limit']:,.0f} | "
                         f"{'yes' if r['kafka'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "capacity.json")
    args = parser.parse_args()
    m = measured_inputs()
    rows = plan(m)
    args.out.write_text(json.dumps({"measured": m, "assumed": ASSUMED, "plan": rows}, indent=2, default=str))
    text = markdown(m, rows)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
