"""Calibration of the industrial-shaped generator against a real catalog.

    nice -n 10 .venv/bin/python bench/synth_calibration.py --real /work/shared/data/video.csv.gz

1. The rank-frequency slope of every real log in ../shared/data (the generator's
   default `zipf` is read from these), measured between rank 10 and M/10 where the
   curve is straight.
2. A synthetic log of the real one's size (items, clicks, mean user length) from
   sine/data/industrial.py, and the same quick SINE training on both (few epochs,
   one thread, sampled softmax: the same settings, so the tables differ by data only).
3. The nearest-neighbour profile (sine/neighbours.py) of both learned item tables:
   k-th neighbour cosine, the gap from the 1st, relative contrast; with a plot.

Writes bench/results/synth_calibration.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data"


def zipf_slope(counts: np.ndarray) -> float:
    """Slope of log(count) against log(rank), ranks 10 .. M/10."""
    counts = np.sort(np.asarray(counts))[::-1]
    ranks = np.arange(1, len(counts) + 1)
    keep = (ranks >= 10) & (ranks <= max(11, len(counts) // 10))
    return float(np.polyfit(np.log(ranks[keep]), np.log(counts[keep]), 1)[0])


def log_stats(frame) -> dict[str, Any]:
    """Size, slope and lengths of a frame with user_id and item_id (read unsorted: cheap)."""
    from sine.data.logs import ITEM, USER

    counts = frame[ITEM].value_counts().to_numpy()
    lengths = frame[USER].value_counts().to_numpy()
    return {"clicks": len(frame), "items": len(counts), "users": len(lengths),
            "zipf_slope": round(zipf_slope(counts), 3), "top_item_share": round(counts[0] / len(frame), 5),
            "mean_user_length": round(float(lengths.mean()), 2),
            "median_item_clicks": float(np.median(counts))}


def item_table(run_dir: Path) -> np.ndarray:
    from trainer.run import load_run

    run = load_run(run_dir)
    return run.encoder.item_table().detach().numpy()[1:]  # padding row dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=DATA / "video.csv.gz")
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--stay", type=float, default=None, help="the generator's stay (default: its own)")
    parser.add_argument("--max-interests", type=int, default=None)
    parser.add_argument("--tag", default="", help="a variant of the synthetic log, added to the "
                        "existing results (the real run is reused from --work)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sine-calibration")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from sine.data.industrial import IndustrialSpec, write_parquet_dataset
    from sine.data.logs import ITEM, USER, read_log
    from sine.neighbours import neighbour_profile
    from trainer.config import TrainConfig
    from trainer.run import train_run

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "real": str(args.real),
                              "slopes": {}}
    for path in sorted(DATA.glob("*.csv.gz")):
        if ".items." not in path.name:
            report["slopes"][path.name] = log_stats(pd.read_csv(path, dtype=str, usecols=[USER, ITEM]))
    real = report["slopes"].get(args.real.name) or log_stats(read_log(args.real))
    overrides = {k: v for k, v in (("stay", args.stay), ("max_interests", args.max_interests)) if v is not None}
    spec = IndustrialSpec(num_items=real["items"], num_clicks=real["clicks"], num_clusters=args.clusters,
                          mean_sessions=2.0, mean_session_length=real["mean_user_length"] / 2.0, seed=0,
                          **overrides)
    name = f"synthetic-{args.tag}" if args.tag else "synthetic"
    if args.tag and (RESULTS / "synth_calibration.json").exists():
        report = {**json.loads((RESULTS / "synth_calibration.json").read_text()),
                  "slopes": report["slopes"]}
    synthetic = args.work / name
    if not (synthetic / ".complete").exists():
        write_parquet_dataset(spec, synthetic, progress=False)
        (synthetic / ".complete").write_text("")
    report.setdefault("synthetic_specs", {})[name] = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    report.setdefault("synthetic_stats", {})[name] = log_stats(pd.read_parquet(synthetic,
                                                                               columns=[USER, ITEM]))

    config = dict(model="sine", dim=64, epochs=args.epochs, loss="sampled", negatives=1024, batch_size=256,
                  threads=1, eval_users=2000, seed=0)
    report["train_config"] = config
    report.setdefault("profiles", {})
    report.setdefault("train", {})
    for label, source in (("real", args.real), (name, synthetic)):
        run = args.work / f"run-{label}"
        if not (run / "metrics.json").exists():
            started = time.perf_counter()
            metrics = train_run(source, run, TrainConfig(**config))
            report["train"][label] = {"seconds": round(time.perf_counter() - started, 1),
                                     "test": metrics["test"], "epochs": metrics["epochs"]}
        else:
            report["train"][label] = {"test": json.loads((run / "metrics.json").read_text())["test"]}
        table = item_table(run)
        report["profiles"][label] = {metric: neighbour_profile(table, queries=2000, metric=metric)
                                    for metric in ("cosine", "ip")}
        write(report)
    plot(report, RESULTS / "synth_calibration.png")
    write(report)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    quantiles = ["p10", "p25", "p50", "p75", "p90"]
    for name, style in zip(report["profiles"], ("-o", "--s", ":^", "-.v"), strict=False):
        prof = report["profiles"].get(name, {}).get("cosine")
        if prof is None:
            continue
        ks = sorted(prof["kth_similarity"], key=int)
        medians = [prof["kth_similarity"][k]["p50"] for k in ks]
        lows = [prof["kth_similarity"][k]["p10"] for k in ks]
        highs = [prof["kth_similarity"][k]["p90"] for k in ks]
        axes[0].plot([int(k) for k in ks], medians, style, label=name)
        axes[0].fill_between([int(k) for k in ks], lows, highs, alpha=0.2)
        axes[1].plot(quantiles, [prof["relative_contrast"][q] for q in quantiles], style, label=name)
    axes[0].set(xscale="log", xlabel="k-th neighbour", ylabel="cosine (median, p10-p90)",
                title="k-th neighbour similarity")
    axes[1].set(xlabel="quantile over queries", ylabel="relative contrast (mean dist / NN dist)",
                title="relative contrast")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth_calibration.json").write_text(json.dumps(report, indent=2))
    lines = ["# Synthetic (industrial-shaped) vs real catalog", "",
             "Command: `nice -n 10 .venv/bin/python bench/synth_calibration.py` "
             f"(load average at start {report['load_average_start'][0]:.1f}, 2 shared cores).", "",
             "## Rank-frequency slopes of the real logs (ranks 10 .. M/10)", "",
             "| log | clicks | items | users | slope | top item share | mean user length |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows = dict(report["slopes"])
    for name, stats in report.get("synthetic_stats", {}).items():
        rows[f"{name} (video-sized)"] = stats
    for name, s in rows.items():
        lines.append(f"| {name} | {s['clicks']:,} | {s['items']:,} | {s['users']:,} | {s['zipf_slope']} | "
                     f"{s['top_item_share']} | {s['mean_user_length']} |")
    if report.get("profiles"):
        cfg = report["train_config"]
        lines += ["", "## Nearest-neighbour profile of the learned item tables", "",
                  f"SINE, D={cfg['dim']}, {cfg['epochs']} epochs, sampled softmax ({cfg['negatives']} "
                  "negatives), batch 256, 1 thread, the same seed; every item of each table, 2,000 "
                  "sampled queries, exact search (sine/neighbours.py).", "",
                  "| table | metric | 1st nn p50 | 10th nn p50 | 50th nn p50 | gap 1st-10th p50 | "
                  "gap 1st-50th p50 | relative contrast p50 (p10-p90) | test hr@50 |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        for name, profiles in report["profiles"].items():
            for metric, p in profiles.items():
                k = p["kth_similarity"]
                g = p["gap_from_first"]
                rc = p["relative_contrast"]
                lines.append(f"| {name} | {metric} | {k['1']['p50']:.3f} | {k['10']['p50']:.3f} | "
                             f"{k['50']['p50']:.3f} | {g['10']['p50']:.3f} | {g['50']['p50']:.3f} | "
                             f"{rc['p50']:.3f} ({rc['p10']:.3f}-{rc['p90']:.3f}) | "
                             f"{report['train'][name]['test']['hr@50']:.4f} |")
        for name, spec in report.get("synthetic_specs", {}).items():
            lines.append(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in spec.items()))
        lines += ["", "![profiles](synth_calibration.png)"]
    (RESULTS / "synth_calibration.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
